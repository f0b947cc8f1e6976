#include "common/chunk_format.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/file_io.h"

namespace millpond::chunk_format {

BlockSpan SpanOf(const FixedHeader& h, uint32_t offset, uint32_t length) {
  const uint32_t first = offset / kBlockBytes, last = (offset + length - 1) / kBlockBytes;
  BlockSpan span;
  span.start = first * kBlockBytes;
  span.bytes = std::min<uint32_t>((last + 1) * kBlockBytes, h.length) - span.start;
  return span;
}

Status VerifyBlocks(int fd, const FixedHeader& h, uint32_t start, const char* span, uint32_t bytes) {
  const uint32_t first = start / kBlockBytes, blocks = BlockCount(bytes);
  const std::string where = "chunk " + h.chunk.ToHex();
  std::vector<uint32_t> crcs(blocks);
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(fd, crcs.data(), 4 * blocks, h.BlockTableOffset() + 4ull * first, &got, where.c_str()));
  if (got != 4 * blocks) return Status::Corrupt(where + ": checksum table is truncated");
  for (uint32_t i = 0; i < blocks; i++) {
    uint32_t at = i * kBlockBytes;
    if (Crc32c(span + at, std::min<uint32_t>(kBlockBytes, bytes - at)) != crcs[i])
      return Status::Corrupt(where + ": checksum mismatch in block " + std::to_string(first + i) +
                             " (version " + std::to_string(h.version) + ")");
  }
  return Status::OK();
}

}  // namespace millpond::chunk_format
