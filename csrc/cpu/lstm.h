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

// The same from the layer's input x ([.., I]) and w_ih ([4H, I]) on a CPU: the input projection
// x @ W_ih^T either in the steps' GEMMs (where fuse_input_projection says so: no xw at all) or as
// one GEMM over all steps into an xw that the saved gates then overwrite.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_layer_forward(
    const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr,
    const at::Tensor& h0, const at::Tensor& c0, const std::optional<at::Tensor>& batch_sizes, bool reverse, bool save,
    const std::optional<at::Tensor>& bias);

}  // namespace fastrnn::cpu
