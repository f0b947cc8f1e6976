#include "client/hedge_governor.h"

#include <algorithm>
#include <utility>

namespace millpond {

void HedgeGovernor::Earn() {
  MutexLock lock(&mu_);
  budget_ = std::min(kBudgetMax, budget_ + 1);
}

bool HedgeGovernor::TrySpend() {
  MutexLock lock(&mu_);
  if (budget_ < limits::kReadHedgeEarnDivisor) return false;
  budget_ -= limits::kReadHedgeEarnDivisor;
  return true;
}

void HedgeGovernor::Stalled(const std::string& address, Clock::time_point now) {
  MutexLock lock(&mu_);
  stalledUntil_[address] = now + std::chrono::milliseconds(limits::kReadStalledReplicaMs);
}

void HedgeGovernor::Answered(const std::string& address) {
  MutexLock lock(&mu_);
  stalledUntil_.erase(address);
}

void HedgeGovernor::PreferResponsive(std::vector<std::string>* order, Clock::time_point now) {
  MutexLock lock(&mu_);
  if (stalledUntil_.empty()) return;
  std::vector<std::string> responsive, stalled;
  for (std::string& address : *order) {
    auto it = stalledUntil_.find(address);
    (it == stalledUntil_.end() || it->second <= now ? responsive : stalled).push_back(std::move(address));
  }
  for (std::string& address : stalled) responsive.push_back(std::move(address));
  *order = std::move(responsive);
}

}  // namespace millpond
