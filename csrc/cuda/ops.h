// The CUDA backend's op implementations (one layer, one direction; see registration.cpp for the
// schemas): per time step one ATen GEMM into a preallocated buffer and one fused pointwise kernel.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace fastrnn::cuda {

using at::Tensor;
using OptTensor = std::optional<at::Tensor>;

std::tuple<Tensor, Tensor> rnn_tanh_forward(const Tensor& xw, const Tensor& w_hh, const Tensor& h0,
                                            const OptTensor& batch_sizes, bool reverse);
std::tuple<Tensor, Tensor> rnn_relu_forward(const Tensor& xw, const Tensor& w_hh, const Tensor& h0,
                                            const OptTensor& batch_sizes, bool reverse);
std::tuple<Tensor, Tensor, Tensor> rnn_tanh_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                                     const Tensor& w_hh, const Tensor& h0, const Tensor& output,
                                                     const OptTensor& batch_sizes, bool reverse);
std::tuple<Tensor, Tensor, Tensor> rnn_relu_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                                     const Tensor& w_hh, const Tensor& h0, const Tensor& output,
                                                     const OptTensor& batch_sizes, bool reverse);

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(const Tensor& xw, const Tensor& w_hh,
                                                                const OptTensor& w_hr, const Tensor& h0,
                                                                const Tensor& c0, const OptTensor& batch_sizes,
                                                                bool reverse, bool save, const OptTensor& bias);
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_backward(
    const Tensor& grad_output, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& w_hh,
    const OptTensor& w_hr, const Tensor& h0, const Tensor& c0, const Tensor& output, const Tensor& gates,
    const Tensor& cells, const OptTensor& batch_sizes, bool reverse);

std::tuple<Tensor, Tensor, Tensor> gru_forward(const Tensor& xw, const Tensor& w_hh, const OptTensor& b_hn,
                                               const Tensor& h0, const OptTensor& batch_sizes, bool reverse,
                                               bool save);
std::tuple<Tensor, Tensor, Tensor, Tensor> gru_backward(const Tensor& grad_output, const Tensor& grad_h_n,
                                                        const Tensor& w_hh, const OptTensor& b_hn,
                                                        const Tensor& h0, const Tensor& output,
                                                        const Tensor& workspace, const OptTensor& batch_sizes,
                                                        bool reverse);

}  // namespace fastrnn::cuda
