// The argument checks of every fastrnn op, written once for all backends: shapes consistent with
// each other, one dtype, one device (that of the first tensor argument), a valid batch_sizes.
// Each failure is a TORCH_CHECK (RuntimeError in Python) naming the op, the argument and what
// was expected. Which dtypes a backend supports is its own business: see check_dtype.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <initializer_list>
#include <optional>
#include <vector>

namespace fastrnn {

// Sizes of one call. N = rows of the [N, width] view of xw (T*B unpacked, sum(batch_sizes) packed).
struct Dims {
  int64_t T = 0, B = 0, N = 0, H = 0, P = 0;
  bool packed = false;
  std::vector<int64_t> lead;  // leading shape of xw and output: {T, B}, or {N} when packed
  std::vector<int64_t> seq(int64_t width) const {
    auto s = lead;
    s.push_back(width);
    return s;
  }
};

namespace detail {

// t has ref's device and dtype and exactly `shape`.
inline void check_like(const char* op, const char* name, const at::Tensor& t, const at::Tensor& ref,
                       const char* ref_name, c10::IntArrayRef shape) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(t.device() == ref.device(), op, ": ", name, " must be on the same device as ", ref_name,
              " (", ref.device(), "), got ", t.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": ", name, " must have the dtype of ", ref_name,
              " (", ref.scalar_type(), "), got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
}

// The layout of a sequence tensor (xw, or grad_output in backward): T, B, N and the leading shape.
inline Dims check_layout(const char* op, const char* name, const at::Tensor& seq,
                         const std::optional<at::Tensor>& batch_sizes) {
  TORCH_CHECK(seq.defined(), op, ": ", name, " is an undefined tensor");
  TORCH_CHECK(at::isFloatingType(seq.scalar_type()), op, ": ", name,
              " must have a floating point dtype, got ", seq.scalar_type());
  Dims d;
  if (!batch_sizes.has_value()) {
    TORCH_CHECK(seq.dim() == 3, op, ": ", name, " must be 3-D [T, B, ", name == std::string("xw") ? "G*H" : "P",
                "] (or 2-D with batch_sizes), got shape ", seq.sizes());
    d.T = seq.size(0);
    d.B = seq.size(1);
    TORCH_CHECK(d.T >= 1, op, ": ", name, " must have at least one time step, got shape ", seq.sizes());
    d.N = d.T * d.B;
    d.lead = {d.T, d.B};
    return d;
  }
  const at::Tensor& bs = *batch_sizes;
  TORCH_CHECK(bs.device().is_cpu(), op, ": batch_sizes must be a CPU tensor, got device ", bs.device());
  TORCH_CHECK(bs.scalar_type() == at::kLong, op, ": batch_sizes must be int64, got ", bs.scalar_type());
  TORCH_CHECK(bs.dim() == 1 && bs.numel() >= 1, op,
              ": batch_sizes must be 1-D with at least one step, got shape ", bs.sizes());
  TORCH_CHECK(seq.dim() == 2, op, ": ", name, " must be 2-D [N, width] when batch_sizes is given, got shape ",
              seq.sizes());
  const at::Tensor bsc = bs.contiguous();
  const int64_t* b = bsc.const_data_ptr<int64_t>();
  d.packed = true;
  d.T = bs.numel();
  d.B = b[0];
  for (int64_t t = 0; t < d.T; ++t) {
    TORCH_CHECK(b[t] >= 1, op, ": batch_sizes must be positive, got ", b[t], " at step ", t);
    TORCH_CHECK(t == 0 || b[t] <= b[t - 1], op, ": batch_sizes must be non-increasing, got ", b[t - 1],
                " then ", b[t], " at step ", t);
    d.N += b[t];
  }
  TORCH_CHECK(d.N == seq.size(0), op, ": ", name, " must have sum(batch_sizes) = ", d.N, " rows, got ",
              seq.size(0));
  d.lead = {d.N};
  return d;
}

// H and P from w_hh ([G*H, P]) and the optional projection w_hr ([P, H]); P = H without one.
inline void check_weights(const char* op, Dims& d, int64_t gates, const at::Tensor& w_hh,
                          const std::optional<at::Tensor>& w_hr, const at::Tensor& ref, const char* ref_name) {
  TORCH_CHECK(w_hh.defined() && w_hh.dim() == 2 && w_hh.size(0) >= gates && w_hh.size(0) % gates == 0, op,
              ": w_hh must be 2-D [", gates, "*H, P] with H >= 1, got shape ",
              w_hh.defined() ? w_hh.sizes() : c10::IntArrayRef{});
  d.H = w_hh.size(0) / gates;
  d.P = d.H;
  if (w_hr.has_value()) {
    TORCH_CHECK(w_hr->dim() == 2 && w_hr->size(0) >= 1, op, ": w_hr must be 2-D [P, H] with P >= 1, got shape ",
                w_hr->sizes());
    d.P = w_hr->size(0);
    check_like(op, "w_hr", *w_hr, ref, ref_name, {d.P, d.H});
  }
  check_like(op, "w_hh", w_hh, ref, ref_name, {gates * d.H, d.P});
}

}  // namespace detail

// t's dtype is one the calling backend supports.
inline void check_dtype(const char* op, const char* name, const at::Tensor& t,
                        std::initializer_list<at::ScalarType> supported) {
  for (auto s : supported)
    if (t.scalar_type() == s) return;
  std::string list;
  for (auto s : supported) list += std::string(list.empty() ? "" : ", ") + c10::toString(s);
  TORCH_CHECK(false, op, ": ", name, " has dtype ", t.scalar_type(), ", this backend supports ", list);
}

// Forward of tanh/relu RNN (gates = 1), LSTM (gates = 4, with c0 and its optional bias [4H]) and GRU
// (gates = 3, with b_hn).
inline Dims check_forward(const char* op, int64_t gates, const at::Tensor& xw, const at::Tensor& w_hh,
                          const std::optional<at::Tensor>& w_hr, const std::optional<at::Tensor>& b_hn,
                          const at::Tensor& h0, const std::optional<at::Tensor>& c0,
                          const std::optional<at::Tensor>& batch_sizes,
                          const std::optional<at::Tensor>& bias = std::nullopt) {
  Dims d = detail::check_layout(op, "xw", xw, batch_sizes);
  detail::check_weights(op, d, gates, w_hh, w_hr, xw, "xw");
  TORCH_CHECK(xw.size(-1) == gates * d.H, op, ": xw must have ", gates, "*H = ", gates * d.H,
              " columns (w_hh is ", w_hh.sizes(), "), got shape ", xw.sizes());
  if (b_hn.has_value()) detail::check_like(op, "b_hn", *b_hn, xw, "xw", {d.H});
  if (bias.has_value()) detail::check_like(op, "bias", *bias, xw, "xw", {gates * d.H});
  detail::check_like(op, "h0", h0, xw, "xw", {d.B, d.P});
  if (c0.has_value()) detail::check_like(op, "c0", *c0, xw, "xw", {d.B, d.H});
  return d;
}

// Backward: grad_output/output are [.., P], grad_h_n [B, P]; saved is LSTM's gates or GRU's
// workspace ([.., 4H]); cells LSTM's [.., H]; c-state tensors LSTM's [B, H].
inline Dims check_backward(const char* op, int64_t gates, const at::Tensor& grad_output,
                           const at::Tensor& grad_h_n, const std::optional<at::Tensor>& grad_c_n,
                           const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr,
                           const std::optional<at::Tensor>& b_hn, const at::Tensor& h0,
                           const std::optional<at::Tensor>& c0, const at::Tensor& output,
                           const std::optional<at::Tensor>& saved, const char* saved_name,
                           const std::optional<at::Tensor>& cells, const std::optional<at::Tensor>& batch_sizes) {
  const char* ref = "grad_output";
  Dims d = detail::check_layout(op, ref, grad_output, batch_sizes);
  detail::check_weights(op, d, gates, w_hh, w_hr, grad_output, ref);
  detail::check_like(op, ref, grad_output, grad_output, ref, d.seq(d.P));
  detail::check_like(op, "output", output, grad_output, ref, d.seq(d.P));
  detail::check_like(op, "grad_h_n", grad_h_n, grad_output, ref, {d.B, d.P});
  detail::check_like(op, "h0", h0, grad_output, ref, {d.B, d.P});
  if (grad_c_n.has_value()) detail::check_like(op, "grad_c_n", *grad_c_n, grad_output, ref, {d.B, d.H});
  if (c0.has_value()) detail::check_like(op, "c0", *c0, grad_output, ref, {d.B, d.H});
  if (b_hn.has_value()) detail::check_like(op, "b_hn", *b_hn, grad_output, ref, {d.H});
  if (saved.has_value()) detail::check_like(op, saved_name, *saved, grad_output, ref, d.seq(4 * d.H));
  if (cells.has_value()) detail::check_like(op, "cells", *cells, grad_output, ref, d.seq(d.H));
  return d;
}

}  // namespace fastrnn
