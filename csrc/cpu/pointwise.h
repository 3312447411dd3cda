// Vectorized float32 and bfloat16 pointwise passes (math in float) of the fused CPU ops, built for
// AVX2 and for AVX-512 (pointwise_avx2.cpp, pointwise_avx512.cpp, from the one body in
// pointwise_kernels.h) and chosen at run time by kernels(). Each call covers n units j0..j0+n-1 of
// one row, with the math of cells.h. Rows are passed as pointers to the row's first element; a
// G-gate row holds gate k of unit j at k*H + j.
#pragma once
#include <c10/util/BFloat16.h>

#include <cstdint>

#include "cpu/panels.h"

namespace fastrnn::cpu::vec {

// T: the storage type of the sequence buffers (xw rows, saved activations, outputs): float or
// c10::BFloat16. The running state, the GEMM results and the gradients kept in float are float.
template <typename T>
struct Kernels {
  // h = act(x + g); writes out (output row) and h (running state).
  void (*rnn_forward)(bool relu, const T* x, const float* g, T* out, float* h, int64_t n);
  // dpre = act'(h) * (dh + gout).
  void (*rnn_backward)(bool relu, const T* h, const float* dh, const T* gout, float* dpre, int64_t n);
  // x, g: 4H rows (x null: g holds x's part too); b: the 4H bias or null; c: c_{t-1} in, c_t out; writes gates
  // (4H row, may be x: each chunk of units reads its four gates before it writes them), cells, out and h (the
  // first three where not null: a forward that saves nothing skips them).
  void (*lstm_forward)(const T* x, const float* g, const float* b, int64_t H, int64_t j0, int64_t n, float* c,
                       T* gates, T* cells, T* out, float* h);
  // dh (+ gout, the output's gradient, where not null): gradient of the unprojected h_t; dc: in dc_t, out
  // dc_{t-1}; dgates: 4H row; hu (may be null): o * tanh(c_t), for the projection's weight gradient;
  // dsum (may be null): a 4H row that dgates is added to (the bias's gradient).
  void (*lstm_backward)(const T* gates, const T* c_prev, const T* cells, int64_t H, int64_t j0, int64_t n,
                        const float* dh, const T* gout, float* dc, float* dgates, float* hu, float* dsum);
  // x, g: 3H rows (g without b_hn); bn: b_hn or null; h: h_{t-1} in, h_t out; ws: 4H row.
  void (*gru_forward)(const T* x, const float* g, const float* bn, int64_t H, int64_t j0, int64_t n, T* ws, T* out,
                      float* h);
  // ws: 4H row; hp: h_{t-1}; dh: in the state's dh_t, out z * dh_t (the direct part of dh_{t-1});
  // gout: output gradient; dx: 3H row of grad_xw; dg: 3H row of the recurrent GEMM's gradient.
  void (*gru_backward)(const T* ws, const float* hp, const T* gout, int64_t H, int64_t j0, int64_t n, float* dh,
                       T* dx, float* dg);
};

// c[M, N] = a[M, K] @ w[N, K]^T (+ c with accumulate), w row-major as a layer's weights are.
using RowsGemmFn = void (*)(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* w,
                            int64_t ldw, bool accumulate, float* c, int64_t ldc);
struct KernelSet {
  Kernels<float> f32;
  Kernels<c10::BFloat16> bf16;
  PanelGemmFn panel_gemm;
  TransposeFn transpose;
  RowsGemmFn rows_gemm;
};

// The kernel sets of each build; null where the compiler or architecture has no such build.
const KernelSet* avx2_kernels();
const KernelSet* avx512_kernels();
// The panel GEMM on bfloat16 pairs (panels.h: PanelA and PanelB's 32-bit elements each hold two bfloat16s of
// consecutive k) built for AVX512-BF16, null where the compiler or architecture has no such build.
PanelGemmFn avx512_bf16_panel_gemm();

// The widest set this CPU runs, or null: then the scalar loops run. FASTRNN_CPU_VEC=0 turns them off,
// FASTRNN_CPU_VEC=avx2 stops at AVX2 (so tests run every build on one machine).
const KernelSet* kernels();

// avx512_bf16_panel_gemm where kernels() is the AVX-512 set and the CPU has AVX512-BF16, else null.
PanelGemmFn bf16_panel_gemm();

}  // namespace fastrnn::cpu::vec
