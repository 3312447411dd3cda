// The AVX-512 build of the pointwise passes: as pointwise_avx2.cpp, for AVX512F/BW/DQ/VL.
#include "cpu/pointwise.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx,avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl")
#include "cpu/avx512_build.h"
#define FASTRNN_VEC_NS avx512
#include "cpu/panel_gemm_kernels.h"
#include "cpu/pointwise_kernels.h"

const fastrnn::cpu::vec::KernelSet* fastrnn::cpu::vec::avx512_kernels() { return &avx512::table; }
#else
const fastrnn::cpu::vec::KernelSet* fastrnn::cpu::vec::avx512_kernels() { return nullptr; }
#endif
