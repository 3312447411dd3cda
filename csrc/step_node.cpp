// The autograd node of one step (cpu/step.h) where a gradient is wanted: a cell's call, or a sequence of one
// step, in place of the layer op's node (layer.cpp), whose input projection, sequence schedule, packed weights
// and separate ops cost more than the step at small batches. Double backward takes the layer's plain-PyTorch
// gradients, as the layer node does.
#include "step_node.h"

#include <torch/csrc/autograd/custom_function.h>

#include "cpu/step.h"
#include "reference_grads.h"

namespace fastrnn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The node's tensors in one order: the layer op's (reference_grads) but for w_hr and batch_sizes.
enum Input { kX, kWih, kWhh, kBih, kBhh, kH0, kC0, kInputs };

class StepFunction : public torch::autograd::Function<StepFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, int64_t cell, const at::Tensor& x, const at::Tensor& w_ih,
                               const at::Tensor& w_hh, const cpu::OptTensor& b_ih, const cpu::OptTensor& b_hh,
                               const at::Tensor& h0, const cpu::OptTensor& c0) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const std::vector<at::Tensor> res = cpu::step_forward(Cell(cell), x, w_ih, w_hh, b_ih, b_hh, h0, c0, true);
    const at::Tensor none;
    ctx->save_for_backward({x, w_ih, w_hh, b_ih.value_or(none), b_hh.value_or(none), h0, c0.value_or(none), res[1],
                            res[2], res[3]});
    ctx->saved_data["cell"] = cell;
    return Cell(cell) == kLstm ? variable_list{res[0], res[1], res[2]} : variable_list{res[0], res[1]};
  }

  // One gradient per argument of forward: cell, then the kInputs tensors.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Cell cell = Cell(ctx->saved_data["cell"].toInt());
    const variable_list saved = ctx->get_saved_variables();
    std::array<bool, kInputs> need{};
    for (size_t i = 0, edge = 0; i < kInputs; ++i)  // needs_input_grad counts the tensors given (its edges)
      if (saved[i].defined()) need[i] = ctx->needs_input_grad(edge++);
    std::array<at::Tensor, kInputs> found;
    if (at::GradMode::is_enabled()) {  // double backward
      const at::Tensor none;
      const std::vector<at::Tensor> ref = reference_grads(
          cell, {saved[kX], saved[kWih], saved[kWhh], saved[kBih], saved[kBhh], none, saved[kH0], saved[kC0], none},
          false, grads);
      found = {ref[0], ref[1], ref[2], ref[3], ref[4], ref[6], ref[7]};
    } else {
      found = cpu::step_backward(cell, saved[kX], saved[kWih], saved[kWhh], saved[kH0], saved[kC0], saved[kInputs],
                                 saved[kInputs + 1], saved[kInputs + 2], grads[0], grads[1],
                                 cell == kLstm ? grads[2] : at::Tensor(), need);
    }
    variable_list result(kInputs + 1);
    for (size_t i = 0; i < kInputs; ++i)
      if (need[i]) result[1 + i] = found[i];
    return result;
  }
};

}  // namespace

std::vector<at::Tensor> step_autograd(Cell cell, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh,
                                      const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                      const at::Tensor& h0, const std::optional<at::Tensor>& c0) {
  variable_list out = StepFunction::apply(int64_t(cell), x, w_ih, w_hh, b_ih, b_hh, h0, c0);
  if (cell != kLstm) out.emplace_back();
  return out;
}

}  // namespace fastrnn
