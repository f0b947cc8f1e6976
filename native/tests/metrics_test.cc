// Process metrics (common/metrics.h): latency lands in the bucket whose bound is the first >= it
// (Prometheus `le`), concurrent updates from many threads are all counted, gauges come back to
// zero, and a stray decrement never reads as a huge gauge. Counters are process-wide, so every
// check compares two snapshots.
#include "common/metrics.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace millpond::metrics {
namespace {

Snapshot Take() {
  Snapshot s;
  TakeSnapshot(&s);
  return s;
}

TEST(Metrics, LatencyBucketsFollowTheBoundsInclusively) {
  const int op = static_cast<int>(Op::kStat);
  const int tcp = static_cast<int>(Transport::kTcp);
  Snapshot before = Take();
  RecordRequest(Op::kStat, Transport::kTcp, true, 0);                                   // bucket 0
  RecordRequest(Op::kStat, Transport::kTcp, true, limits::kDataLatencyBucketsUs[0]);    // still bucket 0 (le)
  RecordRequest(Op::kStat, Transport::kTcp, false, limits::kDataLatencyBucketsUs[0] + 1);  // bucket 1
  RecordRequest(Op::kStat, Transport::kTcp, true, limits::kDataLatencyBucketsUs[limits::kDataLatencyBucketCount - 1] + 1);  // +Inf
  Snapshot after = Take();
  const auto& b = before.latency[op].buckets;
  const auto& a = after.latency[op].buckets;
  EXPECT_EQ(a[0] - b[0], 2u);
  EXPECT_EQ(a[1] - b[1], 1u);
  EXPECT_EQ(a[limits::kDataLatencyBucketCount] - b[limits::kDataLatencyBucketCount], 1u);
  EXPECT_EQ(after.latency[op].count - before.latency[op].count, 4u);
  EXPECT_EQ(after.requests[op][tcp] - before.requests[op][tcp], 4u);
  EXPECT_EQ(after.errors[op][tcp] - before.errors[op][tcp], 1u);
  EXPECT_EQ(after.latency[op].sumUs - before.latency[op].sumUs,
            2 * limits::kDataLatencyBucketsUs[0] + 1 + limits::kDataLatencyBucketsUs[limits::kDataLatencyBucketCount - 1] + 1);
}

TEST(Metrics, ConcurrentUpdatesAreAllCounted) {
  constexpr int kThreads = 8;
  constexpr int kEach = 20000;
  const int op = static_cast<int>(Op::kList);
  const int rdma = static_cast<int>(Transport::kRdma);
  Snapshot before = Take();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; i++) {
    threads.emplace_back([] {
      for (int j = 0; j < kEach; j++) {
        CallArrived();
        CallQueued();
        CallDequeued();
        AddBytesRead(3);
        RecordRequest(Op::kList, Transport::kRdma, true, 10);
        CallAnswered();
      }
    });
  }
  for (auto& t : threads) t.join();
  Snapshot after = Take();
  EXPECT_EQ(after.requests[op][rdma] - before.requests[op][rdma], uint64_t{kThreads} * kEach);
  EXPECT_EQ(after.bytesRead - before.bytesRead, uint64_t{3} * kThreads * kEach);
  EXPECT_EQ(after.inFlight, before.inFlight);
  EXPECT_EQ(after.queued, before.queued);
}

TEST(Metrics, AStrayDecrementReadsAsZeroNotAsAHugeGauge) {
  Snapshot before = Take();
  ASSERT_EQ(before.queued, 0u);
  CallDequeued();
  EXPECT_EQ(Take().queued, 0u);
  CallQueued();  // back to balance
  EXPECT_EQ(Take().queued, 0u);
}

TEST(Metrics, OffCountsNothingUntilOnAgain) {
  ASSERT_TRUE(Enabled());  // the default without MILLPOND_METRICS=off
  const int op = static_cast<int>(Op::kList);
  const int tcp = static_cast<int>(Transport::kTcp);
  Snapshot before = Take();
  SetEnabled(false);
  RecordRequest(Op::kList, Transport::kTcp, true, 5);
  AddBytesRead(100);
  ChainForward();
  SetEnabled(true);
  Snapshot mid = Take();
  EXPECT_EQ(mid.requests[op][tcp], before.requests[op][tcp]);
  EXPECT_EQ(mid.bytesRead, before.bytesRead);
  EXPECT_EQ(mid.chainForwards, before.chainForwards);
  RecordRequest(Op::kList, Transport::kTcp, true, 5);
  EXPECT_EQ(Take().requests[op][tcp], before.requests[op][tcp] + 1);
}

TEST(Metrics, OpcodesMapToTheirOperations) {
  EXPECT_STREQ(OpName(OpForOpcode(1)), "read");
  EXPECT_STREQ(OpName(OpForOpcode(2)), "write");
  EXPECT_STREQ(OpName(OpForOpcode(3)), "batch_read");
  EXPECT_STREQ(OpName(OpForOpcode(7)), "commit");
  EXPECT_STREQ(OpName(OpForOpcode(8)), "other");  // ping
  EXPECT_STREQ(OpName(OpForOpcode(10)), "open_local");
  EXPECT_STREQ(TransportName(Transport::kLocal), "local");
}

}  // namespace
}  // namespace millpond::metrics
