// Recent answer times of one kind of read, and the hedge delay they give: a request slower
// than limits::kReadHedgeMedianFactor times their median is presumed stuck (a paused or
// overloaded replica) and asked elsewhere. Thread-safe.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "common/limits.h"
#include "common/mutex.h"

namespace millpond {

class LatencyWindow {
 public:
  // Records one answer (only answers: a timeout says nothing of the replicas' speed).
  void Record(std::chrono::steady_clock::duration d);
  // The median of the last kReadHedgeSamplesMax answers times kReadHedgeMedianFactor, within
  // [minMs, maxMs]; maxMs until kReadHedgeSamplesMin answers were seen.
  std::chrono::milliseconds HedgeDelay(uint32_t minMs, uint32_t maxMs);

 private:
  Mutex mu_;
  std::array<uint32_t, limits::kReadHedgeSamplesMax> us_ GUARDED_BY(mu_){};
  size_t next_ GUARDED_BY(mu_) = 0;
  size_t count_ GUARDED_BY(mu_) = 0;
};

}  // namespace millpond
