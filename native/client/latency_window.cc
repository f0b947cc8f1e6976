#include "client/latency_window.h"

#include <algorithm>
#include <vector>

namespace millpond {

void LatencyWindow::Record(std::chrono::steady_clock::duration d) {
  const uint32_t us = static_cast<uint32_t>(
      std::min<int64_t>(UINT32_MAX, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
  MutexLock lock(&mu_);
  us_[next_++ % us_.size()] = us;
  count_ = std::min<size_t>(count_ + 1, us_.size());
}

std::chrono::milliseconds LatencyWindow::HedgeDelay(uint32_t minMs, uint32_t maxMs) {
  std::vector<uint32_t> samples;
  {
    MutexLock lock(&mu_);
    samples.assign(us_.begin(), us_.begin() + count_);
  }
  if (samples.size() < limits::kReadHedgeSamplesMin) return std::chrono::milliseconds(maxMs);  // what is slow is not known yet
  auto mid = samples.begin() + samples.size() / 2;
  std::nth_element(samples.begin(), mid, samples.end());
  const uint64_t ms = uint64_t{*mid} * limits::kReadHedgeMedianFactor / 1000;
  return std::chrono::milliseconds(std::clamp<uint64_t>(ms, minMs, maxMs));
}

}  // namespace millpond
