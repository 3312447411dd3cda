// The cell math, once: the pointwise forward and backward of one element of one step, shared
// by the CPU path, the CUDA kernels and the SIMT emulator. Plain C++ on scalars of the
// accumulation type A (float for float/half/bfloat16 storage, double for double): loading,
// storing and converting is the caller's business, so this header needs no torch and no CUDA.
//
// Gate order and bias placement are PyTorch's: LSTM i, f, g, o; GRU r, z, n with
// n = tanh(x_n + r * (W_hn h + b_hn)).
#pragma once
#include <math.h>

#if defined(__CUDACC__) || defined(FASTRNN_SIMT_EMULATION)
#define FASTRNN_HD __host__ __device__
#else
#define FASTRNN_HD
#endif

namespace fastrnn {

FASTRNN_HD inline float exp_(float x) { return expf(x); }
FASTRNN_HD inline double exp_(double x) { return exp(x); }
FASTRNN_HD inline float tanh_(float x) { return tanhf(x); }
FASTRNN_HD inline double tanh_(double x) { return tanh(x); }
template <typename A>
FASTRNN_HD inline A sigmoid_(A x) {
  return A(1) / (A(1) + exp_(-x));
}

// Elman RNN: h = act(pre). Backward needs only h: the gradient of pre from the gradient of h.
struct TanhCell {
  static constexpr int gates = 1;
  template <typename A>
  FASTRNN_HD static A forward(A pre) { return tanh_(pre); }
  template <typename A>
  FASTRNN_HD static A backward(A h, A dh) { return dh * (A(1) - h * h); }
};

struct ReluCell {
  static constexpr int gates = 1;
  template <typename A>
  FASTRNN_HD static A forward(A pre) { return pre <= A(0) ? A(0) : pre; }  // NaN stays NaN, as in torch.relu
  template <typename A>
  FASTRNN_HD static A backward(A h, A dh) { return h > A(0) ? dh : A(0); }
};

struct LSTMCell {
  static constexpr int gates = 4;
  // Pre-activations (xw + W_hh h) and c_{t-1} -> activated gates, c_t and the unprojected h_t.
  template <typename A>
  FASTRNN_HD static void forward(A pi, A pf, A pg, A po, A c_prev, A& i, A& f, A& g, A& o, A& c,
                                 A& h) {
    i = sigmoid_(pi);
    f = sigmoid_(pf);
    g = tanh_(pg);
    o = sigmoid_(po);
    c = f * c_prev + i * g;
    h = o * tanh_(c);
  }
  // dh: gradient of the unprojected h_t; dc: gradient of c_t arriving from step t+1 (and c_n).
  // -> gradients of the four pre-activations and of c_{t-1}.
  template <typename A>
  FASTRNN_HD static void backward(A i, A f, A g, A o, A c_prev, A c, A dh, A dc, A& di, A& df,
                                  A& dg, A& dout, A& dc_prev) {
    const A tc = tanh_(c);
    dout = dh * tc * o * (A(1) - o);
    const A dct = dc + dh * o * (A(1) - tc * tc);
    di = dct * g * i * (A(1) - i);
    df = dct * c_prev * f * (A(1) - f);
    dg = dct * i * (A(1) - g * g);
    dc_prev = dct * f;
  }
};

struct GRUCell {
  static constexpr int gates = 3;
  // x*: input projections (with b_ih, and b_hr/b_hz folded in); h*: h_{t-1} @ W_h*^T, with
  // hn already including b_hn. -> activated gates and h_t.
  template <typename A>
  FASTRNN_HD static void forward(A xr, A xz, A xn, A hr, A hz, A hn, A h_prev, A& r, A& z, A& n,
                                 A& h) {
    r = sigmoid_(xr + hr);
    z = sigmoid_(xz + hz);
    n = tanh_(xn + r * hn);
    h = (A(1) - z) * n + z * h_prev;
  }
  // -> gradients of the three input pre-activations (dxn is the n gate's), of hn (the n part of
  // the recurrent GEMM, = dxn * r) and the direct part of dh_{t-1} (z * dh; the GEMM adds the rest).
  // The recurrent GEMM's gradient is (dxr, dxz, dhn).
  template <typename A>
  FASTRNN_HD static void backward(A r, A z, A n, A hn, A h_prev, A dh, A& dxr, A& dxz, A& dxn,
                                  A& dhn, A& dh_prev) {
    const A dn = dh * (A(1) - z);
    dxn = dn * (A(1) - n * n);
    dhn = dxn * r;
    dxr = dxn * hn * r * (A(1) - r);
    dxz = dh * (h_prev - n) * z * (A(1) - z);
    dh_prev = dh * z;
  }
};

}  // namespace fastrnn
