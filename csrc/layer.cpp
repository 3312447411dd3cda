// fastrnn::layer: one layer and direction of any cell as a single C++ autograd node, the input
// projection xw = x @ W_ih^T + b (one GEMM over all steps) and the fused recurrence op, whose backward
// runs the recurrence's backward op and then the projection's products. fastrnn/autograd.py's
// LayerFunction does the same in Python; at small shapes its Python (the Function's apply and its
// backward) took about as long as the kernels, so eager calls on the cpu backend come here, with a
// gradient or without one (then nothing is saved and no node recorded). The projection's products go
// through cpu::matmul: on CPUs where oneDNN beats MKL (AMD with AVX-512) large ones run on oneDNN.
// Under create_graph=True (double backward) the gradients come from fastrnn::layer_reference_grads,
// defined in Python (autograd.py), which differentiates the plain-PyTorch layer. bidirectional_layer is both
// directions of a layer as one node, each direction's forward and backward on a thread of its own.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/add.h>
#include <ATen/ops/cat.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <string>

#include "bidirectional.h"
#include "cell_kinds.h"
#include "cpu/lstm.h"
#include "cpu/matmul.h"
#include "cpu/side_by_side.h"
#include "reference_grads.h"
#include "small_tensors.h"

namespace fastrnn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using OptTensor = std::optional<at::Tensor>;

constexpr const char* kOp = "fastrnn::layer";

OptTensor optional(const at::Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }
at::Tensor rows(const at::Tensor& t) { return t.reshape({-1, t.size(-1)}); }

template <typename Sig>
c10::TypedOperatorHandle<Sig> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}

// The layer's tensors in one order (optional ones undefined when absent): the autograd inputs.
enum Input { kX, kWih, kWhh, kBih, kBhh, kWhr, kH0, kC0, kBatchSizes, kInputs };
using Tensors = std::array<at::Tensor, kInputs>;

Tensors tensors(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const OptTensor& b_ih,
                const OptTensor& b_hh, const OptTensor& w_hr, const at::Tensor& h0, const OptTensor& c0,
                const OptTensor& batch_sizes) {
  const at::Tensor none;
  return {x, w_ih, w_hh, b_ih.value_or(none), b_hh.value_or(none), w_hr.value_or(none), h0, c0.value_or(none),
          batch_sizes.value_or(none)};
}

// b_ih + b_hh over their first n entries, b_ih's beyond (GRU's b_hn stays out). Of float32 CPU biases, a loop
// into a fresh tensor: at::add's dispatch took 3.5-4.5 us of a small layer's forward (LSTM, T=2, B=1, H=64).
at::Tensor bias_sum(const at::Tensor& b_ih, const at::Tensor& b_hh, int64_t n) {
  auto plain = [&](const at::Tensor& t) {
    return t.is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 1 && t.numel() == b_ih.numel() &&
           t.is_contiguous();
  };
  if (!plain(b_ih) || !plain(b_hh) || n > b_ih.numel()) {
    if (n == b_ih.numel()) return at::add(b_ih, b_hh);
    at::Tensor b = b_ih.clone();
    b.narrow(0, 0, n).add_(b_hh.narrow(0, 0, n));
    return b;
  }
  at::Tensor b = at::detail::empty_cpu(b_ih.sizes(), at::kFloat);
  const float *x = b_ih.const_data_ptr<float>(), *y = b_hh.const_data_ptr<float>();
  float* sum = b.data_ptr<float>();
  for (int64_t j = 0; j < b_ih.numel(); ++j) sum[j] = j < n ? x[j] + y[j] : x[j];
  return b;
}

