#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <strings.h>
#include <ctime>
#include <mutex>
#include <set>

namespace millpond {

namespace {

const char* g_component = "native";

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    default: return "error";
  }
}

// The level MILLPOND_LOG_LEVEL names; info when unset or unknown. Read on every call (rare).
LogLevel MinLevel() {
  const char* v = std::getenv("MILLPOND_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kInfo;
  if (strcasecmp(v, "debug") == 0) return LogLevel::kDebug;
  if (strcasecmp(v, "warn") == 0) return LogLevel::kWarn;
  if (strcasecmp(v, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}

bool Human() {
  const char* f = std::getenv("MILLPOND_LOG_FORMAT");
  if (f != nullptr && strcasecmp(f, "human") == 0) return true;
  if (f != nullptr && strcasecmp(f, "json") == 0) return false;
  return ::isatty(2) == 1;
}

std::string IsoTime() {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  struct tm tm;
  ::gmtime_r(&tv.tv_sec, &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(tv.tv_usec / 1000));
  return out;
}

void WriteLine(const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::write(2, line.data() + off, line.size() - off);
    if (n <= 0) return;  // stderr closed: nothing to do about it
    off += static_cast<size_t>(n);
  }
}

}  // namespace

std::string JsonQuote(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

void SetLogComponent(const char* component) { g_component = component; }

void Log(LogLevel level, const std::string& message) {
  if (level < MinLevel()) return;
  const std::string time = IsoTime();
  std::string line;
  if (Human()) {
    char head[16];
    std::snprintf(head, sizeof head, "%-5s", LevelName(level));
    for (char* p = head; *p; p++) *p = static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
    line = time + " " + head + " " + g_component + ": " + message + "\n";
  } else {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    line = "{\"time\":\"" + time + "\",\"level\":\"" + LevelName(level) + "\",\"component\":" + JsonQuote(g_component) +
           ",\"host\":" + JsonQuote(host) + ",\"pid\":" + std::to_string(::getpid()) + ",\"message\":" + JsonQuote(message) +
           "}\n";
  }
  WriteLine(line);
}

void LogWarning(const std::string& message) { Log(LogLevel::kWarn, message); }

void LogWarningOnce(const std::string& key, const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> seen;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!seen.insert(key).second) return;
  }
  LogWarning(message);
}

bool LogDebugEnabled() { return MinLevel() == LogLevel::kDebug; }

bool LogDebugOncePerProcess(const std::string& key, const std::string& message) {
  if (!LogDebugEnabled()) return false;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  const std::string name = "MILLPOND_LOGGED_" + key;
  const std::string pid = std::to_string(::getpid());
  const char* marker = std::getenv(name.c_str());
  if (marker != nullptr && pid == marker) return false;
  ::setenv(name.c_str(), pid.c_str(), 1);
  Log(LogLevel::kDebug, message);
  return true;
}

}  // namespace millpond
