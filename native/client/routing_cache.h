// RoutingCache: mgmtd's routing as clients use it (src/cluster/routing-client.ts, same rules).
// The first use fetches it and waits. Later uses return the cached snapshot at once; once it is
// older than pollMs a fetch starts in the background (I/O never waits for mgmtd, nor stops
// while mgmtd fails over). Refresh() fetches now and waits: callers use it when the cache is
// known stale (ESTALE from a head, a dead replica). At most one fetch is in flight: concurrent
// Refresh() calls share it (single flight).
//
// Thread-safe. Snapshots are immutable and shared: a caller keeps using the one it got while a
// newer one is installed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/mgmtd_client.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "common/status.h"

namespace millpond {

// How a chain is reached at one routing version.
struct ChainRoute {
  uint32_t chainId = 0;
  uint32_t version = 0;  // the chainVersion chain writes carry
  // Data address of the head (the first serving target in chain order); empty when the chain
  // has no serving target (writes wait: EBUSY).
  std::string head;
  // Data addresses of the serving targets, head first, tail last: where reads may go. Syncing
  // targets receive writes (forwarded by the chain) but are never read.
  std::vector<std::string> serving;
};

struct RoutingCacheOptions {
  uint32_t pollMs = limits::kRoutingPollMsDefault;
};

struct RoutingCacheCounters {
  std::atomic<uint64_t> fetches{0};        // getRouting calls started
  std::atomic<uint64_t> fetchFailures{0};  // ... that failed
  std::atomic<uint64_t> installs{0};       // new versions installed
};

class RoutingCache {
 public:
  // REQUIRES: mgmtd outlives this cache, and its RpcClient is closed (which ends a fetch in
  // flight) or idle when this cache is destroyed.
  RoutingCache(MgmtdClient* mgmtd, const RoutingCacheOptions& options);
  ~RoutingCache();  // waits for a fetch in flight

  RoutingCache(const RoutingCache&) = delete;
  RoutingCache& operator=(const RoutingCache&) = delete;

  // The route of chainId in the cached routing. kNotFound when the chain is not in it.
  Status Route(uint32_t chainId, ChainRoute* out);
  // The chain ids of chain table tableId at table version `layoutVersion` (a file layout's
  // chainTableVersion, layout::TableChainsAt). kNotFound when the table or that version of it
  // is not in the routing even after a refresh.
  Status TableChains(uint32_t tableId, uint32_t layoutVersion, std::vector<uint32_t>* out);
  // Fetches routing now and waits for it (sharing a fetch already in flight).
  Status Refresh();

  // The installed routing version (0 before the first fetch).
  uint64_t version();
  const RoutingCacheCounters& counters() const { return counters_; }

 private:
  struct Snapshot {
    Routing routing;
    std::unordered_map<uint32_t, const TargetInfo*> targets;
    std::unordered_map<uint32_t, const ChainInfo*> chains;
    std::unordered_map<uint32_t, const ChainTableInfo*> tables;
  };
  using Clock = std::chrono::steady_clock;

  // The current snapshot: fetched and waited for when there is none; a background fetch
  // started when it is older than pollMs.
  Status Current(std::shared_ptr<const Snapshot>* out);
  // REQUIRES: mu_ not held (the fetch's callback may run on this thread and take it).
  void StartFetch() EXCLUDES(mu_);
  void OnFetched(const Status& s, Routing* routing, bool unchanged) EXCLUDES(mu_);

  MgmtdClient* const mgmtd_;
  const RoutingCacheOptions options_;
  RoutingCacheCounters counters_;

  Mutex mu_;
  CondVar cv_;
  std::shared_ptr<const Snapshot> current_ GUARDED_BY(mu_);
  Clock::time_point fetchedAt_ GUARDED_BY(mu_);  // of the last successful fetch
  bool fetching_ GUARDED_BY(mu_) = false;
  uint64_t fetchesStarted_ GUARDED_BY(mu_) = 0;
  uint64_t fetchesDone_ GUARDED_BY(mu_) = 0;
  Status lastFetch_ GUARDED_BY(mu_);  // result of the last fetch
};

}  // namespace millpond
