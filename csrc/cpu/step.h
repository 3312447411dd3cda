// One step of one layer in float32, a cell's call or a sequence of one step: fastrnn::rnn (csrc/rnn.cpp) runs
// it instead of the layer op, without gradient directly and with one through the step's node (step_node.cpp).
#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <vector>

#include "cell_kinds.h"

namespace fastrnn::cpu {

using OptTensor = std::optional<at::Tensor>;

// Whether the step runs here: CPU tensors in float32 and vector kernels on this CPU (FASTRNN_CPU_STEP=0
// says no, for comparisons and tests). Elsewhere the caller runs the layer op.
bool step_runs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const OptTensor& b_ih,
               const OptTensor& b_hh, const at::Tensor& h0, const OptTensor& c0);

// x: [1, B, I]; h0, c0 (LSTM only): [B, H]; where step_runs. Returns {output [1, B, H], h_n [B, H], c_n [B, H]
// (LSTM), activations}: with save, the activations step_backward reads (LSTM's gates, GRU's r, z, n and
// W_hn h + b_hn, [B, 4H] each; RNN's are h_n), else undefined.
std::vector<at::Tensor> step_forward(Cell cell, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                     const OptTensor& b_ih, const OptTensor& b_hh, const at::Tensor& h0,
                                     const OptTensor& c0, bool save);

// The gradients of step_forward's inputs x ([1, B, I]), w_ih, w_hh, b_ih, b_hh, h0, c0, in that order, where
// `wanted` says (undefined elsewhere), from the gradients of its output, h_n and c_n (LSTM; undefined
// otherwise). h_n, c_n and activations: what step_forward returned.
std::array<at::Tensor, 7> step_backward(Cell cell, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                        const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& h_n,
                                        const at::Tensor& c_n, const at::Tensor& activations,
                                        const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                        const at::Tensor& grad_c_n, std::array<bool, 7> wanted);

}  // namespace fastrnn::cpu
