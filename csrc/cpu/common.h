// Pieces shared by the fused CPU ops: the accumulation type, row-major GEMMs straight into CPU
// BLAS (no ATen dispatch or allocation inside the time loop), the pointwise parallel loop and
// the gather of every step's h_{t-1} rows for the weight gradients.
#pragma once
#include <ATen/EmptyTensor.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <c10/util/BFloat16.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <vector>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "checks.h"
#include "cpu/pointwise.h"
#include "cpu/seq_cache.h"
#include "sequence.h"

// Fortran BLAS exported by libtorch_cpu (MKL or OpenBLAS builds). Weak, so a torch built without
// them still loads us: the GEMMs then go through ATen (slower per step, same results).
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*) __attribute__((weak));
// MKL's packed GEMM (CBLAS, 32-bit ints; enums as ints): see StepGemm.
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
// MKL's Fortran entry (argument by reference): torch's MKL exports the C name as an alias of it.
int mkl_set_num_threads_local_(const int* n) __attribute__((weak));
}

namespace fastrnn::cpu {

template <typename T>
using acc_t = at::opmath_type<T>;

// Storage types with vectorized pointwise passes (pointwise.h); float64 runs the scalar loops of cells.h.
template <typename T>
constexpr bool kVectorized = std::is_same_v<T, float> || std::is_same_v<T, c10::BFloat16>;

// The vectorized kernels for storage type T, or null: then the scalar loops run.
template <typename T>
const vec::Kernels<T>* vec_kernels() {
  const vec::KernelSet* set = vec::kernels();
  if constexpr (std::is_same_v<T, float>) return set ? &set->f32 : nullptr;
  else if constexpr (std::is_same_v<T, c10::BFloat16>) return set ? &set->bf16 : nullptr;
  else return nullptr;
}

template <typename A>
at::TensorOptions acc_options() {
  return at::TensorOptions().dtype(c10::CppTypeToScalarType<A>::value);
}

// t converted to the accumulation type A and made contiguous (t itself for contiguous float/double inputs,
// without to()'s dispatch).
template <typename A>
at::Tensor to_acc(const at::Tensor& t) {
  if (t.scalar_type() == c10::CppTypeToScalarType<A>::value && t.is_contiguous()) return t;
  return t.to(c10::CppTypeToScalarType<A>::value).contiguous();
}

// at::empty for the [N, width] sequence buffers, which can be tens of MB and are written once in order;
// their memory comes back from call to call without page faults (see seq_cache.cpp).
inline at::Tensor empty_seq(c10::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::detail::empty_generic(sizes, seq_allocator(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), c10::MemoryFormat::Contiguous);
}

// An activation the forward saves for backward: [N, width] rows in xw's layout or, without save
// (inference), one step's [B, width] rows, which every step overwrites and the op returns empty.
template <typename T>
class SavedRows {
 public:
  SavedRows(const Dims& d, int64_t width, bool save, const at::TensorOptions& options)
      : buffer_(save ? empty_seq(d.seq(width), options) : at::empty({d.B, width}, options)),
        data_(buffer_.data_ptr<T>()),
        width_(width),
        save_(save) {}
  // Saved into `buffer` (contiguous T, in the layout of the sequence: [.., width]), which the caller gives up.
  explicit SavedRows(const at::Tensor& buffer)
      : buffer_(buffer), data_(buffer_.data_ptr<T>()), width_(buffer.size(-1)), save_(true) {}
  // The row for sequence row r, row b of its step.
  T* row(int64_t r, int64_t b) const { return data_ + (save_ ? r : b) * width_; }
  // The op's output: the buffer, or [0] without save.
  at::Tensor result() const { return save_ ? buffer_ : at::empty({0}, buffer_.options()); }

 private:
  at::Tensor buffer_;
  T* data_;
  int64_t width_;
  bool save_;
};

// t in dtype dt: t itself where it has it (to() dispatches even then, ~0.5 us a call).
inline at::Tensor to_dtype(const at::Tensor& t, at::ScalarType dt) { return t.scalar_type() == dt ? t : t.to(dt); }

// A fresh A-typed copy of t (the running state and its gradient). Of a contiguous A-typed t, a memcpy into
// a tensor from the CPU allocator: at::empty and copy_ dispatch, and copy_ sets up a TensorIterator.
template <typename A>
at::Tensor acc_copy(const at::Tensor& t) {
  constexpr at::ScalarType kA = c10::CppTypeToScalarType<A>::value;
  if (t.scalar_type() != kA || !t.is_contiguous()) return at::empty(t.sizes(), acc_options<A>()).copy_(t);
  at::Tensor out = at::detail::empty_cpu(t.sizes(), kA);
  std::copy_n(t.const_data_ptr<A>(), t.numel(), out.data_ptr<A>());
  return out;
}

// The float32 GEMM through oneDNN (dnnl.cpp), same contract as gemm; false if torch has no oneDNN
// or it is disabled (torch.backends.mkldnn.enabled = False).
bool dnnl_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
               int64_t ldb, float beta, float* c, int64_t ldc);
// x @ w^T (+ bias), a fresh tensor from oneDNN (dnnl.cpp); undefined where dnnl_gemm returns false.
at::Tensor dnnl_linear(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias);
// On CPUs where MKL is slow (see dnnl.cpp), products at least this large (FLOPs) go to oneDNN: its
// fixed cost per call (~15 us) is then well below what its faster kernels save.
constexpr double kDnnlMinFlops = 8e6;
// dnnl_gemm runs K in chunks whose operands take at most this many bytes (see dnnl.cpp).
constexpr int64_t kDnnlChunkBytes = int64_t(4) << 20;
// MKL runs its AVX-512 kernels on Intel CPUs only; there it beats oneDNN's reordering matmul by 1.4-2x
// at these shapes (measured on a Xeon with AVX-512: 235 vs 121 GFLOP/s for a [2048,6400]x[6400,512] product).
inline bool mkl_is_fast() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool intel = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") != 0;
  }();
  return intel;
#else
  return false;
