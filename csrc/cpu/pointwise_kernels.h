// The body of the vectorized pointwise passes (declared in pointwise.h), included once per
// instruction set by pointwise_avx2.cpp and pointwise_avx512.cpp, which set the target, the
// at::vec capability and FASTRNN_VEC_NS (the namespace of that build) before including it.
#pragma once
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <cstdint>
#include <cstring>
#include <functional>

#include "cpu/pointwise.h"

namespace fastrnn::cpu::vec::FASTRNN_VEC_NS {
namespace {

using V = at::vec::Vectorized<float>;
constexpr int64_t W = V::size();

inline V load(const float* p, int64_t k, int64_t n) { return n >= W ? V::loadu(p + k) : V::loadu(p + k, n); }
inline void store(const V& v, float* p, int64_t k, int64_t n) {
  if (n >= W) v.store(p + k);
  else v.store(p + k, n);
}
// bfloat16 storage: widened to float on load (the bits shifted up), rounded to nearest even on store, NaN
// to c10::BFloat16's 0x7FC0. Written with intrinsics: the scalar loops the compiler vectorized had made
// the bfloat16 LSTM cell 3.8x the float32 one (I=H=256, B=64, T=100 forward: 7.2 against 1.9 ms).
inline V load(const c10::BFloat16* p, int64_t k, int64_t n) {
#if defined(CPU_CAPABILITY_AVX512)
  const __mmask16 mask = n >= W ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __m256i bits = _mm256_maskz_loadu_epi16(mask, p + k);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
#else
  __m128i bits;
  if (n >= W) {
    bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + k));
  } else {
    alignas(16) uint16_t part[W] = {};
    std::memcpy(part, p + k, n * sizeof(uint16_t));
    bits = _mm_load_si128(reinterpret_cast<const __m128i*>(part));
  }
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
#endif
}
inline void store(const V& v, c10::BFloat16* p, int64_t k, int64_t n) {
#if defined(CPU_CAPABILITY_AVX512)
  const __m512i x = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_blend_epi32(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), _mm512_set1_epi32(0x7FC0), r);
  const __mmask16 mask = n >= W ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  _mm256_mask_storeu_epi16(p + k, mask, _mm512_cvtepi32_epi16(r));
#else
  const __m256i x = _mm256_castps_si256(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
  const __m256 ordered = _mm256_cmp_ps(v, v, _CMP_ORD_Q);
  r = _mm256_blendv_epi8(_mm256_set1_epi32(0x7FC0), r, _mm256_castps_si256(ordered));
  // Pack the eight 32-bit lanes to 16 bits: packus works within 128-bit halves, the permute joins them.
  const __m128i packed = _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
  if (n >= W) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + k), packed);
  } else {
    alignas(16) uint16_t part[W];
    _mm_store_si128(reinterpret_cast<__m128i*>(part), packed);
    std::memcpy(p + k, part, n * sizeof(uint16_t));
  }
#endif
}
// 1 / d: the hardware's reciprocal estimate refined by one Newton step (a few ULP; a division has a
// fraction of its throughput, and sigmoid and tanh each need one). d must be finite.
inline V reciprocal(const V& d) {
#if defined(CPU_CAPABILITY_AVX512)
  const V r = _mm512_rcp14_ps(d);
#else
  const V r = _mm256_rcp_ps(d);
#endif
  return at::vec::fmadd(at::vec::fnmadd(d, r, V(1.f)), r, r);
}
// min(max(x, lo), hi) in two instructions (at::vec's minimum/maximum take four each to propagate NaN):
// MAXPS and MINPS return their second operand when either is NaN, so x goes second and NaN stays NaN.
inline V clamp(const V& x, float lo, float hi) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_min_ps(V(hi), _mm512_max_ps(V(lo), x));
#else
  return _mm256_min_ps(V(hi), _mm256_max_ps(V(lo), x));
