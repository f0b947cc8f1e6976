// Aligned buffers and a bounded pool of them. Every buffer is aligned to and sized in
// multiples of kChunkBlockBytes, so it can be used for O_DIRECT I/O as is.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace millpond {

class BufferPool;

// Faults in, ahead of a transfer of `bytes` into `p`, the whole pages of that range not yet
// backed, with one madvise(MADV_POPULATE_WRITE) instead of a trap per 4 KiB page: 3.3 GB/s
// against 1.9 where the bytes land in memory never touched (a fresh 1 GiB readAt buffer, on a
// machine of 2026-12-04). Pages already backed cost a page-table walk; a range under 64 KiB is
// left to the traps. Contents are unchanged; a kernel without the advice (before Linux 5.14)
// changes nothing.
void PrefaultForWrite(void* p, size_t bytes);

// An owned, aligned byte range. Returned to its pool (if any) when destroyed.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // How the memory will be used, which decides its page size (common/buffer_pool.cc).
  enum class Use { kOnce, kReused };
  // A buffer outside any pool; capacity rounds up to the block size. kReused: the caller keeps
  // it for many fills (a pool of its own).
  static AlignedBuffer Allocate(size_t bytes, Use use = Use::kOnce);
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& o) noexcept { *this = std::move(o); }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  char* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return data_ == nullptr; }

 private:
  friend class BufferPool;
  void Release();
  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t charged_ = 0;  // of its pool's budget (capacity_ unless acquired with AcquireCharged)
  BufferPool* pool_ = nullptr;
};

// Hands out AlignedBuffers while the bytes outstanding stay under `bytesMax`, and keeps
// released buffers by power-of-two size class for reuse (page faults on fresh 4 MiB
// allocations cost more than the copy they serve). Thread-safe.
class BufferPool {
 public:
  explicit BufferPool(size_t bytesMax);
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // Waits up to `timeoutMs` for budget. A request above bytesMax fails at once (kTooLarge).
  Status Acquire(size_t bytes, uint32_t timeoutMs, AlignedBuffer* out);
  // Never waits: kBusy when the budget is spent.
  Status TryAcquire(size_t bytes, AlignedBuffer* out);
  // A buffer for `bytes` that takes only `chargeBytes` (<= bytes) of the budget now; Charge()
  // takes more as it fills. For a receiver that reserves memory as bytes arrive, not as a
  // peer announces them (a peer that announces and sends nothing holds no budget).
  Status AcquireCharged(size_t bytes, size_t chargeBytes, uint32_t timeoutMs, AlignedBuffer* out);
  // Raises the budget `buffer` (from AcquireCharged on this pool) takes to `chargeBytes`
  // (at most its capacity), waiting up to timeoutMs; lowering is a no-op.
  Status Charge(AlignedBuffer* buffer, size_t chargeBytes, uint32_t timeoutMs);

  size_t bytesOutstanding() const;
  size_t bytesMax() const { return bytesMax_; }

 private:
  friend class AlignedBuffer;
  static constexpr int kClasses = 16;  // 4 KiB .. 128 MiB
  static int ClassOf(size_t bytes);
  // REQUIRES: budget for `charge` checked. charge == SIZE_MAX: the capacity.
  AlignedBuffer TakeLocked(size_t bytes, size_t charge = SIZE_MAX) REQUIRES(mu_);
  // Waits until `need` more bytes fit the budget or the deadline passes.
  Status WaitForBudgetLocked(size_t need, uint32_t timeoutMs) REQUIRES(mu_);
  void Return(char* data, size_t capacity, size_t charged) EXCLUDES(mu_);

  const size_t bytesMax_;
  mutable Mutex mu_;
  CondVar freed_;
  size_t outstanding_ GUARDED_BY(mu_) = 0;
  size_t cached_ GUARDED_BY(mu_) = 0;
  std::vector<char*> free_[kClasses] GUARDED_BY(mu_);
};

}  // namespace millpond
