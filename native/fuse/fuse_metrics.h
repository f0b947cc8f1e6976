// The mount daemon's metrics (design §14): FUSE requests by operation (count, failures, latency
// from the request's arrival in its handler to its reply), bytes read and written through the
// mount, and the Prometheus text of these, the native file client's counters and the process's
// data-plane metrics (common/metrics.h), served at /metrics by fuse/metrics_http.h.
//
// Contract: as common/metrics.h: each update is a few relaxed atomic adds, from any thread, and
// nothing when native metrics are off (MILLPOND_METRICS=off).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "client/file_client.h"

namespace millpond::fuse_metrics {

enum class Op : int {
  kLookup = 0, kForget, kGetattr, kSetattr, kReadlink, kMkdir, kUnlink, kRmdir, kSymlink, kRename, kLink,
  kCreate, kOpen, kRead, kWrite, kFlush, kFsync, kRelease, kOpendir, kReaddir, kReleasedir, kFsyncdir,
  kStatfs, kAccess, kCount
};

const char* OpName(Op op);

void AddBytesRead(uint64_t bytes);
void AddBytesWritten(uint64_t bytes);

// Marks the request this thread is handling as failed (fuse_main's ReplyErr calls it).
void MarkFailed();

// Times one FUSE request handler: counts it, its latency and (MarkFailed) its failure when the
// handler returns, which is just after its reply: a scrape that follows a reply at once may not
// see that request yet. One per handler, on the handler's thread.
class OpScope {
 public:
  explicit OpScope(Op op);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  const Op op_;
  const std::chrono::steady_clock::time_point start_;
};

// The Prometheus text exposition (0.0.4) of the mount's metrics and `client`'s counters.
std::string RenderPrometheus(const FileClientCounters& client);

}  // namespace millpond::fuse_metrics