#endif
}
// exp for the activations, inlined (Sleef's is an out-of-line call): Cephes' expf, x = n ln2 + r with a
// degree-6 polynomial for exp(r), scaled by 2^n (<= 1.3 ULP). x is clamped to [-87, 88], where exp is
// normal and finite, far beyond where sigmoid and tanh saturate; NaN stays NaN.
inline V exp_clamped(const V& x) {
  const V xc = clamp(x, -87.f, 88.f);
  // n = round(x / ln2): adding 1.5 * 2^23 leaves the integer in the low mantissa bits (one FMA and one
  // subtraction, against a multiply and a two-uop round).
  const V shifter(12582912.f);
  const V n = at::vec::fmadd(xc, V(1.44269504088896341f), shifter) - shifter;
  const V r = at::vec::fmadd(n, V(2.12194440e-4f), at::vec::fmadd(n, V(-0.693359375f), xc));  // ln2 in two parts
  V p = at::vec::fmadd(V(1.9875691500e-4f), r, V(1.3981999507e-3f));
  p = at::vec::fmadd(p, r, V(8.3334519073e-3f));
  p = at::vec::fmadd(p, r, V(4.1665795894e-2f));
  p = at::vec::fmadd(p, r, V(1.6666665459e-1f));
  p = at::vec::fmadd(p, r, V(5.0000001201e-1f));
  p = at::vec::fmadd(p, r * r, r + V(1.f));
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_scalef_ps(p, n);  // p * 2^n in one instruction
#else
  using VI = at::vec::Vectorized<int32_t>;
  const VI scale = (at::vec::convert_to_int_of_same_size(n) + VI(127)) << VI(23);  // 2^n as float bits
  return p * at::vec::cast<float>(scale);
#endif
}
// sigmoid and tanh with exp_clamped and reciprocal: LSTM forward 2-8% faster than with Sleef's exp and
// divisions (interleaved A/B at the standard shapes, 2 threads).
inline V sigmoid(const V& x) { return reciprocal(V(1.f) + exp_clamped(x.neg())); }
// tanh as Cephes' tanhf computes it: an odd minimax polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1)
// above (saturating to 1). A few ULP like Sleef's tanh, at a fraction of its cost (Sleef's tanh, and its
// expm1, each took a sixth of a whole LSTM forward).
inline V tanh(const V& x) {
  const V ax = x.abs();
  const V large = at::vec::fnmadd(V(2.f), reciprocal(exp_clamped(ax + ax) + V(1.f)), V(1.f));
  const V z = x * x;
  V p = at::vec::fmadd(V(-5.70498872745e-3f), z, V(2.06390887954e-2f));
  p = at::vec::fmadd(p, z, V(-5.37397155531e-2f));
  p = at::vec::fmadd(p, z, V(1.33314422036e-1f));
  p = at::vec::fmadd(p, z, V(-3.33332819422e-1f));
  const V small = at::vec::fmadd(p * z, x, x);
  return V::blendv(V::blendv(large, large.neg(), x < V(0.f)), small, ax < V(0.625f));
}

// f(k, count) over [0, n) in vector-wide chunks (the last one partial). The kernels' lambdas are
// always_inline: called out of line, each chunk reloaded every constant (a fifth of a pass's time).
template <typename F>
inline void chunks(int64_t n, const F& f) {
  for (int64_t k = 0; k < n; k += W) f(k, n - k);
}

}  // namespace

template <typename T>
void rnn_forward(bool relu, const T* x, const float* g, T* out, float* h, int64_t n) {
  chunks(n, [&](int64_t k, int64_t m) __attribute__((always_inline)) {
    const V pre = load(x, k, m) + load(g, k, m);
    const V v = relu ? at::vec::maximum(pre, V(0.f)) : tanh(pre);
    store(v, out, k, m);
    store(v, h, k, m);
  });
}

template <typename T>
void rnn_backward(bool relu, const T* h, const float* dh, const T* gout, float* dpre, int64_t n) {
  chunks(n, [&](int64_t k, int64_t m) __attribute__((always_inline)) {
    const V hv = load(h, k, m), d = load(dh, k, m) + load(gout, k, m);
    const V v = relu ? V::blendv(V(0.f), d, hv > V(0.f)) : d * (V(1.f) - hv * hv);
    store(v, dpre, k, m);
  });
}

template <bool kX, bool kBias, typename T>
void lstm_forward_pass(const T* x, const float* g, const float* b, int64_t H, int64_t j0, int64_t n, float* c,
                       T* gates, T* cells, T* out, float* h) {
  chunks(n, [&](int64_t k, int64_t m) __attribute__((always_inline)) {
    const int64_t j = j0 + k;
    auto pre = [&](int64_t at) __attribute__((always_inline)) {
      V v = load(g, at, m);
      if constexpr (kX) v = v + load(x, at, m);
      if constexpr (kBias) v = v + load(b, at, m);
      return v;
    };
    const V i = sigmoid(pre(j));
    const V f = sigmoid(pre(H + j));
    const V gg = tanh(pre(2 * H + j));
    const V o = sigmoid(pre(3 * H + j));
    const V cc = f * load(c, j, m) + i * gg;
    const V hh = o * tanh(cc);
    if (gates) {
      store(i, gates, j, m);
      store(f, gates, H + j, m);
      store(gg, gates, 2 * H + j, m);
      store(o, gates, 3 * H + j, m);
    }
    if (cells) store(cc, cells, j, m);
    store(cc, c, j, m);
    if (out) store(hh, out, j, m);
    store(hh, h, j, m);
  });
}

