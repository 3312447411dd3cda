// Small kernels that exercise the SIMT emulator (tests/test_emulator.py): warp shuffles and votes,
// a shared-memory transpose, dynamic shared memory, grid sync, 16-bit conversions, and kernels
// with deliberate bugs. Written like the real kernels: no torch headers, dptr parameters, every
// launch through fastrnn::kernels::launch; each host function takes raw pointers and sizes.
#include "../csrc/cuda/kernels/device.h"
#if !defined(FASTRNN_SIMT_EMULATION)
#include <cooperative_groups.h>
#endif

namespace simt_test {
namespace cg = cooperative_groups;
using fastrnn::kernels::dptr;
using fastrnn::kernels::launch;
using fastrnn::kernels::LaunchConfig;
using fastrnn::kernels::make_dptr;

inline LaunchConfig config(dim3 grid, dim3 block, size_t shared_bytes = 0, bool cooperative = false) {
  LaunchConfig c;
  c.grid = grid;
  c.block = block;
  c.shared_bytes = shared_bytes;
  c.cooperative = cooperative;
  return c;
}

// Per lane: inclusive warp scan (shfl_up), warp total (xor butterfly), lane 0's value (shfl),
// the next lane's value (shfl_down); per warp: ballot of x > 0, all(x > 0), any(x > 0).
__global__ void warp_ops_kernel(dptr<const float> x, dptr<float> scan, dptr<float> total, dptr<float> first,
                                dptr<float> next, dptr<int> votes) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const unsigned lane = threadIdx.x & 31u, full = 0xffffffffu;
  const float v = x[i];
  float s = v;
  for (unsigned d = 1; d < 32; d *= 2) {
    const float up = __shfl_up_sync(full, s, d);
    if (lane >= d) s += up;
  }
  scan[i] = s;
  float t = v;
  for (int m = 16; m > 0; m /= 2) t += __shfl_xor_sync(full, t, m);
  total[i] = t;
  first[i] = __shfl_sync(full, v, 0);
  next[i] = __shfl_down_sync(full, v, 1);
  const unsigned ballot = __ballot_sync(full, v > 0.0f);
  const int all = __all_sync(full, v > 0.0f), any = __any_sync(full, v > 0.0f);
  if (lane == 0) {
    const int64_t w = i / 32;
    votes[3 * w] = static_cast<int>(ballot);
    votes[3 * w + 1] = all;
    votes[3 * w + 2] = any;
  }
}

void warp_ops(const float* x, int64_t n, float* scan, float* total, float* first, float* next, int* votes) {
  launch("warp_ops_kernel", &warp_ops_kernel, config(dim3(unsigned(n / 64)), dim3(64)), make_dptr(x, n),
         make_dptr(scan, n), make_dptr(total, n), make_dptr(first, n), make_dptr(next, n),
         make_dptr(votes, 3 * (n / 32)));
}

// Sum of x by one warp-shuffle reduction per warp and an atomicAdd per warp.
__global__ void warp_sum_kernel(int64_t n, dptr<const float> x, dptr<float> out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  float v = i < n ? x[i] : 0.0f;
  for (int d = 16; d > 0; d /= 2) v += __shfl_down_sync(0xffffffffu, v, d);
  if ((threadIdx.x & 31u) == 0) atomicAdd(&out[0], v);
}

void warp_sum(const float* x, int64_t n, float* out) {
  launch("warp_sum_kernel", &warp_sum_kernel, config(dim3(unsigned((n + 127) / 128)), dim3(128)), n,
         make_dptr(x, n), make_dptr(out, 1));
}

// out [cols, rows] = in [rows, cols]^T through an 8x8 static shared tile.
constexpr int kTile = 8;
__global__ void transpose_kernel(int rows, int cols, bool sync, dptr<const float> in, dptr<float> out) {
  __shared__ float tile[kTile][kTile + 1];
  int x = blockIdx.x * kTile + threadIdx.x, y = blockIdx.y * kTile + threadIdx.y;
  if (x < cols && y < rows) tile[threadIdx.y][threadIdx.x] = in[y * cols + x];
  if (sync) __syncthreads();
  x = blockIdx.y * kTile + threadIdx.x;
  y = blockIdx.x * kTile + threadIdx.y;
  if (x < rows && y < cols) out[y * rows + x] = tile[threadIdx.x][threadIdx.y];
}

