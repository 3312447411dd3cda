// Picks the widest pointwise kernel set the CPU runs (see pointwise.h).
#include "cpu/pointwise.h"

#include <cstdlib>
#include <cstring>

namespace fastrnn::cpu::vec {

const KernelSet* kernels() {
  static const KernelSet* const chosen = []() -> const KernelSet* {
    const char* env = std::getenv("FASTRNN_CPU_VEC");
    if (env && std::strcmp(env, "0") == 0) return nullptr;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    const bool avx2_only = env && std::strcmp(env, "avx2") == 0;
    if (!avx2_only && avx512_kernels() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
      return avx512_kernels();
    if (avx2_kernels() && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return avx2_kernels();
#endif
    return nullptr;
  }();
  return chosen;
}

PanelGemmFn bf16_panel_gemm() {
  static const PanelGemmFn chosen = []() -> PanelGemmFn {
#if defined(__x86_64__) && defined(__GNUC__)
    if (kernels() != nullptr && kernels() == avx512_kernels() && __builtin_cpu_supports("avx512bf16"))
      return avx512_bf16_panel_gemm();
#endif
    return nullptr;
  }();
  return chosen;
}

}  // namespace fastrnn::cpu::vec