template <typename T>
void lstm_forward(const T* x, const float* g, const float* b, int64_t H, int64_t j0, int64_t n, float* c, T* gates,
                  T* cells, T* out, float* h) {
  if (x && b) lstm_forward_pass<true, true>(x, g, b, H, j0, n, c, gates, cells, out, h);
  else if (x) lstm_forward_pass<true, false>(x, g, b, H, j0, n, c, gates, cells, out, h);
  else if (b) lstm_forward_pass<false, true>(x, g, b, H, j0, n, c, gates, cells, out, h);
  else lstm_forward_pass<false, false>(x, g, b, H, j0, n, c, gates, cells, out, h);
}

template <bool kOut, typename T>
void lstm_backward_pass(const T* gates, const T* c_prev, const T* cells, int64_t H, int64_t j0, int64_t n,
                        const float* dh, const T* gout, float* dc, float* dgates, float* hu, float* dsum) {
  const V one(1.f);
  chunks(n, [&](int64_t k, int64_t m) __attribute__((always_inline)) {
    const int64_t j = j0 + k;
    V d = load(dh, j, m);
    if constexpr (kOut) d = d + load(gout, j, m);
    const V i = load(gates, j, m), f = load(gates, H + j, m), g = load(gates, 2 * H + j, m),
            o = load(gates, 3 * H + j, m), c = load(cells, j, m);
    const V tc = tanh(c);
    const V dct = load(dc, j, m) + d * o * (one - tc * tc);
    const V dgate[4] = {dct * g * i * (one - i), dct * load(c_prev, j, m) * f * (one - f), dct * i * (one - g * g),
                        d * tc * o * (one - o)};
    for (int q = 0; q < 4; ++q) {
      store(dgate[q], dgates, q * H + j, m);
      if (dsum) store(load(dsum, q * H + j, m) + dgate[q], dsum, q * H + j, m);
    }
    store(dct * f, dc, j, m);
    if (hu) store(o * tc, hu, j, m);
  });
}

template <typename T>
void lstm_backward(const T* gates, const T* c_prev, const T* cells, int64_t H, int64_t j0, int64_t n,
                   const float* dh, const T* gout, float* dc, float* dgates, float* hu, float* dsum) {
  if (gout) lstm_backward_pass<true>(gates, c_prev, cells, H, j0, n, dh, gout, dc, dgates, hu, dsum);
  else lstm_backward_pass<false>(gates, c_prev, cells, H, j0, n, dh, gout, dc, dgates, hu, dsum);
}

template <typename T>
void gru_forward(const T* x, const float* g, const float* bn, int64_t H, int64_t j0, int64_t n, T* ws, T* out,
                 float* h) {
  chunks(n, [&](int64_t k, int64_t m) __attribute__((always_inline)) {
    const int64_t j = j0 + k;
    const V hn = bn ? load(g, 2 * H + j, m) + load(bn, j, m) : load(g, 2 * H + j, m);
    const V r = sigmoid(load(x, j, m) + load(g, j, m));
    const V z = sigmoid(load(x, H + j, m) + load(g, H + j, m));
    const V nn = tanh(load(x, 2 * H + j, m) + r * hn);
    const V hh = (V(1.f) - z) * nn + z * load(h, j, m);
    store(r, ws, j, m);
    store(z, ws, H + j, m);
    store(nn, ws, 2 * H + j, m);
    store(hn, ws, 3 * H + j, m);
    store(hh, out, j, m);
    store(hh, h, j, m);
  });
}

template <typename T>
void gru_backward(const T* ws, const float* hp, const T* gout, int64_t H, int64_t j0, int64_t n, float* dh,
                  T* dx, float* dg) {
  const V one(1.f);
  chunks(n, [&](int64_t k, int64_t m) __attribute__((always_inline)) {
    const int64_t j = j0 + k;
    const V r = load(ws, j, m), z = load(ws, H + j, m), nn = load(ws, 2 * H + j, m), hn = load(ws, 3 * H + j, m);
    const V d = load(dh, j, m) + load(gout, j, m);
    const V dxn = d * (one - z) * (one - nn * nn);
    const V dxr = dxn * hn * r * (one - r);
    const V dxz = d * (load(hp, j, m) - nn) * z * (one - z);
    store(dxr, dx, j, m);
    store(dxz, dx, H + j, m);
    store(dxn, dx, 2 * H + j, m);
    store(dxr, dg, j, m);
    store(dxz, dg, H + j, m);
    store(dxn * r, dg, 2 * H + j, m);
    store(d * z, dh, j, m);
  });
}

}  // namespace fastrnn::cpu::vec::FASTRNN_VEC_NS

