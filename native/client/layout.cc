#include "client/layout.h"

#include <algorithm>

namespace millpond::layout {

namespace {
// splitmix64: small, fast, and the same in every language we speak.
uint64_t NextRandom(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

bool TableChainsAt(const std::vector<uint32_t>& chainIds, uint32_t tableVersion, const std::vector<uint32_t>& chainCounts,
                   uint32_t layoutVersion, std::vector<uint32_t>* out) {
  uint32_t v = std::max<uint32_t>(1, layoutVersion);
  if (v > tableVersion) return false;
  if (chainCounts.empty()) {
    *out = chainIds;
    return true;
  }
  if (v > chainCounts.size() || chainCounts[v - 1] > chainIds.size()) return false;
  out->assign(chainIds.begin(), chainIds.begin() + chainCounts[v - 1]);
  return true;
}

std::vector<uint32_t> FileChains(const std::vector<uint32_t>& tableChains, uint32_t stripeSize, uint32_t seed) {
  std::vector<uint32_t> chains = tableChains;
  uint64_t state = seed;
  for (size_t k = chains.size(); k > 1; k--) {
    size_t j = static_cast<size_t>(NextRandom(&state) % k);
    std::swap(chains[k - 1], chains[j]);
  }
  chains.resize(std::min<size_t>(stripeSize, chains.size()));
  return chains;
}

}  // namespace millpond::layout
