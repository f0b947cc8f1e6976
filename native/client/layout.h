// File layout math (design §2), computed by the client after open: no server is asked per
// chunk. A file spreads over `stripeSize` chains picked from its chain table by a shuffle
// seeded with the file's seed; chunk i lives on chain fileChains[i % stripeSize].
// src/fs/layout.ts implements the same; test/fixtures/layout.txt holds shared vectors.
#pragma once

#include <cstdint>
#include <vector>

namespace millpond::layout {

// The file's chains: `tableChains` shuffled by `seed` (Fisher-Yates driven by splitmix64),
// the first min(stripeSize, tableChains.size()) of them.
std::vector<uint32_t> FileChains(const std::vector<uint32_t>& tableChains, uint32_t stripeSize, uint32_t seed);

struct ChunkPosition {
  uint32_t index;          // chunk index in the file
  uint32_t offsetInChunk;  // byte offset inside that chunk
};

// REQUIRES: chunkSizeBytes > 0 and offset / chunkSizeBytes < 2^32.
inline ChunkPosition Locate(uint64_t offset, uint32_t chunkSizeBytes) {
  return {static_cast<uint32_t>(offset / chunkSizeBytes), static_cast<uint32_t>(offset % chunkSizeBytes)};
}

// REQUIRES: fileChains is not empty.
inline uint32_t ChainOfChunk(const std::vector<uint32_t>& fileChains, uint32_t chunkIndex) {
  return fileChains[chunkIndex % fileChains.size()];
}

}  // namespace millpond::layout
