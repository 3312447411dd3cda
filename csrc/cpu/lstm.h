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

// The layer's input x ([.., I]) and W_ih ([4H, I]), and which of their gradients are wanted: lstm_backward
// computes those beside its time loop where that runs on one thread (cpu/ahead.h).
struct LayerInput {
  at::Tensor x, w_ih;
  bool grad_x = false, grad_w_ih = false;
};

// fastrnn::lstm_backward's CPU kernel. bias: the sum of grad_xw's rows (the gradient of the bias xw holds) with
// bias_grad where the time loop adds it up as it goes (lstm.cpp says where); x and w_ih: the wanted gradients
// of `input` where the loop's second thread computed them. Each undefined where not computed.
struct LstmGrads {
  at::Tensor xw, w_hh, w_hr, h0, c0, bias, x, w_ih;
};
LstmGrads lstm_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& grad_c_n,
                        const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr, const at::Tensor& h0,
                        const at::Tensor& c0, const at::Tensor& output, const at::Tensor& gates, const at::Tensor& cells,
                        const std::optional<at::Tensor>& batch_sizes, bool reverse, bool bias_grad,
                        const LayerInput& input = {});

}  // namespace fastrnn::cpu
