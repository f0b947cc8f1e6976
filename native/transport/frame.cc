#include "transport/frame.h"

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
         (!(a->flags & kWriteExpectChecksum) || GetU32(&a->expectedChecksum));
}
bool Reader::Get(CommitArgs* a) { return GetChunkId(&a->chunk) && GetU64(&a->version); }
bool Reader::Get(ListArgs* a) {
  return GetChunkId(&a->after) && GetU32(&a->hasAfter) && GetU32(&a->limit);
}
bool Reader::Get(ChunkMeta* m) {
  return GetU64(&m->commitVersion) && GetU64(&m->updateVersion) && GetU32(&m->length) &&
         GetU32(&m->checksum);
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
