// One step of one layer in float32 where no gradient is wanted: a cell's call, or a sequence of one step
// (a policy run step by step). fastrnn::rnn (csrc/rnn.cpp) takes it instead of the layer op.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "cell_kinds.h"

namespace fastrnn::cpu {

// x: [1, B, I]; h0, c0 (LSTM only): [B, H]. Returns {output [1, B, H], h_n [B, H], c_n [B, H] (LSTM)} as
// the layer op does, or nothing where this does not run (not float32, or no vector kernels on this CPU):
// then the caller runs the layer op.
std::optional<std::vector<at::Tensor>> step_forward(Cell cell, const at::Tensor& x, const at::Tensor& w_ih,
                                                    const at::Tensor& w_hh, const std::optional<at::Tensor>& b_ih,
                                                    const std::optional<at::Tensor>& b_hh, const at::Tensor& h0,
                                                    const std::optional<at::Tensor>& c0);

}  // namespace fastrnn::cpu
