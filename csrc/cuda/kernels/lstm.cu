// Pointwise kernels of the LSTM, one launch per time step (the recurrent and projection GEMMs are
// ATen's). Gate order i, f, g, o.
#include "device.h"

namespace fastrnn::kernels {
namespace {

template <typename T>
__global__ void lstm_forward_kernel(int64_t total, int64_t H, dptr<const T> pre, dptr<T> c, dptr<T> gates,
                                    dptr<T> cells, dptr<T> h_out, dptr<T> h) {
  using A = acc_t<T>;
  FASTRNN_GRID_STRIDE(e, total) {
    const int64_t g = e / H * 4 * H + e % H;
    A i, f, gg, o, ct, ht;
    LSTMCell::forward<A>(load(pre[g]), load(pre[g + H]), load(pre[g + 2 * H]), load(pre[g + 3 * H]), load(c[e]),
                         i, f, gg, o, ct, ht);
    gates[g] = store<T>(i);
    gates[g + H] = store<T>(f);
    gates[g + 2 * H] = store<T>(gg);
    gates[g + 3 * H] = store<T>(o);
    c[e] = cells[e] = store<T>(ct);
    h_out[e] = store<T>(ht);
    if (h) h[e] = h_out[e];
  }
}

// One thread per element of [n, max(H, P)]: columns < H do the cell, columns < P copy h_{t-1}.
template <typename T>
__global__ void lstm_backward_kernel(int64_t total, int64_t W, int64_t H, int64_t P, int64_t n_adj,
                                     dptr<const T> gates, dptr<const T> cells, dptr<const T> c_adj,
                                     dptr<const T> c0, dptr<const T> dh, dptr<const T> dh2, dptr<T> dc,
                                     dptr<T> grad_xw, dptr<T> h_unproj, dptr<const T> h_adj, dptr<const T> h0,
                                     dptr<T> h_prev) {
  using A = acc_t<T>;
  FASTRNN_GRID_STRIDE(idx, total) {
    const int64_t r = idx / W, j = idx % W;
    if (j < H) {
      const int64_t e = r * H + j, g = r * 4 * H + j;
      const A i = load(gates[g]), f = load(gates[g + H]), gg = load(gates[g + 2 * H]), o = load(gates[g + 3 * H]);
      const A c = load(cells[e]);
      const A c_prev = load(r < n_adj ? c_adj[e] : c0[e]);
      const A d = load(dh[e]) + (dh2 ? load(dh2[e]) : A(0));
      A di, df, dg, dout, dc_prev;
      LSTMCell::backward<A>(i, f, gg, o, c_prev, c, d, load(dc[e]), di, df, dg, dout, dc_prev);
      grad_xw[g] = store<T>(di);
      grad_xw[g + H] = store<T>(df);
      grad_xw[g + 2 * H] = store<T>(dg);
      grad_xw[g + 3 * H] = store<T>(dout);
      dc[e] = store<T>(dc_prev);
      if (h_unproj) h_unproj[e] = store<T>(o * tanh_(c));
    }
    if (j < P) {
      const int64_t p = r * P + j;
      h_prev[p] = r < n_adj ? h_adj[p] : h0[p];
    }
  }
}

}  // namespace

void lstm_forward_step(DType dt, void* stream, StepRows rows, int64_t H, const LstmForward& a) {
  const int64_t total = rows.n * H;
  if (total == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    launch("lstm_forward_kernel", &lstm_forward_kernel<T>, elementwise_config(total, stream), total, H,
           typed<const T>(a.pre), typed<T>(a.c), typed<T>(a.gates), typed<T>(a.cells), typed<T>(a.h_out),
           typed<T>(a.h));
  });
}

void lstm_backward_step(DType dt, void* stream, StepRows rows, int64_t H, int64_t P, const LstmBackward& a) {
  const int64_t W = H > P ? H : P, total = rows.n * W;
  if (total == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    launch("lstm_backward_kernel", &lstm_backward_kernel<T>, elementwise_config(total, stream), total, W, H, P,
           rows.n_adj, typed<const T>(a.gates), typed<const T>(a.cells), typed<const T>(a.c_adj),
           typed<const T>(a.c0), typed<const T>(a.dh), typed<const T>(a.dh2), typed<T>(a.dc),
           typed<T>(a.grad_xw), typed<T>(a.h_unproj), typed<const T>(a.h_adj), typed<const T>(a.h0),
           typed<T>(a.h_prev));
  });
}

}  // namespace fastrnn::kernels
