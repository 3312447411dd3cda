// The four cells as the ops name them (their `cell` / `mode` argument): the kind, torch.nn's class names
// for messages and the gate count (cells.h). Shared by the layer node (layer.cpp) and the module and cell
// forward (rnn.cpp).
#pragma once
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

#include <array>
#include <cstdint>

#include "cells.h"

namespace fastrnn {

enum Cell : int64_t { kTanh, kRelu, kLstm, kGru };

struct CellKind {
  c10::string_view name;
  const char* module;       // torch.nn's sequence module
  const char* cell_module;  // and its *Cell
  int64_t gates;
};

inline constexpr std::array<CellKind, 4> kCellKinds = {{{"rnn_tanh", "RNN", "RNNCell", TanhCell::gates},
                                                        {"rnn_relu", "RNN", "RNNCell", ReluCell::gates},
                                                        {"lstm", "LSTM", "LSTMCell", LSTMCell::gates},
                                                        {"gru", "GRU", "GRUCell", GRUCell::gates}}};

// The cell named by op's argument `arg`, or a ValueError.
inline Cell parse_cell(const char* op, const char* arg, c10::string_view name) {
  for (size_t i = 0; i < kCellKinds.size(); ++i)
    if (name == kCellKinds[i].name) return Cell(i);
  TORCH_CHECK_VALUE(false, op, ": ", arg, " must be rnn_tanh, rnn_relu, lstm or gru, got '", name, "'");
}

}  // namespace fastrnn
