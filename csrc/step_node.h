// One step of one layer with a gradient (step_node.cpp): where cpu::step_runs, in place of the layer op.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "cell_kinds.h"

namespace fastrnn {

// x: [1, B, I]; h0, c0 (LSTM only): [B, H]. Returns {output [1, B, H], h_n, c_n (LSTM; else undefined)}, recorded
// as one autograd node.
std::vector<at::Tensor> step_autograd(Cell cell, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                      const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                      const at::Tensor& h0, const std::optional<at::Tensor>& c0);

}  // namespace fastrnn
