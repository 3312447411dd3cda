// Fused CPU LSTM (with optional projection w_hr): per step one GEMM (h_{t-1} @ W_hh^T), one
// pointwise pass over the four gates (which adds the bias, if given, to xw's rows), and with a
// projection one more GEMM (h = o*tanh(c) @ W_hr^T).
#include <torch/library.h>

#include "cells.h"
#include "common.h"
#include "cpu/ahead.h"
#include "cpu/lstm.h"
#include "cpu/matmul.h"

namespace fastrnn::cpu {
namespace {

// forward_steps (common.h) for an LSTM with a projection: per step g = h_{t-1} @ W_hh^T (h has P columns),
// the cells, which leave o * tanh(c) in hu, then h = hu @ W_hr^T into hs and the step's output rows.
// On the panel team the members share the hidden units for the cells and h's P columns for the
// projection, whose output the next step's GEMM reads whole: two barriers per step; or (team_plan) the
// batch rows, with no barrier. float32 reads h_{t-1} from the output's rows (gemm_prev_h), bfloat16 from hs,
// the running state in float, as MKL's steps do. With `in`, g also gets x_t @ W_ih^T (the panel GEMM only).
template <typename T, typename A, typename Cell>
void projected_forward_steps(const Schedule& sch, const A* w, const A* wr, int64_t H, int64_t P, int64_t B, T* out,
                             const at::Tensor& h0, A* hs, const A* hu, A* g, const Cell& cell, const FusedInput& in) {
  const int64_t G = 4 * H;
  if constexpr (std::is_same_v<A, float>) {
    if (const vec::PanelGemmFn panel = panel_gemm_kernel(B)) {
      const PanelWeights recurrent(w, P, true, P, H, 4, in.w_ih, in.I), project(wr, H, true, H, P, 1);
      const at::Tensor h0c = h0.contiguous();
      const float* init = std::is_same_v<T, float> ? h0c.const_data_ptr<float>() : nullptr;
      const TeamPlan plan = team_plan(2.0 * B * (G * (P + in.I) + P * H), recurrent.blocks(), B);
      team(plan.threads, [&](int64_t thread, int64_t threads) {
        const TeamShare units(recurrent, H, B, thread, threads, plan.by_rows),
            cols(project, P, B, thread, threads, plan.by_rows);
        for (int64_t s = 0; s < sch.steps(); ++s) {
          const Step st = sch.step(s);
          const int64_t r0 = units.r0, r1 = units.end(st.rows);
          if constexpr (std::is_same_v<T, float>)
            gemm_prev_h(recurrent, panel, st, out, init, P, g, G, units, in.x, in.I);
          else if (r1 > r0)
            recurrent.gemm(panel, r1 - r0, hs + r0 * P, P, g + r0 * G, G, units.b0, units.b1);
          for (int64_t b = r0; b < r1; ++b) cell(st, b, units.j0, units.j1);
          plan.barrier(threads);
          if (r1 > r0) project.gemm(panel, r1 - r0, hu + r0 * H, H, hs + r0 * P, P, cols.b0, cols.b1);
          for (int64_t b = r0; b < r1; ++b)
            std::copy(hs + b * P + cols.j0, hs + b * P + cols.j1, out + (st.row + b) * P + cols.j0);
          plan.barrier(threads);
        }
      });
      return;
    }
  }
  TORCH_INTERNAL_ASSERT(in.x == nullptr, "the input projection runs in the panel GEMM only");
  const StepGemm<A> recurrent(true, P, G, w, P, B), project(true, H, P, wr, H, B);  // @ W_hh^T, @ W_hr^T
  for (int64_t s = 0; s < sch.steps(); ++s) {
    const Step st = sch.step(s);
    recurrent(st.rows, hs, P, A(0), g, G);
    for_units(st.rows, H, 12, [&](int64_t b, int64_t j0, int64_t j1) { cell(st, b, j0, j1); });
    project(st.rows, hu, H, A(0), hs, P);
    T* o = out + st.row * P;
    for (int64_t k = 0; k < st.rows * P; ++k) o[k] = T(hs[k]);
  }
}

// backward_steps (common.h) for an LSTM with a projection, steps in reverse: the full dh_t (P columns,
// kept in dhp's rows for dW_hr), dhu = dh_t @ W_hr, the cells (which read dhu), then
// dh_{t-1} = dgates @ W_hh. On the panel team the members share dh's P columns and the hidden units:
// two barriers per step; or (team_plan) the batch rows, with no barrier.
template <typename T, typename A, typename Cell>
void projected_backward_steps(const Schedule& sch, const A* w, const A* wr, int64_t H, int64_t P, int64_t B,
                              const T* go, A* dh, A* dhp, A* dhu, const A* dg, const Cell& cell) {
  const int64_t G = 4 * H;
  // dhp's rows of step st, columns [k0, k1): dh_t = the state's dh + the output's gradient.
  auto full_dh = [&](const Step& st, int64_t b, int64_t k0, int64_t k1) {
    A* dst = dhp + (st.row + b) * P;
    const T* src = go + (st.row + b) * P;
    for (int64_t k = k0; k < k1; ++k) dst[k] = dh[b * P + k] + A(src[k]);
  };
  if constexpr (std::is_same_v<A, float>) {
    if (const vec::PanelGemmFn panel = panel_gemm_kernel(B)) {
      const PanelWeights recurrent(w, P, false, G, P, 1), project(wr, H, false, P, H, 1);
      const TeamPlan plan = team_plan(2.0 * B * (G * P + P * H), project.blocks(), B);
      team(plan.threads, [&](int64_t thread, int64_t threads) {
        const TeamShare cols(recurrent, P, B, thread, threads, plan.by_rows),
            units(project, H, B, thread, threads, plan.by_rows);
        for (int64_t s = sch.steps() - 1; s >= 0; --s) {
          const Step st = sch.step(s);
          const int64_t r0 = cols.r0, r1 = cols.end(st.rows);
          for (int64_t b = r0; b < r1; ++b) full_dh(st, b, cols.j0, cols.j1);
          plan.barrier(threads);
          if (r1 > r0) project.gemm(panel, r1 - r0, dhp + (st.row + r0) * P, P, dhu + r0 * H, H, units.b0, units.b1);
          for (int64_t b = r0; b < r1; ++b) cell(st, b, units.j0, units.j1);
          plan.barrier(threads);
          if (r1 > r0) recurrent.gemm(panel, r1 - r0, dg + (st.row + r0) * G, G, dh + r0 * P, P, cols.b0, cols.b1);
        }
      });
      return;
    }
  }
  const StepGemm<A> recurrent(false, G, P, w, P, B), project(false, P, H, wr, H, B);  // @ W_hh, @ W_hr
  for (int64_t s = sch.steps() - 1; s >= 0; --s) {
    const Step st = sch.step(s);
    for (int64_t b = 0; b < st.rows; ++b) full_dh(st, b, 0, P);
    project(st.rows, dhp + st.row * P, P, A(0), dhu, H);
    for_units(st.rows, H, 12, [&](int64_t b, int64_t j0, int64_t j1) { cell(st, b, j0, j1); });
    recurrent(st.rows, dg + st.row * G, G, A(0), dh, P);
  }
}

// gates_in_xw: the saved gates overwrite xw's rows as the cells read them (xw is the caller's to give up).
// With w_ih (float32 on the panel GEMM, bfloat16 on the pairs GEMM), xw_ is the input x ([.., I]) and the
// steps' GEMMs add x_t @ W_ih^T.
template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward(
    const Dims& d, const Schedule& sch, const at::Tensor& xw_, const at::Tensor& w_hh,
    const std::optional<at::Tensor>& w_hr, const at::Tensor& h0, const at::Tensor& c0, bool save,
    const std::optional<at::Tensor>& bias, bool gates_in_xw, const at::Tensor& w_ih = at::Tensor(),
    BesideLoop* ahead = nullptr) {
  using A = acc_t<T>;
  const int64_t H = d.H, P = d.P, G = 4 * H;
  const bool proj = w_hr.has_value(), fused = w_ih.defined();
  TORCH_INTERNAL_ASSERT(!(fused && gates_in_xw) && !(ahead && (proj || fused)));
  const at::Tensor xw = xw_.contiguous(), W = proj ? to_acc<A>(w_hh) : forward_w_hh<A, T>(w_hh, d.B, H);
  const at::Tensor Wr = proj ? to_acc<A>(*w_hr) : at::Tensor();
  const at::Tensor stored = w_hh.contiguous();  // the bfloat16 pairs GEMM reads it as it is
  const at::Tensor Wih = fused ? w_ih.contiguous() : at::Tensor();
  const at::Tensor bias_acc = bias.has_value() ? to_acc<A>(*bias) : at::Tensor();
  const A* bv = bias_acc.defined() ? bias_acc.const_data_ptr<A>() : nullptr;
  at::Tensor output = empty_seq(d.seq(P), xw.options());
  const SavedRows<T> gates = save && gates_in_xw ? SavedRows<T>(xw) : SavedRows<T>(d, G, save, xw.options());
  const SavedRows<T> cells(d, H, save, xw.options());
  at::Tensor h = acc_copy<A>(h0), c = acc_copy<A>(c0);
  at::Tensor gh = at::empty({d.B, G}, acc_options<A>());
  at::Tensor hu = proj ? at::empty({d.B, H}, acc_options<A>()) : at::Tensor();  // o * tanh(c) before w_hr
  const T* x = fused ? nullptr : xw.const_data_ptr<T>();
  FusedInput in;
  if constexpr (std::is_same_v<T, float>)
    if (fused) in = {xw.const_data_ptr<float>(), Wih.const_data_ptr<float>(), w_ih.size(1)};
  if constexpr (std::is_same_v<T, c10::BFloat16>)  // on the pairs GEMM: two bfloat16s per element
    if (fused)
      in = {reinterpret_cast<const float*>(xw.const_data_ptr<T>()),
            reinterpret_cast<const float*>(Wih.const_data_ptr<T>()), w_ih.size(1) / 2};
  const A* w = W.defined() ? W.const_data_ptr<A>() : nullptr;
  T* out = output.data_ptr<T>();
  A* hs = h.data_ptr<A>();
  A* csa = c.data_ptr<A>();
  A* g = gh.data_ptr<A>();
  A* hus = proj ? hu.data_ptr<A>() : nullptr;
  const vec::Kernels<T>* vk = vec_kernels<T>();
  const FloatSteps<T> hseq(d, H, vk && !proj);
  float* hsq = hseq.data();
  // The cell of units [j0, j1) of row b of step st, after its GEMM wrote g's row b.
  auto cell = [&](const Step& st, int64_t b, int64_t j0, int64_t j1) {
    const int64_t r = st.row + b;
    const T* xr = x ? x + r * G : nullptr;
    const A* gr = g + b * G;
    T* gout = gates.row(r, b);
    T* cout = cells.row(r, b);
    if constexpr (kVectorized<T>) {
      if (vk) {
        vk->lstm_forward(xr, gr, bv, H, j0, j1 - j0, csa + b * H, save ? gout : nullptr, save ? cout : nullptr,
                         proj ? nullptr : out + r * H, proj ? hus + b * H : hsq ? hsq + r * H : hs + b * H);
        return;
      }
    }
    auto pre = [&](int64_t k) { return A(xr[k]) + gr[k] + (bv ? bv[k] : A(0)); };
    for (int64_t j = j0; j < j1; ++j) {
      A i, f, gg, o, cc, hh;
      LSTMCell::forward<A>(pre(j), pre(H + j), pre(2 * H + j), pre(3 * H + j), csa[b * H + j], i, f, gg, o, cc, hh);
      gout[j] = T(i);
      gout[H + j] = T(f);
      gout[2 * H + j] = T(gg);
      gout[3 * H + j] = T(o);
      cout[j] = T(cc);
      csa[b * H + j] = cc;
      if (proj) {
        hus[b * H + j] = hh;
      } else {
        out[r * H + j] = T(hh);
        hs[b * H + j] = hh;
      }
    }
  };
  if (proj)
    projected_forward_steps<T>(sch, w, Wr.const_data_ptr<A>(), H, P, d.B, out, h0, hs, hus, g, cell, in);
  else
    forward_steps<T>(sch, w, 4, H, d.B, out, h0, hs, g, 12, cell, in, hsq, ahead, stored.const_data_ptr<T>());
  if (hsq) hseq.last_into(sch, d.B, hs);
  const auto dt = xw.scalar_type();
  return {output, to_dtype(h, dt), to_dtype(c, dt), gates.result(), cells.result()};
}

// bias_grad: also the sum of grad_xw's rows, added up as the cells write them (float32 on the panel GEMM: in
// the cells' vector kernel, whose dgates are still in registers), else undefined: each step's rows into one
// sum, which the next step adds to the total (rounding grows with T + B, not T * B). Added row by row in a
// loop of this file's own (SSE) code, the sums had taken 3.8% of the backward's samples at (100, 16, 128,
// 128), now 0.5% (the cells' kernel 7.2 -> 6.1%). A team split by units owns disjoint columns of one sum;
// split by rows (row_team), each member keeps its own, added up at the end. Summed afterwards, dgates made
// one more pass over memory: 1.1 ms at (T, B, H) = (100, 64, 256) under the unit split, 3.2 of 110 ms
// (fwd+bwd) under the row split.
template <typename T>
LstmGrads backward(const Dims& d, const Schedule& sch, const at::Tensor& grad_output_, const at::Tensor& grad_h_n,
                   const at::Tensor& grad_c_n, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr,
                   const at::Tensor& h0_, const at::Tensor& c0_, const at::Tensor& output_, const at::Tensor& gates_,
                   const at::Tensor& cells_, bool bias_grad, const LayerInput& input) {
  using A = acc_t<T>;
  const int64_t H = d.H, P = d.P, G = 4 * H;
  const bool proj = w_hr.has_value();
  const at::Tensor gout = grad_output_.contiguous(), output = output_.contiguous(), h0 = h0_.contiguous(),
                   c0 = c0_.contiguous(), gates = gates_.contiguous(), cells = cells_.contiguous(),
                   W = to_acc<A>(w_hh), Wr = proj ? to_acc<A>(*w_hr) : at::Tensor();
  const auto ao = acc_options<A>();
  at::Tensor grad_xw = empty_seq(d.seq(G), gout.options());
  at::Tensor dgates = std::is_same_v<T, A> ? grad_xw : empty_seq({d.N, G}, ao);
  at::Tensor dh = acc_copy<A>(grad_h_n), dc = acc_copy<A>(grad_c_n);
  // With a projection: every step's full dh (for dW_hr), its unprojected o*tanh(c), dh @ W_hr.
  at::Tensor dhp = proj ? empty_seq({d.N, P}, ao) : at::Tensor();
  at::Tensor hu = proj ? empty_seq({d.N, H}, ao) : at::Tensor();
  at::Tensor dhu = proj ? at::empty({d.B, H}, ao) : at::Tensor();
  // A loop of one thread leaves dW_hh, the bias's and the input's gradients to a second (GradsBehind).
  const bool beside = std::is_same_v<T, float> && !proj && runs_beside(d, 4);
  const at::Tensor h_prev = beside ? at::Tensor() : gather_prev<T, A>(sch, output, h0, P);
  const T* go = gout.const_data_ptr<T>();
  const T* gs = gates.const_data_ptr<T>();
  const T* cs = cells.const_data_ptr<T>();
  const T* c0p = c0.const_data_ptr<T>();
  const A* w = W.const_data_ptr<A>();
  A* dg = dgates.data_ptr<A>();
  A* dhs = dh.data_ptr<A>();
  A* dcs = dc.data_ptr<A>();
  A* dhps = proj ? dhp.data_ptr<A>() : nullptr;
  A* hus = proj ? hu.data_ptr<A>() : nullptr;
  A* dhus = proj ? dhu.data_ptr<A>() : nullptr;
  const vec::Kernels<T>* vk = vec_kernels<T>();
  // Per member of the team: the sum over rows, and over the rows of the step in hand.
  const int64_t members = row_team(d.B);
  at::Tensor dbias, dstep;
  if constexpr (std::is_same_v<T, float>)
    if (bias_grad && panel_gemm_kernel(d.B) != nullptr && !beside)
      dbias = at::zeros({members, G}, ao), dstep = at::zeros({members, G}, ao);
  A* db0 = dbias.defined() ? dbias.data_ptr<A>() : nullptr;
  A* ds0 = dstep.defined() ? dstep.data_ptr<A>() : nullptr;
  // The step sum that row b's dgates are added to, units [j0, j1) (null without one); at the member's first
  // row of a step, its previous step's sum is complete: added to the total and started afresh.
  auto step_sum = [&](int64_t b, int64_t j0, int64_t j1) -> A* {
    if (db0 == nullptr) return nullptr;
    int64_t m = members - 1;  // the member of row b: TeamShare's rows [B * m / members, B * (m + 1) / members)
    while (d.B * m / members > b) --m;
    A* db = db0 + m * G;
    A* ds = ds0 + m * G;
    if (b == d.B * m / members)
      for (int64_t k = 0; k < 4; ++k)
        for (int64_t j = k * H + j0; j < k * H + j1; ++j) db[j] += ds[j], ds[j] = A(0);
    return ds;
  };
  // The cell's backward for units [j0, j1) of row b of step st (dh_t complete for them).
  auto cell = [&](const Step& st, int64_t b, int64_t j0, int64_t j1) {
    const int64_t r = st.row + b;
    const T* gr = gs + r * G;
    const T* c_prev = prev_row(st, b, cs, c0p, H);
    A* dgr = dg + r * G;
    if constexpr (kVectorized<T>) {
      if (vk) {
        // dh_t: with a projection dhu (which holds the output's gradient), else the state's dh + the output's.
        vk->lstm_backward(gr, c_prev, cs + r * H, H, j0, j1 - j0, proj ? dhus + b * H : dhs + b * H,
                           proj ? nullptr : go + r * H, dcs + b * H, dgr, proj ? hus + r * H : nullptr,
                           step_sum(b, j0, j1));
        return;
      }
    }
    for (int64_t j = j0; j < j1; ++j) {
      const A i = A(gr[j]), f = A(gr[H + j]), g = A(gr[2 * H + j]), o = A(gr[3 * H + j]), c = A(cs[r * H + j]);
      const A dht = proj ? dhus[b * H + j] : dhs[b * H + j] + A(go[r * H + j]);
      A di, df, dgg, dout, dcp;
      LSTMCell::backward<A>(i, f, g, o, A(c_prev[j]), c, dht, dcs[b * H + j], di, df, dgg, dout, dcp);
      dgr[j] = di;
      dgr[H + j] = df;
      dgr[2 * H + j] = dgg;
      dgr[3 * H + j] = dout;
      dcs[b * H + j] = dcp;
      if (proj) hus[r * H + j] = o * tanh_(c);
    }
    if (A* ds = step_sum(b, j0, j1))
      for (int64_t k = 0; k < 4; ++k)
        for (int64_t j = k * H + j0; j < k * H + j1; ++j) ds[j] += dgr[j];
  };
  at::Tensor dW = at::empty({G, P}, ao), dx, dw_ih, x, w_ih;  // x, w_ih: contiguous, for GradsBehind
  std::optional<GradsBehind> behind;
  if constexpr (std::is_same_v<T, float>) {
    if (beside) {
      const bool given = input.x.defined() && input.w_ih.defined();
      const bool grad_x = given && input.grad_x, grad_w_ih = given && input.grad_w_ih;
      if (grad_w_ih) x = input.x.contiguous();
      if (grad_x) w_ih = input.w_ih.contiguous();
      const int64_t I = given ? input.x.size(-1) : 0;
      if (grad_x) dx = empty_seq(input.x.sizes(), input.x.options());
      if (grad_w_ih) dw_ih = at::empty({G, I}, ao);
      if (bias_grad) dbias = at::empty({G}, ao);
      auto ptr = [](const at::Tensor& t) { return t.defined() ? t.const_data_ptr<float>() : nullptr; };
      auto out = [](at::Tensor& t) { return t.defined() ? t.data_ptr<float>() : nullptr; };
      behind.emplace(GradsBehind::Operands{dg, ptr(output), ptr(h0), ptr(x), ptr(w_ih), dW.data_ptr<float>(),
                                           out(dbias), out(dx), out(dw_ih), G, P, I});
    }
  }
  if (proj)
    projected_backward_steps(sch, w, Wr.const_data_ptr<A>(), H, P, d.B, go, dhs, dhps, dhus, dg, cell);
  else
    backward_steps(sch, w, 4, H, d.B, dg, dhs, false, 12, cell, behind ? &*behind : nullptr);
  if (db0) dbias = dbias.add_(dstep).sum(0);  // the last step's, then the members' sums
  if (!beside) gemm<A>(true, false, G, P, d.N, dg, G, h_prev.const_data_ptr<A>(), P, A(0), dW.data_ptr<A>(), P);
  at::Tensor dWr = at::empty({proj ? P : 0}, ao);
  if (proj) {
    dWr = at::empty({P, H}, ao);
    gemm<A>(true, false, P, H, d.N, dhps, P, hus, H, A(0), dWr.data_ptr<A>(), H);
  }
  if (!std::is_same_v<T, A>) grad_xw.copy_(dgates.view(grad_xw.sizes()));
  const auto dt = gout.scalar_type();
  return {grad_xw, to_dtype(dW, dt), to_dtype(dWr, dt), to_dtype(dh, dt), to_dtype(dc, dt), dbias, dx, dw_ih};
}

constexpr const char* kForward = "fastrnn::lstm_forward";
constexpr const char* kBackward = "fastrnn::lstm_backward";

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_forward(
    const at::Tensor& xw, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr, const at::Tensor& h0,
    const at::Tensor& c0, const std::optional<at::Tensor>& batch_sizes, bool reverse, bool save,
    const std::optional<at::Tensor>& bias, bool gates_in_xw) {
  const Dims d = check_forward(kForward, 4, xw, w_hh, w_hr, std::nullopt, h0, c0, batch_sizes, bias);
  const at::Tensor bs = contiguous_sizes(batch_sizes);
  const Schedule sch = schedule(d, bs, reverse);
  return dispatch(kForward, "xw", xw, [&]<typename T>() {
    return forward<T>(d, sch, xw, w_hh, w_hr, h0, c0, save, bias, gates_in_xw);
  });
}

LstmGrads lstm_backward(const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& grad_c_n,
                        const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr, const at::Tensor& h0,
                        const at::Tensor& c0, const at::Tensor& output, const at::Tensor& gates, const at::Tensor& cells,
                        const std::optional<at::Tensor>& batch_sizes, bool reverse, bool bias_grad,
                        const LayerInput& input) {
  const Dims d = check_backward(kBackward, 4, grad_output, grad_h_n, grad_c_n, w_hh, w_hr, std::nullopt, h0, c0,
                                output, gates, "gates", cells, batch_sizes);
  const at::Tensor bs = contiguous_sizes(batch_sizes);
  const Schedule sch = schedule(d, bs, reverse);
  return dispatch(kBackward, "grad_output", grad_output, [&]<typename T>() {
    return backward<T>(d, sch, grad_output, grad_h_n, grad_c_n, w_hh, w_hr, h0, c0, output, gates, cells, bias_grad,
                       input);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> lstm_layer_forward(
    const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr,
    const at::Tensor& h0, const at::Tensor& c0, const std::optional<at::Tensor>& batch_sizes, bool reverse, bool save,
    const std::optional<at::Tensor>& bias) {
  std::vector<int64_t> xw_sizes = x.sizes().vec();
  xw_sizes.back() = w_ih.size(0);
  // xw's shape, dtype and device, for the checks, without its memory.
  const at::Tensor xw_like = at::empty({1}, x.options()).expand(xw_sizes);
  const Dims d = check_forward(kForward, 4, xw_like, w_hh, w_hr, std::nullopt, h0, c0, batch_sizes, bias);
  detail::check_like(kForward, "w_ih", w_ih, x, "x", {4 * d.H, x.size(-1)});
  if (fuse_input_projection(x.scalar_type(), d, x.size(-1), 4)) {
    const at::Tensor bs = contiguous_sizes(batch_sizes);
    return dispatch(kForward, "x", x, [&]<typename T>() {
      return forward<T>(d, schedule(d, bs, reverse), x, w_hh, w_hr, h0, c0, save, bias, false, w_ih);
    });
  }
  if (x.scalar_type() == at::kFloat && !w_hr.has_value() && runs_beside(d, 4)) {  // xw's rows written just ahead
    const at::Tensor bs = contiguous_sizes(batch_sizes), xc = x.contiguous(), wc = w_ih.contiguous();
    const at::Tensor xw = empty_seq(d.seq(4 * d.H), x.options());
    InputAhead ahead(xc.const_data_ptr<float>(), wc.const_data_ptr<float>(), x.size(-1), d.H, 4,
                     xw.data_ptr<float>());
    return forward<float>(d, schedule(d, bs, reverse), xw, w_hh, w_hr, h0, c0, save, bias, true, at::Tensor(),
                          &ahead);
  }
  const at::Tensor xw = matmul(x.reshape({-1, x.size(-1)}), w_ih.t()).view(xw_sizes);
  return lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes, reverse, save, bias, true);
}

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> forward_op(
    const at::Tensor& xw, const at::Tensor& w_hh, const std::optional<at::Tensor>& w_hr, const at::Tensor& h0,
    const at::Tensor& c0, const std::optional<at::Tensor>& batch_sizes, bool reverse, bool save,
    const std::optional<at::Tensor>& bias) {
  return lstm_forward(xw, w_hh, w_hr, h0, c0, batch_sizes, reverse, save, bias, false);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward_op(
    const at::Tensor& grad_output, const at::Tensor& grad_h_n, const at::Tensor& grad_c_n, const at::Tensor& w_hh,
    const std::optional<at::Tensor>& w_hr, const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& output,
    const at::Tensor& gates, const at::Tensor& cells, const std::optional<at::Tensor>& batch_sizes, bool reverse) {
  const LstmGrads g = lstm_backward(grad_output, grad_h_n, grad_c_n, w_hh, w_hr, h0, c0, output, gates, cells,
                                    batch_sizes, reverse, false);
  return {g.xw, g.w_hh, g.w_hr, g.h0, g.c0};
}

}  // namespace
}  // namespace fastrnn::cpu

TORCH_LIBRARY_IMPL(fastrnn, CPU, m) {
  m.impl("lstm_forward", &fastrnn::cpu::forward_op);
  m.impl("lstm_backward", &fastrnn::cpu::backward_op);
  m.impl("lstm_layer_forward", &fastrnn::cpu::lstm_layer_forward);
}