#endif
}
// Whether the large one-off GEMMs go to oneDNN: only where MKL is slow and oneDNN has AVX-512 kernels
// that MKL does not use there. On an AVX2-only AMD EPYC both run AVX2 and MKL wins, most of all with
// a transposed operand (dW = dgates^T @ h_prev: oneDNN 79 against MKL 122-163 GFLOP/s; the LSTM
// backward op at (100,64,256,256) took 56-64 ms through oneDNN and 44 ms through MKL).
inline bool dnnl_gemm_is_faster() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool faster = [] {
    __builtin_cpu_init();
    return !mkl_is_fast() && __builtin_cpu_supports("avx512f") != 0;
  }();
  return faster;
#else
  return false;
#endif
}

// Runs the BLAS calls of its scope on the calling thread alone when a product is this small (FLOPs):
// MKL forks its threads for a 1x256x64 product too, which then takes 2.5x as long as on one thread;
// from about 16x512x128 on, two threads win (measured with MKL's packed GEMM on 2 cores).
class SmallProductsSerial {
 public:
  explicit SmallProductsSerial(double flops)
      : active_(flops < 5e5 && mkl_set_num_threads_local_ != nullptr), previous_(active_ ? set(1) : 0) {}
  ~SmallProductsSerial() {
    if (active_) set(previous_);  // 0 restores the global setting
  }
  SmallProductsSerial(const SmallProductsSerial&) = delete;
  SmallProductsSerial& operator=(const SmallProductsSerial&) = delete;

 private:
  static int set(int threads) { return mkl_set_num_threads_local_(&threads); }
  bool active_;
  int previous_;
};

// gemm's contract for float32 products on the panel GEMM (defined below), or false where that does not run.
bool small_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
                int64_t ldb, float beta, float* c, int64_t ldc);

// C[M,N] = op(a) @ op(b) + beta * C, all row-major with leading dimensions lda, ldb, ldc;
// op(a) is [M,K] (a^T when ta), op(b) is [K,N] (b^T when tb). beta = 0 ignores C's contents.
template <typename A>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const A* a, int64_t lda, const A* b, int64_t ldb,
          A beta, A* c, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if constexpr (std::is_same_v<A, float>) {
    if (2.0 * M * N * K >= kDnnlMinFlops && dnnl_gemm_is_faster() && dnnl_gemm(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc))
      return;
    if (2.0 * M * N * K < kDnnlMinFlops && small_gemm(ta, tb, M, N, K, a, lda, b, ldb, beta, c, ldc)) return;
  }
  auto blas = [] {
    if constexpr (std::is_same_v<A, float>) return sgemm_;
    else return dgemm_;
  }();
  const bool fits = std::max({M, N, K, lda, ldb, ldc}) < INT_MAX;
  if (blas != nullptr && fits) {
    const SmallProductsSerial serial(2.0 * M * N * K);
    // Row-major C = op(a) op(b) is column-major C^T = op(b)^T op(a)^T: swap the operands.
    const int m = N, n = M, k = K, la = std::max<int64_t>(ldb, 1), lb = std::max<int64_t>(lda, 1),
              lc = std::max<int64_t>(ldc, 1);
    const char tra = tb ? 'T' : 'N', trb = ta ? 'T' : 'N';
    const A one = 1;
    blas(&tra, &trb, &m, &n, &k, &one, b, &la, a, &lb, &beta, c, &lc);
    return;
  }
  const auto opts = acc_options<A>();
  auto view = [&](const A* p, int64_t rows, int64_t cols, int64_t ld, bool t) {
    auto m = at::from_blob(const_cast<A*>(p), {t ? cols : rows, t ? rows : cols}, {ld, 1}, opts);
    return t ? m.t() : m;
  };
  at::Tensor C = at::from_blob(c, {M, N}, {ldc, 1}, opts);
  C.addmm_(view(a, M, K, lda, ta), view(b, K, N, ldb, tb), beta, 1);
}

// The GEMMs of the time loop, C[M, N] = a[M, K] @ B + beta * C with the same B (a recurrent weight)
// at every step and M <= max_rows. MKL packs B once per call into its kernel's layout, which every
// step's GEMM then reads as it is: 1.2-2.4x faster than sgemm on these small-M products (B repacked
// at each call), and 2-3x faster than oneDNN. Without MKL (or for double) the steps call gemm.
template <typename A>
class StepGemm {
 public:
  // B = op(b) is [K, N]: b^T when tb; b row-major with leading dimension ldb.
  StepGemm(bool tb, int64_t K, int64_t N, const A* b, int64_t ldb, int64_t max_rows)
      : tb_(tb), K_(K), N_(N), b_(b), ldb_(ldb) {
    if constexpr (std::is_same_v<A, float>) {
      const bool fits = std::max({K, N, ldb, max_rows}) < INT_MAX;
      if (cblas_sgemm_pack_get_size && cblas_sgemm_pack && cblas_sgemm_compute && fits && K > 0 && N > 0 &&
          max_rows > 0) {
        const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, int(max_rows), int(N), int(K));
        packed_ = empty_seq({int64_t(bytes)}, at::TensorOptions().dtype(at::kByte));  // see PanelWeights
        cblas_sgemm_pack(kRowMajor, kBMatrix, tb ? kTrans : kNoTrans, int(max_rows), int(N), int(K), 1.f, b,
                         int(ldb), reinterpret_cast<float*>(packed_.data_ptr()));
      }
    }
  }

  void operator()(int64_t M, const A* a, int64_t lda, A beta, A* c, int64_t ldc) const {
    if (M == 0 || N_ == 0) return;
    if constexpr (std::is_same_v<A, float>) {
      if (packed_.defined() && std::max(lda, ldc) < INT_MAX) {
        const SmallProductsSerial serial(2.0 * M * N_ * K_);
        cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, int(M), int(N_), int(K_), a, int(lda),
                            reinterpret_cast<const float*>(packed_.const_data_ptr()), int(ldb_), beta, c, int(ldc));
        return;
      }
    }
    gemm<A>(false, tb_, M, N_, K_, a, lda, b_, ldb_, beta, c, ldc);
  }

 private:
  // CBLAS's enum values.
  static constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
  bool tb_;
  int64_t K_, N_;
  const A* b_;
  int64_t ldb_;
  at::Tensor packed_;  // MKL's packed B, or undefined
};

