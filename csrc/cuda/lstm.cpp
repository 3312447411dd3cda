// LSTM on the CUDA backend: per step pre = xw[t] + h W_hh^T (one GEMM), the cell kernel, and with
// proj_size one more GEMM h = h_unproj W_hr^T. Backward per step: the pointwise kernel and one
// GEMM for dh_{t-1} (plus, projected, dh_unproj = dh W_hr); dW_hh and dW_hr one GEMM each after.
#include <ATen/ops/add.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>

#include "common.h"
#include "ops.h"

namespace fastrnn::cuda {

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(const Tensor& xw, const Tensor& w_hh,
                                                                const OptTensor& w_hr, const Tensor& h0,
                                                                const Tensor& c0, const OptTensor& batch_sizes,
                                                                bool reverse, bool save, const OptTensor& bias) {
  const char* op = "lstm_forward";
  const Dims d = check_forward(op, 4, xw, w_hh, w_hr, std::nullopt, h0, c0, batch_sizes, bias);
  check_backend(op, "xw", xw);
  const DeviceContext ctx(xw);
  const Schedule s = schedule(d, batch_sizes, reverse);
  const auto opts = xw.options();
  const bool proj = w_hr.has_value();
  // The bias joins xw in one pass here (the CPU backend adds it in its cell pass instead).
  const Tensor x = matrix(bias.has_value() ? at::add(xw, *bias) : xw, d), w_t = w_hh.contiguous().t();
  const Tensor wr_t = proj ? w_hr->contiguous().t() : Tensor();
  Tensor out = at::empty({d.N, d.P}, opts);
  const SavedRows gates(d, 4 * d.H, save, opts), cells(d, d.H, save, opts);
  Tensor h = state_copy(h0), c = state_copy(c0);
  Tensor pre = at::empty({d.B, 4 * d.H}, opts);
  Tensor h_unproj = proj ? at::empty({d.B, d.H}, opts) : Tensor();
  for (int64_t k = 0; k < s.steps(); ++k) {
    const Step st = s.step(k);
    Tensor pre_n = head(pre, st.rows), h_n = head(h, st.rows), o = rows(out, st.row, st.rows);
    at::addmm_out(pre_n, rows(x, st.row, st.rows), h_n, w_t);
    kernels::lstm_forward_step(dtype_tag(xw), ctx.stream(), step_rows(st), d.H,
                               {buf(pre_n), buf(c, 0, st.rows), gates.at_step(st), cells.at_step(st),
                                proj ? buf(h_unproj, 0, st.rows) : buf(o), proj ? none() : buf(h_n)});
    if (proj) {
      at::mm_out(o, head(h_unproj, st.rows), wr_t);
      h_n.copy_(o);
    }
  }
  return {out.view(d.seq(d.P)), h, c, gates.result(), cells.result()};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& w_hh,
    const OptTensor& w_hr, const Tensor& h0, const Tensor& c0, const Tensor& output, const Tensor& gates,
    const Tensor& cells, const OptTensor& batch_sizes, bool reverse) {
  const char* op = "lstm_backward";
  const Dims d = check_backward(op, 4, grad_output, grad_h_n, grad_c_n, w_hh, w_hr, std::nullopt, h0, c0, output,
                                gates, "gates", cells, batch_sizes);
  check_backend(op, "grad_output", grad_output);
  const DeviceContext ctx(grad_output);
  const Schedule s = schedule(d, batch_sizes, reverse);
  const auto opts = grad_output.options();
  const bool proj = w_hr.has_value();
  const Tensor go = matrix(grad_output, d), out = matrix(output, d), g = matrix(gates, d), cs = matrix(cells, d);
  const Tensor h0c = h0.contiguous(), c0c = c0.contiguous(), w = w_hh.contiguous();
  const Tensor wr = proj ? w_hr->contiguous() : Tensor();
  Tensor dh = state_copy(grad_h_n), dc = state_copy(grad_c_n);
  Tensor grad_xw = at::empty({d.N, 4 * d.H}, opts), h_prev = at::empty({d.N, d.P}, opts);
  // Projected: dh of every step (for dW_hr), o * tanh(c_t) of every step and the per-step dh_unproj.
  Tensor dh_all = proj ? at::empty({d.N, d.P}, opts) : Tensor();
  Tensor h_unproj = proj ? at::empty({d.N, d.H}, opts) : Tensor();
  Tensor dh_unproj = proj ? at::empty({d.B, d.H}, opts) : Tensor();
  for (int64_t k = s.steps() - 1; k >= 0; --k) {
    const Step st = s.step(k);
    Tensor dh_n = head(dh, st.rows), gx = rows(grad_xw, st.row, st.rows);
    kernels::Buf dh_a = buf(go, st.row, st.rows), dh_b = buf(dh_n);
    if (proj) {
      Tensor dsum = rows(dh_all, st.row, st.rows), dhu = head(dh_unproj, st.rows);
      at::add_out(dsum, rows(go, st.row, st.rows), dh_n);
      at::mm_out(dhu, dsum, wr);
      dh_a = buf(dhu);
      dh_b = none();
    }
    kernels::lstm_backward_step(dtype_tag(go), ctx.stream(), step_rows(st), d.H, d.P,
                                {buf(g, st.row, st.rows), buf(cs, st.row, st.rows), prev(cs, st),
                                 buf(c0c, 0, st.rows), dh_a, dh_b, buf(dc, 0, st.rows), buf(gx),
                                 proj ? buf(h_unproj, st.row, st.rows) : none(), prev(out, st),
                                 buf(h0c, 0, st.rows), buf(h_prev, st.row, st.rows)});
    at::mm_out(dh_n, gx, w);
  }
  Tensor grad_w_hr = proj ? at::mm(dh_all.t(), h_unproj) : at::empty({0}, opts);
  return {grad_xw.view(d.seq(4 * d.H)), at::mm(grad_xw.t(), h_prev), grad_w_hr, dh, dc};
}

}  // namespace fastrnn::cuda
