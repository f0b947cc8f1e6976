#include "common/log.h"

#include <cstdio>
#include <mutex>
#include <set>

namespace millpond {

void LogWarning(const std::string& message) {
  std::fprintf(stderr, "millpond: %s\n", message.c_str());
}

void LogWarningOnce(const std::string& key, const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> seen;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!seen.insert(key).second) return;
  }
  LogWarning(message);
}

}  // namespace millpond
