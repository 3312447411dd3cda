// fastrnn::rnn and fastrnn::cell: the whole forward of torch.nn.RNN / LSTM / GRU and of their cells on the
// cpu backend for tensor or packed input: functional._forward's and functional.cell's checks, with their
// messages and exception types, the zero state, the layers x directions of fastrnn::layer, inter-layer
// dropout, batch_first, unbatched and packed input. In Python those took longer than the layer itself at
// small shapes (LSTM T=1, B=1, H=64, no grad, 2 Zen 4 cores: the module's forward 52 us against the layer
// op's 17; with this op 38 us). A sequence of one step (a cell's call) runs as one step (cpu/step.h, with a
// gradient step_node.cpp) instead of the layer op. Autocast, torch.compile and the other backends take
// functional.py's path, whose checks these mirror (tests/test_bad_input.py compares the two paths' messages).
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/dropout.h>
#include <ATen/ops/stack.h>
#include <c10/core/ScalarType.h>
#include <torch/library.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "bidirectional.h"
#include "cell_kinds.h"
#include "cpu/side_by_side.h"
#include "cpu/step.h"
#include "small_tensors.h"
#include "step_node.h"

namespace fastrnn {
namespace {

using OptTensor = std::optional<at::Tensor>;

// Python's tuple(t.shape) / list(t.shape) and str(dtype), as functional.py's messages print them.
std::string shape(at::IntArrayRef sizes, bool as_list = false) {
  std::ostringstream s;
  s << (as_list ? '[' : '(');
  for (size_t i = 0; i < sizes.size(); ++i) s << (i ? ", " : "") << sizes[i];
  s << (!as_list && sizes.size() == 1 ? "," : "") << (as_list ? ']' : ')');
  return s.str();
}
std::string dtype(const at::Tensor& t) { return "torch." + std::string(c10::getDtypeNames(t.scalar_type()).first); }

struct LayerWeights {
  at::Tensor w_ih, w_hh;
  OptTensor b_ih, b_hh, w_hr;
};

// One layer-direction's weights in torch's flat order: w_ih, w_hh, [b_ih, b_hh], [w_hr].
LayerWeights layer_weights(at::TensorList w, int64_t index, bool bias, bool proj) {
  const int64_t per = 2 + 2 * bias + proj, first = index * per;
  LayerWeights l{w[first], w[first + 1], std::nullopt, std::nullopt, std::nullopt};
  if (bias) l.b_ih = w[first + 2], l.b_hh = w[first + 3];
  if (proj) l.w_hr = w[first + per - 1];
  return l;
}

// functional._check_weights: returns whether the weights carry LSTM projections.
bool check_weights(const CellKind& mode, at::TensorList weights, bool bias, int64_t layers, int64_t dirs) {
  const int64_t n = weights.size(), count = layers * dirs, base = 2 + 2 * bias;
  TORCH_CHECK_VALUE(n % count == 0, "weights: expected a multiple of num_layers * num_directions = ", count,
                    " tensors, got ", n);
  const int64_t per = n / count;
  TORCH_CHECK_VALUE(per == base || (mode.gates == 4 && per == base + 1), "weights: expected ", base,
                    " tensors per layer and direction (w_ih, w_hh", bias ? ", b_ih, b_hh" : "", "), got ", per);
  const bool proj = per == base + 1;
  for (int64_t idx = 0; idx < count; ++idx) {
    const LayerWeights l = layer_weights(weights, idx, bias, proj);
    const int64_t hidden = l.w_hh.dim() ? l.w_hh.size(0) / mode.gates : 0, G = mode.gates * hidden;
    const int64_t size = proj ? (l.w_hr->dim() ? l.w_hr->size(0) : 0) : hidden;
    TORCH_CHECK_VALUE(l.w_hh.dim() == 2 && l.w_hh.size(0) == G && l.w_hh.size(1) == size && hidden != 0,
                      "weights: weight_hh of layer-direction ", idx, " has shape ", shape(l.w_hh.sizes()),
                      ", expected (", mode.gates, " * hidden_size, ", proj ? "proj_size" : "hidden_size", ")");
    TORCH_CHECK_VALUE(l.w_ih.dim() == 2 && l.w_ih.size(0) == G, "weights: weight_ih of layer-direction ", idx,
                      " has shape ", shape(l.w_ih.sizes()), ", expected (", G, ", input_size)");
    TORCH_CHECK_VALUE(idx < dirs || l.w_ih.size(1) == size * dirs, "weights: weight_ih of layer-direction ", idx,
                      " expects input size ", l.w_ih.size(1), ", but the layer below produces ", size * dirs);
    for (const auto& [name, b] : {std::pair{"bias_ih", l.b_ih}, std::pair{"bias_hh", l.b_hh}})
      TORCH_CHECK_VALUE(!b || (b->dim() == 1 && b->size(0) == G), "weights: ", name, " of layer-direction ", idx,
                        " has shape ", shape(b->sizes()), ", expected (", G, ",)");
    TORCH_CHECK_VALUE(!proj || (l.w_hr->dim() == 2 && l.w_hr->size(0) == size && l.w_hr->size(1) == hidden),
                      "weights: weight_hr of layer-direction ", idx, " has shape ", shape(l.w_hr->sizes()),
                      ", expected (proj_size, ", hidden, ")");
  }
  return proj;
}

// functional._check_state (eager): h is [layers * dirs, batch, size] on x's device, in x's dtype.
void check_state(const std::string& name, const at::Tensor& h, std::array<int64_t, 3> expected, const at::Tensor& x) {
  TORCH_CHECK(h.sizes() == at::IntArrayRef(expected), "Expected ", name, " size ", shape(expected), ", got ",
              shape(h.sizes(), true));
  TORCH_CHECK(h.device() == x.device(), name, " is on ", h.device(), " but input is on ", x.device());
  TORCH_CHECK_VALUE(h.scalar_type() == x.scalar_type(), name, " dtype (", dtype(h), ") does not match input dtype (",
                    dtype(x), ")");
}

std::vector<at::Tensor> call_layer(const CellKind& mode, const at::Tensor& x, const DirectionInputs& in,
                                   const OptTensor& batch_sizes, bool reverse) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("fastrnn::layer", "")
          .typed<std::vector<at::Tensor>(c10::string_view, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const OptTensor&, const OptTensor&, const OptTensor&, const at::Tensor&,
                                         const OptTensor&, const OptTensor&, bool)>();
  return op.call(mode.name, x, in.w_ih, in.w_hh, in.b_ih, in.b_hh, in.w_hr, in.h0, in.c0, batch_sizes, reverse);
}

// h_n (or c_n) from each layer-direction's [B, size]: one is returned as a [1, B, size] view, cheaper than
// stack's copy and autograd node.
at::Tensor states_of(const std::vector<at::Tensor>& parts) {
  return parts.size() == 1 ? parts[0].unsqueeze(0) : at::stack(parts);
}

// The last layer's output (time-major, or packed) and each layer-direction's h_n and c_n (LSTM) as the layer
// op returns them: [B, size], B in sorted order for packed input.
struct Layers {
  at::Tensor out;
  std::vector<at::Tensor> h_n, c_n;
  bool batched;
};

Layers run_layers(c10::string_view mode_name, const at::Tensor& input, at::TensorList hx, at::TensorList weights,
                  bool has_biases, int64_t num_layers, double dropout, bool train, bool bidirectional,
                  bool batch_first, const OptTensor& batch_sizes, const OptTensor& sorted_indices) {
  const Cell kind = parse_cell("fastrnn::rnn", "mode", mode_name);
  const CellKind& mode = kCellKinds[kind];
  const bool lstm = kind == kLstm;
  const int64_t dirs = bidirectional ? 2 : 1, count = num_layers * dirs;
  TORCH_CHECK_VALUE(num_layers >= 1, "num_layers must be a positive integer, got ", num_layers);
  TORCH_CHECK_VALUE(dropout >= 0 && dropout <= 1, "dropout should be a number in range [0, 1], got ", dropout);
  const bool proj = check_weights(mode, weights, has_biases, num_layers, dirs);
  const at::Tensor& w_hh0 = weights[1];
  const int64_t hidden = w_hh0.size(0) / mode.gates, out_size = w_hh0.size(1), input_size = weights[0].size(1);

  // Packed input is a PackedSequence's data ([N, I], its steps' rows one after another) and batch_sizes.
  const bool packed = batch_sizes.has_value();
  at::Tensor x = input;
  if (packed) {
    TORCH_CHECK(input.dim() == 2, "input must have 2 dimensions, got ", input.dim());
  } else {
    TORCH_CHECK_VALUE(input.dim() == 2 || input.dim() == 3, mode.module, ": Expected input to be 2D or 3D, got ",
                      input.dim(), "D instead");
    if (input.dim() == 2) x = input.unsqueeze(1);
    else if (batch_first) x = input.transpose(0, 1);
    TORCH_CHECK(x.size(0) > 0, "Expected sequence length to be larger than 0 in RNN");
  }
  const bool batched = packed || input.dim() == 3;
  const int64_t batch = packed ? batch_sizes->select(0, 0).item<int64_t>() : x.size(1);
  TORCH_CHECK(x.size(-1) == input_size, "input.size(-1) must be equal to input_size. Expected ", input_size, ", got ",
              x.size(-1));
  TORCH_CHECK_VALUE(x.scalar_type() == w_hh0.scalar_type(), "RNN input dtype (", dtype(x),
                    ") does not match weight dtype (", dtype(w_hh0), "). Convert input: input.to(", dtype(w_hh0),
                    "), or convert model: model.to(", dtype(x), ")");
  for (size_t i = 0; i < weights.size(); ++i)
    TORCH_CHECK(weights[i].device() == x.device(), "weights[", i, "] is on ", weights[i].device(),
                " but input is on ", x.device());

  // The state: torch.nn's checks and messages.
  const size_t states = lstm ? 2 : 1;
  const int64_t sizes[2] = {out_size, hidden};
  std::vector<at::Tensor> h(hx.empty() ? 0 : states);  // none given: zeros per layer-direction (inputs below)
  if (!hx.empty()) {
    TORCH_CHECK(hx.size() == states, lstm ? "hx must be a tuple of 2 tensors (h_0, c_0)" : "hx must be [h_0]", ", got ",
                hx.size());
    const int64_t want = batched ? 3 : 2;
    for (size_t i = 0; i < states; ++i)
      TORCH_CHECK(hx[i].dim() == want, "For ", batched ? "batched 3-D" : "unbatched 2-D", " input, hx",
                  states > 1 ? "[" + std::to_string(i) + "]" : "", " should also be ", want, "-D but got ",
                  hx[i].dim());
    for (size_t i = 0; i < states; ++i) {
      h[i] = batched ? hx[i] : hx[i].unsqueeze(1);
      check_state(states > 1 ? "hidden[" + std::to_string(i) + "]" : "hidden", h[i], {count, batch, sizes[i]}, x);
      if (sorted_indices) h[i] = h[i].index_select(1, *sorted_indices);
      h[i] = h[i].contiguous();
    }
  }

  // A sequence of one step (a cell's call) runs as one step (cpu/step.h), its own node where a gradient is wanted.
  auto wants_grad = [](at::TensorList ts) {
    return std::any_of(ts.begin(), ts.end(), [](const at::Tensor& t) { return t.requires_grad(); });
  };
  const bool one_step = !packed && x.size(0) == 1 && !proj;
  const bool grad = at::GradMode::is_enabled() && (x.requires_grad() || wants_grad(h) || wants_grad(weights));
  const int64_t steps = packed ? batch_sizes->size(0) : x.size(0);
  const bool side_by_side = dirs == 2 && cpu::directions_side_by_side(steps, batch, mode.gates, hidden, out_size);
  std::vector<at::Tensor> h_n, c_n;
  for (int64_t layer = 0; layer < num_layers; ++layer) {
    if (layer && dropout > 0 && train) x = at::dropout(x, dropout, true);
    auto inputs = [&](int64_t d) {
      const int64_t idx = layer * dirs + d;
      const LayerWeights l = layer_weights(weights, idx, has_biases, proj);
      // Without hx each layer-direction's zeros of its own: a select of one [count, B, size] is a view op's
      // dispatch per state.
      auto state = [&](size_t i) { return hx.empty() ? zeros_as({batch, sizes[i]}, x) : h[i].select(0, idx); };
      return DirectionInputs{l.w_ih, l.w_hh, l.b_ih, l.b_hh, l.w_hr,
                             state(0), lstm ? OptTensor(state(1)) : std::nullopt};
    };
    auto direction = [&](int64_t d) {
      const DirectionInputs in = inputs(d);
      if (one_step && cpu::step_runs(x, in.w_ih, in.w_hh, in.b_ih, in.b_hh, in.h0, in.c0))
        return grad ? step_autograd(kind, x, in.w_ih, in.w_hh, in.b_ih, in.b_hh, in.h0, in.c0)
                    : cpu::step_forward(kind, x, in.w_ih, in.w_hh, in.b_ih, in.b_hh, in.h0, in.c0, false);
      return call_layer(mode, x, in, batch_sizes, d == 1);
    };
    std::vector<std::vector<at::Tensor>> res(dirs);
    if (side_by_side && grad) {  // one node, whose backward runs the directions side by side too
      std::vector<at::Tensor> both = bidirectional_layer(kind, x, inputs(0), inputs(1), batch_sizes);
      const auto half = static_cast<std::ptrdiff_t>(both.size() / 2);
      res[0].assign(both.begin(), both.begin() + half);
      res[1].assign(both.begin() + half, both.end());
    } else if (side_by_side) {
      cpu::side_by_side([&](int64_t d) { res[d] = direction(d); });
    } else {
      for (int64_t d = 0; d < dirs; ++d) res[d] = direction(d);
    }
    std::vector<at::Tensor> outs;
    for (auto& r : res) {
      outs.push_back(std::move(r[0]));
      h_n.push_back(std::move(r[1]));
      if (lstm) c_n.push_back(std::move(r[2]));
    }
    x = dirs == 1 ? outs[0] : at::cat(outs, -1);
  }
  return {x, std::move(h_n), std::move(c_n), batched};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> rnn(c10::string_view mode_name, const at::Tensor& input,
                                                   at::TensorList hx, at::TensorList weights, bool has_biases,
                                                   int64_t num_layers, double dropout, bool train, bool bidirectional,
                                                   bool batch_first, const OptTensor& batch_sizes,
                                                   const OptTensor& sorted_indices, const OptTensor& unsorted_indices) {
  const Layers r = run_layers(mode_name, input, hx, weights, has_biases, num_layers, dropout, train, bidirectional,
                              batch_first, batch_sizes, sorted_indices);
  const bool lstm = !r.c_n.empty();
  at::Tensor out = r.out, hn = states_of(r.h_n), cn = lstm ? states_of(r.c_n) : at::Tensor();
  if (unsorted_indices) {
    hn = hn.index_select(1, *unsorted_indices);
    if (lstm) cn = cn.index_select(1, *unsorted_indices);
  }
  if (!r.batched) {
    out = out.squeeze(1), hn = hn.squeeze(1);
    if (lstm) cn = cn.squeeze(1);
  } else if (batch_first && !batch_sizes) {
    out = out.transpose(0, 1);
  }
  return {out, hn, cn};
}

// functional.cell: a cell's step as one step of one layer, [B, I] (or unbatched [I]) input one rank up.
std::tuple<at::Tensor, at::Tensor> cell(c10::string_view mode_name, const at::Tensor& input, at::TensorList hx,
                                        const at::Tensor& w_ih, const at::Tensor& w_hh, const OptTensor& b_ih,
                                        const OptTensor& b_hh) {
  const Cell kind = parse_cell("fastrnn::cell", "mode", mode_name);
  const CellKind& mode = kCellKinds[kind];
  const bool lstm = kind == kLstm;
  const char* name = mode.cell_module;
  TORCH_CHECK_VALUE(input.dim() == 1 || input.dim() == 2, name, ": Expected input to be 1D or 2D, got ", input.dim(),
                    "D instead");
  for (size_t i = 0; i < hx.size(); ++i)
    TORCH_CHECK_VALUE(hx[i].dim() == 1 || hx[i].dim() == 2, name, ": Expected ",
                      lstm ? "hx[" + std::to_string(i) + "]" : std::string("hidden"), " to be 1D or 2D, got ",
                      hx[i].dim(), "D instead");
  TORCH_CHECK_VALUE(b_ih.has_value() == b_hh.has_value(), name, ": b_ih and b_hh are given together or not at all");
  std::vector<at::Tensor> states, weights{w_ih, w_hh};
  for (const at::Tensor& h : hx) states.push_back(h.unsqueeze(0));
  if (b_ih) weights.push_back(*b_ih), weights.push_back(*b_hh);
  const Layers r = run_layers(mode_name, input.unsqueeze(0), states, weights, b_ih.has_value(), 1, 0.0, false, false,
                              false, std::nullopt, std::nullopt);
  // The layer op's own [B, H] states, not views of a [1, B, H] stack: with a gradient each view is one more
  // autograd node, and select's backward a zero-filled copy (RNNCell, batch 1, H = 64, forward and backward:
  // 147 -> 104 us of CPU time recorded by torch.profiler; wall time within the host's noise).
  at::Tensor h = r.h_n[0], c = lstm ? r.c_n[0] : at::Tensor();
  if (input.dim() == 1) {
    h = h.squeeze(0);
    if (lstm) c = c.squeeze(0);
  }
  return {h, c};
}

}  // namespace
}  // namespace fastrnn

TORCH_LIBRARY_IMPL(fastrnn, CompositeImplicitAutograd, m) {
  m.impl("rnn", &fastrnn::rnn);
  m.impl("cell", &fastrnn::cell);
}
