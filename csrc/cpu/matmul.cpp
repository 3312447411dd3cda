// The layer's one-off products (matmul.h): oneDNN for large ones where it beats MKL, else at::mm / at::addmm.
#include "cpu/matmul.h"

#include <ATen/ops/addmm.h>
#include <ATen/ops/mm.h>
#include <torch/library.h>

#include "cpu/common.h"

namespace fastrnn::cpu {
namespace {

// oneDNN allocates each output itself, and glibc hands a freed block over its mmap threshold (at most
// 32 MB) back to the kernel, so such an output page-faults afresh at every call: a
// [6400, 2048] projection took 12.8k faults, 20-25% of its time on a Zen 5 EPYC. Larger outputs are
// computed in row blocks of this size, which the heap keeps, into one empty_seq buffer.
constexpr int64_t kBlockBytes = int64_t(8) << 20;

// C before a GEMM that adds to it: bias in each of its M rows (a copy: one row of an expand is contiguous, and
// contiguous() would hand back bias itself for the GEMM to write over), or uninitialized.
at::Tensor initial_c(const std::optional<at::Tensor>& bias, int64_t M, int64_t N, const at::TensorOptions& options) {
  return bias.has_value() ? bias->expand({M, N}).clone(at::MemoryFormat::Contiguous) : at::empty({M, N}, options);
}

at::Tensor dnnl_matmul(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  const int64_t rows = std::max<int64_t>(1, kBlockBytes / int64_t(N * sizeof(float)));
  if (M > rows) {  // a large output: row blocks
    at::Tensor out;
    for (int64_t r0 = 0; r0 < M; r0 += rows) {
      const int64_t r = std::min(rows, M - r0);
      const at::Tensor y = dnnl_linear(a.narrow(0, r0, r), b.t(), bias);
      if (!y.defined()) return y;  // oneDNN is off: then already for the first block
      if (!out.defined()) out = empty_seq({M, N}, a.options());
      out.narrow(0, r0, r).copy_(y);
    }
    return out;
  }
  // A weight gradient (a = rows^T, b = rows, K = the sequence's rows): dnnl_gemm, which runs a long
  // reduction in chunks and copies the narrower operand.
  if (a.t().is_contiguous() && b.is_contiguous()) {
    at::Tensor c = initial_c(bias, M, N, a.options());
    if (!dnnl_gemm(true, false, M, N, K, a.const_data_ptr<float>(), M, b.const_data_ptr<float>(), N,
                   bias.has_value() ? 1.f : 0.f, c.data_ptr<float>(), N))
      return {};
    return c;
  }
  return dnnl_linear(a, b.t(), bias);
}

// a @ b (+ bias) through small_gemm (common.h) where a and b are each contiguous or a transposed contiguous
// matrix; undefined where it does not run.
at::Tensor small_matmul(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  const bool ta = !a.is_contiguous() && a.t().is_contiguous(), tb = !b.is_contiguous() && b.t().is_contiguous();
  if (!(ta || a.is_contiguous()) || !(tb || b.is_contiguous())) return {};
  at::Tensor c = initial_c(bias, M, N, a.options());
  const bool done = small_gemm(ta, tb, M, N, K, a.const_data_ptr<float>(), ta ? M : K, b.const_data_ptr<float>(),
                               tb ? K : N, bias.has_value() ? 1.f : 0.f, c.data_ptr<float>(), N);
  return done ? c : at::Tensor();
}

// fastrnn::matmul: the checks, then matmul.
at::Tensor matmul_op(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "fastrnn::matmul: expected a [M, K] and b [K, N], got a ", a.sizes(), " and b ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type() && a.device() == b.device(),
              "fastrnn::matmul: a and b must have one dtype and device, got ", a.scalar_type(), " on ", a.device(),
              " and ", b.scalar_type(), " on ", b.device());
  TORCH_CHECK(!bias.has_value() || (bias->dim() == 1 && bias->size(0) == b.size(1) &&
                                    bias->scalar_type() == a.scalar_type() && bias->device() == a.device()),
              "fastrnn::matmul: bias must be [N] = [", b.size(1), "] of a's dtype and device");
  return matmul(a, b, bias);
}

}  // namespace

at::Tensor matmul(const at::Tensor& a, const at::Tensor& b, const std::optional<at::Tensor>& bias) {
  if (a.is_cpu() && a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat &&
      (!bias.has_value() || bias->scalar_type() == at::kFloat)) {
    const bool large = 2.0 * a.size(0) * a.size(1) * b.size(1) >= kDnnlMinFlops;
    if (large && dnnl_gemm_is_faster())
      if (at::Tensor y = dnnl_matmul(a, b, bias); y.defined()) return y;
    if (!large)
      if (at::Tensor y = small_matmul(a, b, bias); y.defined()) return y;
  }
  if (!a.is_cpu()) return bias.has_value() ? at::addmm(*bias, a, b) : at::mm(a, b);
  // Into a sequence buffer: a fresh output over glibc's mmap threshold page-faults afresh at every call
  // (see kBlockBytes), as the projections on MKL (Intel CPUs, or oneDNN disabled) did: the LSTM forward at
  // (200,32,512,512), its projection on MKL (unfused), took 12.9k faults per call, now 8; 181 -> 170 ms
  // (medians, 2 Zen 4 cores of an AMD EPYC, oneDNN disabled).
  at::Tensor out = empty_seq({a.size(0), b.size(1)}, a.options());
  return bias.has_value() ? at::addmm_out(out, *bias, a, b) : at::mm_out(out, a, b);
}

}  // namespace fastrnn::cpu

TORCH_LIBRARY_IMPL(fastrnn, CPU, m) { m.impl("matmul", &fastrnn::cpu::matmul_op); }
