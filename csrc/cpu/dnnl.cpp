// float32 GEMMs through oneDNN, by way of torch's own mkldnn::_linear_pointwise op (oneDNN is
// linked into torch with hidden symbols, so this op is the way in). On CPUs where MKL takes a
// slow path (AMD with AVX-512: MKL runs AVX2 kernels there) oneDNN's AVX-512 kernels run about
// twice as fast; each call costs some microseconds more, so only large products take this path
// (see gemm and dnnl_gemm_is_faster in common.h, and matmul.h).
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/addmm.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

#include "cpu/common.h"
#include "cpu/matmul.h"

namespace fastrnn::cpu {

namespace {

// x @ w^T (+ bias) by torch's mkldnn::_linear_pointwise, or undefined where that op is missing or oneDNN disabled.
at::Tensor linear_pointwise(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias) {
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

}  // namespace

bool dnnl_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc) {
  const auto opts = at::TensorOptions().dtype(at::kFloat);
  auto view = [&](const float* p, int64_t rows, int64_t cols, int64_t ld, bool t) {
    auto m = at::from_blob(const_cast<float*>(p), {t ? cols : rows, t ? rows : cols}, {ld, 1}, opts);
    return t ? m.t() : m;
  };
  // linear(x, w) = x @ w^T with x = op(a) [M,K] and w = op(b)^T [N,K].
  const at::Tensor y = linear_pointwise(view(a, M, K, lda, ta), view(b, K, N, ldb, tb).t(), std::nullopt);
  if (!y.defined()) return false;
  at::Tensor C = at::from_blob(c, {M, N}, {ldc, 1}, opts);
  if (beta == 0.f) C.copy_(y);
  else C.mul_(beta).add_(y);
  return true;
}

// oneDNN allocates each output itself, and torch's CPU allocator hands a block over glibc's mmap threshold
// (32 MB) back to the kernel when freed, so such an output page-faults afresh at every call: a
// [6400, 2048] projection took 12.8k faults, 20-25% of its time on a Zen 5 EPYC. Larger outputs are
// computed in row blocks of this size, which the heap keeps, into one empty_seq buffer.
constexpr int64_t kBlockBytes = int64_t(8) << 20;

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias) {
  const int64_t M = a.size(0), N = b.size(1);
  if (a.is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
      2.0 * M * a.size(1) * N >= kDnnlMinFlops && dnnl_gemm_is_faster()) {
    const int64_t rows = std::max<int64_t>(1, kBlockBytes / int64_t(N * sizeof(float)));
    if (M <= rows) {
      at::Tensor y = linear_pointwise(a, b.t(), bias);
      if (y.defined()) return y;
    } else if (at::Tensor y = linear_pointwise(a.narrow(0, 0, rows), b.t(), bias); y.defined()) {
      at::Tensor out = empty_seq({M, N}, a.options());
      out.narrow(0, 0, rows).copy_(y);
      for (int64_t r0 = rows; r0 < M; r0 += rows) {
        const int64_t r = std::min(rows, M - r0);
        out.narrow(0, r0, r).copy_(linear_pointwise(a.narrow(0, r0, r), b.t(), bias));
      }
      return out;
    }
  }
  return bias.has_value() ? at::addmm(*bias, a, b) : at::mm(a, b);
}

}  // namespace fastrnn::cpu
