#include "fuse/fuse_metrics.h"

#include <atomic>
#include <cinttypes>
#include <cstdio>

#include "common/limits.h"
#include "common/metrics.h"

namespace millpond::fuse_metrics {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr int kOps = static_cast<int>(Op::kCount);
constexpr size_t kBuckets = limits::kDataLatencyBucketCount + 1;  // the last is +Inf

struct Counters {
  std::atomic<uint64_t> requests[kOps];
  std::atomic<uint64_t> failures[kOps];
  std::atomic<uint64_t> buckets[kOps][kBuckets];
  std::atomic<uint64_t> sumUs[kOps];
  std::atomic<uint64_t> bytesRead, bytesWritten;
};
Counters g_counters;  // zero-initialised static storage

thread_local bool t_failed = false;

size_t BucketFor(uint64_t us) {
  size_t i = 0;
  while (i < limits::kDataLatencyBucketCount && us > limits::kDataLatencyBucketsUs[i]) i++;
  return i;
}

// Appends Prometheus text; names and HELP are fixed strings of this file (nothing to escape).
class Text {
 public:
  void Family(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Sample(const std::string& name, const std::string& labels, double value) {
    char v[64];
    std::snprintf(v, sizeof v, "%.17g", value);
    out_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + v + "\n";
  }
  void Sample(const std::string& name, const std::string& labels, uint64_t value) {
    out_ += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(value) + "\n";
  }
  // A histogram series from non-cumulative buckets (last +Inf) with bounds in microseconds.
  void Histogram(const char* name, const std::string& labels, const uint64_t* buckets, uint64_t sumUs) {
    uint64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t b = 0; b < kBuckets; b++) {
      cumulative += buckets[b];
      char le[32];
      if (b < limits::kDataLatencyBucketCount) std::snprintf(le, sizeof le, "%.17g", limits::kDataLatencyBucketsUs[b] / 1e6);
      else std::snprintf(le, sizeof le, "+Inf");
      Sample(std::string(name) + "_bucket", labels + sep + "le=\"" + le + "\"", cumulative);
    }
    Sample(std::string(name) + "_sum", labels, sumUs / 1e6);
    Sample(std::string(name) + "_count", labels, cumulative);  // equals +Inf even mid-update
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string OpLabel(int o) { return std::string("op=\"") + OpName(static_cast<Op>(o)) + "\""; }

}  // namespace

const char* OpName(Op op) {
  static const char* const kNames[] = {"lookup", "forget", "getattr", "setattr", "readlink", "mkdir", "unlink", "rmdir",
                                       "symlink", "rename", "link", "create", "open", "read", "write", "flush", "fsync",
                                       "release", "opendir", "readdir", "releasedir", "fsyncdir", "statfs", "access"};
  static_assert(sizeof kNames / sizeof kNames[0] == kOps, "a name per op");
  int o = static_cast<int>(op);
  return o >= 0 && o < kOps ? kNames[o] : "other";
}

void AddBytesRead(uint64_t bytes) {
  if (metrics::Enabled()) g_counters.bytesRead.fetch_add(bytes, kRelaxed);
}
void AddBytesWritten(uint64_t bytes) {
  if (metrics::Enabled()) g_counters.bytesWritten.fetch_add(bytes, kRelaxed);
}

void MarkFailed() { t_failed = true; }

OpScope::OpScope(Op op) : op_(op), start_(std::chrono::steady_clock::now()) { t_failed = false; }

OpScope::~OpScope() {
  if (!metrics::Enabled()) return;
  const int o = static_cast<int>(op_);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count();
  const uint64_t latencyUs = us < 0 ? 0 : static_cast<uint64_t>(us);
  g_counters.requests[o].fetch_add(1, kRelaxed);
  if (t_failed) g_counters.failures[o].fetch_add(1, kRelaxed);
  g_counters.buckets[o][BucketFor(latencyUs)].fetch_add(1, kRelaxed);
  g_counters.sumUs[o].fetch_add(latencyUs, kRelaxed);
}

std::string RenderPrometheus(const FileClientCounters& client) {
  Text t;
  t.Family("millpond_fuse_requests_total", "counter", "FUSE requests answered by the mount, by operation");
  for (int o = 0; o < kOps; o++) t.Sample("millpond_fuse_requests_total", OpLabel(o), g_counters.requests[o].load(kRelaxed));
  t.Family("millpond_fuse_request_errors_total", "counter", "FUSE requests answered with an error, by operation");
  for (int o = 0; o < kOps; o++) t.Sample("millpond_fuse_request_errors_total", OpLabel(o), g_counters.failures[o].load(kRelaxed));
  t.Family("millpond_fuse_request_duration_seconds", "histogram", "FUSE request latency from its handler's start to its reply, by operation");
  for (int o = 0; o < kOps; o++) {
    uint64_t buckets[kBuckets];
    for (size_t b = 0; b < kBuckets; b++) buckets[b] = g_counters.buckets[o][b].load(kRelaxed);
    t.Histogram("millpond_fuse_request_duration_seconds", OpLabel(o), buckets, g_counters.sumUs[o].load(kRelaxed));
  }
  t.Family("millpond_fuse_read_bytes_total", "counter", "Bytes returned to readers through the mount");
  t.Sample("millpond_fuse_read_bytes_total", "", g_counters.bytesRead.load(kRelaxed));
  t.Family("millpond_fuse_written_bytes_total", "counter", "Bytes accepted from writers through the mount");
  t.Sample("millpond_fuse_written_bytes_total", "", g_counters.bytesWritten.load(kRelaxed));

  // The native file client's counters, named by its table (client/file_client_counters.h).
  for (const FileClientCounterField& f : kFileClientCounterFields) {
    const std::string name = std::string("millpond_client_") + f.snakeName + "_total";
    t.Family(name.c_str(), "counter", f.help);
    t.Sample(name, "", (client.*f.member).load(kRelaxed));
  }

  t.Family("millpond_metrics_enabled", "gauge", "1 when native metrics count (MILLPOND_METRICS is not off)");
  t.Sample("millpond_metrics_enabled", "", uint64_t{metrics::Enabled() ? 1u : 0u});
  return t.Take();
}

}  // namespace millpond::fuse_metrics
