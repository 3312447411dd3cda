// Fused CPU GRU: per step one GEMM (h_{t-1} @ W_hh^T, all three gates) and one pointwise pass.
#include <torch/library.h>

#include "cells.h"
#include "common.h"

namespace fastrnn::cpu {
namespace {

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> forward(const Dims& d, const Schedule& sch, const at::Tensor& xw_,
                                                       const at::Tensor& w_hh, const std::optional<at::Tensor>& b_hn,
                                                       const at::Tensor& h0, bool save) {
  using A = acc_t<T>;
  const int64_t H = d.H, G = 3 * H;
  const at::Tensor xw = xw_.contiguous(), W = forward_w_hh<A, T>(w_hh, d.B, H), stored = w_hh.contiguous();
  const at::Tensor bias = b_hn.has_value() ? to_acc<A>(*b_hn) : at::Tensor();
  at::Tensor output = empty_seq(d.seq(H), xw.options());
  const SavedRows<T> workspace(d, 4 * H, save, xw.options());
  at::Tensor h = acc_copy<A>(h0);
  at::Tensor gh = at::empty({d.B, G}, acc_options<A>());
  const T* x = xw.const_data_ptr<T>();
  const A* w = W.defined() ? W.const_data_ptr<A>() : nullptr;
  const A* bn = bias.defined() ? bias.const_data_ptr<A>() : nullptr;
  T* out = output.data_ptr<T>();
  A* hs = h.data_ptr<A>();
  A* g = gh.data_ptr<A>();
  const vec::Kernels<T>* vk = vec_kernels<T>();
  // The cell of units [j0, j1) of row b of step st, after its GEMM wrote g's row b.
  auto cell = [&](const Step& st, int64_t b, int64_t j0, int64_t j1) {
    const int64_t r = st.row + b;
    const T* xr = x + r * G;
    const A* gr = g + b * G;
    T* wr = workspace.row(r, b);
    if constexpr (kVectorized<T>) {
      if (vk) {
        vk->gru_forward(xr, gr, bn, H, j0, j1 - j0, wr, out + r * H, hs + b * H);
        return;
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      const A hn = gr[2 * H + j] + (bn ? bn[j] : A(0));
      A rr, z, n, hh;
      GRUCell::forward<A>(A(xr[j]), A(xr[H + j]), A(xr[2 * H + j]), gr[j], gr[H + j], hn, hs[b * H + j], rr, z, n,
                          hh);
      wr[j] = T(rr);
      wr[H + j] = T(z);
      wr[2 * H + j] = T(n);
      wr[3 * H + j] = T(hn);
      out[r * H + j] = T(hh);
      hs[b * H + j] = hh;
    }
  };
  forward_steps<T>(sch, w, 3, H, d.B, out, h0, hs, g, 8, cell, {}, nullptr, nullptr, stored.const_data_ptr<T>());
  return {output, to_dtype(h, xw.scalar_type()), workspace.result()};
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward(
    const Dims& d, const Schedule& sch, const at::Tensor& grad_output_, const at::Tensor& grad_h_n,
    const at::Tensor& w_hh, bool has_b_hn, const at::Tensor& h0_, const at::Tensor& output_,
    const at::Tensor& workspace_) {
  using A = acc_t<T>;
  const int64_t H = d.H, G = 3 * H;
  const at::Tensor gout = grad_output_.contiguous(), output = output_.contiguous(), h0 = h0_.contiguous(),
                   workspace = workspace_.contiguous(), W = to_acc<A>(w_hh);
  const auto ao = acc_options<A>();
  at::Tensor grad_xw = empty_seq(d.seq(G), gout.options());
  // The recurrent GEMM's gradient (dxr, dxz, dhn): its n part differs from grad_xw's.
  at::Tensor dgh = empty_seq({d.N, G}, ao);
  at::Tensor dh = acc_copy<A>(grad_h_n);
  const at::Tensor h_prev = gather_prev<T, A>(sch, output, h0, H);
  const T* go = gout.const_data_ptr<T>();
  const T* ws = workspace.const_data_ptr<T>();
  const A* hp = h_prev.const_data_ptr<A>();
  const A* w = W.const_data_ptr<A>();
  T* dx = grad_xw.data_ptr<T>();
  A* dg = dgh.data_ptr<A>();
  A* dhs = dh.data_ptr<A>();
  const vec::Kernels<T>* vk = vec_kernels<T>();
  // The cell's backward for units [j0, j1) of row b of step st (dh_t complete for them): leaves the
  // direct part of dh_{t-1}, z * dh_t, in dh.
  auto cell = [&](const Step& st, int64_t b, int64_t j0, int64_t j1) {
    const int64_t r = st.row + b;
    const T* wr = ws + r * 4 * H;
    A* dgr = dg + r * G;
    T* dxr = dx + r * G;
    if constexpr (kVectorized<T>) {
      if (vk) {
        vk->gru_backward(wr, hp + r * H, go + r * H, H, j0, j1 - j0, dhs + b * H, dxr, dgr);
        return;
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      A dr, dz, dn, dhn, dhp;
      GRUCell::backward<A>(A(wr[j]), A(wr[H + j]), A(wr[2 * H + j]), A(wr[3 * H + j]), hp[r * H + j],
                           dhs[b * H + j] + A(go[r * H + j]), dr, dz, dn, dhn, dhp);
      dxr[j] = T(dr);
      dxr[H + j] = T(dz);
      dxr[2 * H + j] = T(dn);
      dgr[j] = dr;
      dgr[H + j] = dz;
      dgr[2 * H + j] = dhn;
      dhs[b * H + j] = dhp;
    }
  };
  backward_steps(sch, w, 3, H, d.B, dg, dhs, true, 6, cell);  // dh_{t-1} = z * dh (already in dh) + dgh @ W_hh
  at::Tensor dW = at::empty({G, H}, ao);
  gemm<A>(true, false, G, H, d.N, dg, G, hp, H, A(0), dW.data_ptr<A>(), H);
  const auto dt = gout.scalar_type();
  at::Tensor db = has_b_hn ? dgh.narrow(1, 2 * H, H).sum(0).to(dt) : at::zeros({H}, gout.options());
  return {grad_xw, to_dtype(dW, dt), db, to_dtype(dh, dt)};
}

constexpr const char* kForward = "fastrnn::gru_forward";
constexpr const char* kBackward = "fastrnn::gru_backward";

std::tuple<at::Tensor, at::Tensor, at::Tensor> forward_op(const at::Tensor& xw, const at::Tensor& w_hh,
                                                          const std::optional<at::Tensor>& b_hn, const at::Tensor& h0,
                                                          const std::optional<at::Tensor>& batch_sizes, bool reverse,
                                                          bool save) {
  const Dims d = check_forward(kForward, 3, xw, w_hh, std::nullopt, b_hn, h0, std::nullopt, batch_sizes);
  const at::Tensor bs = contiguous_sizes(batch_sizes);
  const Schedule sch = schedule(d, bs, reverse);
  return dispatch(kForward, "xw", xw, [&]<typename T>() { return forward<T>(d, sch, xw, w_hh, b_hn, h0, save); });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_op(
    const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& w_hh,
    const std::optional<at::Tensor>& b_hn, const at::Tensor& h0, const at::Tensor& output,
    const at::Tensor& workspace, const std::optional<at::Tensor>& batch_sizes, bool reverse) {
  const Dims d = check_backward(kBackward, 3, grad_output, grad_h_n, std::nullopt, w_hh, std::nullopt, b_hn, h0,
                                std::nullopt, output, workspace, "workspace", std::nullopt, batch_sizes);
  const at::Tensor bs = contiguous_sizes(batch_sizes);
  const Schedule sch = schedule(d, bs, reverse);
  return dispatch(kBackward, "grad_output", grad_output, [&]<typename T>() {
    return backward<T>(d, sch, grad_output, grad_h_n, w_hh, b_hn.has_value(), h0, output, workspace);
  });
}

}  // namespace
}  // namespace fastrnn::cpu

TORCH_LIBRARY_IMPL(fastrnn, CPU, m) {
  m.impl("gru_forward", &fastrnn::cpu::forward_op);
  m.impl("gru_backward", &fastrnn::cpu::backward_op);
}
