// What every kernel source needs, for nvcc and for the SIMT emulator (-DFASTRNN_SIMT_EMULATION,
// host compiler) alike: the 16-bit types, dptr<T> (the type of a kernel's pointer parameters: a
// raw pointer on the GPU, a bounds-checked simt::ptr in the emulator), loads/stores in the
// accumulation type, the grid-stride loop and THE launch helper all launches go through.
// No torch headers here: this is compiled by nvcc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#if defined(FASTRNN_SIMT_EMULATION)
#include "../../simt/simt.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <tuple>
#include <utility>
#endif

#include "../../cells.h"
#include "kernels.h"

#if defined(FASTRNN_SIMT_EMULATION)
#define FASTRNN_DYNAMIC_SHARED(T, name) SIMT_DYNAMIC_SHARED(T, name)
#else
#define FASTRNN_DYNAMIC_SHARED(T, name)               \
  extern __shared__ __align__(16) unsigned char name##_raw_[]; \
  T* name = reinterpret_cast<T*>(name##_raw_)
#endif

namespace fastrnn::kernels {

#if defined(FASTRNN_SIMT_EMULATION)
template <typename T>
using dptr = ::simt::ptr<T>;
// A pointer parameter for `size` elements at p (p may be null with size 0: an absent input).
template <typename T>
dptr<T> make_dptr(T* p, int64_t size) {
  return dptr<T>(p, size);
}
#else
template <typename T>
using dptr = T*;
template <typename T>
dptr<T> make_dptr(T* p, int64_t) {
  return p;
}
#endif

// Storage type -> accumulation type: float for the 16-bit types.
template <typename T>
struct Acc {
  using type = T;
};
template <>
struct Acc<__half> {
  using type = float;
};
template <>
struct Acc<__nv_bfloat16> {
  using type = float;
};
template <typename T>
using acc_t = typename Acc<T>::type;

__device__ __forceinline__ float load(const float& x) { return x; }
__device__ __forceinline__ double load(const double& x) { return x; }
__device__ __forceinline__ float load(const __half& x) { return __half2float(x); }
__device__ __forceinline__ float load(const __nv_bfloat16& x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T store(acc_t<T> v);
template <>
__device__ __forceinline__ float store<float>(float v) { return v; }
template <>
__device__ __forceinline__ double store<double>(double v) { return v; }
template <>
__device__ __forceinline__ __half store<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Elementwise kernels: 1-D grid of blocks of up to 256 threads, grid-stride loop over `total`.
#define FASTRNN_GRID_STRIDE(i, total)                                                   \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (total); \
       i += int64_t(blockDim.x) * gridDim.x)

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes = 0;
  void* stream = nullptr;  // cudaStream_t
  bool cooperative = false;
};

// Enough blocks of up to 256 threads (a whole number of warps) to cover `total` elements once,
// capped: the grid-stride loop covers the rest.
inline LaunchConfig elementwise_config(int64_t total, void* stream) {
  const int64_t threads = total < 256 ? (total + 31) / 32 * 32 : 256;
  const int64_t blocks = (total + threads - 1) / threads;
  LaunchConfig c;
  c.grid = dim3(static_cast<unsigned>(blocks < 65535 ? blocks : 65535));
  c.block = dim3(static_cast<unsigned>(threads));
  c.stream = stream;
  return c;
}

// THE launch helper: every kernel launch goes through it, on the GPU and in the emulator.
template <typename... P, typename... A>
void launch(const char* name, void (*kernel)(P...), const LaunchConfig& c, A&&... args) {
#if defined(FASTRNN_SIMT_EMULATION)
  ::simt::launch(name, kernel, c.grid, c.block, c.shared_bytes, c.cooperative, std::forward<A>(args)...);
#else
  std::tuple<P...> params(std::forward<A>(args)...);
  void* argv[sizeof...(P) + 1] = {};
  std::apply([&](auto&... p) {
    int i = 0;
    ((argv[i++] = static_cast<void*>(&p)), ...);
  }, params);
  const auto stream = static_cast<cudaStream_t>(c.stream);
  const cudaError_t err =
      c.cooperative
          ? cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel), c.grid, c.block, argv,
                                        c.shared_bytes, stream)
          : cudaLaunchKernel(reinterpret_cast<const void*>(kernel), c.grid, c.block, argv, c.shared_bytes, stream);
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("fastrnn: launching CUDA kernel ") + name + " failed: " +
                             cudaGetErrorString(err));
#endif
}

// Calls f(T{}) with T the storage type of dt.
template <typename F>
void dispatch(DType dt, F&& f) {
  switch (dt) {
    case DType::Float: f(float{}); return;
    case DType::Double: f(double{}); return;
    case DType::Half: f(__half{}); return;
    case DType::BFloat16: f(__nv_bfloat16{}); return;
  }
  throw std::invalid_argument("fastrnn: unknown dtype tag");
}

// A Buf as the typed pointer parameter of a kernel.
template <typename T>
dptr<T> typed(const Buf& b) {
  return make_dptr(static_cast<T*>(b.data), b.numel);
}

}  // namespace fastrnn::kernels
