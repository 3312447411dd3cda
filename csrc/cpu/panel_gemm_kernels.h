// The packed-panel GEMM (panels.h), included by pointwise_avx2.cpp and pointwise_avx512.cpp (their
// target and namespace): a panel row is two ymm or one zmm register. Madd is the multiply-add of A's
// broadcast element and a panel row: Fma here, or (panel_gemm_bf16.cpp, AVX512-BF16) vdpbf16ps on
// 32-bit elements that each hold two bfloat16s of consecutive k.
#pragma once
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>

#include "cpu/panels.h"

namespace fastrnn::cpu::vec::FASTRNN_VEC_NS {
namespace {

using PV = at::vec::Vectorized<float>;

struct Fma {
  static PV broadcast(const float* a) { return PV(*a); }
  static PV madd(const PV& a, const PV& b, const PV& acc) { return at::vec::fmadd(a, b, acc); }
};
constexpr int kNV = kPanelWidth / PV::size();  // vectors per panel row
static_assert(kNV * PV::size() == kPanelWidth);
// Rows per register tile, and accumulator registers per tile: 12 of the 16 ymm registers, or 24 of the
// 32 zmm registers; the rest hold a panel row (or a few) and the broadcast of a.
constexpr bool kWide = PV::size() == 16;
constexpr int kMaxRows = kWide ? 8 : 6, kAccumulators = kWide ? 24 : 12;

// C rows [0, MR) of the NP panels from B's panel p0, over the K + K2 rows of each panel: MR x NP x kNV
// accumulators held in registers over all of them. With fewer than 8 accumulators (a row or two), even
// and odd k run separate chains, summed at the end: an FMA's latency is 4 cycles and two issue per cycle.
template <typename Madd, int MR, int NP>
__attribute__((always_inline)) inline void tile(const PanelA& A, int64_t m0, const PanelB& B, int64_t p0, float* c,
                                                int64_t ldc, bool accumulate) {
  const float* b = B.data + p0 * B.stride;
  const int64_t stride = B.stride, ld = B.ld;
  constexpr int NQ = NP * kNV, KS = MR * NQ < 8 ? 2 : 1;
  PV acc[KS][MR][NQ];
#pragma GCC unroll 16
  for (int s = 0; s < KS; ++s)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int q = 0; q < NQ; ++q) acc[s][r][q] = PV(0.f);
  // A row of the panels (bk) against a column of A (ak, its rows lda apart).
  auto step = [&](const float* ak, int64_t lda, const float* bk, PV (&sum)[MR][NQ]) __attribute__((always_inline)) {
    PV bv[NQ];
#pragma GCC unroll 16
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 16
      for (int v = 0; v < kNV; ++v) bv[p * kNV + v] = PV::loadu(bk + p * stride + v * PV::size());
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const PV av = Madd::broadcast(ak + r * lda);
#pragma GCC unroll 16
      for (int q = 0; q < NQ; ++q) sum[r][q] = Madd::madd(av, bv[q], sum[r][q]);
    }
  };
  auto part = [&](const float* ak, int64_t lda, int64_t inc, int64_t K, const float* bk) __attribute__((always_inline)) {
    int64_t k = 0;
    if (!A.descending) {
      for (; k + KS <= K; k += KS, ak += KS * inc, bk += KS * ld)
#pragma GCC unroll 2
        for (int s = 0; s < KS; ++s) step(ak + s * inc, lda, bk + s * ld, acc[s]);
      for (; k < K; ++k, ak += inc, bk += ld) step(ak, lda, bk, acc[0]);
      return;
    }
    // From one past the last row down, each group stepped back before it is read: the pointers never
    // leave [first row, one past the last].
    ak += K * inc, bk += K * ld;
    for (; k + KS <= K; k += KS) {
      ak -= KS * inc, bk -= KS * ld;
#pragma GCC unroll 2
      for (int s = 0; s < KS; ++s) step(ak + s * inc, lda, bk + s * ld, acc[s]);
    }
    for (; k < K; ++k) ak -= inc, bk -= ld, step(ak, lda, bk, acc[0]);
  };
  if (A.descending && A.K2 > 0) part(A.a2 + m0 * A.lda2, A.lda2, 1, A.K2, b + A.K * ld);
  part(A.a + m0 * A.lda, A.lda, A.inc, A.K, b);
  if (!A.descending && A.K2 > 0) part(A.a2 + m0 * A.lda2, A.lda2, 1, A.K2, b + A.K * ld);
#pragma GCC unroll 16
  for (int s = 1; s < KS; ++s)
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
      for (int q = 0; q < NQ; ++q) acc[0][r][q] = acc[0][r][q] + acc[s][r][q];
#pragma GCC unroll 16
  for (int p = 0; p < NP; ++p) {
    const int w = B.widths[p0 + p];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      float* dst = c + r * ldc + B.cols[p0 + p];
#pragma GCC unroll 16
      for (int v = 0; v < kNV; ++v) {
        const int n = std::min<int>(w - v * PV::size(), PV::size());  // the vector's columns in C
        if (n <= 0) continue;
        float* out = dst + v * PV::size();
        const PV sum = accumulate ? acc[0][r][p * kNV + v] + PV::loadu(out, n) : acc[0][r][p * kNV + v];
        sum.store(out, n);
      }
    }
  }
}

