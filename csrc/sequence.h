// The order of a layer's time steps and where each step's rows live, written once for every
// backend (plain C++, no torch). Rows of xw, output and the saved activations are addressed as
// one [N, width] matrix: N = T*B unpacked, or sum(batch_sizes) packed.
//
// Step t updates rows [0, rows) of the running state. Its h_{t-1} is, for rows [0, prev_rows),
// the output rows of the step processed just before it (starting at prev_row), and for rows
// [prev_rows, rows) the initial state h0 (those rows were never updated before: only a reverse
// packed sequence grows its active rows as it goes).
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace fastrnn {

struct Step {
  int64_t t;          // time index
  int64_t row;        // first row of step t in the [N, width] matrices
  int64_t rows;       // active rows of step t
  int64_t prev_row;   // first row of the previously processed step
  int64_t prev_rows;  // rows of h_{t-1} taken from that step; the rest come from h0
};

class Schedule {
 public:
  // batch_sizes: T non-increasing entries, or nullptr for T steps of B rows each.
  Schedule(const int64_t* batch_sizes, int64_t T, int64_t B, bool reverse)
      : T_(T), reverse_(reverse), offsets_(T + 1, 0) {
    for (int64_t t = 0; t < T; ++t) offsets_[t + 1] = offsets_[t] + (batch_sizes ? batch_sizes[t] : B);
  }
  int64_t steps() const { return T_; }
  int64_t rows() const { return offsets_[T_]; }
  // The s-th step in processing order (s = 0 first).
  Step step(int64_t s) const {
    const int64_t t = reverse_ ? T_ - 1 - s : s;
    Step st{t, offsets_[t], size(t), 0, 0};
    if (s > 0) {
      const int64_t tp = reverse_ ? t + 1 : t - 1;
      st.prev_row = offsets_[tp];
      st.prev_rows = std::min(size(tp), st.rows);
    }
    return st;
  }

 private:
  int64_t size(int64_t t) const { return offsets_[t + 1] - offsets_[t]; }
  int64_t T_;
  bool reverse_;
  std::vector<int64_t> offsets_;
};

}  // namespace fastrnn
