// BufferPool: aligned, block-rounded buffers handed out under a byte budget.
#include "common/buffer_pool.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <thread>
#include <vector>

namespace millpond {
namespace {

constexpr size_t kBlock = 4096;

bool Aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kBlock == 0; }

TEST(AlignedBuffer, AllocateIsAlignedAndRoundsUpToBlocks) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{4095}, size_t{4096}, size_t{4097}, size_t{1} << 20}) {
    AlignedBuffer b = AlignedBuffer::Allocate(n);
    ASSERT_FALSE(b.empty()) << n;
    EXPECT_TRUE(Aligned(b.data())) << n;
    EXPECT_EQ(b.capacity() % kBlock, 0u) << n;
    EXPECT_GE(b.capacity(), n);
    EXPECT_LT(b.capacity(), n + kBlock + (n == 0 ? kBlock : 0));
  }
}

TEST(AlignedBuffer, MoveTransfersOwnership) {
  AlignedBuffer a = AlignedBuffer::Allocate(100);
  char* p = a.data();
  AlignedBuffer b = std::move(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(b.data(), p);
}

// Pages of `bytes` from `p` (page-aligned) the kernel reports resident.
size_t ResidentPages(char* p, size_t bytes) {
  std::vector<unsigned char> v(bytes / kBlock);
  if (mincore(p, bytes, v.data()) != 0) return SIZE_MAX;
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

TEST(PrefaultForWrite, BacksTheWholePagesOfALargeRangeAndKeepsTheirBytes) {
  constexpr size_t kBytes = 64 * kBlock;
  char* map = static_cast<char*>(mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(map, MAP_FAILED);
  map[10 * kBlock + 7] = 42;  // one page touched before, with a byte to keep
  ASSERT_EQ(ResidentPages(map, kBytes), 1u);
  // An unaligned range: pages 9 (partly covered: left alone) to 39 (partly covered: left alone).
  PrefaultForWrite(map + 9 * kBlock + 100, 30 * kBlock);
  EXPECT_EQ(ResidentPages(map + 10 * kBlock, 29 * kBlock), 29u);
  EXPECT_EQ(ResidentPages(map, 10 * kBlock), 0u);
  EXPECT_EQ(ResidentPages(map + 39 * kBlock, 25 * kBlock), 0u);
  EXPECT_EQ(map[10 * kBlock + 7], 42);
  EXPECT_EQ(map[20 * kBlock], 0);
  PrefaultForWrite(map + 48 * kBlock, 8 * kBlock);  // under 64 KiB: left to the traps
  EXPECT_EQ(ResidentPages(map + 39 * kBlock, 25 * kBlock), 0u);
  munmap(map, kBytes);
}

TEST(BufferPool, BuffersAreAlignedAndCountedAtTheirCapacity) {
  BufferPool pool(1 << 20);
  AlignedBuffer a, b;
  ASSERT_TRUE(pool.TryAcquire(1, &a).ok());
  EXPECT_TRUE(Aligned(a.data()));
  EXPECT_EQ(a.capacity(), kBlock);
  ASSERT_TRUE(pool.TryAcquire(5000, &b).ok());  // size classes are powers of two of 4 KiB
  EXPECT_TRUE(Aligned(b.data()));
  EXPECT_EQ(b.capacity(), 2 * kBlock);
  EXPECT_EQ(pool.bytesOutstanding(), 3 * kBlock);
  a = AlignedBuffer();
  EXPECT_EQ(pool.bytesOutstanding(), 2 * kBlock);
  b = AlignedBuffer();
  EXPECT_EQ(pool.bytesOutstanding(), 0u);
}

TEST(BufferPool, TryAcquireIsBusyWhenTheBudgetIsSpent) {
  BufferPool pool(4 * kBlock);
  AlignedBuffer a, b, c;
  ASSERT_TRUE(pool.TryAcquire(2 * kBlock, &a).ok());
  ASSERT_TRUE(pool.TryAcquire(2 * kBlock, &b).ok());
  EXPECT_EQ(pool.bytesOutstanding(), 4 * kBlock);
  Status s = pool.TryAcquire(1, &c);
  EXPECT_EQ(s.code(), StatusCode::kBusy) << s.ToString();
  EXPECT_TRUE(c.empty());
  // Releasing one buffer frees its budget.
  a = AlignedBuffer();
  EXPECT_TRUE(pool.TryAcquire(1, &c).ok());
}

TEST(BufferPool, AcquireTimesOutWhenNothingIsFreed) {
  BufferPool pool(2 * kBlock);
  AlignedBuffer a, b;
  ASSERT_TRUE(pool.Acquire(2 * kBlock, 0, &a).ok());
  auto start = std::chrono::steady_clock::now();
  Status s = pool.Acquire(kBlock, 100, &b);
  auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.code(), StatusCode::kTimedOut) << s.ToString();
  EXPECT_GE(waited, std::chrono::milliseconds(90));
  EXPECT_LT(waited, std::chrono::seconds(5));
}

TEST(BufferPool, AcquireWakesWhenABufferIsReleased) {
  BufferPool pool(2 * kBlock);
  AlignedBuffer a;
  ASSERT_TRUE(pool.Acquire(2 * kBlock, 0, &a).ok());
  std::promise<void> started;
  auto waiter = std::async(std::launch::async, [&] {
    AlignedBuffer b;
    started.set_value();
    return pool.Acquire(kBlock, 10000, &b);
  });
  started.get_future().wait();
  a = AlignedBuffer();  // frees the whole budget; the waiter must proceed long before 10 s
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_TRUE(waiter.get().ok());
}

TEST(BufferPool, OverBudgetRequestIsTooLargeAtOnce) {
  BufferPool pool(4 * kBlock);
  AlignedBuffer a;
  auto start = std::chrono::steady_clock::now();
  Status s = pool.Acquire(4 * kBlock + 1, 10000, &a);
  EXPECT_EQ(s.code(), StatusCode::kTooLarge) << s.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(pool.bytesOutstanding(), 0u);
}

TEST(BufferPool, ReleasedBufferIsReused) {
  BufferPool pool(64 * kBlock);
  AlignedBuffer a;
  ASSERT_TRUE(pool.TryAcquire(8 * kBlock, &a).ok());
  char* first = a.data();
  a = AlignedBuffer();
  EXPECT_EQ(pool.bytesOutstanding(), 0u);
  AlignedBuffer b;
  ASSERT_TRUE(pool.TryAcquire(7 * kBlock + 1, &b).ok());  // same size class
  EXPECT_EQ(b.data(), first);
  EXPECT_EQ(pool.bytesOutstanding(), 8 * kBlock);
}

TEST(BufferPool, ManyThreadsNeverExceedTheBudget) {
  BufferPool pool(8 * kBlock);
  std::vector<std::thread> threads;
  std::atomic<bool> over{false};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; i++) {
        AlignedBuffer b;
        if (!pool.Acquire(kBlock * (1 + i % 3), 5000, &b).ok()) { over = true; return; }
        if (pool.bytesOutstanding() > pool.bytesMax()) over = true;
        b.data()[0] = 1;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(over.load());
  EXPECT_EQ(pool.bytesOutstanding(), 0u);
}

}  // namespace
}  // namespace millpond
