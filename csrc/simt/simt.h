// A SIMT emulator: CUDA's execution model on the CPU, so kernel sources written for nvcc compile
// with the host compiler (-DFASTRNN_SIMT_EMULATION) and run on CPU memory, in CI and for debugging.
//
// - Every CUDA thread is a fiber (ucontext) with a small stack; the threads of a block are
//   scheduled cooperatively: each runs until it blocks (__syncthreads, a warp collective, grid
//   sync) or exits, then the next. Barriers really block, so a missing __syncthreads reads stale
//   or poisoned shared memory instead of hiding behind lock-step execution.
// - Blocks run one after another on the launching thread; a cooperative launch runs every block
//   at once, one OS thread per block, so cooperative_groups grid sync works.
// - Static __shared__ variables are thread_local (one copy per OS thread, hence per running
//   block); dynamic shared memory (SIMT_DYNAMIC_SHARED) is a fresh buffer per block filled with
//   0xFF bytes (NaN as float) and bounds-checked.
// - simt::ptr<T> is a bounds-checked pointer for kernel parameters: an out-of-bounds access
//   throws simt::error, which the launch rethrows on the host (RuntimeError in Python).
// - Deadlocks (threads waiting at different barriers, a warp collective naming an exited lane)
//   and divergent __syncthreads (threads of a block at different calls) throw instead of
//   hanging; exited threads count as arrived at __syncthreads. Launches are serialized by one
//   mutex. Not emulated: dynamic parallelism, texture/constant memory, memory-model reordering.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __restrict__ __restrict
// A block-scope thread_local is static: one instance per OS thread, i.e. per running block.
#define __shared__ thread_local

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr int warpSize = 32;

namespace simt {

class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

enum class State : unsigned char { Ready, AtBlockBarrier, AtWarpBarrier, AtGridBarrier, Done };

struct Fiber {
  ucontext_t ctx;  // holds pointers into itself: fibers never move once created
  uint3 tid;
  unsigned rank;
  State state;
  unsigned mask;    // the lanes a warp collective waits for
  const void* site; // the __syncthreads call a thread waits at
  uint64_t value;   // this lane's contribution to a warp collective
};

// Grid-wide barrier between the OS threads of a cooperative launch.
class GridBarrier {
 public:
  explicit GridBarrier(unsigned blocks) : blocks_(blocks) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(m_);
    check_locked();
    const uint64_t gen = generation_;
    if (++arrived_ == blocks_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != gen || aborted_ || finished_ > 0; });
    if (generation_ == gen) check_locked();
  }
  void finish() { notify([this] { ++finished_; }); }
  void abort() { notify([this] { aborted_ = true; }); }

 private:
  template <typename F>
  void notify(F f) {
    std::lock_guard<std::mutex> lock(m_);
    f();
    cv_.notify_all();
  }
  void check_locked() const {
    if (aborted_) throw error("simt: grid.sync() abandoned: another block failed");
    if (finished_ > 0) throw error("simt: deadlock: a block exited while others wait at grid.sync()");
  }
  std::mutex m_;
  std::condition_variable cv_;
  unsigned blocks_, arrived_ = 0, finished_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
};

struct Block {
  const char* kernel;
  uint3 idx;
  dim3 dim, grid;
  const std::function<void()>* body;
  std::unique_ptr<Fiber[]> fibers;
  unsigned nthreads;
  ucontext_t scheduler;
  std::exception_ptr error;
  std::vector<unsigned char> dynamic_smem;
  GridBarrier* grid_barrier;  // null unless cooperative
};

inline thread_local Block* cur_block = nullptr;
inline thread_local Fiber* cur_fiber = nullptr;

// Fiber stacks: mapped once per OS thread and reused; a PROT_NONE guard page below each one
// turns a stack overflow into a fault instead of silent corruption.
class StackPool {
 public:
  static constexpr size_t kStack = 64 * 1024;
  void* get(size_t i) {
    while (stacks_.size() <= i) {
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      void* p = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw error("simt: cannot map a fiber stack");
      mprotect(p, page, PROT_NONE);
      stacks_.push_back(p);
    }
    return static_cast<char*>(stacks_[i]) + static_cast<size_t>(sysconf(_SC_PAGESIZE));
  }
  ~StackPool() {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    for (void* p : stacks_) munmap(p, kStack + page);
  }

