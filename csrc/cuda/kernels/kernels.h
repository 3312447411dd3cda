// The host-side entry points of the pointwise kernels: one call per time step, untyped buffers
// plus a dtype tag, so the launchers (.cpp, ATen) need neither CUDA nor the kernel templates.
// Every buffer is contiguous and row-major; "[n, W]" means the first n rows of width W. A Buf
// with null data is an absent optional input (and must not be touched by the kernel).
#pragma once
#include <cstdint>

namespace fastrnn::kernels {

enum class DType { Float, Double, Half, BFloat16 };

struct Buf {
  void* data;
  int64_t numel;  // the elements the kernel may touch (bounds-checked in the emulator)
};

// The rows of one step: n active rows, the first n_adj of which had their h_{t-1} (c_{t-1})
// written by the previously processed step; rows [n_adj, n) still hold h0 (c0).
struct StepRows {
  int64_t n, n_adj;
};

enum class Activation { Tanh, Relu };

struct RnnForward {
  Buf out;  // [n, H] in: pre-activation (xw + h W_hh^T); out: h_t
  Buf h;    // [n, H] running state <- h_t
};
struct RnnBackward {
  Buf out, grad_out;  // [n, H] h_t and its incoming gradient
  Buf dh;             // [n, H] gradient of the running state (from later steps)
  Buf h_adj, h0;      // [n_adj, H] previous step's output rows, [n, H] initial state
  Buf grad_xw;        // [n, H] <- gradient of the pre-activation
  Buf h_prev;         // [n, H] <- h_{t-1}, for the weight gradient GEMM
};
void rnn_forward_step(Activation, DType, void* stream, StepRows, int64_t H, const RnnForward&);
void rnn_backward_step(Activation, DType, void* stream, StepRows, int64_t H, const RnnBackward&);

struct LstmForward {
  Buf pre;          // [n, 4H] xw + h W_hh^T
  Buf c;            // [n, H] running cell state, c_{t-1} -> c_t
  Buf gates;        // [n, 4H] <- activated i, f, g, o
  Buf cells;        // [n, H] <- c_t
  Buf h_out;        // [n, H] <- unprojected h_t (the output rows, or the projection's input)
  Buf h;            // [n, H] running state <- h_t; null with a projection
};
struct LstmBackward {
  Buf gates, cells;  // [n, 4H], [n, H] saved
  Buf c_adj, c0;     // [n_adj, H] previous step's cells, [n, H]
  Buf dh, dh2;       // [n, H] gradient of the unprojected h_t = dh (+ dh2 when given)
  Buf dc;            // [n, H] gradient of c_t in, of c_{t-1} out
  Buf grad_xw;       // [n, 4H] <- gradients of the pre-activations
  Buf h_unproj;      // [n, H] <- o * tanh(c_t) for the w_hr gradient; null without projection
  Buf h_adj, h0;     // [n_adj, P], [n, P]
  Buf h_prev;        // [n, P] <- h_{t-1}
};
void lstm_forward_step(DType, void* stream, StepRows, int64_t H, const LstmForward&);
void lstm_backward_step(DType, void* stream, StepRows, int64_t H, int64_t P, const LstmBackward&);

struct GruForward {
  Buf xw;         // [n, 3H]
  Buf gh;         // [n, 3H] h_{t-1} W_hh^T
  Buf b_hn;       // [H] or null
  Buf h;          // [n, H] running state, h_{t-1} -> h_t
  Buf workspace;  // [n, 4H] <- r, z, n, hn
  Buf out;        // [n, H] <- h_t
};
struct GruBackward {
  Buf workspace;        // [n, 4H] saved
  Buf h_adj, h0;        // [n_adj, H], [n, H]
  Buf grad_out, dh;     // [n, H] incoming gradients (output, running state)
  Buf grad_xw;          // [n, 3H] <- dxr, dxz, dxn
  Buf grad_gh;          // [n, 3H] <- dxr, dxz, dhn: the recurrent GEMM's output gradient
  Buf dh_direct;        // [n, H] <- z * dh, the part of dh_{t-1} outside the GEMM
  Buf h_prev;           // [n, H] <- h_{t-1}
};
void gru_forward_step(DType, void* stream, StepRows, int64_t H, const GruForward&);
void gru_backward_step(DType, void* stream, StepRows, int64_t H, const GruBackward&);

}  // namespace fastrnn::kernels