// The packed-panel step GEMM (panels.h) for a time loop whose steps have at most max_rows rows, or null
// where the loop uses StepGemm (MKL) instead.
// - On CPUs where MKL takes its generic code paths (non-Intel: its GEMV shows up as mkl_blas_def_xsgemv)
//   the panel GEMM measured 1.2-1.7x faster than cblas_sgemm_compute per step, on one thread and on a
//   team of two (AMD EPYC, AVX2: 64x256 @ 256x1024 in 199 us against 302 us).
// - On Intel CPUs only for one row per step, where MKL's GEMV path is slow: a Xeon with AVX-512 ran the
//   LSTM ops at T=50, B=1 1.3-1.8x faster (H=64: forward 40 against 58 us, backward 48 against 80 us;
//   H=512: 2.2 against 3.8 ms, 2.6 against 3.5 ms). From 4 rows on MKL's backward was as fast or faster.
// FASTRNN_CPU_GEMM=mkl or =panel overrides the choice (read once per process), e.g. to compare the two.
inline vec::PanelGemmFn panel_gemm_kernel(int64_t max_rows) {
  enum class Choice { kMkl, kPanel, kByCpu };
  static const Choice choice = [] {
    const char* env = std::getenv("FASTRNN_CPU_GEMM");
    if (env && std::strcmp(env, "mkl") == 0) return Choice::kMkl;
    if (env && std::strcmp(env, "panel") == 0) return Choice::kPanel;
    return Choice::kByCpu;
  }();
  const vec::KernelSet* set = vec::kernels();
  if (set == nullptr || choice == Choice::kMkl) return nullptr;
  if (choice == Choice::kByCpu && mkl_is_fast() && max_rows > 1) return nullptr;
  return set->panel_gemm;
}

// The panel GEMM on bfloat16 pairs (vdpbf16ps) for a bfloat16 time loop whose steps have at most max_rows
// rows, where panel_gemm_kernel runs and the CPU has AVX512-BF16, or null. Its products read h_{t-1} as the
// output's bfloat16 rows, as torch's bfloat16 reference does (the float path reads h_t kept in float,
// FloatSteps), and W_hh as it is: two bfloat16s of K (even: an odd one would leave half a pair) per 32-bit
// element, so a step reads half the bytes and issues half the multiply-adds of float32. Forward, I=H=256,
// B=64, T=100, 2 threads on 2 cores of an AMD EPYC Zen 4, float path -> pairs (torch.nn in the same run):
// LSTM 31.4 -> 23.9 ms unfused, 21.6 with its input projection fused (20.8), GRU 43.3 -> 19.6 (32.3; its
// float path ran on MKL), RNN 8.7 -> 7.0 (14.6). FASTRNN_CPU_BF16_DOT=0 (read at every call) turns it off, to
// compare the two.
inline vec::PanelGemmFn bf16_step_gemm(int64_t max_rows, int64_t K) {
  const char* env = std::getenv("FASTRNN_CPU_BF16_DOT");
  if (K % 2 != 0 || (env && std::strcmp(env, "0") == 0) || panel_gemm_kernel(max_rows) == nullptr) return nullptr;
  return vec::bf16_panel_gemm();
}

// W_hh for the forward loops that read it in A (forward_steps' w), or undefined where a bfloat16 forward of
// B rows runs on the pairs GEMM, which reads w_hh as it is: converting it would be 4H x H elements a call
// that nothing reads.
template <typename A, typename T>
at::Tensor forward_w_hh(const at::Tensor& w_hh, int64_t B, int64_t H) {
  if constexpr (std::is_same_v<T, c10::BFloat16>)
    if (bf16_step_gemm(B, H) != nullptr) return at::Tensor();
  return to_acc<A>(w_hh);
}

// How many blocks of kPanelWidth hidden units H units make (the last one partial): a panel loop's share.
inline int64_t unit_blocks(int64_t H) { return (H + vec::kPanelWidth - 1) / vec::kPanelWidth; }

