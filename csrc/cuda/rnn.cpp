// tanh/ReLU RNN on the CUDA backend: per step pre = xw[t] + h W_hh^T (one GEMM straight into the
// output rows), then the activation kernel; backward one pointwise kernel and one GEMM for
// dh_{t-1} per step, dW_hh one GEMM after the loop.
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>

#include "common.h"
#include "ops.h"

namespace fastrnn::cuda {
namespace {

std::tuple<Tensor, Tensor> rnn_forward(kernels::Activation act, const char* op, const Tensor& xw,
                                       const Tensor& w_hh, const Tensor& h0, const OptTensor& batch_sizes,
                                       bool reverse) {
  const Dims d = check_forward(op, 1, xw, w_hh, std::nullopt, std::nullopt, h0, std::nullopt, batch_sizes);
  check_backend(op, "xw", xw);
  const DeviceContext ctx(xw);
  const Schedule s = schedule(d, batch_sizes, reverse);
  const Tensor x = matrix(xw, d), w_t = w_hh.contiguous().t();
  Tensor out = at::empty({d.N, d.H}, xw.options());
  Tensor h = state_copy(h0);
  for (int64_t k = 0; k < s.steps(); ++k) {
    const Step st = s.step(k);
    Tensor o = rows(out, st.row, st.rows), h_n = head(h, st.rows);
    at::addmm_out(o, rows(x, st.row, st.rows), h_n, w_t);
    kernels::rnn_forward_step(act, dtype_tag(xw), ctx.stream(), step_rows(st), d.H, {buf(o), buf(h_n)});
  }
  return {out.view(d.seq(d.H)), h};
}

std::tuple<Tensor, Tensor, Tensor> rnn_backward(kernels::Activation act, const char* op, const Tensor& grad_output,
                                                const Tensor& grad_h_n, const Tensor& w_hh, const Tensor& h0,
                                                const Tensor& output, const OptTensor& batch_sizes, bool reverse) {
  const Dims d = check_backward(op, 1, grad_output, grad_h_n, std::nullopt, w_hh, std::nullopt, std::nullopt, h0,
                                std::nullopt, output, std::nullopt, "", std::nullopt, batch_sizes);
  check_backend(op, "grad_output", grad_output);
  const DeviceContext ctx(grad_output);
  const Schedule s = schedule(d, batch_sizes, reverse);
  const Tensor go = matrix(grad_output, d), out = matrix(output, d), h0c = h0.contiguous(), w = w_hh.contiguous();
  Tensor dh = state_copy(grad_h_n);
  Tensor grad_xw = at::empty({d.N, d.H}, go.options()), h_prev = at::empty({d.N, d.H}, go.options());
  for (int64_t k = s.steps() - 1; k >= 0; --k) {
    const Step st = s.step(k);
    Tensor gx = rows(grad_xw, st.row, st.rows), dh_n = head(dh, st.rows);
    kernels::rnn_backward_step(act, dtype_tag(go), ctx.stream(), step_rows(st), d.H,
                               {buf(out, st.row, st.rows), buf(go, st.row, st.rows), buf(dh_n),
                                prev(out, st), buf(h0c, 0, st.rows), buf(gx),
                                buf(h_prev, st.row, st.rows)});
    at::mm_out(dh_n, gx, w);
  }
  return {grad_xw.view(d.seq(d.H)), at::mm(grad_xw.t(), h_prev), dh};
}

}  // namespace

std::tuple<Tensor, Tensor> rnn_tanh_forward(const Tensor& xw, const Tensor& w_hh, const Tensor& h0,
                                            const OptTensor& batch_sizes, bool reverse) {
  return rnn_forward(kernels::Activation::Tanh, "rnn_tanh_forward", xw, w_hh, h0, batch_sizes, reverse);
}
std::tuple<Tensor, Tensor> rnn_relu_forward(const Tensor& xw, const Tensor& w_hh, const Tensor& h0,
                                            const OptTensor& batch_sizes, bool reverse) {
  return rnn_forward(kernels::Activation::Relu, "rnn_relu_forward", xw, w_hh, h0, batch_sizes, reverse);
}
std::tuple<Tensor, Tensor, Tensor> rnn_tanh_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                                     const Tensor& w_hh, const Tensor& h0, const Tensor& output,
                                                     const OptTensor& batch_sizes, bool reverse) {
  return rnn_backward(kernels::Activation::Tanh, "rnn_tanh_backward", grad_output, grad_h_n, w_hh, h0, output,
                      batch_sizes, reverse);
}
std::tuple<Tensor, Tensor, Tensor> rnn_relu_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                                     const Tensor& w_hh, const Tensor& h0, const Tensor& output,
                                                     const OptTensor& batch_sizes, bool reverse) {
  return rnn_backward(kernels::Activation::Relu, "rnn_relu_backward", grad_output, grad_h_n, w_hh, h0, output,
                      batch_sizes, reverse);
}

}  // namespace fastrnn::cuda