 private:
  std::vector<void*> stacks_;
};
inline thread_local StackPool stack_pool;

inline std::string where() {
  if (cur_block == nullptr || cur_fiber == nullptr) return "";
  const Block& b = *cur_block;
  const uint3 t = cur_fiber->tid;
  return " (kernel " + std::string(b.kernel) + ", block (" + std::to_string(b.idx.x) + "," +
         std::to_string(b.idx.y) + "," + std::to_string(b.idx.z) + "), thread (" + std::to_string(t.x) + "," +
         std::to_string(t.y) + "," + std::to_string(t.z) + "))";
}

inline Fiber& self(const char* what) {
  if (cur_fiber == nullptr) throw error(std::string("simt: ") + what + " called outside a kernel");
  return *cur_fiber;
}

// Suspends the calling thread in `state` until the scheduler releases it.
inline void block_on(State state, const char* what, const void* site = nullptr) {
  Fiber& f = self(what);
  f.state = state;
  f.site = site;
  swapcontext(&f.ctx, &cur_block->scheduler);
}

inline void fiber_entry() {
  Block* b = cur_block;
  Fiber* f = cur_fiber;
  try {
    (*b->body)();
  } catch (...) {
    if (!b->error) b->error = std::current_exception();
  }
  f->state = State::Done;
  swapcontext(&f->ctx, &b->scheduler);  // never resumed
}

inline unsigned lanes_present(const Block& b, unsigned warp_base) {
  const unsigned lanes = std::min(32u, b.nthreads - warp_base);
  return lanes == 32 ? ~0u : (1u << lanes) - 1;
}

// Releases warp collectives whose lanes have all arrived; true if any was released.
inline bool release_warps(Block& b) {
  bool released = false;
  for (unsigned base = 0; base < b.nthreads; base += 32) {
    const unsigned present = lanes_present(b, base);
    for (unsigned lane = 0; base + lane < b.nthreads; ++lane) {
      Fiber& f = b.fibers[base + lane];
      if (f.state != State::AtWarpBarrier) continue;
      const unsigned mask = f.mask & present;
      if (!(mask >> lane & 1u))
        throw error("simt: a warp collective's mask must include the calling lane (kernel " + std::string(b.kernel) + ")");
      bool complete = true;
      for (unsigned k = 0; k < 32; ++k) {
        if (!(mask >> k & 1u)) continue;
        const Fiber& g = b.fibers[base + k];
        if (g.state == State::Done)
          throw error("simt: deadlock: a warp collective waits for lane " + std::to_string(k) +
                      ", which has exited (kernel " + std::string(b.kernel) + ")");
        if (g.state != State::AtWarpBarrier) complete = false;
        else if ((g.mask & present) != mask)
          throw error("simt: lanes of one warp call a warp collective with different masks (kernel " +
                      std::string(b.kernel) + ")");
      }
      if (!complete) continue;
      for (unsigned k = 0; k < 32; ++k)
        if (mask >> k & 1u) b.fibers[base + k].state = State::Ready;
      released = true;
    }
  }
  return released;
}

