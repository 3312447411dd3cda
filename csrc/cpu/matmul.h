// The layer's one-off products on any device (layer.cpp): the input projection and its gradients.
#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

namespace fastrnn::cpu {

// a @ b (+ bias), a fresh tensor: on CPUs where oneDNN beats MKL (see dnnl_gemm_is_faster in common.h)
// large float32 products go to oneDNN, the bias fused (outputs over 8 MB in row blocks: see matmul.cpp),
// and small ones to the panel GEMM where that runs (small_gemm); else at::mm / at::addmm, on the CPU into a
// sequence buffer (empty_seq), which a repeated call gets back without page faults.
at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias = std::nullopt);

}  // namespace fastrnn::cpu
