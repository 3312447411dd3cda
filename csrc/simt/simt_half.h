// __half and __nv_bfloat16 for the SIMT emulator: 16-bit storage types with the conversion
// functions of cuda_fp16.h / cuda_bf16.h (round to nearest even, like __float2half_rn) and
// arithmetic through float. Included by simt.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace simt::detail {

inline uint32_t float_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  return x;
}
inline float bits_float(uint32_t x) {
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

inline uint16_t float_to_half_bits(float f) {
  const uint32_t x = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504: infinity
  if (a < 0x38800000u) {                        // below 2^-14: subnormal half, in units of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(bits_float(a) * 16777216.0f));
  }
  uint32_t h = ((((a >> 23) - 112u) << 10) | ((a >> 13) & 0x3ffu));
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return sign | static_cast<uint16_t>(h);
}

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) return bits_float(sign | float_bits(static_cast<float>(m) * 5.9604644775390625e-8f));
  if (e == 31) return bits_float(sign | 0x7f800000u | (m << 13));
  return bits_float(sign | ((e + 112u) << 23) | (m << 13));
}

inline uint16_t float_to_bfloat16_bits(float f) {
  const uint32_t x = float_bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

}  // namespace simt::detail

struct __half {
  uint16_t __x;
};
struct __nv_bfloat16 {
  uint16_t __x;
};
using half = __half;
using nv_bfloat16 = __nv_bfloat16;

inline __half __float2half_rn(float f) { return {::simt::detail::float_to_half_bits(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) { return ::simt::detail::half_bits_to_float(h.__x); }
inline __half __double2half(double d) { return __float2half_rn(static_cast<float>(d)); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return {::simt::detail::float_to_bfloat16_bits(f)}; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return ::simt::detail::bits_float(uint32_t(h.__x) << 16); }

#define SIMT_16BIT_OPS(T, TO, FROM)                                                     \
  inline T operator+(T a, T b) { return FROM(TO(a) + TO(b)); }                          \
  inline T operator-(T a, T b) { return FROM(TO(a) - TO(b)); }                          \
  inline T operator*(T a, T b) { return FROM(TO(a) * TO(b)); }                          \
  inline T operator/(T a, T b) { return FROM(TO(a) / TO(b)); }                          \
  inline T operator-(T a) { return FROM(-TO(a)); }                                      \
  inline bool operator==(T a, T b) { return TO(a) == TO(b); }                           \
  inline bool operator!=(T a, T b) { return TO(a) != TO(b); }                           \
  inline bool operator<(T a, T b) { return TO(a) < TO(b); }                             \
  inline bool operator>(T a, T b) { return TO(a) > TO(b); }                             \
  inline bool operator<=(T a, T b) { return TO(a) <= TO(b); }                           \
  inline bool operator>=(T a, T b) { return TO(a) >= TO(b); }
SIMT_16BIT_OPS(__half, __half2float, __float2half_rn)
SIMT_16BIT_OPS(__nv_bfloat16, __bfloat162float, __float2bfloat16_rn)
#undef SIMT_16BIT_OPS

inline __half __hadd(__half a, __half b) { return a + b; }
inline __half __hsub(__half a, __half b) { return a - b; }
inline __half __hmul(__half a, __half b) { return a * b; }
inline __half __hdiv(__half a, __half b) { return a / b; }
inline __half __hneg(__half a) { return -a; }
inline __half __hfma(__half a, __half b, __half c) {
  return __float2half_rn(fmaf(__half2float(a), __half2float(b), __half2float(c)));
}
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return a + b; }
inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return a - b; }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return a * b; }
inline __nv_bfloat16 __hneg(__nv_bfloat16 a) { return -a; }