// Called when no thread is runnable: releases a barrier, or throws on a deadlock.
inline void release(Block& b) {
  if (release_warps(b)) return;
  unsigned live = 0, at_block = 0, at_grid = 0;
  for (unsigned i = 0; i < b.nthreads; ++i) {
    const State s = b.fibers[i].state;
    live += s != State::Done;
    at_block += s == State::AtBlockBarrier;
    at_grid += s == State::AtGridBarrier;
  }
  if (at_grid == live && b.grid_barrier == nullptr)
    throw error("simt: grid.sync() needs a cooperative launch (kernel " + std::string(b.kernel) + ")");
  if (at_grid == live) b.grid_barrier->arrive_and_wait();
  if (at_block == live) {
    const void* site = nullptr;
    for (unsigned i = 0; i < b.nthreads; ++i) {
      const Fiber& f = b.fibers[i];
      if (f.state == State::Done) continue;
      if (site != nullptr && f.site != site)
        throw error("simt: divergent barrier: threads of a block wait at different __syncthreads() calls (kernel " +
                    std::string(b.kernel) + ")");
      site = f.site;
    }
  }
  if (at_block != live && at_grid != live)
    throw error("simt: deadlock: of " + std::to_string(live) + " running threads " + std::to_string(at_block) +
                " wait at __syncthreads, " + std::to_string(at_grid) + " at grid.sync and the rest at warp "
                "collectives that cannot complete (kernel " + std::string(b.kernel) + ")");
  for (unsigned i = 0; i < b.nthreads; ++i)
    if (b.fibers[i].state != State::Done) b.fibers[i].state = State::Ready;
}

inline void run_block(Block& b) {
  b.nthreads = b.dim.x * b.dim.y * b.dim.z;
  b.fibers.reset(new Fiber[b.nthreads]);
  for (unsigned r = 0; r < b.nthreads; ++r) {
    Fiber& f = b.fibers[r];
    f.tid = {r % b.dim.x, r / b.dim.x % b.dim.y, r / (b.dim.x * b.dim.y)};
    f.rank = r;
    f.state = State::Ready;
    f.mask = 0;
    f.value = 0;
    f.site = nullptr;
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = stack_pool.get(r);
    f.ctx.uc_stack.ss_size = StackPool::kStack;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, fiber_entry, 0);
  }
  std::fill(b.dynamic_smem.begin(), b.dynamic_smem.end(), 0xFF);
  cur_block = &b;
  for (;;) {
    bool live = false;
    for (unsigned r = 0; r < b.nthreads && !b.error; ++r) {
      Fiber& f = b.fibers[r];
      if (f.state == State::Ready) {
        cur_fiber = &f;
        swapcontext(&b.scheduler, &f.ctx);
        cur_fiber = nullptr;
      }
      live |= f.state != State::Done;
    }
    if (b.error) break;
    if (!live) break;
    try {
      release(b);
    } catch (...) {
      b.error = std::current_exception();
      break;
    }
  }
  cur_block = nullptr;
}

inline std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

inline void check_config(const char* kernel, dim3 grid, dim3 block, size_t smem) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  const bool ok = grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= 65535 && grid.z <= 65535 &&
                  threads >= 1 && threads <= 1024 && block.x <= 1024 && block.y <= 1024 && block.z <= 64 &&
                  smem <= 48 * 1024;
  if (!ok)
    throw error("simt: invalid launch configuration for kernel " + std::string(kernel) + ": grid (" +
                std::to_string(grid.x) + "," + std::to_string(grid.y) + "," + std::to_string(grid.z) +
                "), block (" + std::to_string(block.x) + "," + std::to_string(block.y) + "," +
                std::to_string(block.z) + "), " + std::to_string(smem) + " bytes of dynamic shared memory");
}

inline uint3 block_index(dim3 grid, uint64_t b) {
  return {unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / (uint64_t(grid.x) * grid.y))};
}

