// HedgeGovernor: when a client's late chunk reads may be hedged, and where new reads go first.
//
// A hedge (a second replica asked for a read slower than the hedge delay) helps when one
// replica is slow: paused, failing, or far behind. It hurts when every replica is slow because
// this client has queued more than they serve: the second read then doubles the work of each
// late chunk and makes the queues longer still. Two rules tell the cases apart:
//  - a budget: each first attempt earns 1/kReadHedgeEarnDivisor of a hedge and a hedge spends
//    one, up to kReadHedgeBurstMax saved (the budget starts full), so hedges stay a small
//    share of the reads however late they all are;
//  - stalled replicas: one with a read past the hedge delay is tried after the others by new
//    reads (the tail too: it serves every committed version) for kReadStalledReplicaMs, or
//    until it answers. A paused replica then costs hedges only for the reads already sent
//    to it, which the budget covers.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/limits.h"
#include "common/mutex.h"

namespace millpond {

class HedgeGovernor {
 public:
  using Clock = std::chrono::steady_clock;

  // A first attempt of a chunk read was sent.
  void Earn();
  // A hedge may be sent now: spends one from the budget; false when it is spent.
  bool TrySpend();
  // `address` has a read unanswered past the hedge delay at `now`.
  void Stalled(const std::string& address, Clock::time_point now);
  // `address` answered a read.
  void Answered(const std::string& address);
  // `order` (a read's round: random non-tail replicas, then the tail) with replicas stalled
  // at `now` moved after the others, each group in its order.
  void PreferResponsive(std::vector<std::string>* order, Clock::time_point now);

 private:
  static constexpr uint64_t kBudgetMax = uint64_t{limits::kReadHedgeBurstMax} * limits::kReadHedgeEarnDivisor;

  Mutex mu_;
  uint64_t budget_ GUARDED_BY(mu_) = kBudgetMax;  // in 1/kReadHedgeEarnDivisor of a hedge
  // Replicas seen stalled, until when; bounded by the client's servers (kClientServersMax).
  std::map<std::string, Clock::time_point> stalledUntil_ GUARDED_BY(mu_);
};

}  // namespace millpond
