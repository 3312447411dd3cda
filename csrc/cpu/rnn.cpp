// Fused CPU tanh/ReLU RNN: per step one GEMM (h_{t-1} @ W_hh^T) and one pointwise pass.
#include <torch/library.h>

#include "cells.h"
#include "common.h"

namespace fastrnn::cpu {
namespace {

template <typename Cell, typename T>
std::tuple<at::Tensor, at::Tensor> forward(const Dims& d, const Schedule& sch, const at::Tensor& xw_,
                                           const at::Tensor& w_hh, const at::Tensor& h0) {
  using A = acc_t<T>;
  const int64_t H = d.H;
  const at::Tensor xw = xw_.contiguous(), W = forward_w_hh<A, T>(w_hh, d.B, H), stored = w_hh.contiguous();
  at::Tensor output = empty_seq(d.seq(H), xw.options());
  at::Tensor h = acc_copy<A>(h0);
  at::Tensor gh = at::empty({d.B, H}, acc_options<A>());
  const T* x = xw.const_data_ptr<T>();
  const A* w = W.defined() ? W.const_data_ptr<A>() : nullptr;
  T* out = output.data_ptr<T>();
  A* hs = h.data_ptr<A>();
  A* g = gh.data_ptr<A>();
  const vec::Kernels<T>* vk = vec_kernels<T>();
  const FloatSteps<T> hseq(d, H, vk != nullptr);
  float* hsq = hseq.data();
  // The cell of units [j0, j1) of row b of step st, after its GEMM wrote g's row b.
  auto cell = [&](const Step& st, int64_t b, int64_t j0, int64_t j1) {
    const T* xr = x + (st.row + b) * H;
    T* o = out + (st.row + b) * H;
    if constexpr (kVectorized<T>) {
      if (vk) {
        A* hr = hsq ? hsq + (st.row + b) * H : hs + b * H;
        vk->rnn_forward(std::is_same_v<Cell, ReluCell>, xr + j0, g + b * H + j0, o + j0, hr + j0, j1 - j0);
        return;
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      const A v = Cell::forward(static_cast<A>(xr[j]) + g[b * H + j]);
      o[j] = static_cast<T>(v);
      hs[b * H + j] = v;
    }
  };
  forward_steps<T>(sch, w, 1, H, d.B, out, h0, hs, g, 4, cell, {}, hsq, nullptr, stored.const_data_ptr<T>());
  if (hsq) hseq.last_into(sch, d.B, hs);
  return {output, to_dtype(h, xw.scalar_type())};
}

template <typename Cell, typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward(const Dims& d, const Schedule& sch,
                                                        const at::Tensor& grad_output_, const at::Tensor& grad_h_n,
                                                        const at::Tensor& w_hh, const at::Tensor& h0_,
                                                        const at::Tensor& output_) {
  using A = acc_t<T>;
  const int64_t H = d.H;
  const at::Tensor gout = grad_output_.contiguous(), output = output_.contiguous(), h0 = h0_.contiguous(),
                   W = to_acc<A>(w_hh);
  at::Tensor grad_xw = empty_seq(d.seq(H), gout.options());
  // The pre-activation gradients in A: grad_xw itself when T is A.
  at::Tensor dpre = std::is_same_v<T, A> ? grad_xw : empty_seq({d.N, H}, acc_options<A>());
  at::Tensor dh = acc_copy<A>(grad_h_n);
  const at::Tensor h_prev = gather_prev<T, A>(sch, output, h0, H);
  const T* go = gout.const_data_ptr<T>();
  const T* out = output.const_data_ptr<T>();
  const A* w = W.const_data_ptr<A>();
  A* dp = dpre.data_ptr<A>();
  A* dhs = dh.data_ptr<A>();
  const vec::Kernels<T>* vk = vec_kernels<T>();
  // The cell's backward for units [j0, j1) of row b of step st (dh_t complete for them).
  auto cell = [&](const Step& st, int64_t b, int64_t j0, int64_t j1) {
    const int64_t r = (st.row + b) * H;
    if constexpr (kVectorized<T>) {
      if (vk) {
        vk->rnn_backward(std::is_same_v<Cell, ReluCell>, out + r + j0, dhs + b * H + j0, go + r + j0, dp + r + j0,
                          j1 - j0);
        return;
      }
    }
    for (int64_t j = j0; j < j1; ++j)
      dp[r + j] = Cell::backward(static_cast<A>(out[r + j]), dhs[b * H + j] + static_cast<A>(go[r + j]));
  };
  backward_steps(sch, w, 1, H, d.B, dp, dhs, false, 2, cell);  // dh = dpre @ W_hh
  at::Tensor dW = at::empty({H, H}, acc_options<A>());
  gemm<A>(true, false, H, H, d.N, dp, H, h_prev.const_data_ptr<A>(), H, A(0), dW.data_ptr<A>(), H);
  if (!std::is_same_v<T, A>) grad_xw.copy_(dpre.view(grad_xw.sizes()));
  const auto dt = gout.scalar_type();
  return {grad_xw, to_dtype(dW, dt), to_dtype(dh, dt)};
}

template <typename Cell>
std::tuple<at::Tensor, at::Tensor> forward_op(const at::Tensor& xw, const at::Tensor& w_hh, const at::Tensor& h0,
                                              const std::optional<at::Tensor>& batch_sizes, bool reverse) {
  constexpr const char* op = std::is_same_v<Cell, TanhCell> ? "fastrnn::rnn_tanh_forward" : "fastrnn::rnn_relu_forward";
  const Dims d = check_forward(op, 1, xw, w_hh, std::nullopt, std::nullopt, h0, std::nullopt, batch_sizes);
  const at::Tensor bs = contiguous_sizes(batch_sizes);
  const Schedule sch = schedule(d, bs, reverse);
  return dispatch(op, "xw", xw, [&]<typename T>() { return forward<Cell, T>(d, sch, xw, w_hh, h0); });
}

template <typename Cell>
std::tuple<at::Tensor, at::Tensor, at::Tensor> backward_op(const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                                           const at::Tensor& w_hh, const at::Tensor& h0,
                                                           const at::Tensor& output,
                                                           const std::optional<at::Tensor>& batch_sizes, bool reverse) {
  constexpr const char* op =
      std::is_same_v<Cell, TanhCell> ? "fastrnn::rnn_tanh_backward" : "fastrnn::rnn_relu_backward";
  const Dims d = check_backward(op, 1, grad_output, grad_h_n, std::nullopt, w_hh, std::nullopt, std::nullopt, h0,
                                std::nullopt, output, std::nullopt, "", std::nullopt, batch_sizes);
  const at::Tensor bs = contiguous_sizes(batch_sizes);
  const Schedule sch = schedule(d, bs, reverse);
  return dispatch(op, "grad_output", grad_output,
                  [&]<typename T>() { return backward<Cell, T>(d, sch, grad_output, grad_h_n, w_hh, h0, output); });
}

}  // namespace
}  // namespace fastrnn::cpu

TORCH_LIBRARY_IMPL(fastrnn, CPU, m) {
  using namespace fastrnn;
  m.impl("rnn_tanh_forward", &cpu::forward_op<TanhCell>);
  m.impl("rnn_relu_forward", &cpu::forward_op<ReluCell>);
  m.impl("rnn_tanh_backward", &cpu::backward_op<TanhCell>);
  m.impl("rnn_relu_backward", &cpu::backward_op<ReluCell>);
}
