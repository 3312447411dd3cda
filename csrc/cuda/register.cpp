// Registers the CUDA backend's ops: for CUDA tensors in fastrnn (the nvcc build), or, in the
// SIMT-emulated build, for CPU tensors in fastrnn_emulated, which also gets the schemas.
#include <torch/library.h>

#include "ops.h"
#if defined(FASTRNN_SIMT_EMULATION)
#include "../schemas.h"
#endif

namespace fastrnn::cuda {
namespace {

void register_ops(torch::Library& m) {
  m.impl("rnn_tanh_forward", TORCH_FN(rnn_tanh_forward));
  m.impl("rnn_relu_forward", TORCH_FN(rnn_relu_forward));
  m.impl("rnn_tanh_backward", TORCH_FN(rnn_tanh_backward));
  m.impl("rnn_relu_backward", TORCH_FN(rnn_relu_backward));
  m.impl("lstm_forward", TORCH_FN(lstm_forward));
  m.impl("lstm_backward", TORCH_FN(lstm_backward));
  m.impl("gru_forward", TORCH_FN(gru_forward));
  m.impl("gru_backward", TORCH_FN(gru_backward));
}

}  // namespace
}  // namespace fastrnn::cuda

#if defined(FASTRNN_SIMT_EMULATION)
TORCH_LIBRARY(fastrnn_emulated, m) { fastrnn::define_ops(m); }
TORCH_LIBRARY_IMPL(fastrnn_emulated, CPU, m) { fastrnn::cuda::register_ops(m); }
#else
TORCH_LIBRARY_IMPL(fastrnn, CUDA, m) { fastrnn::cuda::register_ops(m); }
#endif
