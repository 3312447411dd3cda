// The LSTM layer's one-off products beside a time loop of one thread (BesideLoop, common.h): a loop whose
// steps are too small for a team (team_size: a float32 LSTM at B=1 up to H=70, B=2 up to 49) left the
// other core idle while it ran, and the products before or after it took their own time on both cores.
// Here the second core runs them beside the loop, a chunk of steps at a time: the input projection ahead
// of the forward loop, the weight gradients behind the backward loop. At T=50, B=1, I=H=64 (2 Zen 4
// cores, runs alternated in one process, medians) the forward went from 94 to 83 us, the layer's backward
// from 144 to 115 us, a module's forward and backward from 302 to 271 us.
#pragma once
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "cpu/common.h"

namespace fastrnn::cpu {

// Rows [lo, hi) of the schedule's steps [s0, s1): consecutive steps' rows are one contiguous range.
inline std::pair<int64_t, int64_t> step_rows(const Schedule& sch, int64_t s0, int64_t s1) {
  const Step a = sch.step(s0), b = sch.step(s1 - 1);
  return {std::min(a.row, b.row), std::max(a.row + a.rows, b.row + b.rows)};
}

// Chunks of a loop's consecutive steps, each of at least `rows` rows (or the steps left): k-th is the loop's
// k-th step, the schedule's k-th forward or its (steps - 1 - k)-th backward. Fixed by the shapes alone, so
// the chunked sums of the weight gradients round the same at every call. Ahead, 8 rows make a register tile
// of the panel GEMM, which then reads the weight's panels once per chunk; behind, the weight gradients'
// products (K = the chunk's rows) read and write their whole output once per chunk: 16 rows ran the LSTM's
// backward at T=50, B=1, H=64 as fast as chunks that grow to every step done (2 Zen 4 cores).
constexpr int64_t kAheadRows = 8, kBehindRows = 16;
inline int64_t chunk_end(const Schedule& sch, int64_t k0, int64_t rows, bool backward) {
  int64_t k1 = k0;
  for (int64_t n = 0; k1 < sch.steps() && n < rows; ++k1) n += sch.step(backward ? sch.steps() - 1 - k1 : k1).rows;
  return k1;
}

// Whether the float32 loops (panel GEMM, no projection) of a cell with `gates` gates run on one thread while
// another is free: then the products run beside them. FASTRNN_CPU_BESIDE=0 turns that off (read at every
// call, so tests and timings can compare both).
inline bool runs_beside(const Dims& d, int64_t gates) {
  const char* env = std::getenv("FASTRNN_CPU_BESIDE");
  if ((env && std::strcmp(env, "0") == 0) || d.T < 2 || d.P != d.H || at::get_num_threads() < 2 ||
      at::in_parallel_region() || vec_kernels<float>() == nullptr || panel_gemm_kernel(d.B) == nullptr)
    return false;
  return team_plan(2.0 * d.B * gates * d.H * d.H, unit_blocks(d.H), d.B).threads == 1;
}

// xw = x @ W_ih^T ([N, I] @ [I, gates * H], float32, all contiguous; no bias: the cells add it) into the
// caller's xw, ahead of the forward loop.
class InputAhead : public BesideLoop {
 public:
  InputAhead(const float* x, const float* w_ih, int64_t I, int64_t H, int64_t gates, float* xw)
      : BesideLoop(true), x_(x), w_ih_(w_ih), I_(I), H_(H), G_(gates * H), gates_(gates), xw_(xw) {}

  void run(const Schedule& sch) override {
    const PanelWeights w(w_ih_, I_, true, I_, H_, gates_);
    const vec::PanelGemmFn fn = vec::kernels()->panel_gemm;
    for (int64_t s0 = 0, s1; s0 < sch.steps(); s0 = s1) {
      s1 = chunk_end(sch, s0, kAheadRows, false);
      const auto [lo, hi] = step_rows(sch, s0, s1);
      w.gemm(fn, hi - lo, x_ + lo * I_, I_, xw_ + lo * G_, G_, 0, w.blocks());
      publish(s1);
    }
  }
  void run_alone(const Schedule& sch) override {
    gemm<float>(false, true, sch.rows(), G_, I_, x_, I_, w_ih_, I_, 0.f, xw_, G_);
    publish(sch.steps());
  }

 private:
  const float *x_, *w_ih_;
  int64_t I_, H_, G_, gates_;
  float* xw_;
};

// Behind the backward loop, as its dgates rows ([N, G]) come: dW_hh = dg^T @ h_prev (every step's h_{t-1},
// gathered from the forward's output [N, P] and h0 [B, P]), where wanted the bias's gradient (the sum of dg's
// rows), and the input's dx = dg @ W_ih and dW_ih = dg^T @ x (x [N, I], W_ih [G, I]); each output null where
// not wanted. Float32, all contiguous. The weight and bias gradients add up the chunks' products and sums.
class GradsBehind : public BesideLoop {
 public:
  struct Operands {
    const float *dg, *out, *h0, *x, *w_ih;
    float *dw_hh, *dbias, *dx, *dw_ih;
    int64_t G, P, I;
  };
  explicit GradsBehind(const Operands& o) : BesideLoop(false), o_(o) {}

  void run(const Schedule& sch) override {
    const int64_t steps = sch.steps();
    for (int64_t k0 = 0, k1; k0 < steps; k0 = k1) {
      k1 = chunk_end(sch, k0, kBehindRows, true);
      wait_for(k1);
      products(sch, steps - k1, steps - k0, k0 > 0);
    }
  }
  void run_alone(const Schedule& sch) override {
    products(sch, 0, sch.steps(), false);
    after_loop(sch);
  }
  // dx: rows need no order, and the loop's thread is free once its loop is done.
  void after_loop(const Schedule& sch) override {
    if (o_.dx) gemm<float>(false, false, sch.rows(), o_.I, o_.G, o_.dg, o_.G, o_.w_ih, o_.I, 0.f, o_.dx, o_.I);
  }

 private:
  // The products of the schedule's steps [s0, s1), added to the gradients' contents with accumulate.
  void products(const Schedule& sch, int64_t s0, int64_t s1, bool accumulate) {
    const Operands& o = o_;
    const auto [lo, hi] = step_rows(sch, s0, s1);
    const int64_t rows = hi - lo;
    h_prev_.resize(rows * o.P);
    gather_prev_rows(sch, s0, s1, o.out, o.h0, o.P, h_prev_.data(), lo);
    const float beta = accumulate ? 1.f : 0.f;
    const float* dg = o.dg + lo * o.G;
    gemm<float>(true, false, o.G, o.P, rows, dg, o.G, h_prev_.data(), o.P, beta, o.dw_hh, o.P);
    if (o.dw_ih) gemm<float>(true, false, o.G, o.I, rows, dg, o.G, o.x + lo * o.I, o.I, beta, o.dw_ih, o.I);
    if (o.dbias) {  // the chunk's rows in one sum, added to the total: rounding grows with chunks + rows
      sum_.resize(o.G);
      sum_rows(dg, rows, o.G, sum_.data());
      for (int64_t j = 0; j < o.G; ++j) o.dbias[j] = accumulate ? o.dbias[j] + sum_[j] : sum_[j];
    }
  }
  Operands o_;
  std::vector<float> h_prev_, sum_;
};

}  // namespace fastrnn::cpu