// (output, h_n[, c_n]) and the activations the recurrence saved for backward (none with save=false).
std::pair<variable_list, variable_list> run_forward(Cell cell, const Tensors& in, bool reverse, bool save) {
  const at::Tensor &x = in[kX], &w_ih = in[kWih], &w_hh = in[kWhh], &b_ih = in[kBih], &b_hh = in[kBhh];
  TORCH_CHECK_VALUE(b_ih.defined() == b_hh.defined(), kOp, ": b_ih and b_hh are given together or not at all");
  TORCH_CHECK_VALUE(x.dim() >= 1 && w_ih.dim() == 2 && w_hh.dim() == 2, kOp,
                    ": x must have a feature dimension, w_ih and w_hh must be 2-D");
  const int64_t G = w_ih.size(0), H = w_hh.size(0) / kCellKinds[cell].gates;
  // The bias added in the projection; GRU's b_hn stays out (it sits inside r * (W_hn h + b_hn)).
  at::Tensor b, b_hn;
  if (b_ih.defined()) {
    b = bias_sum(b_ih, b_hh, cell == kGru ? 2 * H : G);
    if (cell == kGru) b_hn = b_hh.narrow(0, 2 * H, H);
  }
  std::vector<int64_t> xw_sizes = x.sizes().vec();
  xw_sizes.back() = G;
  const OptTensor bs = optional(in[kBatchSizes]);
  if (cell == kLstm) {  // the op adds the bias as it reads xw: addmm's bias is one more pass over xw
    auto [output, h_n, c_n, gates, cells] = [&] {
      if (x.is_cpu())  // the projection in the recurrence's GEMMs, or an xw the saved gates overwrite
        return cpu::lstm_layer_forward(x, w_ih, w_hh, optional(in[kWhr]), in[kH0], in[kC0], bs, reverse, save,
                                       optional(b));
      static const auto op = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
          const at::Tensor&, const at::Tensor&, const OptTensor&, const at::Tensor&, const at::Tensor&,
          const OptTensor&, bool, bool, const OptTensor&)>("fastrnn::lstm_forward");
      const at::Tensor xw = cpu::matmul(rows(x), w_ih.t()).view(xw_sizes);
      return op.call(xw, w_hh, optional(in[kWhr]), in[kH0], in[kC0], bs, reverse, save, optional(b));
    }();
    return {{output, h_n, c_n}, {gates, cells}};
  }
  const at::Tensor xw = cpu::matmul(rows(x), w_ih.t(), optional(b)).view(xw_sizes);
  if (cell == kGru) {
    static const auto op = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const OptTensor&, const at::Tensor&, const OptTensor&, bool, bool)>(
        "fastrnn::gru_forward");
    auto [output, h_n, workspace] = op.call(xw, w_hh, optional(b_hn), in[kH0], bs, reverse, save);
    return {{output, h_n}, {workspace}};
  }
  using RnnForward = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                                        const OptTensor&, bool);
  static const auto tanh_op = find_op<RnnForward>("fastrnn::rnn_tanh_forward");
  static const auto relu_op = find_op<RnnForward>("fastrnn::rnn_relu_forward");
  auto [output, h_n] = (cell == kTanh ? tanh_op : relu_op).call(xw, w_hh, in[kH0], bs, reverse);
  return {{output, h_n}, {}};
}