inline void run_grid(const char* kernel, dim3 grid, dim3 block, size_t smem, bool cooperative,
                     const std::function<void()>& body) {
  check_config(kernel, grid, block, smem);
  const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
  std::lock_guard<std::mutex> lock(launch_mutex());
  auto make = [&](uint64_t i, GridBarrier* barrier) {
    Block b;
    b.kernel = kernel;
    b.idx = block_index(grid, i);
    b.dim = block;
    b.grid = grid;
    b.body = &body;
    b.dynamic_smem.resize(smem);
    b.grid_barrier = barrier;
    return b;
  };
  if (!cooperative) {
    for (uint64_t i = 0; i < blocks; ++i) {
      Block b = make(i, nullptr);
      run_block(b);
      if (b.error) std::rethrow_exception(b.error);
    }
    return;
  }
  if (blocks > 256) throw error("simt: a cooperative launch of kernel " + std::string(kernel) + " may have at most 256 blocks");
  GridBarrier barrier(static_cast<unsigned>(blocks));
  std::mutex error_mutex;
  std::exception_ptr first_error;
  std::vector<std::thread> threads;
  for (uint64_t i = 0; i < blocks; ++i) {
    threads.emplace_back([&, i] {
      Block b = make(i, &barrier);
      run_block(b);
      if (b.error) {
        std::lock_guard<std::mutex> l(error_mutex);
        if (!first_error) first_error = b.error;
        barrier.abort();
      } else {
        barrier.finish();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first_error) std::rethrow_exception(first_error);
}

// Warp collectives: every lane deposits a value and waits for the lanes of `mask`; after the
// first release each reads what it needs, the second keeps a fast lane from overwriting its
// value before the others have read it.
template <typename R, typename F>
R warp_exchange(unsigned mask, uint64_t value, const char* what, F read) {
  Fiber& f = self(what);
  f.value = value;
  f.mask = mask;
  block_on(State::AtWarpBarrier, what);
  const unsigned base = f.rank & ~31u;
  const unsigned present = lanes_present(*cur_block, base);
  const R r = read(cur_block->fibers.get() + base, mask & present, f.rank & 31u);
  f.mask = mask;
  block_on(State::AtWarpBarrier, what);
  return r;
}

template <typename T>
T shfl(unsigned mask, T var, int src, const char* what) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a type larger than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  const int self_lane = static_cast<int>(self(what).rank & 31u);
  return warp_exchange<T>(mask, bits, what, [&](const Fiber* warp, unsigned active, unsigned) {
    const int lane = src < 0 ? self_lane : src;
    if (!(active >> lane & 1u))
      throw error(std::string("simt: ") + what + " reads lane " + std::to_string(lane) +
                  ", which is not in the mask" + where());
    T out;
    std::memcpy(&out, &warp[lane].value, sizeof(T));
    return out;
  });
}

inline void check_width(int width, const char* what) {
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    throw error(std::string("simt: ") + what + " width must be a power of two <= 32, got " + std::to_string(width));
}

}  // namespace detail

// ---- kernel launch ----------------------------------------------------------------------------

// Runs kernel(args...) as a grid of threads; args are converted to the kernel's parameter types
// once, as CUDA copies them, and each thread gets its own copy of the parameters.
template <typename... P, typename... A>
void launch(const char* name, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, bool cooperative,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "wrong number of kernel arguments");
  std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
  const std::function<void()> body = [&] { std::apply(kernel, params); };
  detail::run_grid(name, grid, block, smem, cooperative, body);
}

// ---- bounds-checked pointer -------------------------------------------------------------------

template <typename T>
class ptr {
 public:
  ptr() = default;
  ptr(std::nullptr_t) {}
  // `size` elements starting at `base` may be accessed.
  ptr(T* base, int64_t size, int64_t offset = 0) : base_(base), size_(size), offset_(offset) {}
  template <typename U, typename = std::enable_if_t<std::is_convertible_v<U*, T*>>>
  ptr(const ptr<U>& o) : base_(o.base_), size_(o.size_), offset_(o.offset_) {}

  T& operator[](int64_t i) const { return *checked(offset_ + i); }
  T& operator*() const { return *checked(offset_); }
  T* operator->() const { return checked(offset_); }
  ptr operator+(int64_t i) const { return ptr(base_, size_, offset_ + i); }
  ptr operator-(int64_t i) const { return ptr(base_, size_, offset_ - i); }
  ptr& operator+=(int64_t i) { offset_ += i; return *this; }
  ptr& operator-=(int64_t i) { offset_ -= i; return *this; }
  ptr& operator++() { ++offset_; return *this; }
  ptr& operator--() { --offset_; return *this; }
  int64_t operator-(const ptr& o) const { return (base_ + offset_) - (o.base_ + o.offset_); }
  bool operator==(const ptr& o) const { return base_ + offset_ == o.base_ + o.offset_; }
  bool operator!=(const ptr& o) const { return !(*this == o); }
  explicit operator bool() const { return base_ != nullptr; }

