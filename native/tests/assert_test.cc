// MP_ASSERT (common/assert.h) stays on in release builds: a false condition logs it with the
// caller's message through common/log and aborts the process; a true one costs no message.
#ifndef NDEBUG
#define NDEBUG  // as in a release build: the assertion must not depend on it
#endif
#include "common/assert.h"

#include <gtest/gtest.h>

#include <string>

namespace millpond {
namespace {

TEST(AssertDeathTest, FalseConditionLogsAndAborts) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  int used = 5;
  EXPECT_DEATH(MP_ASSERT(used <= 4, "store would uncount " + std::to_string(used) + " bytes"),
               "assertion failed: used <= 4 \\(.*assert_test\\.cc:[0-9]+\\): store would uncount 5 bytes");
}

TEST(AssertDeathTest, TrueConditionDoesNotBuildTheMessage) {
  int built = 0;
  auto message = [&built] {
    built++;
    return std::string("never");
  };
  for (int i = 0; i < 3; i++) MP_ASSERT(i < 3, message());
  EXPECT_EQ(built, 0);
}

}  // namespace
}  // namespace millpond
