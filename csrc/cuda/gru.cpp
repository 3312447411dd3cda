// GRU on the CUDA backend: per step gh = h W_hh^T (one GEMM: the n gate needs its recurrent part
// apart from xw) and the cell kernel. Backward per step: the pointwise kernel and one GEMM,
// dh_{t-1} = z * dh + d(gh) W_hh; dW_hh one GEMM and db_hn one reduction after the loop.
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/zeros.h>

#include "common.h"
#include "ops.h"

namespace fastrnn::cuda {

std::tuple<Tensor, Tensor, Tensor> gru_forward(const Tensor& xw, const Tensor& w_hh, const OptTensor& b_hn,
                                               const Tensor& h0, const OptTensor& batch_sizes, bool reverse,
                                               bool save) {
  const char* op = "gru_forward";
  const Dims d = check_forward(op, 3, xw, w_hh, std::nullopt, b_hn, h0, std::nullopt, batch_sizes);
  check_backend(op, "xw", xw);
  const DeviceContext ctx(xw);
  const Schedule s = schedule(d, batch_sizes, reverse);
  const auto opts = xw.options();
  const Tensor x = matrix(xw, d), w_t = w_hh.t().contiguous();
  const Tensor b = b_hn.has_value() ? b_hn->contiguous() : Tensor();
  Tensor out = at::empty({d.N, d.H}, opts);
  const SavedRows workspace(d, 4 * d.H, save, opts);
  Tensor h = state_copy(h0), gh = at::empty({d.B, 3 * d.H}, opts);
  for (int64_t k = 0; k < s.steps(); ++k) {
    const Step st = s.step(k);
    Tensor gh_n = head(gh, st.rows), h_n = head(h, st.rows);
    at::mm_out(gh_n, h_n, w_t);
    kernels::gru_forward_step(dtype_tag(xw), ctx.stream(), step_rows(st), d.H,
                              {buf(x, st.row, st.rows), buf(gh_n), b.defined() ? buf(b) : none(), buf(h_n),
                               workspace.at_step(st), buf(out, st.row, st.rows)});
  }
  return {out.view(d.seq(d.H)), h, workspace.result()};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> gru_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                                        const Tensor& w_hh, const OptTensor& b_hn,
                                                        const Tensor& h0, const Tensor& output,
                                                        const Tensor& workspace, const OptTensor& batch_sizes,
                                                        bool reverse) {
  const char* op = "gru_backward";
  const Dims d = check_backward(op, 3, grad_output, grad_h_n, std::nullopt, w_hh, std::nullopt, b_hn, h0,
                                std::nullopt, output, workspace, "workspace", std::nullopt, batch_sizes);
  check_backend(op, "grad_output", grad_output);
  const DeviceContext ctx(grad_output);
  const Schedule s = schedule(d, batch_sizes, reverse);
  const auto opts = grad_output.options();
  const Tensor go = matrix(grad_output, d), out = matrix(output, d), ws = matrix(workspace, d);
  const Tensor h0c = h0.contiguous(), w = w_hh.contiguous();
  Tensor dh = state_copy(grad_h_n), dh_direct = at::empty({d.B, d.H}, opts);
  Tensor grad_xw = at::empty({d.N, 3 * d.H}, opts), grad_gh = at::empty({d.N, 3 * d.H}, opts),
         h_prev = at::empty({d.N, d.H}, opts);
  for (int64_t k = s.steps() - 1; k >= 0; --k) {
    const Step st = s.step(k);
    Tensor dh_n = head(dh, st.rows), dd = head(dh_direct, st.rows), ggh = rows(grad_gh, st.row, st.rows);
    kernels::gru_backward_step(dtype_tag(go), ctx.stream(), step_rows(st), d.H,
                               {buf(ws, st.row, st.rows), prev(out, st), buf(h0c, 0, st.rows),
                                buf(go, st.row, st.rows), buf(dh_n), buf(grad_xw, st.row, st.rows),
                                buf(ggh), buf(dd), buf(h_prev, st.row, st.rows)});
    at::addmm_out(dh_n, dd, ggh, w);
  }
  // The schema returns a [H] gradient even without b_hn: zeros then.
  Tensor grad_b_hn = b_hn.has_value() ? grad_gh.narrow(1, 2 * d.H, d.H).sum(0) : at::zeros({d.H}, opts);
  return {grad_xw.view(d.seq(3 * d.H)), at::mm(grad_gh.t(), h_prev), grad_b_hn, dh};
}

}  // namespace fastrnn::cuda
