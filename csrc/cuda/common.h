// What the CUDA launchers share: the device context (guard + current stream), typed views of
// tensors as kernel buffers and the dtype/device checks. The same launcher sources build the
// real CUDA ops (nvcc build, -DFASTRNN_WITH_CUDA) and, with -DFASTRNN_SIMT_EMULATION, the
// emulated ops on CPU tensors; only this header tells the two apart.
#pragma once
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <optional>
#include <vector>

#if !defined(FASTRNN_SIMT_EMULATION)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "../checks.h"
#include "../sequence.h"
#include "kernels/kernels.h"

namespace fastrnn::cuda {

#if defined(FASTRNN_SIMT_EMULATION)
constexpr const char* kDeviceName = "CPU (the emulated CUDA backend runs CPU tensors)";
inline bool on_backend_device(const at::Tensor& t) { return t.is_cpu(); }
class DeviceContext {
 public:
  explicit DeviceContext(const at::Tensor&) {}
  void* stream() const { return nullptr; }
};
#else
constexpr const char* kDeviceName = "CUDA";
inline bool on_backend_device(const at::Tensor& t) { return t.is_cuda(); }
class DeviceContext {
 public:
  explicit DeviceContext(const at::Tensor& t) : guard_(t.device()) {}
  void* stream() const { return c10::cuda::getCurrentCUDAStream().stream(); }

 private:
  c10::cuda::CUDAGuard guard_;
};
#endif

// The backend's device and dtypes, for the first tensor argument (checks.h made the others match).
inline void check_backend(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(on_backend_device(t), op, ": ", name, " must be on ", kDeviceName, ", got device ", t.device());
  check_dtype(op, name, t, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16});
}

inline kernels::DType dtype_tag(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return kernels::DType::Float;
    case at::kDouble: return kernels::DType::Double;
    case at::kHalf: return kernels::DType::Half;
    case at::kBFloat16: return kernels::DType::BFloat16;
    default: TORCH_CHECK(false, "fastrnn: unsupported dtype ", t.scalar_type());
  }
}

// A contiguous tensor (or row slice of one) as a kernel buffer.
inline kernels::Buf buf(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.is_contiguous());
  return {t.data_ptr(), t.numel()};
}
// Rows [row, row + n) of a contiguous 2-D tensor as a kernel buffer, without the cost of a
// tensor view (the time loop runs on the host once per step).
inline kernels::Buf buf(const at::Tensor& m, int64_t row, int64_t n) {
  TORCH_INTERNAL_ASSERT(m.dim() == 2 && m.is_contiguous() && row >= 0 && row + n <= m.size(0));
  return {static_cast<char*>(m.data_ptr()) + row * m.size(1) * m.element_size(), n * m.size(1)};
}
inline kernels::Buf none() { return {nullptr, 0}; }

// Rows [row, row + n) of a row-major matrix.
inline at::Tensor rows(const at::Tensor& m, int64_t row, int64_t n) { return m.narrow(0, row, n); }
// The first n rows: the active part of a running state.
inline at::Tensor head(const at::Tensor& m, int64_t n) { return m.narrow(0, 0, n); }

// The rows of the previously processed step (h_{t-1} of the first prev_rows rows), or none.
inline kernels::Buf prev(const at::Tensor& m, const Step& s) {
  return s.prev_rows > 0 ? buf(m, s.prev_row, s.prev_rows) : none();
}

inline kernels::StepRows step_rows(const Step& s) { return {s.rows, s.prev_rows}; }

inline Schedule schedule(const Dims& d, const std::optional<at::Tensor>& batch_sizes, bool reverse) {
  if (!batch_sizes.has_value()) return Schedule(nullptr, d.T, d.B, reverse);
  const at::Tensor bs = batch_sizes->contiguous();
  return Schedule(bs.const_data_ptr<int64_t>(), d.T, d.B, reverse);
}

// A fresh contiguous [rows, width] copy: the running state and its gradient.
inline at::Tensor state_copy(const at::Tensor& t) { return t.clone(at::MemoryFormat::Contiguous); }

// An activation the forward saves for backward: [N, width] rows or, without save (inference), one
// step's [B, width] rows, which every step overwrites and the op returns empty. The CPU backend's
// SavedRows does the same with row pointers.
class SavedRows {
 public:
  SavedRows(const Dims& d, int64_t width, bool save, const at::TensorOptions& options)
      : buffer_(at::empty({save ? d.N : d.B, width}, options)), seq_(d.seq(width)), save_(save) {}
  // Step st's rows as a kernel buffer.
  kernels::Buf at_step(const Step& st) const { return buf(buffer_, save_ ? st.row : 0, st.rows); }
  // The op's output: the rows in xw's leading shape, or [0] without save.
  at::Tensor result() const { return save_ ? buffer_.view(seq_) : at::empty({0}, buffer_.options()); }

 private:
  at::Tensor buffer_;
  std::vector<int64_t> seq_;
  bool save_;
};

// The [N, width] row-major view of a sequence tensor.
inline at::Tensor matrix(const at::Tensor& t, const Dims& d) { return t.contiguous().view({d.N, t.size(-1)}); }

}  // namespace fastrnn::cuda
