#include "common/buffer_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>

#include <sys/mman.h>

#include "common/limits.h"

namespace millpond {

namespace {
constexpr size_t kAlign = limits::kChunkBlockBytes;
size_t RoundUp(size_t n, size_t to = kAlign) { return (n + to - 1) / to * to; }
// Memory a pool keeps, a huge page or more, is aligned to huge pages and advised to use them:
// its first touch then faults once per 2 MiB instead of once per 4 KiB, and a 4 MiB chunk
// buffer reused for the life of the process costs one fault, not 1024 (where page faults are
// dear: a machine of 2026-12-02 filled fresh 4 KiB pages at 0.30 GB/s, huge pages at 11.6;
// bench/results/memory.txt). Memory used once is not advised: under a hypervisor that takes
// back the guest's free huge pages (virtio-balloon free page reporting), every fresh huge page
// is a host fault, and a 1 GiB buffer filled at 0.35-0.45 GB/s in huge pages against 1.5-1.9
// in 4 KiB pages (bench/results/memory.txt, 2026-12-04). Madvise is a hint: where transparent
// huge pages are off it fails and nothing else changes.
char* AllocAligned(size_t capacity, AlignedBuffer::Use use) {
  if (use == AlignedBuffer::Use::kOnce || capacity < limits::kHugePageBytes)
    return static_cast<char*>(std::aligned_alloc(kAlign, capacity));
  const size_t rounded = RoundUp(capacity, limits::kHugePageBytes);
  void* p = std::aligned_alloc(limits::kHugePageBytes, rounded);
  if (p != nullptr) (void)madvise(p, rounded, MADV_HUGEPAGE);
  return static_cast<char*>(p);
}
}  // namespace

void PrefaultForWrite(void* p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
  // Below this the call saves a few traps at most, and costs a system call on every small read
  // into memory long backed (the common case).
  constexpr size_t kBytesMin = 64 * 1024;
  if (bytes < kBytesMin) return;
  constexpr uintptr_t kPage = 4096;
  const uintptr_t start = (reinterpret_cast<uintptr_t>(p) + kPage - 1) / kPage * kPage;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / kPage * kPage;
  if (end > start) (void)madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)bytes;
#endif
}

AlignedBuffer AlignedBuffer::Allocate(size_t bytes, Use use) {
  AlignedBuffer b;
  b.capacity_ = RoundUp(bytes == 0 ? 1 : bytes);
  b.data_ = AllocAligned(b.capacity_, use);
  if (b.data_ == nullptr) b.capacity_ = 0;
  return b;
}

AlignedBuffer::~AlignedBuffer() { Release(); }

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    Release();
    data_ = o.data_;
    capacity_ = o.capacity_;
    charged_ = o.charged_;
    pool_ = o.pool_;
    o.data_ = nullptr;
    o.capacity_ = 0;
    o.charged_ = 0;
    o.pool_ = nullptr;
  }
  return *this;
}

void AlignedBuffer::Release() {
  if (data_ == nullptr) return;
  if (pool_) pool_->Return(data_, capacity_, charged_);
  else std::free(data_);
  data_ = nullptr;
  capacity_ = 0;
  charged_ = 0;
  pool_ = nullptr;
}

BufferPool::BufferPool(size_t bytesMax) : bytesMax_(bytesMax) {}

BufferPool::~BufferPool() {
  for (auto& list : free_)
    for (char* p : list) std::free(p);
}

int BufferPool::ClassOf(size_t bytes) {
  int c = 0;
  size_t size = kAlign;
  while (size < bytes && c < kClasses - 1) {
    size <<= 1;
    c++;
  }
  return c;
}

