// The data-plane wire format, shared by the TCP and RDMA transports, the server and the
// client. One message = a 32-byte header, then `metaBytes` of control fields (the request's
// arguments, or the reply's results), then `dataBytes` of payload (write data, read data).
// Integers are little-endian; ChunkIds are 12 bytes big-endian (common/chunk_id.h).
//
// Capabilities (common/auth.h): on a connection authenticated as a client, every request that
// touches a chunk carries one after its arguments: read, write, stat and openLocal end with one
// 36-byte capability; a batch read ends with a table (count u32 + count x capability) holding
// one per inode it reads. Connections of storage nodes (and servers without a secret) send none.
//
// Header layout (byte offsets):
//   0 magic u32 ('MPD1')   4 version u8   5 opcode u8   6 flags u16
//   8 requestId u64        16 metaBytes u32   20 dataBytes u32
//   24 status i32 (replies: a StatusCode; requests: 0)   28 headerCrc u32 (CRC32C of 0..27)
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "common/auth.h"
#include "common/chunk_id.h"
#include "common/limits.h"
#include "common/status.h"

namespace millpond::frame {

constexpr uint32_t kMagic = 0x3144504Du;  // "MPD1" little-endian
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderBytes = limits::kFrameHeaderBytes;
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format assumes a little-endian host");

enum Opcode : uint8_t {
  kRead = 1,       // meta: ReadArgs              reply meta: ChunkMetaWire, data: bytes read
  kWrite = 2,      // meta: WriteArgs, data: payload   reply meta: ChunkMetaWire
  kBatchRead = 3,  // meta: count u32 + count x ReadArgs  reply meta: count x BatchEntry,
                   //   data: each entry's requested length, in order (short reads zero-padded)
  kRemove = 4,     // meta: ChunkId
  kStat = 5,       // meta: ChunkId              reply meta: ChunkMetaWire
  kList = 6,       // meta: ListArgs             reply meta: count u32 + count x ListEntry
  kCommit = 7,     // meta: CommitArgs           reply meta: ChunkMetaWire
  kPing = 8,       // no meta                     reply: no meta
  // Short-circuit local reads (storage/local_read_server.h):
  kLocalInfo = 9,  // no meta                     reply meta: the server's local socket name
                   //   (kNotSupported when it offers none)
  kOpenLocal = 10, // meta: ReadArgs (offset and length ignored), only on the local socket
                   //   reply meta: ChunkMetaWire; the version file's descriptor rides along
};
constexpr uint8_t kOpcodeMax = kOpenLocal;
const char* OpcodeName(uint8_t op);

enum Flags : uint16_t {
  kFlagReply = 1 << 0,
};

struct Header {
  uint32_t magic = kMagic;
  uint8_t version = kVersion;
  uint8_t opcode = 0;
  uint16_t flags = 0;
  uint64_t requestId = 0;
  uint32_t metaBytes = 0;
  uint32_t dataBytes = 0;
  int32_t status = 0;