 private:
  template <typename U>
  friend class ptr;
  T* checked(int64_t i) const {
    if (base_ == nullptr) throw error("simt: access through a null pointer" + detail::where());
    if (i < 0 || i >= size_)
      throw error("simt: out-of-bounds access: element " + std::to_string(i) + " of an allocation of " +
                  std::to_string(size_) + " elements" + detail::where());
    return base_ + i;
  }
  T* base_ = nullptr;
  int64_t size_ = 0, offset_ = 0;
};

// The dynamic shared memory of the running block (SIMT_DYNAMIC_SHARED).
template <typename T>
ptr<T> dynamic_shared() {
  detail::self("dynamic shared memory");
  auto& s = detail::cur_block->dynamic_smem;
  return ptr<T>(reinterpret_cast<T*>(s.data()), static_cast<int64_t>(s.size() / sizeof(T)));
}

}  // namespace simt

#define SIMT_DYNAMIC_SHARED(T, name) ::simt::ptr<T> name = ::simt::dynamic_shared<T>()

// ---- built-in variables -----------------------------------------------------------------------

#define threadIdx (::simt::detail::self("threadIdx").tid)
#define blockIdx (static_cast<const uint3&>(::simt::detail::cur_block->idx))
#define blockDim (static_cast<const dim3&>(::simt::detail::cur_block->dim))
#define gridDim (static_cast<const dim3&>(::simt::detail::cur_block->grid))

// ---- synchronization and warp collectives -----------------------------------------------------

// Not inlined, so its return address identifies the call site: threads of a block waiting at
// different __syncthreads() calls is a divergent barrier, an error.
__attribute__((noinline)) inline void __syncthreads() {
  ::simt::detail::block_on(::simt::detail::State::AtBlockBarrier, "__syncthreads", __builtin_return_address(0));
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::simt::detail::warp_exchange<int>(mask, 0, "__syncwarp", [](auto, unsigned, unsigned) { return 0; });
}
inline unsigned __activemask() {
  auto& b = *::simt::detail::cur_block;
  const unsigned base = ::simt::detail::self("__activemask").rank & ~31u;
  unsigned m = 0;
  for (unsigned k = 0; base + k < b.nthreads && k < 32; ++k)
    if (b.fibers[base + k].state != ::simt::detail::State::Done) m |= 1u << k;
  return m;
}

template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize) {
  ::simt::detail::check_width(width, "__shfl_sync");
  const int lane = static_cast<int>(::simt::detail::self("__shfl_sync").rank & 31u);
  return ::simt::detail::shfl(mask, var, (lane & ~(width - 1)) + (src_lane & (width - 1)), "__shfl_sync");
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  ::simt::detail::check_width(width, "__shfl_up_sync");
  const int lane = static_cast<int>(::simt::detail::self("__shfl_up_sync").rank & 31u);
  const int src = lane - static_cast<int>(delta);
  return ::simt::detail::shfl(mask, var, src < (lane & ~(width - 1)) ? -1 : src, "__shfl_up_sync");
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  ::simt::detail::check_width(width, "__shfl_down_sync");
  const int lane = static_cast<int>(::simt::detail::self("__shfl_down_sync").rank & 31u);
  const int src = lane + static_cast<int>(delta);
  return ::simt::detail::shfl(mask, var, src >= (lane & ~(width - 1)) + width ? -1 : src, "__shfl_down_sync");
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  ::simt::detail::check_width(width, "__shfl_xor_sync");
  const int lane = static_cast<int>(::simt::detail::self("__shfl_xor_sync").rank & 31u);
  const int src = lane ^ lane_mask;
  // A lane may read from earlier groups of `width` lanes, never from later ones (own value then).
  return ::simt::detail::shfl(mask, var, src >= (lane & ~(width - 1)) + width ? -1 : src, "__shfl_xor_sync");
}

