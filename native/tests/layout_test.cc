// The native layout math agrees with the TS one on the shared vectors, and its shuffle is a
// permutation that spreads files over the whole chain table.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "client/layout.h"

namespace millpond {
namespace {

std::string FixturePath() { return std::string(MILLPOND_SOURCE_DIR) + "/test/fixtures/layout.txt"; }

TEST(Layout, MatchesTheSharedVectors) {
  std::ifstream in(FixturePath());
  ASSERT_TRUE(in.good()) << FixturePath() << " not found";
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    uint32_t tableSize, stripe, seed;
    std::string colon;
    s >> tableSize >> stripe >> seed >> colon;
    std::vector<uint32_t> expected;
    for (uint32_t c; s >> c;) expected.push_back(c);
    std::vector<uint32_t> table;
    for (uint32_t i = 0; i < tableSize; i++) table.push_back(101 + i);
    EXPECT_EQ(layout::FileChains(table, stripe, seed), expected) << line;
    cases++;
  }
  EXPECT_GE(cases, 8);
}

// test/fixtures/layout-grown.txt: tables that grew; a layout names the version it was made at.
TEST(Layout, MatchesTheGrownTableVectors) {
  std::string path = std::string(MILLPOND_SOURCE_DIR) + "/test/fixtures/layout-grown.txt";
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path << " not found";
  std::string line;
  int cases = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    uint32_t tableSize, tableVersion, layoutVersion, stripe, seed;
    std::string counts, colon, first;
    s >> tableSize >> tableVersion >> counts >> layoutVersion >> stripe >> seed >> colon;
    std::vector<uint32_t> chainCounts;
    if (counts != "-") {
      std::istringstream c(counts);
      for (std::string item; std::getline(c, item, ',');) chainCounts.push_back(static_cast<uint32_t>(std::stoul(item)));
    }
    std::vector<uint32_t> table;
    for (uint32_t i = 0; i < tableSize; i++) table.push_back(101 + i);
    std::vector<uint32_t> at;
    bool known = layout::TableChainsAt(table, tableVersion, chainCounts, layoutVersion, &at);
    std::string rest;
    std::getline(s, rest);
    if (rest.find("none") != std::string::npos) {
      EXPECT_FALSE(known) << line;
    } else {
      ASSERT_TRUE(known) << line;
      std::istringstream e(rest);
      std::vector<uint32_t> expected;
      for (uint32_t c; e >> c;) expected.push_back(c);
      EXPECT_EQ(layout::FileChains(at, stripe, seed), expected) << line;
    }
    cases++;
  }
  EXPECT_GE(cases, 12);
}

TEST(Layout, ShuffleIsAPermutationAndSpreadsFiles) {
  std::vector<uint32_t> table;
  for (uint32_t i = 0; i < 12; i++) table.push_back(i);
  std::map<uint32_t, int> firstChain;
  for (uint32_t seed = 0; seed < 1200; seed++) {
    auto chains = layout::FileChains(table, 12, seed);
    EXPECT_EQ(std::set<uint32_t>(chains.begin(), chains.end()).size(), 12u);
    firstChain[chains[0]]++;
  }
  for (auto& [chain, n] : firstChain) EXPECT_GT(n, 50) << "chain " << chain << " starts too few files";
}

TEST(Layout, LocatesChunksAndTheirChains) {
  auto p = layout::Locate(10ull * 4194304 + 17, 4194304);
  EXPECT_EQ(p.index, 10u);
  EXPECT_EQ(p.offsetInChunk, 17u);
  std::vector<uint32_t> chains = {7, 8, 9};
  EXPECT_EQ(layout::ChainOfChunk(chains, 0), 7u);
  EXPECT_EQ(layout::ChainOfChunk(chains, 4), 8u);
}

}  // namespace
}  // namespace millpond
