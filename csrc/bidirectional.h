// Both directions of a bidirectional layer as one autograd node (layer.cpp), which fastrnn::rnn (rnn.cpp)
// records where it runs them side by side (cpu/side_by_side.h) with a gradient.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "cell_kinds.h"

namespace fastrnn {

// One direction's tensors as fastrnn::layer takes them (x and batch_sizes apart: both directions').
struct DirectionInputs {
  at::Tensor w_ih, w_hh;
  std::optional<at::Tensor> b_ih, b_hh, w_hr;
  at::Tensor h0;
  std::optional<at::Tensor> c0;
};

// The forward direction's {output, h_n[, c_n]}, then the reverse one's, as two fastrnn::layer calls give them.
std::vector<at::Tensor> bidirectional_layer(Cell cell, const at::Tensor& x, const DirectionInputs& forward,
                                            const DirectionInputs& reverse,
                                            const std::optional<at::Tensor>& batch_sizes);

}  // namespace fastrnn