// A recurrent weight packed once per call for the panel GEMM: B = op(w) is [K, gates * H] (w^T when
// trans; w row-major with leading dimension ldw), its columns grouped by blocks of kPanelWidth hidden
// units, each block holding its units' columns of every gate (gate k of unit j is column k * H + j).
// The last block's panels are zero-padded. With an input weight w_ih ([gates * H, I]) too, B is
// [W_ih^T; W_hh^T] ([I + K, gates * H]): a step's GEMM then adds x_t @ W_ih^T (see gemm_prev_h).
// A row-major w of one gate whose panels are all full is read in place (PanelB), not copied. Packing
// happens at construction, or with deferred by each user of the panels, for its blocks (pack): then a
// thread packs only what it reads, so no cache line moves between cores. Either way w and w_ih are read
// after construction: they must outlive the PanelWeights.
class PanelWeights {
 public:
  PanelWeights(const float* w, int64_t ldw, bool trans, int64_t K, int64_t H, int64_t gates,
               const float* w_ih = nullptr, int64_t I = 0, bool deferred = false)
      : w_(w),
        w_ih_(w_ih),
        ldw_(ldw),
        trans_(trans),
        I_(w_ih ? I : 0),
        K_(K),
        gates_(gates),
        blocks_(unit_blocks(H)),
        in_place_(!trans && gates == 1 && I_ == 0 && H % vec::kPanelWidth == 0) {
    const int64_t panels = blocks_ * gates;
    constexpr int64_t PW = vec::kPanelWidth;
    cols_.resize(panels);
    widths_.resize(panels);
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t j0 = (p / gates) * PW;
      cols_[p] = (p % gates) * H + j0;
      widths_[p] = int32_t(std::min(PW, H - j0));
    }
    if (in_place_) return;
    // Panels a multiple of 4 KB apart (I + K a multiple of 64) put the rows that a tile reads together (up to 8
    // panels' k-th rows) in one set of the L1 cache; a row's padding moves each panel to the next set. Forward,
    // T=200, B=1, I=H=64, 2 Zen 4 cores, alternated in one process: LSTM 251 -> 237 us, GRU 208 -> 201 us;
    // no change at B=4 to 64 or at H=128 and 256.
    stride_ = (I_ + K) * PW + ((I_ + K) % 64 == 0 ? PW : 0);
    // Weights of 1 MB and more, packed afresh at every call, page-faulted on every call from the heap (LSTM
    // B=1, H=256, T=2 forward and backward: a third of its time in the kernel's page faults).
    data_ = empty_seq({panels * stride_}, acc_options<float>());
    if (deferred) return;
    // Small weights are packed on the calling thread: forking a team costs more than the copy.
    at::parallel_for(0, blocks_, std::max<int64_t>(1, 32768 / std::max<int64_t>(gates * (I_ + K) * PW, 1)),
                     [&](int64_t lo, int64_t hi) { pack(lo, hi); });
  }
  int64_t blocks() const { return blocks_; }
  // Packs the panels of unit blocks [b0, b1) (a no-op for weights read in place).
  void pack(int64_t b0, int64_t b1) {
    if (in_place_) return;
    constexpr int64_t PW = vec::kPanelWidth;
    const int64_t rows = I_ + K_;
    float* dst = data_.data_ptr<float>();
    // Panels exist only where panel_gemm_kernel gave a kernel, so this CPU has a kernel set.
    const vec::TransposeFn transpose = vec::kernels()->transpose;
    for (int64_t p = b0 * gates_; p < b1 * gates_; ++p) {
      float* panel = dst + p * stride_;
      const int64_t width = widths_[p];
      if (width < PW) std::fill(panel, panel + rows * PW, 0.f);
      // Column n of the panel's first I rows is row cols[p] + n of w_ih.
      if (I_ > 0) transpose(w_ih_ + cols_[p] * I_, I_, panel, PW, int(width), int(I_));
      float* recurrent = panel + I_ * PW;
      if (trans_) {  // column n is row cols[p] + n of w
        transpose(w_ + cols_[p] * ldw_, ldw_, recurrent, PW, int(width), int(K_));
      } else {  // row k is part of row k of w
        for (int64_t k = 0; k < K_; ++k) std::copy_n(w_ + k * ldw_ + cols_[p], width, recurrent + k * PW);
      }
    }
  }
  // C[m, the columns of unit blocks [b0, b1)] (+)= A @ B for m < M (weights without w_ih): A[m, k] at
  // a[m * lda + k], or at a[m + k * lda] with ta (a transposed).
  void gemm(vec::PanelGemmFn fn, int64_t M, const float* a, int64_t lda, float* c, int64_t ldc, int64_t b0,
            int64_t b1, bool accumulate = false, bool ta = false, bool descending = false) const {
    TORCH_INTERNAL_ASSERT(I_ == 0);
    vec::PanelA pa = ta ? vec::PanelA{a, 1, K_, nullptr, 0, 0, lda} : vec::PanelA{a, lda, K_};
    pa.descending = descending;
    run(fn, M, pa, c, ldc, b0, b1, accumulate);
  }
  // The same for [x, a] @ [W_ih^T; B] (weights with w_ih): x's rows hold the I inputs.
  void gemm(vec::PanelGemmFn fn, int64_t M, const float* x, int64_t ldx, const float* a, int64_t lda, float* c,
            int64_t ldc, int64_t b0, int64_t b1, bool descending = false) const {
    TORCH_INTERNAL_ASSERT(I_ > 0);
    vec::PanelA pa{x, ldx, I_, a, lda, K_};
    pa.descending = descending;
    run(fn, M, pa, c, ldc, b0, b1, false);
  }
  bool has_input() const { return I_ > 0; }

 private:
  void run(vec::PanelGemmFn fn, int64_t M, const vec::PanelA& a, float* c, int64_t ldc, int64_t b0, int64_t b1,
           bool accumulate) const {
    constexpr int64_t PW = vec::kPanelWidth;
    const vec::PanelB b = in_place_ ? vec::PanelB{w_, PW, ldw_, cols_.data(), widths_.data()}
                                    : vec::PanelB{data_.const_data_ptr<float>(), stride_, PW, cols_.data(),
                                                  widths_.data()};
    if (M > 0 && b1 > b0) fn(M, a, b, b0 * gates_, b1 * gates_, c, ldc, accumulate);
  }
  const float* w_;
  const float* w_ih_;
  int64_t ldw_;
  bool trans_;
  int64_t I_, K_, gates_, blocks_;
  int64_t stride_ = 0;  // floats from one packed panel to the next
  bool in_place_;
  at::Tensor data_;
  std::vector<int64_t> cols_;
  std::vector<int32_t> widths_;
};

// How many threads a panel time loop runs on: one per kFlopsPerThread of a step's GEMM (a thread team
// pays a barrier per step), at most torch's thread count and one per unit block.
inline int64_t team_size(double step_flops, int64_t blocks) {
  constexpr double kFlopsPerThread = 4e4;
  const auto wanted = int64_t(step_flops / kFlopsPerThread) + 1;
  return std::max<int64_t>(1, std::min({wanted, int64_t(at::get_num_threads()), blocks}));
}

// Runs f(thread, threads) on a team of `threads` threads that stays together for a whole time loop,
// its members meeting at team_barrier(threads) once per step; one thread without OpenMP (or nested in
// a parallel region). f must not throw.
template <typename F>
void team(int64_t threads, const F& f) {
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp parallel num_threads(int(threads))
    f(int64_t(omp_get_thread_num()), int64_t(omp_get_num_threads()));
    return;
  }
#endif
  f(int64_t(0), int64_t(1));
}

// A team of one meets nobody: outside team's own parallel region (a team of one runs none) an OpenMP
// barrier would bind to an enclosing region of the caller's and wait for its threads.
inline void team_barrier(int64_t threads) {
#if defined(_OPENMP)
  if (threads > 1) {
#pragma omp barrier
  }
#endif
}

// sum[j] = the sum over r < R of rows[r * N + j], row by row: a bias's gradient from its rows of dgates, where
// those are too few for at::sum's op call and reduction setup to pay (ahead.h, step.cpp).
inline void sum_rows(const float* rows, int64_t R, int64_t N, float* sum) {
  std::fill(sum, sum + N, 0.f);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < N; ++j) sum[j] += rows[r * N + j];
}

// Products that a second thread runs beside a time loop of one thread (ahead.h), a chunk of steps at a
// time, the two meeting through the count of steps done: published with release (which makes the rows
// written before it visible) and spun on with acquire. Ahead of a forward loop the loop waits for it;
// behind a backward loop it waits for the loop.
class BesideLoop {
 public:
  explicit BesideLoop(bool ahead) : ahead_(ahead) {}
  virtual ~BesideLoop() = default;
  bool ahead() const { return ahead_; }
  // On the second thread, beside the loop over sch.
  virtual void run(const Schedule& sch) = 0;
  // With no second thread: on the loop's, before a forward loop (then every step is published) or after
  // a backward one.
  virtual void run_alone(const Schedule& sch) = 0;
  // On the loop's thread after the loop, while the second still runs: its share of the work.
  virtual void after_loop(const Schedule&) {}
  void publish(int64_t steps) { done_.store(steps, std::memory_order_release); }
  int64_t published() const { return done_.load(std::memory_order_acquire); }
  void wait_for(int64_t steps) const {
    while (published() < steps) {
#if defined(__x86_64__)
      __builtin_ia32_pause();
#endif
    }
  }