// The recurrence's backward op: grad_xw and the gradients of w_hh, w_hr, b_hn, h0, c0 (undefined where
// the cell has none); the sum of grad_xw's rows where the op added it up (the LSTM on the CPU), and the
// wanted gradients of x and w_ih where it computed them (beside a loop of one thread), else undefined.
std::array<at::Tensor, 9> recurrence_backward(Cell cell, const Tensors& in, bool reverse, const at::Tensor& output,
                                              const variable_list& saved, const variable_list& grads, bool grad_x,
                                              bool grad_w_ih) {
  const OptTensor bs = optional(in[kBatchSizes]);
  if (cell == kLstm && grads[0].is_cpu()) {
    const cpu::LstmGrads g = cpu::lstm_backward(grads[0], grads[1], grads[2], in[kWhh], optional(in[kWhr]), in[kH0],
                                                in[kC0], output, saved[0], saved[1], bs, reverse, in[kBih].defined(),
                                                {in[kX], in[kWih], grad_x, grad_w_ih});
    return {g.xw, g.w_hh, in[kWhr].defined() ? g.w_hr : at::Tensor(), at::Tensor(), g.h0, g.c0, g.bias, g.x, g.w_ih};
  }
  if (cell == kLstm) {
    static const auto op = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&, const at::Tensor&,
        const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&, bool)>(
        "fastrnn::lstm_backward");
    auto [d_xw, d_w_hh, d_w_hr, d_h0, d_c0] = op.call(grads[0], grads[1], grads[2], in[kWhh], optional(in[kWhr]),
                                                      in[kH0], in[kC0], output, saved[0], saved[1], bs, reverse);
    return {d_xw, d_w_hh, in[kWhr].defined() ? d_w_hr : at::Tensor(), at::Tensor(), d_h0, d_c0, {}, {}, {}};
  }
  if (cell == kGru) {
    static const auto op = find_op<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
        const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&, const at::Tensor&, const at::Tensor&,
        const at::Tensor&, const OptTensor&, bool)>("fastrnn::gru_backward");
    const at::Tensor& b_hh = in[kBhh];
    const int64_t H = in[kWhh].size(0) / 3;
    const OptTensor b_hn = b_hh.defined() ? OptTensor(b_hh.narrow(0, 2 * H, H)) : std::nullopt;
    auto [d_xw, d_w_hh, d_b_hn, d_h0] =
        op.call(grads[0], grads[1], in[kWhh], b_hn, in[kH0], output, saved[0], bs, reverse);
    return {d_xw, d_w_hh, at::Tensor(), d_b_hn, d_h0, {}, {}, {}, {}};
  }
  using RnnBackward = std::tuple<at::Tensor, at::Tensor, at::Tensor>(
      const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, const OptTensor&,
      bool);
  static const auto tanh_op = find_op<RnnBackward>("fastrnn::rnn_tanh_backward");
  static const auto relu_op = find_op<RnnBackward>("fastrnn::rnn_relu_backward");
  auto [d_xw, d_w_hh, d_h0] = (cell == kTanh ? tanh_op : relu_op).call(grads[0], grads[1], in[kWhh], in[kH0], output,
                                                                        bs, reverse);
  return {d_xw, d_w_hh, at::Tensor(), at::Tensor(), d_h0, {}, {}, {}, {}};
}

// What a layer-direction's backward reads (direction_backward), appended to saved: its inputs, its output
// (outputs[0]) and the activations run_forward saved.
void append_saved(variable_list& saved, const Tensors& in, const variable_list& outputs,
                  const variable_list& activations) {
  saved.insert(saved.end(), in.begin(), in.end());
  saved.push_back(outputs[0]);
  saved.insert(saved.end(), activations.begin(), activations.end());
}

// One layer-direction's input gradients, each where `need` says (else undefined), from those of its outputs
// (undefined for an output the loss does not use); `saved`: its output and the activations run_forward saved.
Tensors direction_backward(Cell cell, const Tensors& in, bool reverse, const variable_list& saved, variable_list grads,
                           const std::array<bool, kInputs>& need) {
  // An output the loss does not use (h_n, c_n) has an undefined gradient: zeros of its shape, without the
  // engine's dispatched at::zeros.
  const std::array<const at::Tensor*, 3> like{&saved[0], &in[kH0], &in[kC0]};
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = zeros_as(like[i]->sizes(), *like[i]);
  Tensors result;
  auto set = [&](Input i, const at::Tensor& g) {
    if (need[i]) result[i] = g;
  };
  if (at::GradMode::is_enabled()) {
    const std::vector<at::Tensor> found = reference_grads(cell, in, reverse, grads);  // double backward
    for (size_t i = 0; i < kInputs; ++i) set(Input(i), found[i]);
    return result;
  }
  for (at::Tensor& g : grads) g = g.contiguous();
  const variable_list activations(saved.begin() + 1, saved.end());
  const auto [d_xw, d_w_hh, d_w_hr, d_b_hn, d_h0, d_c0, d_bias, d_x, d_w_ih] =
      recurrence_backward(cell, in, reverse, saved[0], activations, grads, need[kX], need[kWih]);
  auto d_rows = [&] { return rows(d_xw); };
  if (need[kX]) set(kX, d_x.defined() ? d_x : cpu::matmul(d_rows(), in[kWih]).view(in[kX].sizes()));
  if (need[kWih]) set(kWih, d_w_ih.defined() ? d_w_ih : cpu::matmul(d_rows().t(), rows(in[kX])));
  set(kWhh, d_w_hh);
  set(kWhr, d_w_hr);
  set(kH0, d_h0);
  set(kC0, d_c0);
  if (need[kBih] || need[kBhh]) {
    const at::Tensor d_b_ih = d_bias.defined() ? d_bias : d_rows().sum(0);
    set(kBih, d_b_ih);
    // Its own tensor, as torch.nn gives each bias.
    set(kBhh, cell == kGru ? at::cat({d_b_ih.narrow(0, 0, d_b_ih.size(0) - d_b_hn.size(0)), d_b_hn})
                           : copy_of(d_b_ih));
  }
  return result;
}

