// The panel GEMM on bfloat16 pairs (panel_gemm_kernels.h with vdpbf16ps), for CPUs with AVX512-BF16: its
// own file, so that no other kernel is compiled for an instruction set the AVX-512 build's CPUs may lack.
#include "cpu/pointwise.h"

#if defined(__x86_64__) && defined(__GNUC__)
#pragma GCC target("avx,avx2,fma,f16c,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")
#include "cpu/avx512_build.h"
#define FASTRNN_VEC_NS avx512_bf16
#include "cpu/panel_gemm_kernels.h"

namespace fastrnn::cpu::vec::avx512_bf16 {
namespace {

// A's element and the panels' hold the bits of two bfloat16s: each lane adds both products.
struct DotPairs {
  static PV broadcast(const float* a) { return _mm512_set1_ps(*a); }
  static PV madd(const PV& a, const PV& b, const PV& acc) {
    return _mm512_dpbf16_ps(acc, (__m512bh)__m512(a), (__m512bh)__m512(b));
  }
};

}  // namespace
}  // namespace fastrnn::cpu::vec::avx512_bf16

fastrnn::cpu::vec::PanelGemmFn fastrnn::cpu::vec::avx512_bf16_panel_gemm() {
  return &avx512_bf16::panel_gemm<avx512_bf16::DotPairs>;
}
#else
fastrnn::cpu::vec::PanelGemmFn fastrnn::cpu::vec::avx512_bf16_panel_gemm() { return nullptr; }
#endif
