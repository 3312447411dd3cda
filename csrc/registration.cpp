// fastrnn's op library (schemas in schemas.h) and the (empty) Python module that loads it.
#include <Python.h>
#include <torch/library.h>

#include "cpu/seq_cache.h"
#include "schemas.h"

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}

TORCH_LIBRARY(fastrnn, m) {
  fastrnn::define_ops(m);
  // One layer and direction with its input projection, as one autograd node (layer.cpp): returns
  // [output, h_n] or, for cell="lstm", [output, h_n, c_n]. Only in this namespace: the emulated build
  // has the recurrence ops alone.
  m.def("layer(str cell, Tensor x, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh, Tensor? w_hr, Tensor h0,"
        " Tensor? c0, Tensor? batch_sizes, bool reverse) -> Tensor[]");
  // The cpu backend's products and LSTM forward from x, as the layer above runs them, for the layer's
  // Python autograd.Function (autograd.py) that torch.compile traces: there inductor would give
  // x @ W_ih^T and the weight gradients to MKL, which runs generic kernels on AMD CPUs.
  // matmul: a [M, K] @ b [K, N] (+ bias [N]) in float32 on oneDNN or the panel GEMM where they are faster
  // (cpu/matmul.h). lstm_layer_forward: lstm_forward's results from x and w_ih (cpu/lstm.h), the input
  // projection in the steps' GEMMs where that pays.
  m.def("matmul(Tensor a, Tensor b, Tensor? bias=None) -> Tensor");
  m.def("lstm_layer_forward(Tensor x, Tensor w_ih, Tensor w_hh, Tensor? w_hr, Tensor h0, Tensor c0,"
        " Tensor? batch_sizes, bool reverse, bool save=True, Tensor? bias=None)"
        " -> (Tensor output, Tensor h_n, Tensor c_n, Tensor gates, Tensor cells)");
  // torch.nn's RNN forward over layers and directions of `layer` (rnn.cpp): input a tensor, or with batch_sizes
  // (and the indices) a PackedSequence's fields; hx is [] for zeros, [h_0] or (LSTM) [h_0, c_0]; c_n is
  // undefined (None) but for LSTM.
  m.def("rnn(str mode, Tensor input, Tensor[] hx, Tensor[] weights, bool has_biases, int num_layers, float dropout,"
        " bool train, bool bidirectional, bool batch_first, Tensor? batch_sizes=None, Tensor? sorted_indices=None,"
        " Tensor? unsorted_indices=None) -> (Tensor output, Tensor h_n, Tensor c_n)");
  // A *Cell's step through rnn: hx as there, h and (LSTM, else undefined) c in the input's rank.
  m.def("cell(str mode, Tensor input, Tensor[] hx, Tensor w_ih, Tensor w_hh, Tensor? b_ih, Tensor? b_hh)"
        " -> (Tensor h, Tensor c)");
  // The cpu backend's cache of sequence buffers (cpu/seq_cache.cpp): the bytes it keeps, and freeing them.
  m.def("cached_bytes() -> int", &fastrnn::cpu::seq_cache_bytes);
  m.def("empty_cache() -> int", &fastrnn::cpu::seq_cache_release);
}