AlignedBuffer BufferPool::TakeLocked(size_t bytes, size_t charge) {
  int c = ClassOf(bytes);
  size_t capacity = kAlign << c;
  if (capacity < bytes) capacity = RoundUp(bytes);  // beyond the largest class: exact size
  AlignedBuffer b;
  if (capacity == (kAlign << c) && !free_[c].empty()) {
    b.data_ = free_[c].back();
    free_[c].pop_back();
    cached_ -= capacity;
  } else {
    b.data_ = AllocAligned(capacity, AlignedBuffer::Use::kReused);
    if (b.data_ == nullptr) return b;
  }
  b.capacity_ = capacity;
  b.charged_ = charge == SIZE_MAX ? capacity : charge;
  b.pool_ = this;
  outstanding_ += b.charged_;
  return b;
}

Status BufferPool::WaitForBudgetLocked(size_t need, uint32_t timeoutMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  while (outstanding_ + need > bytesMax_) {
    if (!freed_.WaitUntil(&mu_, deadline) && outstanding_ + need > bytesMax_)
      return Status::TimedOut("no buffer memory free within " + std::to_string(timeoutMs) + " ms");
  }
  return Status::OK();
}

Status BufferPool::AcquireCharged(size_t bytes, size_t chargeBytes, uint32_t timeoutMs, AlignedBuffer* out) {
  size_t need = kAlign << ClassOf(bytes);
  if (need < bytes) need = RoundUp(bytes);
  if (need > bytesMax_) return Status::TooLarge("buffer of " + std::to_string(bytes) + " bytes exceeds the pool");
  size_t charge = std::min(RoundUp(chargeBytes), need);
  MutexLock lock(&mu_);
  MP_RETURN_IF_ERROR(WaitForBudgetLocked(charge, timeoutMs));
  *out = TakeLocked(bytes, charge);
  return out->empty() ? Status::NoSpace("out of memory for a buffer") : Status::OK();
}

Status BufferPool::Charge(AlignedBuffer* buffer, size_t chargeBytes, uint32_t timeoutMs) {
  if (buffer->pool_ != this) return Status::InvalidArgument("the buffer is not from this pool");
  size_t target = std::min(RoundUp(chargeBytes), buffer->capacity_);
  if (target <= buffer->charged_) return Status::OK();
  size_t more = target - buffer->charged_;
  MutexLock lock(&mu_);
  MP_RETURN_IF_ERROR(WaitForBudgetLocked(more, timeoutMs));
  outstanding_ += more;
  buffer->charged_ = target;
  return Status::OK();
}

Status BufferPool::Acquire(size_t bytes, uint32_t timeoutMs, AlignedBuffer* out) {
  size_t need = kAlign << ClassOf(bytes);
  if (need < bytes) need = RoundUp(bytes);
  if (need > bytesMax_) return Status::TooLarge("buffer of " + std::to_string(bytes) + " bytes exceeds the pool");
  MutexLock lock(&mu_);
  MP_RETURN_IF_ERROR(WaitForBudgetLocked(need, timeoutMs));
  *out = TakeLocked(bytes);
  return out->empty() ? Status::NoSpace("out of memory for a buffer") : Status::OK();
}

Status BufferPool::TryAcquire(size_t bytes, AlignedBuffer* out) {
  size_t need = kAlign << ClassOf(bytes);
  if (need < bytes) need = RoundUp(bytes);
  MutexLock lock(&mu_);
  if (outstanding_ + need > bytesMax_) return Status::Busy("buffer pool exhausted");
  *out = TakeLocked(bytes);
  return out->empty() ? Status::NoSpace("out of memory for a buffer") : Status::OK();
}

void BufferPool::Return(char* data, size_t capacity, size_t charged) {
  {
    MutexLock lock(&mu_);
    outstanding_ -= charged;
    int c = ClassOf(capacity);
    // Keep at most half the budget cached; the rest goes back to the allocator.
    if ((kAlign << c) == capacity && cached_ + capacity <= bytesMax_ / 2) {
      free_[c].push_back(data);
      cached_ += capacity;
      data = nullptr;
    }
  }
  freed_.SignalAll();
  if (data) std::free(data);
}

size_t BufferPool::bytesOutstanding() const {
  MutexLock lock(&mu_);
  return outstanding_;
}

}  // namespace millpond