class LayerFunction : public torch::autograd::Function<LayerFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, int64_t cell, const at::Tensor& x, const at::Tensor& w_ih,
                               const at::Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
                               const OptTensor& w_hr, const at::Tensor& h0, const OptTensor& c0,
                               const OptTensor& batch_sizes, bool reverse) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const Tensors in = tensors(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes);
    auto [outputs, activations] = run_forward(Cell(cell), in, reverse, true);
    variable_list saved;
    append_saved(saved, in, outputs, activations);
    ctx->save_for_backward(saved);
    ctx->set_materialize_grads(false);  // backward makes its own zeros
    ctx->saved_data["cell"] = cell;
    ctx->saved_data["reverse"] = reverse;
    return outputs;
  }

  // One gradient per argument of forward: cell, the kInputs tensors, reverse.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Cell cell = Cell(ctx->saved_data["cell"].toInt());
    const bool reverse = ctx->saved_data["reverse"].toBool();
    const variable_list saved = ctx->get_saved_variables();
    Tensors in;
    std::copy_n(saved.begin(), kInputs, in.begin());
    // needs_input_grad counts the tensors given (its edges), not the arguments.
    std::array<bool, kInputs> need{};
    for (size_t i = 0, edge = 0; i < kInputs; ++i)
      if (in[i].defined()) need[i] = ctx->needs_input_grad(edge++);
    const Tensors found = direction_backward(cell, in, reverse, {saved.begin() + kInputs, saved.end()},
                                             std::move(grads), need);
    variable_list result(kInputs + 2);
    std::copy(found.begin(), found.end(), result.begin() + 1);
    return result;
  }
};

// Both directions of a bidirectional layer as one node, each direction's forward and backward on a thread of
// its own (cpu/side_by_side.h): as two nodes, the engine runs their backward one after the other.
class BidirectionalFunction : public torch::autograd::Function<BidirectionalFunction> {
 public:
  // Each direction's w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0; x and batch_sizes are both directions'.
  static variable_list forward(AutogradContext* ctx, int64_t cell, const at::Tensor& x, const at::Tensor& w_ih0,
                               const at::Tensor& w_hh0, const OptTensor& b_ih0, const OptTensor& b_hh0,
                               const OptTensor& w_hr0, const at::Tensor& h0_0, const OptTensor& c0_0,
                               const at::Tensor& w_ih1, const at::Tensor& w_hh1, const OptTensor& b_ih1,
                               const OptTensor& b_hh1, const OptTensor& w_hr1, const at::Tensor& h0_1,
                               const OptTensor& c0_1, const OptTensor& batch_sizes) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    const std::array<Tensors, 2> in{tensors(x, w_ih0, w_hh0, b_ih0, b_hh0, w_hr0, h0_0, c0_0, batch_sizes),
                                    tensors(x, w_ih1, w_hh1, b_ih1, b_hh1, w_hr1, h0_1, c0_1, batch_sizes)};
    std::array<std::pair<variable_list, variable_list>, 2> res;
    cpu::side_by_side([&](int64_t d) { res[d] = run_forward(Cell(cell), in[d], d == 1, true); });
    variable_list saved, outputs;
    for (int64_t d = 0; d < 2; ++d) {
      const auto& [outs, activations] = res[d];
      append_saved(saved, in[d], outs, activations);
      outputs.insert(outputs.end(), outs.begin(), outs.end());
    }
    ctx->save_for_backward(saved);
    ctx->set_materialize_grads(false);  // backward makes its own zeros
    ctx->saved_data["cell"] = cell;
    return outputs;
  }

  // One gradient per argument of forward: cell, x, each direction's 7 tensors, batch_sizes.
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Cell cell = Cell(ctx->saved_data["cell"].toInt());
    const variable_list saved = ctx->get_saved_variables();
    const size_t per = saved.size() / 2, outs = grads.size() / 2;
    std::array<Tensors, 2> in;
    std::array<std::array<bool, kInputs>, 2> need{};
    for (size_t d = 0, edge = 1; d < 2; ++d) {  // edge 0 is x, both directions'
      std::copy_n(saved.begin() + d * per, kInputs, in[d].begin());
      need[d][kX] = ctx->needs_input_grad(0);
      for (size_t i = kWih; i < kBatchSizes; ++i)
        if (in[d][i].defined()) need[d][i] = ctx->needs_input_grad(edge++);
    }
    std::array<Tensors, 2> found;
    auto direction = [&](int64_t d) {
      const auto first = saved.begin() + d * per;
      found[d] = direction_backward(cell, in[d], d == 1, {first + kInputs, first + per},
                                    {grads.begin() + d * outs, grads.begin() + (d + 1) * outs}, need[d]);
    };
    // Double backward differentiates the plain-PyTorch layer (Python) on the engine's thread.
    if (at::GradMode::is_enabled()) {
      direction(0);
      direction(1);
    } else {
      cpu::side_by_side(direction);
    }
    constexpr size_t kPerDirection = kBatchSizes - kWih;  // w_ih ... c0
    variable_list result(2 + 2 * kPerDirection + 1);
    const at::Tensor &dx0 = found[0][kX], &dx1 = found[1][kX];
    result[1] = dx0.defined() && dx1.defined() ? at::add(dx0, dx1) : dx0.defined() ? dx0 : dx1;
    for (size_t d = 0; d < 2; ++d)
      std::copy(found[d].begin() + kWih, found[d].begin() + kBatchSizes, result.begin() + 2 + d * kPerDirection);
    return result;
  }
};