 private:
  bool ahead_;
  std::atomic<int64_t> done_{0};
};

// How a panel time loop's team shares the work: by unit blocks, each member computing its units'
// columns of every row and meeting the others once per step (or twice, with a projection), or by batch
// rows, each member running whole rows through every step alone: rows never read each other, so no
// barrier and no cache line that one core writes and another reads. By units a member reads only its
// share of the weights' panels, so the unit split wins where a step's rows are few; by rows every member
// reads all of them. On 2 vCPUs of an AMD EPYC VM (AVX-512, 1 MB L2 each) the unit split ran at two
// speeds for seconds at a time, the slow one ~1.4x slower (its cells ~3.5x, where the members write
// interleaved 512-byte runs of the same rows), while two single-threaded processes never slowed: the
// host's placement of the vCPUs, which shared lines pay for. Forward without gradient, rows against units
// alternated in one process (medians, fast spells): LSTM (100,64,256,256) 33.1 vs 35.1 ms, (100,16,128,128)
// 2.41 vs 2.69, (100,8,128,128) 1.19 vs 1.35, (100,16,512,512) 34.7 vs 35.8; GRU (100,64,256,256) 31.9 vs
// 40.2; with 2 rows each the unit split wins or ties ((100,4,512,512) 11.5 vs 10.1 ms, (100,4,128,128)
// 0.77 vs 0.74). FASTRNN_CPU_TEAM=rows or =units overrides the choice (read at every call, so tests and
// timings can compare both).
constexpr int64_t kMinTeamRows = 4;

struct TeamPlan {
  int64_t threads;
  bool by_rows;
  // The members' meeting of a step: only the unit split's members read each other's results.
  void barrier(int64_t members) const {
    if (!by_rows) team_barrier(members);
  }
};

// The members of a panel time loop's team split by rows over B rows (kMinTeamRows or more each), or 1
// where the loop splits by units. It depends on B alone (and the thread count): callers that keep
// per-member data rely on the loop's team_plan agreeing.
inline int64_t row_team(int64_t B) {
  const char* env = std::getenv("FASTRNN_CPU_TEAM");
  if (env && std::strcmp(env, "units") == 0) return 1;
  const bool forced = env && std::strcmp(env, "rows") == 0;
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), forced ? B : B / kMinTeamRows));
}

// The team of a panel time loop with `blocks` unit blocks over B rows: by rows (row_team), else by units
// (team_size).
inline TeamPlan team_plan(double step_flops, int64_t blocks, int64_t B) {
  const int64_t rows = row_team(B);
  return rows > 1 ? TeamPlan{rows, true} : TeamPlan{team_size(step_flops, blocks), false};
}

// Runs loop(thread, threads) on the plan's team. With `beside`, where the plan has one thread and another is
// free, on a team of two instead: the second member runs beside->run while the first runs loop(0, 1), then
// beside->after_loop; elsewhere the loop's thread runs beside->run_alone before a forward loop or after a
// backward one. Either way the loop may wait for beside's steps or publish its own.
template <typename F>
void run_team(const TeamPlan& plan, const Schedule& sch, BesideLoop* beside, const F& loop) {
  const bool two = beside && plan.threads == 1 && at::get_num_threads() >= 2 && !at::in_parallel_region();
  if (!two) {
    if (beside && beside->ahead()) beside->run_alone(sch);
    team(plan.threads, loop);
    if (beside && !beside->ahead()) beside->run_alone(sch);
    return;
  }
  team(2, [&](int64_t thread, int64_t threads) {
    if (thread == 1) return beside->run(sch);
    if (threads < 2 && beside->ahead()) beside->run_alone(sch);  // OpenMP gave one thread
    loop(0, 1);
    if (threads < 2 && !beside->ahead()) beside->run_alone(sch);
    if (threads >= 2) beside->after_loop(sch);
  });
}

// A team member's share: unit blocks [b0, b1) (units [j0, j1) of H) of batch rows [r0, r1). Split by
// units every row is each member's; by rows every unit is.
struct TeamShare {
  int64_t b0, b1, j0, j1, r0, r1;
  TeamShare(const PanelWeights& w, int64_t H, int64_t B, int64_t thread, int64_t threads, bool by_rows)
      : b0(by_rows ? 0 : w.blocks() * thread / threads),
        b1(by_rows ? w.blocks() : w.blocks() * (thread + 1) / threads),
        j0(b0 * vec::kPanelWidth),
        j1(std::min(H, b1 * vec::kPanelWidth)),
        r0(by_rows ? B * thread / threads : 0),
        r1(by_rows ? B * (thread + 1) / threads : B) {}
  // The rows of a step with `rows` rows that are this member's: [r0, end(rows)).
  int64_t end(int64_t rows) const { return std::min(rows, r1); }
};

// Products below oneDNN's threshold (kDnnlMinFlops) on the AVX-512 panel GEMM where panel_gemm_kernel gives it
// (not on Intel CPUs, whose MKL runs AVX-512 kernels), a thread per MFLOP. MKL runs AVX2 kernels on AMD CPUs.
// On 2 Zen 5 cores the LSTM at T=50, B=1, I=H=64, whose fwd+bwd has four products of 1.6 MFLOP, went from
// 198-214 to 184-191 us, and at B=4 from 332 to 289 us; the AVX2 panel kernel lost to MKL there (227 -> 243 us
// and 418 -> 427 us). op(a) is read in place (PanelA), and so is op(b) where PanelWeights can, else each thread
// packs its own panels: packed on the calling thread, then read by the other core, op(b) had taken 17 us of the
// four products' 70 against 8 of 78 on one thread; op(a)'s transpose 10 us. The op's fwd+bwd there (2 cores of
// an AMD EPYC with AVX-512, runs of base and new alternated): median 335 -> 281 us, fastest 298 -> 250 us.
// beta must be 0 or 1 (else false).
inline bool small_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* a, int64_t lda, const float* b,
                       int64_t ldb, float beta, float* c, int64_t ldc) {
  const vec::PanelGemmFn fn = panel_gemm_kernel(M);
  if (fn == nullptr || vec::kernels() != vec::avx512_kernels() || (beta != 0.f && beta != 1.f) || K == 0) return false;
  PanelWeights w(b, ldb, tb, K, N, 1, nullptr, 0, true);
  const int64_t threads = std::min({int64_t(2.0 * M * N * K / 1e6) + 1, int64_t(at::get_num_threads()), w.blocks()});
  team(threads, [&](int64_t thread, int64_t n) {
    const int64_t b0 = w.blocks() * thread / n, b1 = w.blocks() * (thread + 1) / n;
    w.pack(b0, b1);
    w.gemm(fn, M, a, lda, c, ldc, b0, b1, beta == 1.f, ta);
  });
  return true;
}

