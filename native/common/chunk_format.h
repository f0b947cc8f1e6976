// On-disk format of one chunk replica file (one file per chunk version):
//
//   [0, 64)              fixed header (below), CRC32C-protected
//   [64, 80)             format 3: the extension block (below), with its own CRC32C
//   [B, B + 4*blocks)    CRC32C of each 4 KiB block of the content; B = BlockTableOffset(format):
//                        64 in formats 1 and 2, 80 in format 3
//   [.., + 16*requests)  formats 2 and 3: the writes this version and its ancestors applied, as
//                        (clientId, requestId) pairs, oldest first, at most
//                        kChunkRequestsRemembered; their CRC32C is in the fixed header
//   [headerBytes, ...)   the content, `length` bytes, zero-padded to a 4 KiB multiple
//
// headerBytes = round_up(B + 4 * blocks (+ 16 * kChunkRequestsRemembered from format 2), 4096),
// so the content is O_DIRECT-aligned. A read verifies the CRC of every block it touches; the
// whole-content CRC is kept for replicas to compare (design §3). The request table makes a
// retried write apply once even at a head that restarted or took over (design §3): it travels
// with the version, so every replica holding the version knows the writes in it.
//
// The extension block (format 3): chainId u32 (the chain the version was written for, 0 when
// no write named one), 8 reserved bytes (zero), then the CRC32C of those 12 bytes. The tag
// lets a resync copy from a target in several chains only the chunks of the chains it
// resyncs (src/storage/resync.ts). Format 1 (no request table) and format 2 (no extension)
// files are still read; they are untagged (chainId 0).
#pragma once

#include <cstdint>
#include <cstring>

#include "common/chunk_id.h"
#include "common/crc32c.h"
#include "common/limits.h"
#include "common/status.h"

namespace millpond::chunk_format {

constexpr uint32_t kMagic = 0x4B43504Du;  // "MPCK"
constexpr uint32_t kFormatVersion = 3;  // written; 1 and 2 are still read
constexpr uint32_t kRequestEntryBytes = 16;  // clientId u64, requestId u64
constexpr uint32_t kFixedHeaderBytes = 64;
constexpr uint32_t kExtensionBytes = 16;  // format 3: chainId u32, 8 reserved, CRC32C u32
// What a reader reads from offset 0 to decode a version file's header of any format
// (FixedHeader::Decode). Every version file has at least this much: headerBytes >= 4096.
constexpr uint32_t kHeadBytes = kFixedHeaderBytes + kExtensionBytes;
constexpr uint32_t kBlockBytes = limits::kChunkBlockBytes;

inline uint32_t BlockCount(uint32_t length) { return (length + kBlockBytes - 1) / kBlockBytes; }
// Where the block-CRC table starts in a version file of `format`.
inline uint32_t BlockTableOffset(uint32_t format) {
  return kFixedHeaderBytes + (format >= 3 ? kExtensionBytes : 0);
}
inline uint32_t HeaderBytes(uint32_t length, uint32_t format = kFormatVersion) {
  uint32_t raw = BlockTableOffset(format) + 4 * BlockCount(length) +
                 (format >= 2 ? kRequestEntryBytes * limits::kChunkRequestsRemembered : 0);
  return (raw + kBlockBytes - 1) / kBlockBytes * kBlockBytes;
}
// Where the request table starts in a version file of `format` (2 or later).
inline uint32_t RequestTableOffset(uint32_t length, uint32_t format) {
  return BlockTableOffset(format) + 4 * BlockCount(length);
}
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
  uint32_t requests = 0;     // entries in the request table (formats 2 and 3)
  uint32_t requestsCrc = 0;  // CRC32C of those entries
  uint32_t chainId = 0;      // format 3 (the extension block): the chain; 0 untagged

  uint32_t BlockTableOffset() const { return chunk_format::BlockTableOffset(format); }
  uint32_t RequestTableOffset() const { return chunk_format::RequestTableOffset(length, format); }

  // Writes the fixed header and, in format 3, the extension block: kHeadBytes in format 3,
  // kFixedHeaderBytes before it (an older format is only written by tests making old files).
  void EncodeTo(uint8_t* out) const {
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
    if (format < 3) return;
    uint8_t* ext = out + kFixedHeaderBytes;
    std::memset(ext, 0, kExtensionBytes);
    std::memcpy(ext, &chainId, 4);
    uint32_t extCrc = Crc32c(ext, kExtensionBytes - 4);
    std::memcpy(ext + kExtensionBytes - 4, &extCrc, 4);
  }

  // Decodes and checks a header. REQUIRES: `in` holds kHeadBytes (the extension block is
  // read only in format 3).
  static Status Decode(const uint8_t* in, FixedHeader* h) {
    uint32_t magic, format, crc, blockBytes, blocks;
    std::memcpy(&magic, in, 4);
    std::memcpy(&format, in + 4, 4);
    std::memcpy(&crc, in + 60, 4);
    if (magic != kMagic) return Status::Corrupt("chunk file has a bad magic number");
    if (crc != Crc32c(in, 60)) return Status::Corrupt("chunk header checksum mismatch");
    if (format < 1 || format > 3)
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
    h->chainId = 0;
    if (format >= 3) {
      const uint8_t* ext = in + kFixedHeaderBytes;
      uint32_t extCrc;
      std::memcpy(&extCrc, ext + kExtensionBytes - 4, 4);
      if (extCrc != Crc32c(ext, kExtensionBytes - 4)) return Status::Corrupt("chunk header extension checksum mismatch");
      std::memcpy(&h->chainId, ext, 4);
    }
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
