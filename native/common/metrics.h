// Process-wide data-plane metrics (design §14): request counts by operation and transport,
// latency histograms with the fixed bounds of limits::kDataLatencyBucketsUs, bytes, calls in
// flight and queued, checksum failures, chain forwards and local-read hits.
//
// Contract: every update is one relaxed atomic add (no lock, no allocation), safe from any
// thread. TakeSnapshot reads the atomics one by one without stopping writers, so a snapshot is
// not one instant, but every counter in it is >= its value in any earlier snapshot. Counters
// are per process: `millpond up` runs three data servers in one process and they add up.
// The addon hands a snapshot to JS (src/metrics/native.ts), which turns it into Prometheus
// metrics at scrape time; nothing is counted twice.
#pragma once

#include <cstdint>

#include "common/limits.h"

namespace millpond::metrics {

enum class Op : int { kRead = 0, kBatchRead, kWrite, kCommit, kRemove, kStat, kList, kOpenLocal, kOther, kCount };
enum class Transport : int { kTcp = 0, kRdma, kLocal, kCount };
constexpr int kOps = static_cast<int>(Op::kCount);
constexpr int kTransports = static_cast<int>(Transport::kCount);

const char* OpName(Op op);
const char* TransportName(Transport t);
// The metrics operation a data-plane opcode (transport/frame.h) counts under.
Op OpForOpcode(uint8_t opcode);

struct HistogramSnapshot {
  uint64_t buckets[limits::kDataLatencyBucketCount + 1] = {};  // not cumulative; last is +Inf
  uint64_t count = 0;
  uint64_t sumUs = 0;
};

struct Snapshot {
  uint64_t requests[kOps][kTransports] = {};  // answered requests
  uint64_t errors[kOps][kTransports] = {};    // of those, answered with a failed status
  HistogramSnapshot latency[kOps];            // arrival to reply, every transport
  uint64_t bytesRead = 0;                     // chunk bytes served to readers (not local reads)
  uint64_t bytesWritten = 0;                  // chunk bytes stored by writes
  uint64_t inFlight = 0;                      // requests arrived and not yet answered
  uint64_t queued = 0;                        // of those, waiting for an I/O thread
  uint64_t busyRejections = 0;                // refused because the queue was full
  uint64_t crcFailures = 0;                   // checksum mismatches and damaged chunks found
  uint64_t chainForwards = 0;                 // writes forwarded to a chain successor
  uint64_t localReadHits = 0;                 // descriptors handed out for short-circuit reads
};

// Whether updates count. Off when the process starts with MILLPOND_METRICS=off (read once, when
// the library loads): every update is then one relaxed load and a branch, and snapshots stay at
// what was counted before (the benches time the data plane both ways: bench/dataplane.ts).
bool Enabled();
// For tests: turns counting on or off from now on. In-flight gauges may then read low (floored at 0).
void SetEnabled(bool on);

void RecordRequest(Op op, Transport transport, bool ok, uint64_t latencyUs);
void AddBytesRead(uint64_t bytes);
void AddBytesWritten(uint64_t bytes);
// Arrived -> (Queued -> Dequeued) -> Answered; in-flight counts from Arrived to Answered.
void CallArrived();
void CallAnswered();
void CallQueued();
void CallDequeued();
void BusyRejection();
void CrcFailure();
void ChainForward();
void LocalReadHit();

void TakeSnapshot(Snapshot* out);

}  // namespace millpond::metrics