// f(b, j0, j1) over units [j0, j1) of rows b in [0, rows), units of H per row, split across
// threads only when a step has enough elements to pay for it.
template <typename F>
void for_units(int64_t rows, int64_t H, int64_t cost_per_unit, const F& f) {
  const int64_t total = rows * H;
  auto run = [&](int64_t lo, int64_t hi) {
    for (int64_t b = lo / H; b * H < hi; ++b) f(b, std::max(lo - b * H, int64_t(0)), std::min(hi - b * H, H));
  };
  constexpr int64_t kWorkPerTask = 16384;
  const int64_t grain = std::max<int64_t>(kWorkPerTask / std::max<int64_t>(cost_per_unit, 1), 1);
  if (total <= grain) run(0, total);
  else at::parallel_for(0, total, grain, run);
}

// Whether step s of a panel time loop reads its weights' panels backwards (PanelA::descending): every other
// step, so that a step first reads what the one before read last, still in L1. Where the panels outgrow L1
// (32 KB on Zen 4) a step in one order reads each from L2 (an LSTM's W_hh at H=64, 64 KB, in 0.72 us of a
// 0.9 us step at B=1); in zigzag the lines the last step left in L1 are hits. LSTM layer op, T=200, B=1,
// I=H=64, 2 Zen 4 cores, forward without gradient and forward and backward, in one order -> zigzag,
// alternated in one process (medians): 219 -> 180 us and 484 -> 461 us; again 222 -> 205 and 620 -> 581. No
// change beyond noise at H=128 or 256 (B=1) or at B=8.
inline bool zigzag(int64_t s) { return s % 2 == 1; }

// g[my rows, the columns of my unit blocks] = h_{t-1} @ B for the rows of step st, with h_{t-1} ([B, P])
// read as prev_row does: the previous step's rows of `out`, and h0 for rows that step did not have. With
// weights that hold W_ih, x_t @ W_ih^T is added in the same GEMM, x ([N, I]) holding every step's inputs.
inline void gemm_prev_h(const PanelWeights& w, vec::PanelGemmFn fn, const Step& st, const float* out,
                        const float* h0, int64_t P, float* g, int64_t ldg, const TeamShare& my,
                        const float* x = nullptr, int64_t I = 0, bool descending = false) {
  // Rows [b0, b1), row b of h_{t-1} at h + b * P.
  auto part = [&](int64_t b0, int64_t b1, const float* h) {
    if (b1 <= b0) return;
    if (w.has_input())
      w.gemm(fn, b1 - b0, x + (st.row + b0) * I, I, h + b0 * P, P, g + b0 * ldg, ldg, my.b0, my.b1, descending);
    else
      w.gemm(fn, b1 - b0, h + b0 * P, P, g + b0 * ldg, ldg, my.b0, my.b1, false, false, descending);
  };
  const int64_t end = my.end(st.rows), mid = std::clamp(st.prev_rows, my.r0, end);
  part(my.r0, mid, out + st.prev_row * P);
  part(mid, end, h0);
}

// Whether a float32 time loop runs the input projection x_t @ W_ih^T in its steps' panel GEMMs (FusedInput)
// rather than as one GEMM over all steps whose output xw it then reads. Fused, xw is never written or read,
// but every step reads [W_ih^T; W_hh^T], I + P rows of panels instead of P: that pays while the panels stay
// in the team members' L2 caches (from 4 rows per step on), or in L3 with 32 rows or more, enough work per
// step to hide reading them. Measured forward, T=50 on 2 Zen 5 cores (1 MB L2 each, 32 MB L3), unfused ->
// fused: I=H=128, B=4: 0.23 -> 0.23 ms, B=16: 0.90 -> 0.74 ms; I=H=256, B=2: 0.65 -> 0.70 ms, B=4: 1.15 ->
// 1.04 ms; I=H=512, B=16: 10.5 -> 10.7 ms, B=32 (T=200): 66 -> 62 ms; I=H=1024, B=32 (T=20): 34 -> 53 ms.
// A team split by rows (team_plan) reads every panel in each member, and fused wins while they fit in
// half the L3, T=100 (ms): I=H=256, B=8: 5.5 -> 4.9, B=64: 44 -> 37; I=H=512, B=16: 38 -> 34, B=32: 79 -> 67;
// but I=H=1024 (T=20), B=8: 17 -> 43, B=32: 57 -> 74.
// FASTRNN_CPU_FUSE_INPUT=1 or =0 overrides the choice where the panel GEMM runs (read at every call, so
// tests and timings can compare both).
// bfloat16 fuses on the bfloat16 pairs GEMM only (bf16_step_gemm, I even, no projection), with the same
// rule for its half as many bytes (I=H=256, B=64, T=100 forward, 2 threads on 2 cores of an AMD EPYC Zen 4,
// unfused -> fused: 23.9 -> 21.6 ms, torch.nn 20.8 in the same run), and xw is not rounded to bfloat16.
inline bool fuse_input_projection(at::ScalarType dtype, const Dims& d, int64_t I, int64_t gates) {
  const bool pairs = dtype == at::kBFloat16 && d.P == d.H && I % 2 == 0 && bf16_step_gemm(d.B, d.H) != nullptr;
  if (!pairs && (dtype != at::kFloat || vec_kernels<float>() == nullptr || panel_gemm_kernel(d.B) == nullptr))
    return false;
  const char* env = std::getenv("FASTRNN_CPU_FUSE_INPUT");
  if (env && (std::strcmp(env, "0") == 0 || std::strcmp(env, "1") == 0)) return env[0] == '1';
  constexpr double kL2Bytes = 1 << 20, kL3Bytes = 16 << 20;  // per core; half of a 32 MB L3
  const int64_t G = gates * d.H, blocks = unit_blocks(d.H);
  const double bytes = (pairs ? 2.0 : 4.0) * (I + d.P) * G;
  const TeamPlan plan = team_plan(2.0 * d.B * (I + d.P) * G, blocks, d.B);
  if (plan.by_rows) return bytes <= kL3Bytes;
  return (d.B >= 4 && bytes <= kL2Bytes * plan.threads) || (d.B >= 32 && bytes <= kL3Bytes);
}

