// HedgeGovernor: the hedge budget and the order new reads try replicas in.
#include "client/hedge_governor.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/limits.h"

namespace millpond {
namespace {

using Clock = HedgeGovernor::Clock;
using std::chrono::milliseconds;

TEST(HedgeGovernor, StartsWithAFullBurstThenHedgesOncePerEarnDivisorFirstAttempts) {
  HedgeGovernor g;
  for (uint32_t i = 0; i < limits::kReadHedgeBurstMax; i++) ASSERT_TRUE(g.TrySpend()) << i;
  EXPECT_FALSE(g.TrySpend());
  for (uint32_t i = 0; i + 1 < limits::kReadHedgeEarnDivisor; i++) g.Earn();
  EXPECT_FALSE(g.TrySpend()) << "one first attempt short of a hedge";
  g.Earn();
  EXPECT_TRUE(g.TrySpend());
  EXPECT_FALSE(g.TrySpend());
}

TEST(HedgeGovernor, SavesNoMoreThanTheBurst) {
  HedgeGovernor g;
  for (uint32_t i = 0; i < 100 * limits::kReadHedgeEarnDivisor * limits::kReadHedgeBurstMax; i++) g.Earn();
  uint32_t spent = 0;
  while (g.TrySpend()) spent++;
  EXPECT_EQ(spent, limits::kReadHedgeBurstMax);
}

TEST(HedgeGovernor, StalledReplicasGoLastUntilTheyAnswerOrTheirMarkExpires) {
  HedgeGovernor g;
  const auto now = Clock::now();
  std::vector<std::string> order{"a", "b", "tail"};
  g.PreferResponsive(&order, now);
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "tail"}));

  g.Stalled("a", now);
  g.PreferResponsive(&order, now);
  EXPECT_EQ(order, (std::vector<std::string>{"b", "tail", "a"})) << "the others keep their order";

  g.Stalled("tail", now);
  order = {"a", "b", "tail"};
  g.PreferResponsive(&order, now + milliseconds(1));
  EXPECT_EQ(order, (std::vector<std::string>{"b", "a", "tail"}));

  g.Answered("a");
  order = {"a", "b", "tail"};
  g.PreferResponsive(&order, now + milliseconds(1));
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "tail"}));

  order = {"tail", "b"};
  g.PreferResponsive(&order, now + milliseconds(limits::kReadStalledReplicaMs));
  EXPECT_EQ(order, (std::vector<std::string>{"tail", "b"})) << "the mark expired";
}

}  // namespace
}  // namespace millpond
