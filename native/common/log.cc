#include "common/log.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
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

bool LogDebugEnabled() {
  const char* level = std::getenv("MILLPOND_LOG");
  return level != nullptr && std::strcmp(level, "debug") == 0;
}

bool LogDebugOncePerProcess(const std::string& key, const std::string& message) {
  if (!LogDebugEnabled()) return false;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const std::string name = "MILLPOND_LOGGED_" + key;
  const std::string pid = std::to_string(::getpid());
  const char* marker = std::getenv(name.c_str());
  if (marker != nullptr && pid == marker) return false;
  ::setenv(name.c_str(), pid.c_str(), 1);
  std::fprintf(stderr, "millpond: %s\n", message.c_str());
  return true;
}

}  // namespace millpond
