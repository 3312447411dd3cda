// Double backward of the C++ nodes (layer.cpp, step_node.cpp): the gradients of the plain-PyTorch layer,
// differentiable again, from fastrnn::layer_reference_grads (defined in Python, fastrnn/autograd.py).
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include <string>
#include <vector>

#include "cell_kinds.h"

namespace fastrnn {

// `in`: the layer op's tensors in its order (x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes), undefined
// where absent. Returns one gradient per tensor of `in` (undefined where it has none).
inline std::vector<at::Tensor> reference_grads(Cell cell, at::ArrayRef<at::Tensor> in, bool reverse,
                                               const std::vector<at::Tensor>& grads) {
  static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("fastrnn::layer_reference_grads", "");
  c10::List<std::optional<at::Tensor>> inputs;
  for (const at::Tensor& t : in) inputs.push_back(t.defined() ? std::optional<at::Tensor>(t) : std::nullopt);
  torch::jit::Stack stack{c10::IValue(std::string(kCellKinds[cell].name)), c10::IValue(inputs), c10::IValue(reverse),
                          c10::IValue(grads)};
  op.callBoxed(stack);
  std::vector<at::Tensor> found = stack.at(0).toTensorVector();
  found.resize(in.size());
  return found;
}

}  // namespace fastrnn
