#include "cpu/side_by_side.h"

#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>

#include "cpu/common.h"

namespace fastrnn::cpu {

bool directions_side_by_side(int64_t steps, int64_t B, int64_t gates, int64_t H, int64_t P) {
  const char* env = std::getenv("FASTRNN_CPU_SIDE_BY_SIDE");
  const int64_t threads = at::get_num_threads();
  if ((env && std::strcmp(env, "0") == 0) || steps < 2 || threads < 2 || at::in_parallel_region()) return false;
  return threads == 2 || team_plan(2.0 * B * gates * H * P, unit_blocks(H), B).threads == 1;
}

}  // namespace fastrnn::cpu
