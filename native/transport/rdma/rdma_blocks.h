// Accounting of a registered memory region cut into equal blocks. A message's data occupies
// whole blocks, not necessarily adjacent: the descriptor lists one segment per block. Pure
// bookkeeping (no verbs), so the host tests can check the limits.
// Not thread-safe: the owning transport serialises calls with its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/status.h"

namespace millpond::rdma {

class BlockAllocator {
 public:
  // REQUIRES: blockBytes > 0; regionBytes is rounded down to whole blocks.
  BlockAllocator(size_t regionBytes, uint32_t blockBytes);

  // Blocks for `bytes` (0 bytes take none). kTooLarge when the region could never hold them,
  // kBusy when it cannot now. On success appends the block indexes to *out.
  Status Allocate(size_t bytes, std::vector<uint32_t>* out);
  // REQUIRES: each index came from Allocate and is freed once.
  void Free(const std::vector<uint32_t>& blocks);

  size_t BlocksFor(size_t bytes) const { return (bytes + blockBytes_ - 1) / blockBytes_; }
  uint32_t blockBytes() const { return blockBytes_; }
  size_t blocksTotal() const { return blocksTotal_; }
  size_t blocksFree() const { return free_.size(); }
  size_t offsetOf(uint32_t block) const { return size_t{block} * blockBytes_; }

 private:
  const uint32_t blockBytes_;
  const size_t blocksTotal_;
  std::vector<uint32_t> free_;  // a stack: recently freed blocks are reused first (warm)
};

}  // namespace millpond::rdma
