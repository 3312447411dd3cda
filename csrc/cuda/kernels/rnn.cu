// Pointwise kernels of the tanh/ReLU RNN, one launch per time step (the recurrent GEMM is ATen's).
#include "device.h"

namespace fastrnn::kernels {
namespace {

template <typename T, typename Cell>
__global__ void rnn_forward_kernel(int64_t total, dptr<T> out, dptr<T> h) {
  FASTRNN_GRID_STRIDE(i, total) {
    const T v = store<T>(Cell::forward(load(out[i])));
    out[i] = v;
    h[i] = v;
  }
}

template <typename T, typename Cell>
__global__ void rnn_backward_kernel(int64_t total, int64_t H, int64_t n_adj, dptr<const T> out,
                                    dptr<const T> grad_out, dptr<const T> dh, dptr<const T> h_adj,
                                    dptr<const T> h0, dptr<T> grad_xw, dptr<T> h_prev) {
  FASTRNN_GRID_STRIDE(i, total) {
    const acc_t<T> g = load(grad_out[i]) + load(dh[i]);
    grad_xw[i] = store<T>(Cell::backward(load(out[i]), g));
    h_prev[i] = i / H < n_adj ? h_adj[i] : h0[i];
  }
}

template <typename Cell>
void rnn_forward(DType dt, void* stream, StepRows rows, int64_t H, const RnnForward& a) {
  const int64_t total = rows.n * H;
  if (total == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    launch("rnn_forward_kernel", &rnn_forward_kernel<T, Cell>, elementwise_config(total, stream), total,
           typed<T>(a.out), typed<T>(a.h));
  });
}

template <typename Cell>
void rnn_backward(DType dt, void* stream, StepRows rows, int64_t H, const RnnBackward& a) {
  const int64_t total = rows.n * H;
  if (total == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    launch("rnn_backward_kernel", &rnn_backward_kernel<T, Cell>, elementwise_config(total, stream), total, H,
           rows.n_adj, typed<const T>(a.out), typed<const T>(a.grad_out), typed<const T>(a.dh),
           typed<const T>(a.h_adj), typed<const T>(a.h0), typed<T>(a.grad_xw), typed<T>(a.h_prev));
  });
}

}  // namespace

void rnn_forward_step(Activation act, DType dt, void* stream, StepRows rows, int64_t H, const RnnForward& a) {
  if (act == Activation::Tanh) rnn_forward<TanhCell>(dt, stream, rows, H, a);
  else rnn_forward<ReluCell>(dt, stream, rows, H, a);
}

void rnn_backward_step(Activation act, DType dt, void* stream, StepRows rows, int64_t H, const RnnBackward& a) {
  if (act == Activation::Tanh) rnn_backward<TanhCell>(dt, stream, rows, H, a);
  else rnn_backward<ReluCell>(dt, stream, rows, H, a);
}

}  // namespace fastrnn::kernels
