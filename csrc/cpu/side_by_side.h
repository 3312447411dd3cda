// The two directions of a bidirectional layer, side by side: fastrnn::rnn (csrc/rnn.cpp) runs each on a
// thread of its own where a direction alone would leave a core idle.
#pragma once
#include <cstdint>

namespace fastrnn::cpu {

// Whether the directions of a layer whose steps have B rows and a recurrent product of gates * H columns
// over P run side by side, outside a parallel region: on two threads, each direction then has one to itself
// instead of both for half the time, and meets no other thread at its steps; on more, where each
// direction's time loop would run on one thread anyway (team_plan). Bidirectional, one layer, 2 Zen 4 cores,
// one after the other -> side by side (ms, medians of runs alternated in one process), forward and
// forward+backward: LSTM (50,1,64,64) 2 layers 0.277 -> 0.210 and 0.813 -> 0.741, (50,4,128,128) 0.69 ->
// 0.62 and 2.52 -> 2.40, (100,64,256,256) 73.3 -> 67.2 and 228 -> 218; GRU (50,1,64,64) 2 layers 0.262 ->
// 0.176 and 0.831 -> 0.734, (100,16,128,128) 5.56 -> 4.56 and 16.4 -> 15.5; RNN-tanh (100,16,128,128) 1.88
// -> 1.52 and 8.02 -> 6.67. The backward's two nodes still run one after the other (the autograd engine's
// order). FASTRNN_CPU_SIDE_BY_SIDE=0 says no (read at every call, for comparisons and tests).
bool directions_side_by_side(int64_t steps, int64_t B, int64_t gates, int64_t H, int64_t P);

}  // namespace fastrnn::cpu
