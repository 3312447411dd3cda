// The two directions of a bidirectional layer, side by side: fastrnn::rnn (csrc/rnn.cpp) runs each on a
// thread of its own where a direction alone would leave a core idle, and with a gradient records both as one
// node (layer.cpp), whose backward runs them side by side too: as two nodes, the autograd engine would run
// their backward one after the other.
#pragma once
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/record_function.h>

#include <cstdint>
#include <vector>

namespace fastrnn::cpu {

// Whether the directions of a layer whose steps have B rows and a recurrent product of gates * H columns
// over P run side by side, outside a parallel region: on two threads, each direction then has one to itself
// instead of both for half the time, and meets no other thread at its steps; on more, where each
// direction's time loop would run on one thread anyway (team_plan). Bidirectional, 2 Zen 4 cores, one after
// the other -> side by side (ms, medians of runs alternated in one process), forward and forward+backward:
// LSTM (50,1,64,64) 2 layers 0.34 -> 0.26 and 0.83 -> 0.71, (100,16,128,128) 5.61 -> 5.05 and 19.1 -> 16.0,
// (100,64,256,256) 73.7 -> 68.7 and 226 -> 208; GRU (50,1,64,64) 2 layers 0.26 -> 0.17 and 0.83 -> 0.71,
// (100,16,128,128) 5.58 -> 4.33 and 15.4 -> 13.9; RNN-tanh (100,16,128,128) 1.98 -> 1.65 and 8.8 -> 5.6.
// At batch 1 a lone LSTM direction already had the second core, for its products (ahead.h), which side by
// side run on the direction's own thread. FASTRNN_CPU_SIDE_BY_SIDE=0 says no (read at every call, for
// comparisons and tests).
bool directions_side_by_side(int64_t steps, int64_t B, int64_t gates, int64_t H, int64_t P);

// f(0) and f(1) on two threads, each under the caller's thread-local state (grad mode, dispatch keys, the
// profiler's callbacks), which OpenMP's threads do not inherit; one after the other where OpenMP gives one.
// Each is a "fastrnn::side_by_side" range in the profiler's trace.
template <typename F>
void side_by_side(const F& f) {
  const at::ThreadLocalState state;
  at::parallel_for(0, 2, 1, [&](int64_t d0, int64_t d1) {
    const at::ThreadLocalStateGuard guard(state);
    for (int64_t d = d0; d < d1; ++d) {
      RECORD_FUNCTION("fastrnn::side_by_side", std::vector<c10::IValue>());
      f(d);
    }
  });
}

}  // namespace fastrnn::cpu