inline unsigned __ballot_sync(unsigned mask, int pred) {
  return ::simt::detail::warp_exchange<unsigned>(
      mask, pred != 0, "__ballot_sync", [](const ::simt::detail::Fiber* warp, unsigned active, unsigned) {
        unsigned r = 0;
        for (unsigned k = 0; k < 32; ++k)
          if ((active >> k & 1u) && warp[k].value) r |= 1u << k;
        return r;
      });
}
inline int __all_sync(unsigned mask, int pred) {
  return ::simt::detail::warp_exchange<int>(
      mask, pred != 0, "__all_sync", [](const ::simt::detail::Fiber* warp, unsigned active, unsigned) {
        for (unsigned k = 0; k < 32; ++k)
          if ((active >> k & 1u) && !warp[k].value) return 0;
        return 1;
      });
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }

namespace cooperative_groups {
class grid_group {
 public:
  void sync() const { ::simt::detail::block_on(::simt::detail::State::AtGridBarrier, "grid.sync"); }
  bool is_valid() const { return ::simt::detail::cur_block && ::simt::detail::cur_block->grid_barrier; }
  unsigned long long size() const {
    const auto& b = *::simt::detail::cur_block;
    return 1ull * b.grid.x * b.grid.y * b.grid.z * b.dim.x * b.dim.y * b.dim.z;
  }
  unsigned long long thread_rank() const {
    const auto& b = *::simt::detail::cur_block;
    const unsigned long long block = b.idx.x + 1ull * b.grid.x * (b.idx.y + 1ull * b.grid.y * b.idx.z);
    return block * b.dim.x * b.dim.y * b.dim.z + ::simt::detail::self("thread_rank").rank;
  }
};
class thread_block {
 public:
  void sync() const { __syncthreads(); }
  unsigned size() const { return ::simt::detail::cur_block->nthreads; }
  unsigned thread_rank() const { return ::simt::detail::self("thread_rank").rank; }
  dim3 group_index() const { return ::simt::detail::cur_block->idx; }
  dim3 thread_index() const { return ::simt::detail::self("thread_index").tid; }
};
inline grid_group this_grid() { return {}; }
inline thread_block this_thread_block() { return {}; }
inline void sync(const grid_group& g) { g.sync(); }
inline void sync(const thread_block& g) { g.sync(); }
}  // namespace cooperative_groups

// ---- atomics ------------------------------------------------------------------------------------
// Real atomics: the blocks of a cooperative launch run on several OS threads.

template <typename T>
T atomicAdd(T* address, T val) { return std::atomic_ref<T>(*address).fetch_add(val); }
template <typename T>
T atomicSub(T* address, T val) { return std::atomic_ref<T>(*address).fetch_sub(val); }
template <typename T>
T atomicExch(T* address, T val) { return std::atomic_ref<T>(*address).exchange(val); }
template <typename T>
T atomicAnd(T* address, T val) { return std::atomic_ref<T>(*address).fetch_and(val); }
template <typename T>
T atomicOr(T* address, T val) { return std::atomic_ref<T>(*address).fetch_or(val); }
template <typename T>
T atomicXor(T* address, T val) { return std::atomic_ref<T>(*address).fetch_xor(val); }
template <typename T>
T atomicCAS(T* address, T compare, T val) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);
  return compare;  // the old value either way
}
template <typename T>
T atomicMax(T* address, T val) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (old < val && !a.compare_exchange_weak(old, val)) {
  }
  return old;
}
template <typename T>
T atomicMin(T* address, T val) {
  std::atomic_ref<T> a(*address);
  T old = a.load();
  while (val < old && !a.compare_exchange_weak(old, val)) {
  }
  return old;
}

// ---- integer and float intrinsics -------------------------------------------------------------

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
template <typename T>
T __ldg(const T* p) { return *p; }

#include "simt_half.h"