// The input projection a panel time loop runs in its step GEMMs: x ([N, I], every step's inputs) and W_ih
// ([gates * H, I]), or none (x null: the caller's xw holds x @ W_ih^T).
struct FusedInput {
  const float* x = nullptr;
  const float* w_ih = nullptr;
  int64_t I = 0;
};

// bfloat16 on the panel GEMM where the pairs GEMM (bf16_step_gemm) does not run: every step's h_t in float,
// which the cells write instead of the running state and the next step's GEMM reads (forward_steps), as MKL's
// steps read the running state: h is rounded to bfloat16 in the output only. Empty (data() null) for float32,
// whose output rows are float, where the steps run on MKL, and on the pairs GEMM.
template <typename T>
class FloatSteps {
 public:
  FloatSteps(const Dims& d, int64_t H, bool vectorized) : H_(H) {
    if constexpr (std::is_same_v<T, c10::BFloat16>)
      if (vectorized && panel_gemm_kernel(d.B) && !bf16_step_gemm(d.B, H))
        buffer_ = empty_seq({d.N, H}, acc_options<float>());
  }
  float* data() const { return buffer_.defined() ? buffer_.data_ptr<float>() : nullptr; }
  // h_n into hs ([B, H]): each row's h_t of the last step that has the row.
  template <typename A>
  void last_into(const Schedule& sch, int64_t B, A* hs) const {
    const float* seq = data();
    for (int64_t s = sch.steps() - 1, done = 0; s >= 0 && done < B; --s) {
      const Step st = sch.step(s);
      for (; done < st.rows; ++done) std::copy_n(seq + (st.row + done) * H_, H_, hs + done * H_);
    }
  }

 private:
  at::Tensor buffer_;
  int64_t H_;
};

// The forward time loop of a cell without projection: per step g = h_{t-1} @ W_hh^T (w: W_hh, [gates * H, H])
// and then cell(st, b, j0, j1) for units [j0, j1) of every row b of the step.
// - On the panel GEMM (float accumulation, where panel_gemm_kernel gives one), a team of threads shares the
//   unit blocks: each member computes its units' columns of g and runs their cell. It reads h_{t-1} from
//   the previous step's rows of every step's h_t in float (`out` in float32, else `hseq`, which the cells
//   then write instead of hs) or h0, which no member writes again, so the members meet once per step,
//   after their cells. With enough rows (team_plan) the members share the batch rows instead, each
//   running its rows' every unit, and never meet. bfloat16 with w_stored (W_hh as it is) runs on the pairs
//   GEMM where bf16_step_gemm gives it, reading h_{t-1} from `out` and h0 in bfloat16; else without float
//   rows (no hseq) the loop runs on MKL. With `in`, g also gets x_t @ W_ih^T (the panel GEMM only, and in
//   bfloat16 the pairs GEMM: the caller checks). With `ahead` (whose work writes the steps' xw rows), each
//   step waits for its rows.
// - Otherwise each step runs one StepGemm (MKL) on the running state hs, then the cell over for_units.
template <typename T, typename A, typename Cell>
void forward_steps(const Schedule& sch, const A* w, int64_t gates, int64_t H, int64_t B, const T* out,
                   const at::Tensor& h0, const A* hs, A* g, int64_t cost_per_unit, const Cell& cell,
                   const FusedInput& in = {}, const float* hseq = nullptr, BesideLoop* ahead = nullptr,
                   const T* w_stored = nullptr) {
  const int64_t G = gates * H;
  if constexpr (std::is_same_v<A, float>) {
    // The panels' and h's rows: K 32-bit elements, floats or (bfloat16 pairs) the bits of two bfloat16s.
    const float* seq = nullptr;
    const float* weights = w;
    int64_t K = H;
    vec::PanelGemmFn panel = nullptr;
    at::Tensor h0c;
    if constexpr (std::is_same_v<T, c10::BFloat16>) {
      panel = w_stored ? bf16_step_gemm(B, H) : nullptr;
      if (panel) {
        seq = reinterpret_cast<const float*>(out);
        weights = reinterpret_cast<const float*>(w_stored);
        K = H / 2;
        h0c = h0.contiguous();
        TORCH_INTERNAL_ASSERT(h0c.scalar_type() == at::kBFloat16);
      }
    }
    if (panel == nullptr) {
      TORCH_INTERNAL_ASSERT((std::is_same_v<T, float> || in.x == nullptr), "bfloat16 x runs on the pairs GEMM only");
      TORCH_INTERNAL_ASSERT(w != nullptr, "W_hh in float for the float loops (forward_w_hh)");
      if constexpr (std::is_same_v<T, float>) seq = out;
      else seq = hseq;
      panel = seq ? panel_gemm_kernel(B) : nullptr;
      h0c = h0.to(at::kFloat).contiguous();
    }
    if (panel) {
      const PanelWeights recurrent(weights, K, true, K, H, gates, in.w_ih, in.I);
      const float* init = static_cast<const float*>(h0c.const_data_ptr());
      const TeamPlan plan = team_plan(2.0 * B * G * (H + in.I * (H / K)), recurrent.blocks(), B);
      run_team(plan, sch, ahead, [&](int64_t thread, int64_t threads) {
        const TeamShare my(recurrent, H, B, thread, threads, plan.by_rows);
        for (int64_t s = 0; s < sch.steps(); ++s) {
          const Step st = sch.step(s);
          if (ahead) ahead->wait_for(s + 1);
          gemm_prev_h(recurrent, panel, st, seq, init, K, g, G, my, in.x, in.I, zigzag(s));
          for (int64_t b = my.r0; b < my.end(st.rows); ++b) cell(st, b, my.j0, my.j1);
          plan.barrier(threads);
        }
      });
      return;
    }
  }
  TORCH_INTERNAL_ASSERT(in.x == nullptr && hseq == nullptr, "the input projection and hseq are the panel GEMM's");
  if (ahead) ahead->run_alone(sch);
  const StepGemm<A> recurrent(true, H, G, w, H, B);  // h @ W_hh^T
  for (int64_t s = 0; s < sch.steps(); ++s) {
    const Step st = sch.step(s);
    recurrent(st.rows, hs, H, A(0), g, G);
    for_units(st.rows, H, cost_per_unit, [&](int64_t b, int64_t j0, int64_t j1) { cell(st, b, j0, j1); });
  }
}

