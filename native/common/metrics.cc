#include "common/metrics.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace millpond::metrics {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

struct Histogram {
  std::atomic<uint64_t> buckets[limits::kDataLatencyBucketCount + 1];
  std::atomic<uint64_t> count;
  std::atomic<uint64_t> sumUs;
};

// Zero-initialised static storage: usable before main and from every thread.
struct Counters {
  std::atomic<uint64_t> requests[kOps][kTransports];
  std::atomic<uint64_t> errors[kOps][kTransports];
  Histogram latency[kOps];
  std::atomic<uint64_t> bytesRead, bytesWritten, inFlight, queued, busyRejections, crcFailures, chainForwards,
      localReadHits;
};
Counters g_counters;

bool EnabledAtStart() {
  const char* v = std::getenv("MILLPOND_METRICS");
  return v == nullptr || std::strcmp(v, "off") != 0;
}
std::atomic<bool> g_enabled{EnabledAtStart()};

inline bool On() { return g_enabled.load(kRelaxed); }

size_t BucketFor(uint64_t us) {
  size_t i = 0;
  while (i < limits::kDataLatencyBucketCount && us > limits::kDataLatencyBucketsUs[i]) i++;
  return i;
}

// A gauge that went down past zero (a stray decrement) reads as 0, not as 2^64 - 1.
uint64_t Gauge(const std::atomic<uint64_t>& g) {
  uint64_t v = g.load(kRelaxed);
  return v > (uint64_t{1} << 63) ? 0 : v;
}

}  // namespace

const char* OpName(Op op) {
  switch (op) {
    case Op::kRead: return "read";
    case Op::kBatchRead: return "batch_read";
    case Op::kWrite: return "write";
    case Op::kCommit: return "commit";
    case Op::kRemove: return "remove";
    case Op::kStat: return "stat";
    case Op::kList: return "list";
    case Op::kOpenLocal: return "open_local";
    default: return "other";
  }
}

const char* TransportName(Transport t) {
  switch (t) {
    case Transport::kTcp: return "tcp";
    case Transport::kRdma: return "rdma";
    default: return "local";
  }
}

Op OpForOpcode(uint8_t opcode) {
  switch (opcode) {
    case 1: return Op::kRead;  // frame::kRead; common/ does not include transport/
    case 2: return Op::kWrite;
    case 3: return Op::kBatchRead;
    case 4: return Op::kRemove;
    case 5: return Op::kStat;
    case 6: return Op::kList;
    case 7: return Op::kCommit;
    case 10: return Op::kOpenLocal;
    default: return Op::kOther;
  }
}

bool Enabled() { return On(); }
void SetEnabled(bool on) { g_enabled.store(on, kRelaxed); }

void RecordRequest(Op op, Transport transport, bool ok, uint64_t latencyUs) {
  if (!On()) return;
  int o = static_cast<int>(op), t = static_cast<int>(transport);
  if (o < 0 || o >= kOps || t < 0 || t >= kTransports) return;
  g_counters.requests[o][t].fetch_add(1, kRelaxed);
  if (!ok) g_counters.errors[o][t].fetch_add(1, kRelaxed);
  Histogram& h = g_counters.latency[o];
  h.buckets[BucketFor(latencyUs)].fetch_add(1, kRelaxed);
  h.sumUs.fetch_add(latencyUs, kRelaxed);
  h.count.fetch_add(1, kRelaxed);
}

void AddBytesRead(uint64_t bytes) { if (On()) g_counters.bytesRead.fetch_add(bytes, kRelaxed); }
void AddBytesWritten(uint64_t bytes) { if (On()) g_counters.bytesWritten.fetch_add(bytes, kRelaxed); }
void CallArrived() { if (On()) g_counters.inFlight.fetch_add(1, kRelaxed); }
void CallAnswered() { if (On()) g_counters.inFlight.fetch_sub(1, kRelaxed); }
void CallQueued() { if (On()) g_counters.queued.fetch_add(1, kRelaxed); }
void CallDequeued() { if (On()) g_counters.queued.fetch_sub(1, kRelaxed); }
void BusyRejection() { if (On()) g_counters.busyRejections.fetch_add(1, kRelaxed); }
void CrcFailure() { if (On()) g_counters.crcFailures.fetch_add(1, kRelaxed); }
void ChainForward() { if (On()) g_counters.chainForwards.fetch_add(1, kRelaxed); }
void LocalReadHit() { if (On()) g_counters.localReadHits.fetch_add(1, kRelaxed); }

void TakeSnapshot(Snapshot* out) {
  for (int o = 0; o < kOps; o++) {
    for (int t = 0; t < kTransports; t++) {
      out->requests[o][t] = g_counters.requests[o][t].load(kRelaxed);
      out->errors[o][t] = g_counters.errors[o][t].load(kRelaxed);
    }
    const Histogram& h = g_counters.latency[o];
    HistogramSnapshot& s = out->latency[o];
    // count is read first and buckets after: a scrape may see a bucket total above count
    // for a request recorded in between, never below. The JS side derives count from buckets.
    s.count = h.count.load(kRelaxed);
    for (size_t b = 0; b <= limits::kDataLatencyBucketCount; b++) s.buckets[b] = h.buckets[b].load(kRelaxed);
    s.sumUs = h.sumUs.load(kRelaxed);
  }
  out->bytesRead = g_counters.bytesRead.load(kRelaxed);
  out->bytesWritten = g_counters.bytesWritten.load(kRelaxed);
  out->inFlight = Gauge(g_counters.inFlight);
  out->queued = Gauge(g_counters.queued);
  out->busyRejections = g_counters.busyRejections.load(kRelaxed);
  out->crcFailures = g_counters.crcFailures.load(kRelaxed);
  out->chainForwards = g_counters.chainForwards.load(kRelaxed);
  out->localReadHits = g_counters.localReadHits.load(kRelaxed);
}

}  // namespace millpond::metrics
