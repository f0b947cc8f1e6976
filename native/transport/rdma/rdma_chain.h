// Work-request chains that move a message's data between local registered blocks and the
// peer's segments (RDMA READ: remote -> local; RDMA WRITE: local -> remote).
#pragma once

#include "transport/rdma/rdma_config.h"

#include <infiniband/verbs.h>

#include <vector>

#include "common/status.h"
#include "transport/rdma/rdma_blocks.h"
#include "transport/rdma/rdma_wire.h"

namespace millpond::rdma {

struct Chain {
  std::vector<ibv_send_wr> wrs;  // linked through `next`; empty for 0 bytes
  std::vector<ibv_sge> sges;
  ibv_send_wr* head() { return wrs.empty() ? nullptr : &wrs[0]; }
  // Appends `wr` after the chain (used to follow WRITEs with the reply SEND).
  void Append(const ibv_send_wr& wr, const ibv_sge& sge);
};

// Builds one WR per overlap of a local block and a remote segment for the first `bytes`.
// Only the last WR is signalled (with `lastWrId`): RC completes a send queue in order.
// kProtocol when the remote segments hold fewer than `bytes`.
Status BuildDataChain(ibv_wr_opcode opcode, char* base, uint32_t lkey, const BlockAllocator& alloc,
                      const std::vector<uint32_t>& blocks, const std::vector<Segment>& remote,
                      size_t bytes, uint64_t lastWrId, Chain* out);

// Copies between a flat range and the blocks of a message (block i holds bytes
// [i*blockBytes, (i+1)*blockBytes) of it).
void CopyToBlocks(char* base, const BlockAllocator& alloc, const std::vector<uint32_t>& blocks,
                  size_t offset, const char* src, size_t n);
void CopyFromBlocks(const char* base, const BlockAllocator& alloc, const std::vector<uint32_t>& blocks,
                    size_t offset, char* dst, size_t n);

}  // namespace millpond::rdma
