// File layout math (design §2), computed by the client after open: no server is asked per
// chunk. A file spreads over `stripeSize` chains picked from its chain table by a shuffle
// seeded with the file's seed; chunk i lives on chain fileChains[i % stripeSize].
// src/fs/layout.ts implements the same; test/fixtures/layout.txt and layout-grown.txt hold
// shared vectors.
//
// A chain table grows by appending chains at a new version, never by reordering them. A file's
// layout records the table version it was created at, and the shuffle runs over the table as
// it was then (TableChainsAt): growing a table never moves an existing file's chunks.
#pragma once

#include <cstdint>
#include <vector>

namespace millpond::layout {

// The file's chains: `tableChains` shuffled by `seed` (Fisher-Yates driven by splitmix64),
// the first min(stripeSize, tableChains.size()) of them.
std::vector<uint32_t> FileChains(const std::vector<uint32_t>& tableChains, uint32_t stripeSize, uint32_t seed);

// The table's chains at `layoutVersion` (a file layout's chainTableVersion; 0 reads as 1):
// the first chainCounts[v - 1] of chainIds, or all of them when chainCounts is empty (the table
// never grew). False when the table (at `tableVersion`) has no such version yet: the routing
// is older than the layout, refresh it and ask again.
bool TableChainsAt(const std::vector<uint32_t>& chainIds, uint32_t tableVersion, const std::vector<uint32_t>& chainCounts,
                   uint32_t layoutVersion, std::vector<uint32_t>* out);

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
