// Minimal logging to stderr for rare, operator-relevant events (fallbacks, dropped peers).
// Not for per-request paths.
#pragma once

#include <string>

namespace millpond {

void LogWarning(const std::string& message);
// Logs `message` only the first time `key` is seen in this process.
void LogWarningOnce(const std::string& key, const std::string& message);

}  // namespace millpond
