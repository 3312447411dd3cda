// float32 GEMMs through oneDNN, by way of torch's own mkldnn::_linear_pointwise op (oneDNN is
// linked into torch with hidden symbols, so this op is the way in). On CPUs where MKL takes a
// slow path (AMD with AVX-512: MKL runs AVX2 kernels there) oneDNN's AVX-512 kernels run about
// twice as fast; each call costs some microseconds more, so only large products take this path
// (see gemm and dnnl_gemm_is_faster in common.h, and matmul.cpp).
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/from_blob.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include "cpu/common.h"

namespace fastrnn::cpu {

at::Tensor dnnl_linear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias) {
  static const std::optional<c10::OperatorHandle> op =
      c10::Dispatcher::singleton().findSchema({"mkldnn::_linear_pointwise", ""});
  if (!op.has_value() || !at::globalContext().userEnabledMkldnn()) return {};
  // Our operands are internal buffers or the layer's own: keep autograd out of the nested call.
  c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset);
  torch::jit::Stack stack{x, w, bias.has_value() ? c10::IValue(*bias) : c10::IValue(), std::string("none"),
                          c10::List<std::optional<at::Scalar>>(), std::string("")};
  op->callBoxed(stack);
  return stack.back().toTensor();
}

namespace {

// dst[c, r] = src[r, c] for r < rows, c < cols (leading dimensions ld_src, ld_dst): by the vector kernels'
// in-register 16x16 transposes, on torch's threads. ATen's transposing copy (Tensor.contiguous() of a
// transposed view, which oneDNN's linear() makes of its input) ran at 5-10 GB/s on a Zen 5 EPYC.
void transpose_copy(const float* src, int64_t rows, int64_t cols, int64_t ld_src, float* dst, int64_t ld_dst) {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  if (vec::kernels() == nullptr) {  // FASTRNN_CPU_VEC=0
    at::from_blob(dst, {cols, rows}, {ld_dst, 1}, opts).copy_(at::from_blob(const_cast<float*>(src), {rows, cols}, {ld_src, 1}, opts).t());
    return;
  }
  const vec::TransposeFn transpose = vec::kernels()->transpose;
  at::parallel_for(0, cols, std::max<int64_t>(16, 65536 / std::max<int64_t>(rows, 1)), [&](int64_t c0, int64_t c1) {
    transpose(src + c0, ld_src, dst + c0 * ld_dst, ld_dst, int(rows), int(c1 - c0));
  });
}

// src^T as a fresh contiguous [cols, rows] tensor.
at::Tensor transposed_copy(const float* src, int64_t rows, int64_t cols, int64_t ld) {
  at::Tensor dst = at::empty({cols, rows}, at::TensorOptions().dtype(at::kFloat));
  transpose_copy(src, rows, cols, ld, dst.data_ptr<float>(), rows);
  return dst;
}

}  // namespace

// oneDNN copies (reorders) the operands it is given, into fresh buffers that page-fault at every call; over a
// long reduction (K = a sequence's rows, as in dW = dgates^T @ h_prev: ta and not tb) they are tens of MB.
// There K runs in chunks whose operands take at most kDnnlChunkBytes each: [6400, 2048]^T @ [6400, 512]
// went from 62 to 44 ms (12.8k page faults to 1.5k) on a Zen 5 EPYC. Only there: a chunk of K is then
// rows of both stored operands, dense; a column slice (lda > K) sends oneDNN to a reference kernel,
// 600x slower.
// And linear(x, w) = x @ w^T reads the strided w as it is but first copies x densely, by a slow
// transposing copy when x is a transposed view. So a weight gradient (ta and not tb: both operands stored
// sequence-major, the reduction over their rows) runs as C^T = b^T @ a where b is the narrower operand,
// whose copy is then the smaller. On a Zen 5 EPYC [1600, 512]^T @ [1600, 128] went from 0.84-1.03 to
// 0.61 ms, [6400, 1024]^T @ [6400, 256] from 13 to 10 ms and [6400, 2048]^T @ [6400, 512] from 45 to
// 39 ms; with the wider b it lost (7.4 against 11 ms for [6400, 256]^T @ [6400, 512]). That copy, and
// the transpose of C^T, are made by transpose_copy.
bool dnnl_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  auto view = [&](const float* p, int64_t rows, int64_t cols, int64_t ld, bool t) {
    auto m = at::from_blob(const_cast<float*>(p), {t ? cols : rows, t ? rows : cols}, {ld, 1}, opts);
    return t ? m.t() : m;
  };
  const bool weight_grad = ta && !tb, transposed = weight_grad && N < M;
  const int64_t chunk =
      weight_grad ? std::max<int64_t>(1, kDnnlChunkBytes / int64_t(sizeof(float) * std::max(M, N))) : K;
  at::Tensor sum;  // of the chunks' products: C's, or C^T's when transposed
  for (int64_t k0 = 0; k0 < K; k0 += chunk) {
    const int64_t k = std::min(chunk, K - k0);
    const float* ak = ta ? a + k0 * lda : a + k0;  // columns [k0, k0 + k) of op(a), rows of op(b)
    const float* bk = tb ? b + k0 : b + k0 * ldb;
    // op(a) [M,k] and op(b) [k,N]: linear(op(a), op(b)^T) = op(a) @ op(b), linear(op(b)^T, op(a)) its transpose.
    // A weight gradient's x is a transposed view, copied here (transposed) rather than by oneDNN.
    const at::Tensor y = transposed  ? dnnl_linear(transposed_copy(bk, k, N, ldb), view(ak, M, k, lda, ta), std::nullopt)
                         : weight_grad ? dnnl_linear(transposed_copy(ak, k, M, lda), view(bk, k, N, ldb, tb).t(), std::nullopt)
                                       : dnnl_linear(view(ak, M, k, lda, ta), view(bk, k, N, ldb, tb).t(), std::nullopt);
    if (!y.defined()) return false;  // oneDNN is off: then already for the first chunk, C untouched
    sum = sum.defined() ? sum.add_(y) : y;
  }
  const at::Tensor product = transposed ? sum.t() : sum;
  at::Tensor C = at::from_blob(c, {M, N}, {ldc, 1}, opts);
  if (beta == 0.f && transposed) transpose_copy(sum.const_data_ptr<float>(), N, M, M, c, ldc);
  else if (beta == 0.f) C.copy_(product);
  else if (beta == 1.f) C.add_(product);
  else C.mul_(beta).add_(product);
  return true;
}

}  // namespace fastrnn::cpu