// Rows [0, M) of the NP panels from B's panel p0, in row tiles of at most kMaxRows rows and
// as even as can be (32 rows: 6, 6, 5, 5, 5, 5 rather than 6, 6, 6, 6, 6, 2, whose last tile would be
// latency-bound).
template <typename Madd, int NP>
inline void panel_rows(int64_t M, const PanelA& a, const PanelB& b, int64_t p0, float* c, int64_t ldc,
                       bool accumulate) {
  const int64_t tiles = (M + kMaxRows - 1) / kMaxRows;
  for (int64_t i = 0; i < tiles; ++i) {
    const int64_t m0 = M * i / tiles, rows = M * (i + 1) / tiles - m0;
    float* ct = c + m0 * ldc;
    switch (rows) {
#define FASTRNN_TILE_CASE(R)                                                                            \
  case R:                                                                                               \
    if constexpr (R <= kMaxRows) tile<Madd, R, NP>(a, m0, b, p0, ct, ldc, accumulate); \
    break;
      FASTRNN_TILE_CASE(1)
      FASTRNN_TILE_CASE(2)
      FASTRNN_TILE_CASE(3)
      FASTRNN_TILE_CASE(4)
      FASTRNN_TILE_CASE(5)
      FASTRNN_TILE_CASE(6)
      FASTRNN_TILE_CASE(7)
      FASTRNN_TILE_CASE(8)
#undef FASTRNN_TILE_CASE
      default: break;
    }
  }
}

// Panels [p0, p1) NP at a time; each group of panels is read from memory once
// and stays in cache while every row tile uses it.
template <typename Madd, int NP>
inline void panel_groups(int64_t M, const PanelA& a, const PanelB& b, int64_t p0, int64_t p1, float* c, int64_t ldc,
                         bool accumulate) {
  const int64_t rest = p0 + (p1 - p0) / NP * NP;
  // The rest in smaller groups: one panel at a time would leave a single chain of FMAs per row, and reads a
  // broadcast of a per FMA (two panels left by groups of 3 go together).
  auto smaller = [&] {
    if constexpr (NP > 1)
      if (rest < p1) panel_groups<Madd, NP == 3 ? 2 : NP / 2>(M, a, b, rest, p1, c, ldc, accumulate);
  };
  if (a.descending) {
    smaller();
    for (int64_t p = rest - NP; p >= p0; p -= NP) panel_rows<Madd, NP>(M, a, b, p, c, ldc, accumulate);
    return;
  }
  for (int64_t p = p0; p < rest; p += NP) panel_rows<Madd, NP>(M, a, b, p, c, ldc, accumulate);
  smaller();
}

template <typename Madd>
void panel_gemm(int64_t M, const PanelA& a, const PanelB& b, int64_t p0, int64_t p1, float* c, int64_t ldc,
                bool accumulate) {
  // Enough independent accumulators to hide the FMA latency: with few rows, several panels share a tile.
  const int64_t tiles = (M + kMaxRows - 1) / kMaxRows;
  const int64_t rows = tiles > 0 ? (M + tiles - 1) / tiles : 0;  // of the largest tile
  const int64_t np = rows > 0 ? kAccumulators / (rows * kNV) : 1;
  if (np >= 8) panel_groups<Madd, 8>(M, a, b, p0, p1, c, ldc, accumulate);
  else if (np >= 4) panel_groups<Madd, 4>(M, a, b, p0, p1, c, ldc, accumulate);
  else if (np == 3) panel_groups<Madd, 3>(M, a, b, p0, p1, c, ldc, accumulate);
  else if (np == 2) panel_groups<Madd, 2>(M, a, b, p0, p1, c, ldc, accumulate);
  else panel_groups<Madd, 1>(M, a, b, p0, p1, c, ldc, accumulate);
}

}  // namespace

}  // namespace fastrnn::cpu::vec::FASTRNN_VEC_NS
