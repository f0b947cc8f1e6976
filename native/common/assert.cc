#include "common/assert.h"

#include <cstdlib>

#include "common/log.h"

namespace millpond {

void AssertionFailed(const char* condition, const char* file, int line, const std::string& message) {
  Log(LogLevel::kError, std::string("assertion failed: ") + condition + " (" + file + ":" + std::to_string(line) +
                            "): " + message);
  std::abort();
}

}  // namespace millpond
