// ChunkId: (inode, chunk index), packed big-endian into 12 bytes so the chunks of one file
// sort together (design §2). A chunk id is always a number: the store derives file names
// from it, never from anything a client sends as text.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace millpond {

struct ChunkId {
  uint64_t inode = 0;
  uint32_t index = 0;

  static constexpr size_t kWireBytes = 12;

  void EncodeTo(uint8_t* out) const {
    for (int i = 0; i < 8; i++) out[i] = static_cast<uint8_t>(inode >> (56 - 8 * i));
    for (int i = 0; i < 4; i++) out[8 + i] = static_cast<uint8_t>(index >> (24 - 8 * i));
  }
  static ChunkId DecodeFrom(const uint8_t* in) {
    ChunkId id;
    for (int i = 0; i < 8; i++) id.inode = (id.inode << 8) | in[i];
    for (int i = 0; i < 4; i++) id.index = (id.index << 8) | in[8 + i];
    return id;
  }
  // 24 lowercase hex digits: the file name stem of the chunk on a target.
  std::string ToHex() const {
    char buf[25];
    std::snprintf(buf, sizeof buf, "%016llx%08x", static_cast<unsigned long long>(inode), index);
    return buf;
  }
  uint64_t Hash() const {
    uint64_t h = inode * 0x9E3779B97F4A7C15ull ^ (index + 0x632BE59BD9B4E019ull);
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
  }
  bool operator==(const ChunkId& o) const { return inode == o.inode && index == o.index; }
  bool operator<(const ChunkId& o) const {
    return inode != o.inode ? inode < o.inode : index < o.index;
  }
};

// Per-replica state of a chunk (design §2): the committed version and, while a write is in
// flight, the pending one (updateVersion > commitVersion). `checksum` is the CRC32C of the
// committed content of `length` bytes.
struct ChunkMeta {
  uint64_t commitVersion = 0;
  uint64_t updateVersion = 0;
  uint32_t length = 0;
  uint32_t checksum = 0;
};

// One chunk of a target's listing (ChunkStore::List, the data plane's list operation).
struct ChunkListEntry {
  ChunkId chunk;
  ChunkMeta meta;
  bool corrupt = false;  // its header failed validation when the store was opened
  // The chain its version was written for (chunk_format.h, format 3); 0 untagged (an older
  // format, a write that named no chain, or a damaged header).
  uint32_t chainId = 0;
};

}  // namespace millpond
