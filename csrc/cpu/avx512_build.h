// What a file built for AVX-512 declares after its `#pragma GCC target`, before ATen's vec headers
// (pointwise_avx512.cpp, panel_gemm_bf16.cpp): the instruction-set macros the pragma does not define,
// and ATen's CPU_CAPABILITY, which selects its AVX-512 Vectorized types.
#pragma once
#define __AVX__ 1
#define __AVX2__ 1
#define __FMA__ 1
#define __F16C__ 1
#define __AVX512F__ 1
#define __AVX512BW__ 1
#define __AVX512DQ__ 1
#define __AVX512VL__ 1
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
// GCC's own AVX-512 intrinsics trip a false maybe-uninitialized warning here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
