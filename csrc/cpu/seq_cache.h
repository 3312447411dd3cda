// The cache of the cpu backend's sequence buffers (seq_cache.cpp), which keeps large freed blocks for
// reuse: its allocator (for empty_seq in common.h), and the two ops that report and free what it keeps
// (fastrnn::cached_bytes, fastrnn::empty_cache; registration.cpp).
#pragma once
#include <c10/core/Allocator.h>

#include <cstdint>

namespace fastrnn::cpu {

c10::Allocator* seq_allocator();
// Bytes of the blocks kept for reuse (not those in use).
int64_t seq_cache_bytes();
// Frees the kept blocks; returns their bytes.
int64_t seq_cache_release();

}  // namespace fastrnn::cpu
