// The AVX2+FMA build of the pointwise passes. Only this translation unit is compiled for AVX2
// (a target pragma, as setuptools has no per-file flags) and it includes nothing but at::vec,
// so no AVX2 code leaks into functions the rest of the library shares; kernels() checks the CPU.
#include "cpu/pointwise.h"

#if defined(__x86_64__) && defined(__GNUC__)
// The pragma enables the instructions; the feature macros are those -mavx2 -mfma would define,
// by which at::vec and the Sleef declarations it uses select their AVX2 code.
#pragma GCC target("avx,avx2,fma,f16c")
#define __AVX__ 1
#define __AVX2__ 1
#define __FMA__ 1
#define __F16C__ 1
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
// GCC's own AVX-512 intrinsics trip a false maybe-uninitialized warning here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define FASTRNN_VEC_NS avx2
#include "cpu/panel_gemm_kernels.h"
#include "cpu/pointwise_kernels.h"

const fastrnn::cpu::vec::KernelSet* fastrnn::cpu::vec::avx2_kernels() { return &avx2::table; }
#else
const fastrnn::cpu::vec::KernelSet* fastrnn::cpu::vec::avx2_kernels() { return nullptr; }
#endif