// The forward alone, saving nothing: below autograd, and where no gradient is wanted.
std::vector<at::Tensor> layer_forward(c10::string_view cell, const at::Tensor& x, const at::Tensor& w_ih,
                                      const at::Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
                                      const OptTensor& w_hr, const at::Tensor& h0, const OptTensor& c0,
                                      const OptTensor& batch_sizes, bool reverse) {
  return run_forward(parse_cell(kOp, "cell", cell), tensors(x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes),
                     reverse, false)
      .first;
}

// Records the node where a gradient is wanted; else the forward alone.
std::vector<at::Tensor> layer_autograd(c10::string_view cell, const at::Tensor& x, const at::Tensor& w_ih,
                                       const at::Tensor& w_hh, const OptTensor& b_ih, const OptTensor& b_hh,
                                       const OptTensor& w_hr, const at::Tensor& h0, const OptTensor& c0,
                                       const OptTensor& batch_sizes, bool reverse) {
  auto wants_grad = [](const OptTensor& t) { return t.has_value() && t->defined() && t->requires_grad(); };
  const bool wanted = at::GradMode::is_enabled() &&
                      (wants_grad(x) || wants_grad(w_ih) || wants_grad(w_hh) || wants_grad(b_ih) || wants_grad(b_hh) ||
                       wants_grad(w_hr) || wants_grad(h0) || wants_grad(c0));
  if (!wanted) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return layer_forward(cell, x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0, batch_sizes, reverse);
  }
  return LayerFunction::apply(int64_t(parse_cell(kOp, "cell", cell)), x, w_ih, w_hh, b_ih, b_hh, w_hr, h0, c0,
                              batch_sizes, reverse);
}

}  // namespace

std::vector<at::Tensor> bidirectional_layer(Cell cell, const at::Tensor& x, const DirectionInputs& forward,
                                            const DirectionInputs& reverse, const OptTensor& batch_sizes) {
  const DirectionInputs &f = forward, &r = reverse;
  return BidirectionalFunction::apply(int64_t(cell), x, f.w_ih, f.w_hh, f.b_ih, f.b_hh, f.w_hr, f.h0, f.c0, r.w_ih,
                                      r.w_hh, r.b_ih, r.b_hh, r.w_hr, r.h0, r.c0, batch_sizes);
}

}  // namespace fastrnn

TORCH_LIBRARY_IMPL(fastrnn, Autograd, m) { m.impl("layer", &fastrnn::layer_autograd); }
TORCH_LIBRARY_IMPL(fastrnn, CompositeExplicitAutograd, m) { m.impl("layer", &fastrnn::layer_forward); }
