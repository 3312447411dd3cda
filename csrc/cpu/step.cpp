// One step without gradient (step.h): x @ W_ih^T + b_ih and h0 @ W_hh^T + b_hh into two [B, G] buffers,
// then the cell's vector kernel writes the output and the new state. The layer op around the same step
// adds a sequence schedule, its buffers, packed weights and the op calls in between, most of a small
// step's time. Modules without gradient, layer op -> this (torch.nn), alternated in one process on 2 Zen 4
// cores, I = H = 64, batch 1: LSTMCell 41.7 -> 22.0 us (34.6), GRUCell 31.3 -> 16.9 (28.3), LSTM of one
// step 40.4 -> 22.2 (121); H = 256: LSTMCell 280 -> 66 (113); batch 16: LSTMCell 59.3 -> 43.9 (63.9).
#include "cpu/step.h"

#include <cstdlib>
#include <cstring>

#include "cpu/common.h"

namespace fastrnn::cpu {

// Up to this many rows the products read the weights as they are (rows_gemm); more rows pay for packing them.
constexpr int64_t kRowsGemmMax = 4;

std::optional<std::vector<at::Tensor>> step_forward(Cell cell, const at::Tensor& x_, const at::Tensor& w_ih_,
                                                    const at::Tensor& w_hh_, const std::optional<at::Tensor>& b_ih,
                                                    const std::optional<at::Tensor>& b_hh, const at::Tensor& h0_,
                                                    const std::optional<at::Tensor>& c0_) {
  const char* env = std::getenv("FASTRNN_CPU_STEP");  // =0: the layer op instead (comparisons, tests)
  const vec::Kernels<float>* vk = vec_kernels<float>();
  auto is_float = [](const std::optional<at::Tensor>& t) { return !t || t->scalar_type() == at::kFloat; };
  if ((env && std::strcmp(env, "0") == 0) || vk == nullptr || !x_.is_cpu() ||
      !(is_float(x_) && is_float(w_ih_) && is_float(w_hh_) && is_float(b_ih) && is_float(b_hh) && is_float(h0_) &&
        is_float(c0_)))
    return std::nullopt;
  const at::Tensor x = x_.select(0, 0).contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(),
                   h0 = h0_.contiguous();
  const int64_t B = x.size(0), H = h0.size(1), G = w_hh.size(0);
  // xg = x @ W_ih^T + b_ih, hg = h0 @ W_hh^T + b_hh: each bias in its own product, as the cell kernels
  // take them (GRU's b_hn must stay with hg, inside r * (W_hn h + b_hn)).
  std::vector<float> xg(B * G), hg(B * G);
  auto product = [&](std::vector<float>& out, const at::Tensor& a, const at::Tensor& w,
                     const std::optional<at::Tensor>& b) {
    if (b.has_value()) {
      const at::Tensor bias = b->contiguous();
      for (int64_t r = 0; r < B; ++r) std::memcpy(out.data() + r * G, bias.const_data_ptr<float>(), G * sizeof(float));
    }
    const int64_t K = a.size(1);
    if (B <= kRowsGemmMax)
      vec::kernels()->rows_gemm(B, G, K, a.const_data_ptr<float>(), K, w.const_data_ptr<float>(), K, b.has_value(),
                                out.data(), G);
    else
      gemm<float>(false, true, B, G, K, a.const_data_ptr<float>(), K, w.const_data_ptr<float>(), K,
                  b.has_value() ? 1.f : 0.f, out.data(), G);
  };
  product(xg, x, w_ih, b_ih);
  product(hg, h0, w_hh, b_hh);

  const at::TensorOptions options = x.options();
  at::Tensor output = at::empty({1, B, H}, options), h_n = at::empty({B, H}, options), c_n;
  float* out = output.data_ptr<float>();
  float* h = h_n.data_ptr<float>();
  float* c = nullptr;
  if (cell == kLstm) {  // the kernel reads c_{t-1} from c
    c_n = at::empty({B, H}, options);
    c = c_n.data_ptr<float>();
    std::memcpy(c, c0_->contiguous().const_data_ptr<float>(), B * H * sizeof(float));
  } else if (cell == kGru) {  // and GRU's h_{t-1} from h
    std::memcpy(h, h0.const_data_ptr<float>(), B * H * sizeof(float));
  }
  std::vector<float> ws(cell == kGru ? 4 * H * B : 0);  // GRU's r, z, n, hn, which no backward reads here
  for_units(B, H, 12, [&](int64_t b, int64_t j0, int64_t j1) {
    float* xr = xg.data() + b * G;
    const float* hr = hg.data() + b * G;
    if (cell == kLstm)  // the gates overwrite xg's row; c_t, written as the cells and the state, replaces c_{t-1}
      vk->lstm_forward(xr, hr, nullptr, H, j0, j1 - j0, c + b * H, xr, c + b * H, out + b * H, h + b * H);
    else if (cell == kGru)
      vk->gru_forward(xr, hr, nullptr, H, j0, j1 - j0, ws.data() + b * 4 * H, out + b * H, h + b * H);
    else
      vk->rnn_forward(cell == kRelu, xr + j0, hr + j0, out + b * H + j0, h + b * H + j0, j1 - j0);
  });
  return std::vector<at::Tensor>{output, h_n, c_n};
}

}  // namespace fastrnn::cpu
