// MP_ASSERT: a check of an invariant the code itself keeps (TigerBeetle's style, design §8):
// when it fails the process state is already wrong, so the process logs the failed condition
// (common/log.h, level error) and aborts instead of going on with, or persisting, bad state.
// It stays on in release builds (NDEBUG does not remove it). For programmer errors only: input
// from the world (the network, the disk, the user) gets a Status, never an assertion.
#pragma once

#include <string>

namespace millpond {

// Logs "assertion failed: <condition> (<file>:<line>): <message>" and aborts.
[[noreturn]] void AssertionFailed(const char* condition, const char* file, int line, const std::string& message);

}  // namespace millpond

// `message` is evaluated only when `condition` is false.
#define MP_ASSERT(condition, message)                                             \
  do {                                                                            \
    if (__builtin_expect(!(condition), 0))                                        \
      ::millpond::AssertionFailed(#condition, __FILE__, __LINE__, (message));     \
  } while (0)