// The backward time loop of a cell without projection, steps in reverse: cell(st, b, j0, j1) for units
// [j0, j1) of every row b (writing their columns of the step's rows of dg, [N, gates * H], and of dh),
// then dh (+)= dg_step @ W_hh (added to dh's contents with accumulate).
// - On the panel GEMM (float accumulation), each team member runs the cell of its units and, once every
//   member has, computes dh's columns of those units, the only ones its next cell reads; or, split by rows
//   (team_plan), runs its rows' cells and dh rows and never meets the others. With `behind` (whose work
//   reads the steps' dg rows), each step's cells publish the step.
// - Otherwise the cell over for_units, then one StepGemm (MKL).
template <typename A, typename Cell>
void backward_steps(const Schedule& sch, const A* w, int64_t gates, int64_t H, int64_t B, const A* dg, A* dh,
                    bool accumulate, int64_t cost_per_unit, const Cell& cell, BesideLoop* behind = nullptr) {
  const int64_t G = gates * H;
  if constexpr (std::is_same_v<A, float>) {
    if (const vec::PanelGemmFn panel = panel_gemm_kernel(B)) {
      const PanelWeights recurrent(w, H, false, G, H, 1);
      const TeamPlan plan = team_plan(2.0 * B * G * H, recurrent.blocks(), B);
      run_team(plan, sch, behind, [&](int64_t thread, int64_t threads) {
        const TeamShare my(recurrent, H, B, thread, threads, plan.by_rows);
        for (int64_t s = sch.steps() - 1; s >= 0; --s) {
          const Step st = sch.step(s);
          const int64_t r0 = my.r0, r1 = my.end(st.rows);
          for (int64_t b = r0; b < r1; ++b) cell(st, b, my.j0, my.j1);
          if (behind) behind->publish(sch.steps() - s);
          plan.barrier(threads);
          if (r1 > r0)
            recurrent.gemm(panel, r1 - r0, dg + (st.row + r0) * G, G, dh + r0 * H, H, my.b0, my.b1, accumulate, false,
                           zigzag(s));
        }
      });
      return;
    }
  }
  const StepGemm<A> recurrent(false, G, H, w, H, B);  // dg @ W_hh
  for (int64_t s = sch.steps() - 1; s >= 0; --s) {
    const Step st = sch.step(s);
    for_units(st.rows, H, cost_per_unit, [&](int64_t b, int64_t j0, int64_t j1) { cell(st, b, j0, j1); });
    recurrent(st.rows, dg + st.row * G, G, accumulate ? A(1) : A(0), dh, H);
  }
  if (behind) behind->run_alone(sch);
}

// Row pointer of h_{t-1} (or c_{t-1}) for row b of step st: from the previous step's rows of
// `seq` ([N, width]) or from the initial state `init` ([B, width]).
template <typename T>
inline const T* prev_row(const Step& st, int64_t b, const T* seq, const T* init, int64_t width) {
  return b < st.prev_rows ? seq + (st.prev_row + b) * width : init + b * width;
}

// The h_{t-1} rows of the schedule's steps [s0, s1) into dst, row r of the sequence at dst + (r - first) * width.
template <typename T, typename A>
void gather_prev_rows(const Schedule& sch, int64_t s0, int64_t s1, const T* seq, const T* init, int64_t width, A* dst,
                      int64_t first) {
  for (int64_t i = s0; i < s1; ++i) {
    const Step st = sch.step(i);
    for (int64_t b = 0; b < st.rows; ++b) {
      const T* src = prev_row(st, b, seq, init, width);
      A* row = dst + (st.row + b - first) * width;
      for (int64_t j = 0; j < width; ++j) row[j] = static_cast<A>(src[j]);
    }
  }
}

// [N, width] in A: every step's h_{t-1} rows, aligned with xw's rows (for dW = dgates^T @ h_prev).
template <typename T, typename A>
at::Tensor gather_prev(const Schedule& sch, const at::Tensor& seq, const at::Tensor& init, int64_t width) {
  at::Tensor out = empty_seq({sch.rows(), width}, acc_options<A>());
  const T* s = seq.const_data_ptr<T>();
  const T* h0 = init.const_data_ptr<T>();
  A* o = out.data_ptr<A>();
  at::parallel_for(0, sch.steps(), std::max<int64_t>(1, 65536 / std::max<int64_t>(width, 1)),
                   [&](int64_t lo, int64_t hi) { gather_prev_rows(sch, lo, hi, s, h0, width, o, 0); });
  return out;
}

// A schedule over the checked batch_sizes (kept alive by the caller).
inline Schedule schedule(const Dims& d, const at::Tensor& bs_contig, bool reverse) {
  return Schedule(d.packed ? bs_contig.const_data_ptr<int64_t>() : nullptr, d.T, d.B, reverse);
}

inline at::Tensor contiguous_sizes(const std::optional<at::Tensor>& bs) {
  return bs.has_value() ? bs->contiguous() : at::Tensor();
}

// Runs f.template operator()<T>() for the fused CPU dtypes.
template <typename F>
decltype(auto) dispatch(const char* op, const char* name, const at::Tensor& t, const F& f) {
  check_dtype(op, name, t, {at::kFloat, at::kDouble, at::kBFloat16});
  switch (t.scalar_type()) {
    case at::kDouble: return f.template operator()<double>();
    case at::kBFloat16: return f.template operator()<c10::BFloat16>();
    default: return f.template operator()<float>();
  }
}

}  // namespace fastrnn::cpu