  void EncodeTo(uint8_t* out) const;  // writes kHeaderBytes, computing headerCrc
  // Validates magic, version, CRC, opcode and the size limits (kProtocol / kTooLarge).
  static Status Decode(const uint8_t* in, Header* out);
};

// ---- argument and result records (fixed sizes, so both sides can bound them)
struct ReadArgs {  // 24 bytes
  ChunkId chunk;
  uint32_t offset = 0;
  uint32_t length = 0;
  uint32_t flags = 0;  // kReadUncommitted, kReadBlockCrcs
  static constexpr size_t kBytes = 24;
};
constexpr uint32_t kReadUncommitted = 1;  // relaxed read of the pending version
// The client verifies the data itself: the server may answer with the version's stored block
// CRCs after the reply's ChunkMeta (count u32 = BlockCount(bytes read), then count x u32, the
// CRC32C of each kChunkBlockBytes block of the reply data from its start) and send the bytes
// unverified, straight from the version file. It does so only when the read starts on a block
// boundary and ends on one or at the end of the content; otherwise (and for servers that
// predate the flag, which ignore it) the reply is a bare ChunkMeta and the server verified.
constexpr uint32_t kReadBlockCrcs = 2;

struct WriteArgs {  // 64 bytes, 68 with kWriteExpectChecksum, + 4 per block with kWriteBlockCrcs
  ChunkId chunk;
  uint32_t offset = 0;
  uint32_t length = 0;          // equals the header's dataBytes
  uint64_t updateVersion = 0;   // 0: one above the chunk's newest version (the head assigns it)
  uint32_t flags = 0;           // kWriteCommit, kWriteReplace, kWriteChain
  uint32_t payloadChecksum = 0; // CRC32C of the payload, checked by the server before use
  uint32_t chunkSizeBytes = 0;  // the chunk's capacity; offset + length must fit (0: kChunkSizeBytesMax)
  uint32_t chainId = 0;         // kWriteChain: the chain the write travels, at chainVersion
  uint32_t chainVersion = 0;
  uint64_t clientId = 0;        // kWriteChain: (clientId, requestId) make a retried write apply once
  uint64_t requestId = 0;
  // kWriteExpectChecksum: the CRC32C the new version must have. A chain successor checks it
  // before it stores or commits anything (it follows the requestId on the wire).
  uint32_t expectedChecksum = 0;
  // kWriteBlockCrcs: the CRC32C of each kChunkBlockBytes block of the payload, from its start
  // (BlockCount(length) of them, after expectedChecksum on the wire). The writer computes them
  // once; the server verifies the payload against them in the one pass that also makes the
  // version's block table, and a chain forward passes the same ones on. payloadChecksum is
  // then their combination (no pass over the data).
  std::vector<uint32_t> blockCrcs;
  static constexpr size_t kBytes = 64;
};
constexpr uint32_t kWriteCommit = 1;   // commit at once (single replica or chain tail)
constexpr uint32_t kWriteReplace = 2;  // the payload is the whole new content (resync, truncate)
constexpr uint32_t kWriteChain = 4;    // CRAQ: store pending, forward to the successor, commit on its ack
constexpr uint32_t kWriteExpectChecksum = 8;  // expectedChecksum follows; a mismatch is kCorrupt, nothing stored
constexpr uint32_t kWriteBlockCrcs = 16;      // blockCrcs follow; a mismatch is kCorrupt, nothing stored

// Blocks of kChunkBlockBytes in `bytes` (the last one may be partial).
inline uint32_t BlockCount(uint64_t bytes) {
  return static_cast<uint32_t>((bytes + limits::kChunkBlockBytes - 1) / limits::kChunkBlockBytes);
}
// The CRC32C of each kChunkBlockBytes block of data[0, bytes), into out (resized), and their
// combination, the CRC32C of the whole (0 for no bytes).
uint32_t ComputeBlockCrcs(const char* data, uint32_t bytes, std::vector<uint32_t>* out);
// The CRC32C of the whole from its block CRCs (blocks of kChunkBlockBytes, `bytes` in all).
uint32_t CombineBlockCrcs(const uint32_t* crcs, uint32_t bytes);
// Checks data[0, bytes) against its block CRCs: kCorrupt naming the first bad block.
Status VerifyBlockCrcs(const char* data, uint32_t bytes, const uint32_t* crcs, const char* what);
// A read reply's optional block-CRC section (kReadBlockCrcs), after its ChunkMeta.
void PutBlockCrcs(std::string* out, const uint32_t* crcs, uint32_t count);

struct CommitArgs {  // 20 bytes
  ChunkId chunk;
  uint64_t version = 0;
  static constexpr size_t kBytes = 20;
};

struct ListArgs {  // 20 bytes: chunks strictly after `after` (all when hasAfter == 0)
  ChunkId after;
  uint32_t hasAfter = 0;
  uint32_t limit = 0;
  static constexpr size_t kBytes = 20;
};

constexpr size_t kChunkMetaBytes = 24;  // commitVersion u64, updateVersion u64, length u32, checksum u32
// A list reply's entry: ChunkId, ChunkMetaWire, flags u32, chainId u32 (the chain the
// replica's version was written for, chunk_format.h; 0 untagged).
constexpr size_t kListEntryBytes = ChunkId::kWireBytes + kChunkMetaBytes + 4 + 4;
static_assert(4 + limits::kListReplyEntriesMax * kListEntryBytes <= limits::kFrameMetaBytesMax,
              "a full list reply fits one message's meta");
constexpr uint32_t kListEntryCorrupt = 1;  // list entry flag: the replica's header is damaged
constexpr size_t kBatchEntryBytes = 8;  // status i32, bytesRead u32

// Appenders and a bounds-checked reader for meta sections.
void Put(std::string* out, const ReadArgs& a);
void Put(std::string* out, const WriteArgs& a);
void Put(std::string* out, const CommitArgs& a);
void Put(std::string* out, const ListArgs& a);
void Put(std::string* out, const ChunkMeta& m);
void Put(std::string* out, const ChunkListEntry& e);  // kListEntryBytes
void PutChunkId(std::string* out, const ChunkId& id);
void PutU32(std::string* out, uint32_t v);
void PutI32(std::string* out, int32_t v);
void PutCapability(std::string* out, const Capability& c);

class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool Get(ReadArgs* a);
  bool Get(WriteArgs* a);
  bool Get(CommitArgs* a);
  bool Get(ListArgs* a);
  bool Get(ChunkMeta* m);
  bool Get(ChunkListEntry* e);
  bool GetChunkId(ChunkId* id);
  bool GetU32(uint32_t* v);
  bool GetI32(int32_t* v);
  bool GetCapability(Capability* c);
  bool GetU64(uint64_t* v);
  // A count u32 then count x u32; false if count exceeds `countMax` or the bytes run out.
  bool GetBlockCrcs(std::vector<uint32_t>* out, uint32_t countMax);
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

 private:
  bool GetCrcArray(std::vector<uint32_t>* out, uint32_t count);  // count x u32
  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace millpond::frame
