// Recurrent weights packed once per call into column panels for the CPU ops' own step GEMM
// (panel_gemm_kernels.h): panel p holds kPanelWidth columns of B = op(W) as [K, kPanelWidth],
// and C's columns cols[p] .. cols[p] + widths[p] receive its product. The panels of one thread's
// share of hidden units are consecutive, so each thread of the time loop computes the gate
// pre-activations of its own units (every gate of them) and runs their cell with no other thread.
#pragma once
#include <cstdint>

namespace fastrnn::cpu::vec {

constexpr int kPanelWidth = 16;

// The A operand of a panel GEMM, [M, K + K2]: K columns from a, A[m, k] = a[m * lda + k * inc] (inc = 1 for
// a row-major a; lda = 1 and inc = its leading dimension for a transposed one, read in place), then K2 from
// a2's rows (the input x_t and h_{t-1} of a step whose GEMM also runs the input projection). The panels'
// rows follow the same order. With descending the GEMM reads panels and rows in reverse (zigzag, common.h).
struct PanelA {
  const float* a;
  int64_t lda, K;
  const float* a2 = nullptr;
  int64_t lda2 = 0, K2 = 0;
  int64_t inc = 1;
  bool descending = false;
};

// The B operand: panel p's row k at data + p * stride + k * ld, its product going to C's columns cols[p] ..
// cols[p] + widths[p]. Packed panels have ld = kPanelWidth; a row-major matrix whose columns are the panels'
// (no gates to interleave, every panel full) is read in place with stride = kPanelWidth, ld its own.
struct PanelB {
  const float* data;
  int64_t stride, ld;
  const int64_t* cols;
  const int32_t* widths;
};

// C[m, cols[p] + n] (+)= sum_k A[m, k] * panel_p[k, n] for m < M, n < widths[p], p in [p0, p1):
// added to C's contents with accumulate, else written over them.
using PanelGemmFn = void (*)(int64_t M, const PanelA& a, const PanelB& b, int64_t p0, int64_t p1, float* c,
                             int64_t ldc, bool accumulate);

// dst[n, m] = src[m, n] for m < M, n < N (row-major, leading dimensions ld_src and ld_dst): packs a
// transposed weight's panels.
using TransposeFn = void (*)(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int M, int N);

}  // namespace fastrnn::cpu::vec
