// The one list of fastrnn's op schemas. registration.cpp defines them in namespace fastrnn; the
// SIMT-emulated CUDA build defines the same ones in fastrnn_emulated.
//
// Every op is one layer, one direction, the recurrence only (the input projection
// xw = x @ W_ih^T + b is one GEMM done in Python). lstm_forward may instead take the bias [4H] as
// `bias`, added to xw's rows as they are read (a GEMM's bias is one more pass over all of xw).
// Shapes, with G the cell's gate count (tanh/relu 1, LSTM 4, GRU 3), H the hidden size and P the
// size of h (P = proj_size for a projected LSTM, else H):
//   xw      [T, B, G*H], or [N, G*H] with batch_sizes (packed: step t owns the next
//           batch_sizes[t] rows, batch_sizes is int64 on the CPU, non-increasing)
//   w_hh    [G*H, P]; w_hr [P, H] (LSTM proj_size only); b_hn [H] (GRU's n-gate bias)
//   h0      [B, P]; c0 [B, H]        with B = batch_sizes[0] when packed
//   output  xw's leading shape x P;  h_n [B, P]; c_n [B, H]
// Step t updates rows [0, batch_sizes[t]) of the running state; `reverse` walks t from T-1 to 0.
// Saved for backward (leading shape of xw):
//   LSTM gates [.., 4H] = i, f, g, o after their activations; cells [.., H] = c_t.
//   GRU workspace [.., 4H] = r, z, n after activations and hn = h_{t-1} @ W_hn^T + b_hn.
// With save=false (inference: no backward will run) they come back empty ([0]), and a backend may
// skip writing them: at large shapes they are half of the forward's memory traffic.
// Backward returns gradients for xw, w_hh, (w_hr: [0] without projection), (b_hn: always [H]),
// h0 (, c0). All outputs are fresh tensors.
#pragma once
#include <torch/library.h>

#include <string>

namespace fastrnn {

inline void define_ops(torch::Library& m) {
  for (const char* cell : {"rnn_tanh", "rnn_relu"}) {
    m.def((std::string(cell) +
           "_forward(Tensor xw, Tensor w_hh, Tensor h0, Tensor? batch_sizes, bool reverse)"
           " -> (Tensor output, Tensor h_n)").c_str());
    m.def((std::string(cell) +
           "_backward(Tensor grad_output, Tensor grad_h_n, Tensor w_hh, Tensor h0, Tensor output,"
           " Tensor? batch_sizes, bool reverse) -> (Tensor grad_xw, Tensor grad_w_hh, Tensor grad_h0)").c_str());
  }
  m.def("lstm_forward(Tensor xw, Tensor w_hh, Tensor? w_hr, Tensor h0, Tensor c0, Tensor? batch_sizes,"
        " bool reverse, bool save=True, Tensor? bias=None)"
        " -> (Tensor output, Tensor h_n, Tensor c_n, Tensor gates, Tensor cells)");
  m.def("lstm_backward(Tensor grad_output, Tensor grad_h_n, Tensor grad_c_n, Tensor w_hh, Tensor? w_hr,"
        " Tensor h0, Tensor c0, Tensor output, Tensor gates, Tensor cells, Tensor? batch_sizes, bool reverse)"
        " -> (Tensor grad_xw, Tensor grad_w_hh, Tensor grad_w_hr, Tensor grad_h0, Tensor grad_c0)");
  m.def("gru_forward(Tensor xw, Tensor w_hh, Tensor? b_hn, Tensor h0, Tensor? batch_sizes, bool reverse,"
        " bool save=True) -> (Tensor output, Tensor h_n, Tensor workspace)");
  m.def("gru_backward(Tensor grad_output, Tensor grad_h_n, Tensor w_hh, Tensor? b_hn, Tensor h0,"
        " Tensor output, Tensor workspace, Tensor? batch_sizes, bool reverse)"
        " -> (Tensor grad_xw, Tensor grad_w_hh, Tensor grad_b_hn, Tensor grad_h0)");
}

}  // namespace fastrnn
