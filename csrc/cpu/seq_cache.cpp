// The allocator of the sequence buffers (empty_seq in common.h): blocks of at least kMinBytes are kept
// when freed, up to kCapBytes in all, and handed out again to requests of about their size.
// Why: glibc gives a freed block over its mmap threshold (at most 32 MB) back to the kernel, so each
// call's fresh buffers page-fault again on first touch. A (200,32,512,512) LSTM fwd+bwd allocates
// about 160 MB of them, 30k+ faults per call, a fifth of its time in the kernel; torch's own buffers
// pay the same, but oneDNN keeps its workspace. Offering them to transparent huge pages instead
// (as this code did) spared most faults but stalled calls in direct compaction (up to +30%).
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <pthread.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

#include "cpu/seq_cache.h"

namespace fastrnn::cpu {
namespace {

constexpr size_t kMinBytes = size_t(1) << 20, kCapBytes = size_t(512) << 20, kAlign = 64;

class SeqCache final : public c10::Allocator {
 public:
  // Never destroyed: tensors freed during exit still give their blocks back to it.
  static SeqCache& instance() {
    static SeqCache* cache = [] {
      auto* created = new SeqCache();
      // A process forked while another thread held the lock (a DataLoader worker, say) gets a free one.
      pthread_atfork(nullptr, nullptr, [] { new (&instance().mutex_) std::mutex(); });
      return created;
    }();
    return *cache;
  }

  c10::DataPtr allocate(size_t n) override {
    if (n < kMinBytes) return c10::GetCPUAllocator()->allocate(n);
    const size_t size = (n + kMinBytes - 1) / kMinBytes * kMinBytes;
    Block* block = nullptr;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      // The smallest kept block that fits, unless it would waste over a quarter of itself.
      const auto it = free_.lower_bound(size);
      if (it != free_.end() && it->first <= size + size / 3) {
        block = it->second;
        kept_ -= it->first;
        free_.erase(it);
      }
    }
    if (block == nullptr) {
      void* data = std::aligned_alloc(kAlign, size);
      if (data == nullptr) {
        release();  // the kept blocks may be what the heap lacks
        data = std::aligned_alloc(kAlign, size);
      }
      TORCH_CHECK(data != nullptr, "fastrnn: out of memory allocating ", size, " bytes");
      block = new Block{data, size};
    }
    return {block->data, block, &SeqCache::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Frees every kept block (blocks in use stay theirs and are kept again when freed); returns their bytes.
  size_t release() {
    std::multimap<size_t, Block*> blocks;
    size_t bytes;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      blocks.swap(free_);
      bytes = kept_;
      kept_ = 0;
    }
    for (auto& [size, block] : blocks) {
      std::free(block->data);
      delete block;
    }
    return bytes;
  }

  size_t kept() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return kept_;
  }

 private:
  struct Block {
    void* data;
    size_t size;
  };

  static void give_back(void* ctx) { instance().keep(static_cast<Block*>(ctx)); }

  void keep(Block* block) {
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (kept_ + block->size <= kCapBytes) {
        kept_ += block->size;
        free_.emplace(block->size, block);
        return;
      }
    }
    std::free(block->data);
    delete block;
  }

  std::mutex mutex_;
  std::multimap<size_t, Block*> free_;  // kept blocks by size
  size_t kept_ = 0;
};

}  // namespace

c10::Allocator* seq_allocator() { return &SeqCache::instance(); }
int64_t seq_cache_bytes() { return int64_t(SeqCache::instance().kept()); }
int64_t seq_cache_release() { return int64_t(SeqCache::instance().release()); }

}  // namespace fastrnn::cpu
