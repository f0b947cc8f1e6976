// Minimal logging to stderr for rare, operator-relevant events (fallbacks, dropped peers).
// Not for per-request paths. Warnings always print; debug lines only when the process runs
// with MILLPOND_LOG=debug (the CLI's --verbose sets it).
#pragma once

#include <string>

namespace millpond {

void LogWarning(const std::string& message);
// Logs `message` only the first time `key` is seen in this process.
void LogWarningOnce(const std::string& key, const std::string& message);

// Whether MILLPOND_LOG=debug is set now (read on every call: the CLI sets it before use).
bool LogDebugEnabled();
// At debug level, logs `message` the first time `key` is seen in this process — once per
// process even though the addon and the DuckDB extension each link their own copy of this
// code: the first to log leaves MILLPOND_LOGGED_<key>=<pid> in the environment, which the
// other copies see (a child process inherits it with another pid and logs its own line).
// Returns whether it logged. `key` is [A-Za-z0-9_].
bool LogDebugOncePerProcess(const std::string& key, const std::string& message);

}  // namespace millpond
