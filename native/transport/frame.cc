#include "transport/frame.h"

#include <algorithm>

#include "common/crc32c.h"

namespace millpond::frame {

namespace {
template <typename T>
void PutRaw(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace

const char* OpcodeName(uint8_t op) {
  switch (op) {
    case kRead: return "read";
    case kWrite: return "write";
    case kBatchRead: return "batchRead";
    case kRemove: return "remove";
    case kStat: return "stat";
    case kList: return "list";
    case kCommit: return "commit";
    case kPing: return "ping";
    case kLocalInfo: return "localInfo";
    case kOpenLocal: return "openLocal";
    default: return "unknown";
  }
}

void Header::EncodeTo(uint8_t* out) const {
  std::memcpy(out + 0, &magic, 4);
  out[4] = version;
  out[5] = opcode;
  std::memcpy(out + 6, &flags, 2);
  std::memcpy(out + 8, &requestId, 8);
  std::memcpy(out + 16, &metaBytes, 4);
  std::memcpy(out + 20, &dataBytes, 4);
  std::memcpy(out + 24, &status, 4);
  uint32_t crc = Crc32c(out, 28);
  std::memcpy(out + 28, &crc, 4);
}

Status Header::Decode(const uint8_t* in, Header* h) {
  h->magic = Load<uint32_t>(in);
  if (h->magic != kMagic) return Status::Protocol("bad frame magic");
  if (Load<uint32_t>(in + 28) != Crc32c(in, 28)) return Status::Protocol("frame header checksum mismatch");
  h->version = in[4];
  if (h->version != kVersion)
    return Status::Protocol("unsupported protocol version " + std::to_string(h->version));
  h->opcode = in[5];
  h->flags = Load<uint16_t>(in + 6);
  h->requestId = Load<uint64_t>(in + 8);
  h->metaBytes = Load<uint32_t>(in + 16);
  h->dataBytes = Load<uint32_t>(in + 20);
  h->status = Load<int32_t>(in + 24);
  if (h->opcode == 0 || h->opcode > kOpcodeMax)
    return Status::Protocol("unknown opcode " + std::to_string(h->opcode));
  if (h->metaBytes > limits::kFrameMetaBytesMax)
    return Status::TooLarge("frame meta of " + std::to_string(h->metaBytes) + " bytes exceeds " +
                            std::to_string(limits::kFrameMetaBytesMax));
  if (h->dataBytes > limits::kFrameDataBytesMax)
    return Status::TooLarge("frame data of " + std::to_string(h->dataBytes) + " bytes exceeds " +
                            std::to_string(limits::kFrameDataBytesMax));
  return Status::OK();
}

void PutChunkId(std::string* out, const ChunkId& id) {
  uint8_t b[ChunkId::kWireBytes];
  id.EncodeTo(b);
  out->append(reinterpret_cast<const char*>(b), sizeof b);
}
void PutU32(std::string* out, uint32_t v) { PutRaw(out, v); }
void PutI32(std::string* out, int32_t v) { PutRaw(out, v); }

void Put(std::string* out, const ReadArgs& a) {
  PutChunkId(out, a.chunk);
  PutRaw(out, a.offset);
  PutRaw(out, a.length);
  PutRaw(out, a.flags);
}
void Put(std::string* out, const WriteArgs& a) {
  PutChunkId(out, a.chunk);
  PutRaw(out, a.offset);
  PutRaw(out, a.length);
  PutRaw(out, a.updateVersion);
  PutRaw(out, a.flags);
  PutRaw(out, a.payloadChecksum);
  PutRaw(out, a.chunkSizeBytes);
  PutRaw(out, a.chainId);
  PutRaw(out, a.chainVersion);
  PutRaw(out, a.clientId);
  PutRaw(out, a.requestId);
  if (a.flags & kWriteExpectChecksum) PutRaw(out, a.expectedChecksum);
  if (a.flags & kWriteBlockCrcs)
    out->append(reinterpret_cast<const char*>(a.blockCrcs.data()), 4 * a.blockCrcs.size());
}
void Put(std::string* out, const CommitArgs& a) {
  PutChunkId(out, a.chunk);
  PutRaw(out, a.version);
}
void Put(std::string* out, const ListArgs& a) {
  PutChunkId(out, a.after);
  PutRaw(out, a.hasAfter);
  PutRaw(out, a.limit);
}
void Put(std::string* out, const ChunkMeta& m) {
  PutRaw(out, m.commitVersion);
  PutRaw(out, m.updateVersion);
  PutRaw(out, m.length);
  PutRaw(out, m.checksum);
}

void Put(std::string* out, const ChunkListEntry& e) {
  PutChunkId(out, e.chunk);
  Put(out, e.meta);
  PutRaw(out, e.corrupt ? kListEntryCorrupt : uint32_t{0});
  PutRaw(out, e.chainId);
}

bool Reader::GetChunkId(ChunkId* id) {
  if (remaining() < ChunkId::kWireBytes) return false;
  *id = ChunkId::DecodeFrom(p_);
  p_ += ChunkId::kWireBytes;
  return true;
}
bool Reader::GetU32(uint32_t* v) {
  if (remaining() < 4) return false;
  *v = Load<uint32_t>(p_);
  p_ += 4;
  return true;
}
bool Reader::GetI32(int32_t* v) {
  if (remaining() < 4) return false;
  *v = Load<int32_t>(p_);
  p_ += 4;
  return true;
}
bool Reader::GetU64(uint64_t* v) {
  if (remaining() < 8) return false;
  *v = Load<uint64_t>(p_);
  p_ += 8;
  return true;
}
bool Reader::Get(ReadArgs* a) {
  return GetChunkId(&a->chunk) && GetU32(&a->offset) && GetU32(&a->length) && GetU32(&a->flags);
}
bool Reader::Get(WriteArgs* a) {
  return GetChunkId(&a->chunk) && GetU32(&a->offset) && GetU32(&a->length) &&
         GetU64(&a->updateVersion) && GetU32(&a->flags) && GetU32(&a->payloadChecksum) &&
         GetU32(&a->chunkSizeBytes) && GetU32(&a->chainId) && GetU32(&a->chainVersion) &&
         GetU64(&a->clientId) && GetU64(&a->requestId) &&
         (!(a->flags & kWriteExpectChecksum) || GetU32(&a->expectedChecksum)) &&
         (!(a->flags & kWriteBlockCrcs) || GetCrcArray(&a->blockCrcs, BlockCount(a->length)));
}

bool Reader::GetCrcArray(std::vector<uint32_t>* out, uint32_t count) {
  if (count > limits::kChunkBlocksMax || remaining() < 4ull * count) return false;
  out->resize(count);
  std::memcpy(out->data(), p_, 4ull * count);
  p_ += 4ull * count;
  return true;
}

bool Reader::GetBlockCrcs(std::vector<uint32_t>* out, uint32_t countMax) {
  uint32_t count = 0;
  return GetU32(&count) && count <= countMax && GetCrcArray(out, count);
}

uint32_t ComputeBlockCrcs(const char* data, uint32_t bytes, std::vector<uint32_t>* out) {
  const uint32_t B = limits::kChunkBlockBytes, blocks = BlockCount(bytes);
  out->resize(blocks);
  uint32_t whole = 0;
  for (uint32_t i = 0; i < blocks; i++) {
    uint32_t n = std::min<uint32_t>(B, bytes - i * B);
    (*out)[i] = Crc32c(data + uint64_t{i} * B, n);
    whole = i == 0 ? (*out)[i] : Crc32cCombine(whole, (*out)[i], n);
  }
  return whole;
}

uint32_t CombineBlockCrcs(const uint32_t* crcs, uint32_t bytes) {
  const uint32_t B = limits::kChunkBlockBytes, blocks = BlockCount(bytes);
  uint32_t whole = 0;
  for (uint32_t i = 0; i < blocks; i++)
    whole = i == 0 ? crcs[i] : Crc32cCombine(whole, crcs[i], std::min<uint32_t>(B, bytes - i * B));
  return whole;
}

Status VerifyBlockCrcs(const char* data, uint32_t bytes, const uint32_t* crcs, const char* what) {
  const uint32_t B = limits::kChunkBlockBytes, blocks = BlockCount(bytes);
  for (uint32_t i = 0; i < blocks; i++)
    if (Crc32c(data + uint64_t{i} * B, std::min<uint32_t>(B, bytes - i * B)) != crcs[i])
      return Status::Corrupt(std::string(what) + ": checksum mismatch in block " + std::to_string(i));
  return Status::OK();
}

void PutBlockCrcs(std::string* out, const uint32_t* crcs, uint32_t count) {
  PutRaw(out, count);
  out->append(reinterpret_cast<const char*>(crcs), 4ull * count);
}
bool Reader::Get(CommitArgs* a) { return GetChunkId(&a->chunk) && GetU64(&a->version); }
bool Reader::Get(ListArgs* a) {
  return GetChunkId(&a->after) && GetU32(&a->hasAfter) && GetU32(&a->limit);
}
bool Reader::Get(ChunkMeta* m) {
  return GetU64(&m->commitVersion) && GetU64(&m->updateVersion) && GetU32(&m->length) &&
         GetU32(&m->checksum);
}

bool Reader::Get(ChunkListEntry* e) {
  uint32_t flags = 0;
  if (!GetChunkId(&e->chunk) || !Get(&e->meta) || !GetU32(&flags) || !GetU32(&e->chainId)) return false;
  e->corrupt = flags & kListEntryCorrupt;
  return true;
}

void PutCapability(std::string* out, const Capability& c) {
  uint8_t b[kCapabilityBytes];
  c.EncodeTo(b);
  out->append(reinterpret_cast<const char*>(b), sizeof b);
}

bool Reader::GetCapability(Capability* c) {
  if (remaining() < kCapabilityBytes) return false;
  *c = Capability::Decode(p_);
  p_ += kCapabilityBytes;
  return true;
}

}  // namespace millpond::frame