namespace fastrnn::cpu::vec::FASTRNN_VEC_NS {
template <typename T>
inline constexpr Kernels<T> typed = {rnn_forward<T>, rnn_backward<T>, lstm_forward<T>, lstm_backward<T>,
                                     gru_forward<T>, gru_backward<T>};
#if defined(CPU_CAPABILITY_AVX512)
// A full 16x16 block, unrolled so that it stays in registers: ATen's transpose_mxn_16x16 (the same
// unpack/shuffle network) takes its sizes at run time, and its loops over them kept the block on the
// stack; it took 30% of an LSTM step at T=1, B=1, I=H=64, packing the weights.
inline void transpose16(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m512 r[16], t[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ld_src);
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {  // 32-bit elements of row pairs
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  auto lo64 = [](__m512 a, __m512 b) { return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))); };
  auto hi64 = [](__m512 a, __m512 b) { return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b))); };
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // 64-bit pairs of row quads
    r[4 * i] = lo64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = hi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = lo64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = hi64(t[4 * i + 1], t[4 * i + 3]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i)  // 128-bit lanes of row octets
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0x88);
      t[8 * i + j + 4] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + j + 4], 0xdd);
    }
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    _mm512_storeu_ps(dst + i * ld_dst, _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88));
    _mm512_storeu_ps(dst + (i + 8) * ld_dst, _mm512_shuffle_f32x4(t[i], t[8 + i], 0xdd));
  }
}
#endif

inline void transpose(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int M, int N) {
#if defined(CPU_CAPABILITY_AVX512)
  const int M16 = M / 16 * 16, N16 = N / 16 * 16;
  for (int i = 0; i < M16; i += 16)
    for (int j = 0; j < N16; j += 16) transpose16(src + i * ld_src + j, ld_src, dst + j * ld_dst + i, ld_dst);
  // The rest: the columns right of the full blocks, then the rows below them.
  if (N16 < N && M16 > 0) at::vec::transpose_mxn<float>(src + N16, ld_src, dst + N16 * ld_dst, ld_dst, M16, N - N16);
  if (M16 < M) at::vec::transpose_mxn<float>(src + M16 * ld_src, ld_src, dst + M16, ld_dst, M - M16, N);
#else
  at::vec::transpose_mxn<float>(src, ld_src, dst, ld_dst, M, N);
#endif
}
// c[m, n] = a[m, :] . w[n, :] (+ c[m, n] with accumulate): a few rows against a row-major weight read as
// it is. Four of w's rows at a time, held in L1 while every row of a meets them.
inline void rows_gemm(int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* w, int64_t ldw,
                      bool accumulate, float* c, int64_t ldc) {
  auto sum = [](const V& v) { return at::vec::vec_reduce_all<float>(std::plus<V>(), v); };
  int64_t n = 0;
  for (; n + 4 <= N; n += 4)
    for (int64_t m = 0; m < M; ++m) {
      const float* am = a + m * lda;
      V s[4] = {V(0.f), V(0.f), V(0.f), V(0.f)};
      for (int64_t k = 0; k < K; k += W) {
        const V x = load(am, k, K - k);
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) s[q] = at::vec::fmadd(x, load(w + (n + q) * ldw, k, K - k), s[q]);
      }
      float* cm = c + m * ldc + n;
      for (int q = 0; q < 4; ++q) cm[q] = sum(s[q]) + (accumulate ? cm[q] : 0.f);
    }
  for (; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      V s(0.f);
      for (int64_t k = 0; k < K; k += W)
        s = at::vec::fmadd(load(a + m * lda, k, K - k), load(w + n * ldw, k, K - k), s);
      c[m * ldc + n] = sum(s) + (accumulate ? c[m * ldc + n] : 0.f);
    }
}

inline constexpr KernelSet table = {typed<float>, typed<c10::BFloat16>, panel_gemm<Fma>, transpose, rows_gemm};
}  // namespace fastrnn::cpu::vec::FASTRNN_VEC_NS
