// Logging to stderr for rare, operator-relevant events (fallbacks, refusals, dropped peers), in
// the shape of the TypeScript daemons' log (src/log.ts): one JSON object a line
//   {"time":"...Z","level":"warn","component":"fuse","host":"h1","pid":42,"message":"..."}
// or, when stderr is a terminal (or MILLPOND_LOG_FORMAT=human), one human line
//   2026-12-01T23:50:01.123Z WARN  fuse: ...
// Lines below MILLPOND_LOG_LEVEL (debug|info|warn|error; default info; the CLI's --verbose sets
// debug) are dropped. Not for per-request paths. Messages must carry no secret (callers log
// addresses, ids and status text, never keys or tokens).
#pragma once

#include <string>

namespace millpond {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// The component named in every line of this process ("fuse", "storage", ...). Default "native".
// REQUIRES: called before other threads log (at start of main).
void SetLogComponent(const char* component);

// Writes one line at `level` (one write(2), so lines of threads do not interleave).
void Log(LogLevel level, const std::string& message);

void LogWarning(const std::string& message);
// Logs `message` only the first time `key` is seen in this process.
void LogWarningOnce(const std::string& key, const std::string& message);

// Whether MILLPOND_LOG_LEVEL=debug is set now (read on every call: the CLI sets it before use).
bool LogDebugEnabled();
// At debug level, logs `message` the first time `key` is seen in this process — once per
// process even though the addon and the DuckDB extension each link their own copy of this
// code: the first to log leaves MILLPOND_LOGGED_<key>=<pid> in the environment, which the
// other copies see (a child process inherits it with another pid and logs its own line).
// Returns whether it logged. `key` is [A-Za-z0-9_].
bool LogDebugOncePerProcess(const std::string& key, const std::string& message);

// `text` as a JSON string literal, quotes included (for the JSON log and other JSON writers).
std::string JsonQuote(const std::string& text);

}  // namespace millpond
