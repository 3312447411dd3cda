// One step (step.h): x @ W_ih^T + b_ih and h0 @ W_hh^T + b_hh into two [B, G] buffers, then the cell's vector
// kernel writes the output and the new state; backward, the cell's backward kernel and the four products.
// The layer op around the same step adds a sequence schedule, its buffers, packed weights and the op calls in
// between, most of a small step's time. Modules at I = H = 64, batch 1, layer op -> this (torch.nn), alternated
// in one process on 2 Zen 4 cores: without gradient LSTMCell 29.5 -> 14.5 us (24.9), GRUCell 26.1 -> 12.5
// (25.0), RNNCell 18.8 -> 11.9 (15.6), LSTM of one step 34.8 -> 18.9 (92.3); forward and backward (every
// gradient) LSTMCell 192 -> 137 (211), GRUCell 184 -> 123 (213), RNNCell 155 -> 119 (114); at H = 256
// LSTMCell 1080 -> 296 (433).
#include "cpu/step.h"

#include <c10/util/accumulate.h>

#include <cstdlib>
#include <cstring>

#include "cpu/common.h"

namespace fastrnn::cpu {
namespace {

// Up to this many rows the products read the weights as they are (rows_gemm); more rows pay for packing them.
constexpr int64_t kRowsGemmMax = 4;

// Up to this many rows the products run on the panel GEMM (small_gemm) whatever their FLOPs; more go to gemm,
// which gives products over kDnnlMinFlops to oneDNN. oneDNN's way in returns a fresh output, then copied,
// which page-faults at every call, and reorders its operands. Cell fwd+bwd, I = H = 512, 2 Zen 5 cores,
// gemm -> panel, medians of 3 alternated rounds (us): LSTMCell B=4 2206 -> 371, B=16 5065 -> 778, B=32
// 5597 -> 1267, B=64 5467 -> 2293 (I = H = 1024: 17574 -> 9340), B=128 4817 -> 4047; GRUCell B=16 1201 ->
// 705, B=64 2167 -> 1606; forward alone LSTMCell B=16 414 -> 267, B=128 1602 -> 1460.
constexpr int64_t kPanelRowsMax = 128;

// C[M, N] = op(a) @ op(b) + beta * C (gemm's arguments) for a step of B rows.
void step_gemm(int64_t B, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda,
               const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (B <= kPanelRowsMax && small_gemm(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc)) return;
  gemm<float>(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc);
}

// out[B, N] = a[B, K] @ w[N, K]^T (+ b broadcast over the rows).
void product(int64_t B, int64_t N, int64_t K, const float* a, const at::Tensor& w, const OptTensor& b, float* out) {
  if (b.has_value()) {
    const at::Tensor bias = b->contiguous();
    for (int64_t r = 0; r < B; ++r) std::memcpy(out + r * N, bias.const_data_ptr<float>(), N * sizeof(float));
  }
  // Split over w's rows where there is enough of w to read, 128 KB and more a task (LSTMCell, batch 1, H = 256,
  // without gradient: 47 -> 35 us on 2 threads).
  if (B <= kRowsGemmMax) {
    const float* wp = w.const_data_ptr<float>();
    at::parallel_for(0, N, std::max<int64_t>(4, 32768 / std::max<int64_t>(K, 1)), [&](int64_t n0, int64_t n1) {
      vec::kernels()->rows_gemm(B, n1 - n0, K, a, K, wp + n0 * K, K, b.has_value(), out + n0, N);
    });
  } else
    step_gemm(B, false, true, B, N, K, a, K, w.const_data_ptr<float>(), K, b.has_value() ? 1.f : 0.f, out, N);
}

// A float buffer of `sizes`: a fresh tensor where it is returned, else the vector's storage.
float* buffer(bool as_tensor, at::Tensor& t, std::vector<float>& v, at::IntArrayRef sizes) {
  if (as_tensor) return (t = at::empty(sizes, at::kFloat)).data_ptr<float>();
  v.resize(c10::multiply_integers(sizes));
  return v.data();
}

// The sum of a [B, N] tensor's rows (a bias's gradient), its own tensor.
at::Tensor row_sum(const at::Tensor& rows) {
  at::Tensor out = at::empty({rows.size(1)}, rows.options());
  sum_rows(rows.const_data_ptr<float>(), rows.size(0), rows.size(1), out.data_ptr<float>());
  return out;
}

}  // namespace

bool step_runs(const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const OptTensor& b_ih,
               const OptTensor& b_hh, const at::Tensor& h0, const OptTensor& c0) {
  const char* env = std::getenv("FASTRNN_CPU_STEP");
  auto is_float = [](const OptTensor& t) { return !t || t->scalar_type() == at::kFloat; };
  return !(env && std::strcmp(env, "0") == 0) && vec_kernels<float>() != nullptr && x.is_cpu() && is_float(x) &&
         is_float(w_ih) && is_float(w_hh) && is_float(b_ih) && is_float(b_hh) && is_float(h0) && is_float(c0);
}

std::vector<at::Tensor> step_forward(Cell cell, const at::Tensor& x_, const at::Tensor& w_ih_, const at::Tensor& w_hh_,
                                     const OptTensor& b_ih, const OptTensor& b_hh, const at::Tensor& h0_,
                                     const OptTensor& c0_, bool save) {
  const vec::Kernels<float>* vk = vec_kernels<float>();
  // x's one step read as [B, I] rows (no select: each view op is a dispatcher call).
  const at::Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(), h0 = h0_.contiguous();
  const int64_t B = x.size(1), I = x.size(2), H = h0.size(1), G = w_hh.size(0);
  // xg = x @ W_ih^T + b_ih, hg = h0 @ W_hh^T + b_hh: each bias in its own product, as the cell kernels
  // take them (GRU's b_hn must stay with hg, inside r * (W_hn h + b_hn)).
  at::Tensor xg_t, ws_t;
  std::vector<float> xg_v, ws_v, hg(B * G);
  float* xg = buffer(save && cell == kLstm, xg_t, xg_v, {B, G});  // the LSTM's gates overwrite it
  product(B, G, I, x.const_data_ptr<float>(), w_ih, b_ih, xg);
  product(B, G, H, h0.const_data_ptr<float>(), w_hh, b_hh, hg.data());

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
  float* ws = cell == kGru ? buffer(save, ws_t, ws_v, {B, 4 * H}) : nullptr;  // r, z, n, W_hn h + b_hn
  for_units(B, H, 12, [&](int64_t b, int64_t j0, int64_t j1) {
    float* xr = xg + b * G;
    const float* hr = hg.data() + b * G;
    if (cell == kLstm)  // the gates overwrite xg's row; c_t, written as the cells and the state, replaces c_{t-1}
      vk->lstm_forward(xr, hr, nullptr, H, j0, j1 - j0, c + b * H, xr, c + b * H, out + b * H, h + b * H);
    else if (cell == kGru)
      vk->gru_forward(xr, hr, nullptr, H, j0, j1 - j0, ws + b * 4 * H, out + b * H, h + b * H);
    else
      vk->rnn_forward(cell == kRelu, xr + j0, hr + j0, out + b * H + j0, h + b * H + j0, j1 - j0);
  });
  return {output, h_n, c_n, cell == kLstm ? xg_t : ws_t};
}

std::array<at::Tensor, 7> step_backward(Cell cell, const at::Tensor& x_, const at::Tensor& w_ih_,
                                        const at::Tensor& w_hh_, const at::Tensor& h0_, const at::Tensor& c0_,
                                        const at::Tensor& h_n, const at::Tensor& c_n, const at::Tensor& act,
                                        const at::Tensor& grad_output, const at::Tensor& grad_h_n,
                                        const at::Tensor& grad_c_n, std::array<bool, 7> wanted) {
  const vec::Kernels<float>* vk = vec_kernels<float>();
  const at::Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous(), h0 = h0_.contiguous(),
                   c0 = c0_.defined() ? c0_.contiguous() : c0_,
                   gout = grad_output.contiguous();  // x and gout: [1, B, *], read as [B, *] rows
  const int64_t B = x.size(1), I = x.size(2), H = h0.size(1), G = w_hh.size(0);
  const at::TensorOptions options = x.options();
  // dh: the state's gradient in (GRU: out, its direct part z * dh of dh_{t-1}); dc: dc_t in, dc_{t-1} out.
  at::Tensor dh = grad_h_n.contiguous(), dc;
  if (cell == kGru) dh = dh.clone();
  if (cell == kLstm) dc = grad_c_n.clone(at::MemoryFormat::Contiguous);
  // The gradients of xg and hg (step_forward's buffers): one for both but GRU's, whose hg's n part is r * dn.
  at::Tensor dgx = at::empty({B, G}, options), dgh = cell == kGru ? at::empty({B, G}, options) : dgx;
  float *dx = dgx.data_ptr<float>(), *dg = dgh.data_ptr<float>(), *dhp = dh.data_ptr<float>();
  const float* go = gout.const_data_ptr<float>();
  for_units(B, H, 12, [&](int64_t b, int64_t j0, int64_t j1) {
    const int64_t n = j1 - j0;
    if (cell == kLstm)
      vk->lstm_backward(act.const_data_ptr<float>() + b * G, c0.const_data_ptr<float>() + b * H,
                        c_n.const_data_ptr<float>() + b * H, H, j0, n, dhp + b * H, go + b * H,
                        dc.data_ptr<float>() + b * H, dx + b * G, nullptr, nullptr);
    else if (cell == kGru)
      vk->gru_backward(act.const_data_ptr<float>() + b * 4 * H, h0.const_data_ptr<float>() + b * H, go + b * H, H,
                       j0, n, dhp + b * H, dx + b * G, dg + b * G);
    else
      vk->rnn_backward(cell == kRelu, h_n.const_data_ptr<float>() + b * H + j0, dhp + b * H + j0,
                       go + b * H + j0, dx + b * G + j0, n);
  });
  std::array<at::Tensor, 7> grads;
  enum { kX, kWih, kWhh, kBih, kBhh, kH0, kC0 };
  if (wanted[kX]) {  // dgx @ W_ih
    grads[kX] = at::empty({1, B, I}, options);
    step_gemm(B, false, false, B, I, G, dx, G, w_ih.const_data_ptr<float>(), I, 0.f, grads[kX].data_ptr<float>(), I);
  }
  // The weight gradients from the sequence buffers' cache: megabytes at H = 512, which at::empty page-faults
  // afresh at every call (LSTMCell, B = 16: 1400 faults per fwd+bwd).
  if (wanted[kWih]) {  // dgx^T @ x
    grads[kWih] = empty_seq({G, I}, options);
    step_gemm(B, true, false, G, I, B, dx, G, x.const_data_ptr<float>(), I, 0.f, grads[kWih].data_ptr<float>(), I);
  }
  if (wanted[kWhh]) {  // dgh^T @ h0
    grads[kWhh] = empty_seq({G, H}, options);
    step_gemm(B, true, false, G, H, B, dg, G, h0.const_data_ptr<float>(), H, 0.f, grads[kWhh].data_ptr<float>(), H);
  }
  if (wanted[kBih]) grads[kBih] = row_sum(dgx);
  if (wanted[kBhh]) grads[kBhh] = row_sum(dgh);  // its own tensor, as torch.nn gives each bias
  if (wanted[kH0]) {  // dgh @ W_hh, plus GRU's direct part
    grads[kH0] = cell == kGru ? dh : at::empty({B, H}, options);
    step_gemm(B, false, false, B, H, G, dg, G, w_hh.const_data_ptr<float>(), H, cell == kGru ? 1.f : 0.f,
              grads[kH0].data_ptr<float>(), H);
  }
  if (wanted[kC0]) grads[kC0] = dc;
  return grads;
}

}  // namespace fastrnn::cpu
