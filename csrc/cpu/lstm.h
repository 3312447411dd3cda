// fastrnn::lstm_forward's CPU kernel, callable directly by callers that own xw (layer.cpp): with gates_in_xw
// it writes the saved gates over xw's rows as the cells read them (the op itself passes false). At large
// shapes that spares a buffer as large as xw and its first-touch page faults (tens of MB, written once per call).
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace fastrnn::cpu {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_forward(
    const at::Tensor& xw, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr, const at::Tensor& h0,
    const at::Tensor& c0, const std::optional<at::Tensor>& batch_sizes, bool reverse, bool save,
    const std::optional<at::Tensor>& bias, bool gates_in_xw);

}  // namespace fastrnn::cpu