void transpose(const float* in, int rows, int cols, bool sync, float* out) {
  const dim3 grid((cols + kTile - 1) / kTile, (rows + kTile - 1) / kTile);
  launch("transpose_kernel", &transpose_kernel, config(grid, dim3(kTile, kTile)), rows, cols, sync,
         make_dptr(in, int64_t(rows) * cols), make_dptr(out, int64_t(rows) * cols));
}

// out = each block's slice of x reversed, through dynamic shared memory.
__global__ void block_reverse_kernel(bool sync, dptr<const float> x, dptr<float> out) {
  FASTRNN_DYNAMIC_SHARED(float, s);
  const int64_t base = int64_t(blockIdx.x) * blockDim.x;
  const unsigned t = threadIdx.x;
  s[t] = x[base + t];
  if (sync) __syncthreads();
  out[base + t] = s[blockDim.x - 1 - t];
}

void block_reverse(const float* x, int64_t n, int block, bool sync, float* out) {
  launch("block_reverse_kernel", &block_reverse_kernel,
         config(dim3(unsigned(n / block)), dim3(unsigned(block)), block * sizeof(float)), sync, make_dptr(x, n),
         make_dptr(out, n));
}

// `rounds` times: a[i] <- a[(i + shift) % n] + 1 across the whole grid, which needs grid sync.
__global__ void grid_rotate_kernel(int64_t n, int64_t shift, int rounds, dptr<float> a) {
  const cg::grid_group grid = cg::this_grid();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int r = 0; r < rounds; ++r) {
    const float v = i < n ? a[(i + shift) % n] : 0.0f;
    grid.sync();
    if (i < n) a[i] = v + 1.0f;
    grid.sync();
  }
}

void grid_rotate(float* a, int64_t n, int64_t shift, int rounds, int blocks, bool cooperative) {
  const unsigned threads = unsigned((n + blocks - 1) / blocks);
  launch("grid_rotate_kernel", &grid_rotate_kernel, config(dim3(unsigned(blocks)), dim3(threads), 0, cooperative),
         n, shift, rounds, make_dptr(a, n));
}

// Round trips through the 16-bit types: h16[i] = float(half(x[i])), b16[i] likewise for bfloat16.
__global__ void round_trip_kernel(int64_t n, dptr<const float> x, dptr<float> h16, dptr<float> b16) {
  FASTRNN_GRID_STRIDE(i, n) {
    h16[i] = __half2float(__float2half_rn(x[i]));
    b16[i] = __bfloat162float(__float2bfloat16_rn(x[i]));
  }
}

void round_trip(const float* x, int64_t n, float* h16, float* b16) {
  launch("round_trip_kernel", &round_trip_kernel, fastrnn::kernels::elementwise_config(n, nullptr), n,
         make_dptr(x, n), make_dptr(h16, n), make_dptr(b16, n));
}

// Bug: copies one element too many.
__global__ void off_by_one_kernel(int64_t n, dptr<const float> x, dptr<float> out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = x[i];
}

void off_by_one(const float* x, int64_t n, float* out) {
  launch("off_by_one_kernel", &off_by_one_kernel, config(dim3(1), dim3(unsigned(n + 1))), n, make_dptr(x, n),
         make_dptr(out, n));
}

// Bug: half of the warp exits before a shuffle that names every lane.
__global__ void early_exit_shuffle_kernel(dptr<float> x) {
  const unsigned lane = threadIdx.x & 31u;
  if (lane < 16) return;
  x[lane] = __shfl_sync(0xffffffffu, x[lane], 0);
}

void early_exit_shuffle(float* x) {
  launch("early_exit_shuffle_kernel", &early_exit_shuffle_kernel, config(dim3(1), dim3(32)), make_dptr(x, 32));
}

// Bug: the two halves of the block meet at different __syncthreads() calls.
__global__ void divergent_barrier_kernel(dptr<float> x) {
  const unsigned t = threadIdx.x;
  if (t < 16) {
    x[t] = 1.0f;
    __syncthreads();
    x[t] += x[t + 16];
  } else {
    __syncthreads();
    x[t] = 2.0f;
  }
}

void divergent_barrier(float* x) {
  launch("divergent_barrier_kernel", &divergent_barrier_kernel, config(dim3(1), dim3(32)), make_dptr(x, 32));
}

}  // namespace simt_test
