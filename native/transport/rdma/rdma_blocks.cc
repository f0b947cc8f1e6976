#include "transport/rdma/rdma_blocks.h"

#include <cassert>
#include <string>

namespace millpond::rdma {

BlockAllocator::BlockAllocator(size_t regionBytes, uint32_t blockBytes)
    : blockBytes_(blockBytes), blocksTotal_(regionBytes / blockBytes) {
  assert(blockBytes > 0);
  free_.reserve(blocksTotal_);
  for (size_t i = blocksTotal_; i > 0; i--) free_.push_back(static_cast<uint32_t>(i - 1));
}

Status BlockAllocator::Allocate(size_t bytes, std::vector<uint32_t>* out) {
  size_t n = BlocksFor(bytes);
  if (n > blocksTotal_)
    return Status::TooLarge(std::to_string(bytes) + " bytes exceed the registered pool of " +
                            std::to_string(blocksTotal_ * blockBytes_) + " bytes");
  if (n > free_.size()) return Status::Busy("registered pool exhausted");
  for (size_t i = 0; i < n; i++) {
    out->push_back(free_.back());
    free_.pop_back();
  }
  return Status::OK();
}

void BlockAllocator::Free(const std::vector<uint32_t>& blocks) {
  for (uint32_t b : blocks) {
    assert(b < blocksTotal_);
    free_.push_back(b);
  }
  assert(free_.size() <= blocksTotal_);
}

}  // namespace millpond::rdma
