// On-disk format of one chunk replica file (one file per chunk version):
//
//   [0, 64)              fixed header (below), CRC32C-protected
//   [64, 64 + 4*blocks)  CRC32C of each 4 KiB block of the content
//   [.., + 16*requests)  format 2: the writes this version and its ancestors applied, as
//                        (clientId, requestId) pairs, oldest first, at most
//                        kChunkRequestsRemembered; their CRC32C is in the fixed header
//   [headerBytes, ...)   the content, `length` bytes, zero-padded to a 4 KiB multiple
//
// headerBytes = round_up(64 + 4 * blocks (+ 16 * kChunkRequestsRemembered in format 2), 4096),
// so the content is O_DIRECT-aligned. A read verifies the CRC of every block it touches; the
// whole-content CRC is kept for replicas to compare (design §3). The request table makes a
// retried write apply once even at a head that restarted or took over (design §3): it travels
// with the version, so every replica holding the version knows the writes in it. Format 1
// files (no table) are still read.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/chunk_id.h"
#include "common/crc32c.h"
#include "common/limits.h"
#include "common/status.h"

namespace millpond::chunk_format {

constexpr uint32_t kMagic = 0x4B43504Du;  // "MPCK"
constexpr uint32_t kFormatVersion = 2;  // written; 1 is still read
constexpr uint32_t kRequestEntryBytes = 16;  // clientId u64, requestId u64
constexpr uint32_t kFixedHeaderBytes = 64;
constexpr uint32_t kBlockBytes = limits::kChunkBlockBytes;

inline uint32_t BlockCount(uint32_t length) { return (length + kBlockBytes - 1) / kBlockBytes; }
inline uint32_t HeaderBytes(uint32_t length, uint32_t format = kFormatVersion) {
  uint32_t raw = kFixedHeaderBytes + 4 * BlockCount(length) +
                 (format >= 2 ? kRequestEntryBytes * limits::kChunkRequestsRemembered : 0);
  return (raw + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
}
// Where the request table starts in a version file (format 2).
inline uint32_t RequestTableOffset(uint32_t length) { return kFixedHeaderBytes + 4 * BlockCount(length); }
inline uint64_t PaddedBytes(uint64_t n) { return (n + kBlockBytes - 1) / kBlockBytes * kBlockBytes; }
// Size on disk of a version file holding `length` bytes.
inline uint64_t FileBytes(uint32_t length) { return HeaderBytes(length) + PaddedBytes(length); }

struct FixedHeader {
  ChunkId chunk;
  uint64_t version = 0;
  uint32_t length = 0;
  uint32_t checksum = 0;  // CRC32C of the whole content
  uint32_t headerBytes = 0;
  uint32_t format = kFormatVersion;
  uint32_t requests = 0;     // entries in the request table (format 2)
  uint32_t requestsCrc = 0;  // CRC32C of those entries

  void EncodeTo(uint8_t* out) const {  // writes kFixedHeaderBytes
    std::memset(out, 0, kFixedHeaderBytes);
    std::memcpy(out + 0, &kMagic, 4);
    std::memcpy(out + 4, &format, 4);
    chunk.EncodeTo(out + 8);
    std::memcpy(out + 24, &version, 8);
    std::memcpy(out + 32, &length, 4);
    std::memcpy(out + 36, &checksum, 4);
    uint32_t blockBytes = kBlockBytes, blocks = BlockCount(length);
    std::memcpy(out + 40, &blockBytes, 4);
    std::memcpy(out + 44, &blocks, 4);
    std::memcpy(out + 48, &headerBytes, 4);
    std::memcpy(out + 52, &requests, 4);
    std::memcpy(out + 56, &requestsCrc, 4);
    uint32_t crc = Crc32c(out, 60);
    std::memcpy(out + 60, &crc, 4);
  }

  static Status Decode(const uint8_t* in, FixedHeader* h) {
    uint32_t magic, format, crc, blockBytes, blocks;
    std::memcpy(&magic, in, 4);
    std::memcpy(&format, in + 4, 4);
    std::memcpy(&crc, in + 60, 4);
    if (magic != kMagic) return Status::Corrupt("chunk file has a bad magic number");
    if (crc != Crc32c(in, 60)) return Status::Corrupt("chunk header checksum mismatch");
    if (format != 1 && format != 2)
      return Status::Corrupt("chunk file format " + std::to_string(format) + " is unknown");
    h->format = format;
    h->chunk = ChunkId::DecodeFrom(in + 8);
    std::memcpy(&h->version, in + 24, 8);
    std::memcpy(&h->length, in + 32, 4);
    std::memcpy(&h->checksum, in + 36, 4);
    std::memcpy(&blockBytes, in + 40, 4);
    std::memcpy(&blocks, in + 44, 4);
    std::memcpy(&h->headerBytes, in + 48, 4);
    std::memcpy(&h->requests, in + 52, 4);
    std::memcpy(&h->requestsCrc, in + 56, 4);
    if (blockBytes != kBlockBytes || h->length > limits::kChunkSizeBytesMax ||
        blocks != BlockCount(h->length) || h->headerBytes != HeaderBytes(h->length, format) ||
        h->requests > (format >= 2 ? limits::kChunkRequestsRemembered : 0))
      return Status::Corrupt("chunk header fields are inconsistent");
    return Status::OK();
  }
};

// The whole blocks of content a read of [offset, offset + length) touches: the unit that is
// read from disk and checked. REQUIRES: length > 0, offset + length <= h.length.
struct BlockSpan {
  uint32_t start = 0;  // content offset, a block multiple
  uint32_t bytes = 0;  // to the end of the last block touched, or of the content
  // Whether the span is exactly [offset, offset + length), so it may be read straight into dst.
  bool Covers(uint32_t offset, uint32_t length) const { return start == offset && bytes == length; }
};
BlockSpan SpanOf(const FixedHeader& h, uint32_t offset, uint32_t length);

// Checks `span` (the content bytes of BlockSpan `start`.., `bytes` long) against the version
// file's checksum table, read from `fd`. kCorrupt names the first bad block.
Status VerifyBlocks(int fd, const FixedHeader& h, uint32_t start, const char* span, uint32_t bytes);

}  // namespace millpond::chunk_format
