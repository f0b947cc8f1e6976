#include "transport/rdma/rdma_chain.h"

#include <algorithm>
#include <cstring>

namespace millpond::rdma {

void Chain::Append(const ibv_send_wr& wr, const ibv_sge& sge) {
  // Relink after the push: the vectors may move.
  sges.push_back(sge);
  wrs.push_back(wr);
  for (size_t i = 0; i < wrs.size(); i++) {
    wrs[i].sg_list = &sges[i];
    wrs[i].num_sge = 1;
    wrs[i].next = i + 1 < wrs.size() ? &wrs[i + 1] : nullptr;
  }
}

Status BuildDataChain(ibv_wr_opcode opcode, char* base, uint32_t lkey, const BlockAllocator& alloc,
                      const std::vector<uint32_t>& blocks, const std::vector<Segment>& remote,
                      size_t bytes, uint64_t lastWrId, Chain* out) {
  out->wrs.clear();
  out->sges.clear();
  if (bytes == 0) return Status::OK();
  const size_t blockBytes = alloc.blockBytes();
  size_t done = 0, seg = 0, segOffset = 0;
  while (done < bytes) {
    if (seg >= remote.size()) return Status::Protocol("rdma: peer segments shorter than the data");
    size_t block = done / blockBytes, blockOffset = done % blockBytes;
    size_t n = std::min({bytes - done, blockBytes - blockOffset, size_t{remote[seg].length} - segOffset});
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(base + alloc.offsetOf(blocks[block]) + blockOffset);
    sge.length = static_cast<uint32_t>(n);
    sge.lkey = lkey;
    ibv_send_wr wr{};
    wr.opcode = opcode;
    wr.wr.rdma.remote_addr = remote[seg].addr + segOffset;
    wr.wr.rdma.rkey = remote[seg].rkey;
    out->sges.push_back(sge);
    out->wrs.push_back(wr);
    done += n;
    segOffset += n;
    if (segOffset == remote[seg].length) {
      seg++;
      segOffset = 0;
    }
  }
  for (size_t i = 0; i < out->wrs.size(); i++) {
    out->wrs[i].sg_list = &out->sges[i];
    out->wrs[i].num_sge = 1;
    out->wrs[i].next = i + 1 < out->wrs.size() ? &out->wrs[i + 1] : nullptr;
  }
  out->wrs.back().wr_id = lastWrId;
  out->wrs.back().send_flags = IBV_SEND_SIGNALED;
  return Status::OK();
}

void CopyToBlocks(char* base, const BlockAllocator& alloc, const std::vector<uint32_t>& blocks,
                  size_t offset, const char* src, size_t n) {
  const size_t bb = alloc.blockBytes();
  while (n > 0) {
    size_t b = offset / bb, o = offset % bb, k = std::min(n, bb - o);
    std::memcpy(base + alloc.offsetOf(blocks[b]) + o, src, k);
    src += k;
    offset += k;
    n -= k;
  }
}

void CopyFromBlocks(const char* base, const BlockAllocator& alloc, const std::vector<uint32_t>& blocks,
                    size_t offset, char* dst, size_t n) {
  const size_t bb = alloc.blockBytes();
  while (n > 0) {
    size_t b = offset / bb, o = offset % bb, k = std::min(n, bb - o);
    std::memcpy(dst, base + alloc.offsetOf(blocks[b]) + o, k);
    dst += k;
    offset += k;
    n -= k;
  }
}

}  // namespace millpond::rdma
