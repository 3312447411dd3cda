// Pointwise kernels of the GRU, one launch per time step (the recurrent GEMM is ATen's). Gate
// order r, z, n; n = tanh(x_n + r * (W_hn h + b_hn)).
#include "device.h"

namespace fastrnn::kernels {
namespace {

template <typename T>
__global__ void gru_forward_kernel(int64_t total, int64_t H, dptr<const T> xw, dptr<const T> gh,
                                   dptr<const T> b_hn, dptr<T> h, dptr<T> workspace, dptr<T> out) {
  using A = acc_t<T>;
  FASTRNN_GRID_STRIDE(e, total) {
    const int64_t r = e / H, j = e % H, x = r * 3 * H + j, w = r * 4 * H + j;
    const A hn = load(gh[x + 2 * H]) + (b_hn ? load(b_hn[j]) : A(0));
    A rg, z, n, ht;
    GRUCell::forward<A>(load(xw[x]), load(xw[x + H]), load(xw[x + 2 * H]), load(gh[x]), load(gh[x + H]), hn,
                        load(h[e]), rg, z, n, ht);
    workspace[w] = store<T>(rg);
    workspace[w + H] = store<T>(z);
    workspace[w + 2 * H] = store<T>(n);
    workspace[w + 3 * H] = store<T>(hn);
    h[e] = out[e] = store<T>(ht);
  }
}

template <typename T>
__global__ void gru_backward_kernel(int64_t total, int64_t H, int64_t n_adj, dptr<const T> workspace,
                                    dptr<const T> h_adj, dptr<const T> h0, dptr<const T> grad_out,
                                    dptr<const T> dh, dptr<T> grad_xw, dptr<T> grad_gh, dptr<T> dh_direct,
                                    dptr<T> h_prev) {
  using A = acc_t<T>;
  FASTRNN_GRID_STRIDE(e, total) {
    const int64_t r = e / H, j = e % H, x = r * 3 * H + j, w = r * 4 * H + j;
    const T hp = r < n_adj ? h_adj[e] : h0[e];
    A dxr, dxz, dxn, dhn, dhp;
    GRUCell::backward<A>(load(workspace[w]), load(workspace[w + H]), load(workspace[w + 2 * H]),
                         load(workspace[w + 3 * H]), load(hp), load(grad_out[e]) + load(dh[e]), dxr, dxz, dxn,
                         dhn, dhp);
    grad_xw[x] = grad_gh[x] = store<T>(dxr);
    grad_xw[x + H] = grad_gh[x + H] = store<T>(dxz);
    grad_xw[x + 2 * H] = store<T>(dxn);
    grad_gh[x + 2 * H] = store<T>(dhn);
    dh_direct[e] = store<T>(dhp);
    h_prev[e] = hp;
  }
}

}  // namespace

void gru_forward_step(DType dt, void* stream, StepRows rows, int64_t H, const GruForward& a) {
  const int64_t total = rows.n * H;
  if (total == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    launch("gru_forward_kernel", &gru_forward_kernel<T>, elementwise_config(total, stream), total, H,
           typed<const T>(a.xw), typed<const T>(a.gh), typed<const T>(a.b_hn), typed<T>(a.h),
           typed<T>(a.workspace), typed<T>(a.out));
  });
}

void gru_backward_step(DType dt, void* stream, StepRows rows, int64_t H, const GruBackward& a) {
  const int64_t total = rows.n * H;
  if (total == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = decltype(tag);
    launch("gru_backward_kernel", &gru_backward_kernel<T>, elementwise_config(total, stream), total, H,
           rows.n_adj, typed<const T>(a.workspace), typed<const T>(a.h_adj), typed<const T>(a.h0),
           typed<const T>(a.grad_out), typed<const T>(a.dh), typed<T>(a.grad_xw), typed<T>(a.grad_gh),
           typed<T>(a.dh_direct), typed<T>(a.h_prev));
  });
}

}  // namespace fastrnn::kernels
