#include "client/routing_cache.h"

#include "client/layout.h"

namespace millpond {

RoutingCache::RoutingCache(MgmtdClient* mgmtd, const RoutingCacheOptions& options)
    : mgmtd_(mgmtd), options_(options) {}

RoutingCache::~RoutingCache() {
  MutexLock lock(&mu_);
  while (fetching_) cv_.Wait(&mu_);
}

void RoutingCache::StartFetch() {
  bool known = false;
  uint64_t knownVersion = 0;
  {
    MutexLock lock(&mu_);
    if (fetching_) return;
    fetching_ = true;
    fetchesStarted_++;
    if (current_) {
      known = true;
      knownVersion = current_->routing.version;
    }
  }
  counters_.fetches++;
  mgmtd_->GetRoutingAsync(known, knownVersion, [this](const Status& s, Routing* r, bool unchanged) {
    OnFetched(s, r, unchanged);
  });
}

void RoutingCache::OnFetched(const Status& s, Routing* routing, bool unchanged) {
  std::shared_ptr<Snapshot> next;
  if (s.ok() && !unchanged) {
    // Index outside the lock: a routing may hold thousands of records.
    next = std::make_shared<Snapshot>();
    next->routing = std::move(*routing);
    for (const TargetInfo& t : next->routing.targets) next->targets[t.targetId] = &t;
    for (const ChainInfo& c : next->routing.chains) next->chains[c.chainId] = &c;
    for (const ChainTableInfo& t : next->routing.chainTables) next->tables[t.tableId] = &t;
  }
  if (!s.ok()) counters_.fetchFailures++;
  MutexLock lock(&mu_);
  if (s.ok()) {
    fetchedAt_ = Clock::now();
    // Never go back: a reply from a lagging mgmtd must not replace a newer snapshot.
    if (next && (!current_ || next->routing.version >= current_->routing.version)) {
      current_ = std::move(next);
      counters_.installs++;
    }
  }
  lastFetch_ = s;
  fetching_ = false;
  fetchesDone_++;
  cv_.SignalAll();
}

Status RoutingCache::Refresh() {
  uint64_t mine;
  {
    MutexLock lock(&mu_);
    // A fetch in flight was sent before our reason to refresh, but it is fresh enough: share it
    // as the TS client does (its reply is at most one round trip old).
    mine = fetching_ ? fetchesStarted_ : fetchesStarted_ + 1;
  }
  StartFetch();
  MutexLock lock(&mu_);
  while (fetchesDone_ < mine) cv_.Wait(&mu_);
  if (!lastFetch_.ok() && fetchesDone_ == mine) return lastFetch_;
  if (!current_) return lastFetch_.ok() ? Status::Internal("routing fetch installed nothing") : lastFetch_;
  return Status::OK();
}

Status RoutingCache::Current(std::shared_ptr<const Snapshot>* out) {
  bool stale;
  {
    MutexLock lock(&mu_);
    if (current_) {
      *out = current_;
      stale = Clock::now() - fetchedAt_ >= std::chrono::milliseconds(options_.pollMs);
      if (!stale || fetching_) return Status::OK();
    }
  }
  if (*out) {
    StartFetch();  // in the background: the cached snapshot serves meanwhile
    return Status::OK();
  }
  MP_RETURN_IF_ERROR(Refresh());
  MutexLock lock(&mu_);
  *out = current_;
  return Status::OK();
}

Status RoutingCache::Route(uint32_t chainId, ChainRoute* out) {
  std::shared_ptr<const Snapshot> snap;
  MP_RETURN_IF_ERROR(Current(&snap));
  auto it = snap->chains.find(chainId);
  if (it == snap->chains.end()) {
    return Status::NotFound("chain " + std::to_string(chainId) + " is not in routing version " +
                            std::to_string(snap->routing.version));
  }
  const ChainInfo& chain = *it->second;
  ChainRoute r;
  r.chainId = chainId;
  r.version = chain.version;
  for (uint32_t id : chain.targets) {
    auto t = snap->targets.find(id);
    if (t != snap->targets.end() && t->second->state == TargetState::kServing) {
      r.serving.push_back(t->second->dataAddress);
    }
  }
  // The head is path[0] of dataPath(): serving targets come first, so it is the first serving
  // one; with none serving, a syncing target is no head.
  if (!r.serving.empty()) r.head = r.serving.front();
  *out = std::move(r);
  return Status::OK();
}

Status RoutingCache::TableChains(uint32_t tableId, uint32_t layoutVersion, std::vector<uint32_t>* out) {
  // A layout newer than the cached routing (the table grew since the fetch): refresh once.
  for (int attempt = 0;; attempt++) {
    std::shared_ptr<const Snapshot> snap;
    MP_RETURN_IF_ERROR(Current(&snap));
    auto it = snap->tables.find(tableId);
    if (it != snap->tables.end()) {
      const ChainTableInfo& t = *it->second;
      if (layout::TableChainsAt(t.chainIds, t.version, t.chainCounts, layoutVersion, out)) return Status::OK();
    }
    if (attempt == 1) {
      return Status::NotFound("chain table " + std::to_string(tableId) + " version " + std::to_string(layoutVersion) +
                              " is not in routing version " + std::to_string(snap->routing.version));
    }
    MP_RETURN_IF_ERROR(Refresh());
  }
}

uint64_t RoutingCache::version() {
  MutexLock lock(&mu_);
  return current_ ? current_->routing.version : 0;
}

}  // namespace millpond
