#include "transport/rdma/rdma_wire.h"

#include <cstring>

#include "common/crc32c.h"

namespace millpond::rdma {

namespace {
template <typename T>
void Store(uint8_t* p, T v) { std::memcpy(p, &v, sizeof v); }
template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
constexpr size_t kCrcOffset = 60;
constexpr size_t kSegmentBytes = 16;
}  // namespace

void Hello::EncodeTo(uint8_t* out) const {
  std::memset(out, 0, kHelloBytes);
  Store(out + 0, kHelloMagic);
  Store(out + 4, kHelloVersion);
  Store(out + 6, static_cast<uint16_t>(kHelloBytes));
  Store(out + 8, status);
  Store(out + 12, qpn);
  Store(out + 16, psn);
  Store(out + 20, lid);
  out[22] = mtu;
  out[23] = flags;
  std::memcpy(out + 24, gid, 16);
  Store(out + 40, depth);
  Store(out + 44, controlBytes);
  Store(out + kCrcOffset, Crc32c(out, kCrcOffset));
}

Status Hello::Decode(const uint8_t* in, size_t n, Hello* h) {
  if (n != kHelloBytes) return Status::Protocol("rdma hello of " + std::to_string(n) + " bytes");
  if (Load<uint32_t>(in) != kHelloMagic) return Status::Protocol("bad rdma hello magic");
  if (Load<uint32_t>(in + kCrcOffset) != Crc32c(in, kCrcOffset))
    return Status::Protocol("rdma hello checksum mismatch");
  if (Load<uint16_t>(in + 4) != kHelloVersion)
    return Status::Protocol("unsupported rdma hello version " + std::to_string(Load<uint16_t>(in + 4)));
  if (Load<uint16_t>(in + 6) != kHelloBytes) return Status::Protocol("bad rdma hello length");
  for (size_t i = 48; i < kCrcOffset; i++)
    if (in[i] != 0) return Status::Protocol("rdma hello reserved bytes not zero");
  h->status = Load<int32_t>(in + 8);
  h->qpn = Load<uint32_t>(in + 12);
  h->psn = Load<uint32_t>(in + 16);
  h->lid = Load<uint16_t>(in + 20);
  h->mtu = in[22];
  h->flags = in[23];
  std::memcpy(h->gid, in + 24, 16);
  h->depth = Load<uint32_t>(in + 40);
  h->controlBytes = Load<uint32_t>(in + 44);
  if (h->status != 0) return Status::OK();  // a refusal: nothing else to check
  if (h->qpn == 0 || h->qpn > 0xffffff) return Status::Protocol("rdma hello: bad queue pair number");
  if (h->psn > 0xffffff) return Status::Protocol("rdma hello: bad packet sequence number");
  if (h->mtu < 1 || h->mtu > 5) return Status::Protocol("rdma hello: bad path mtu");
  if ((h->flags & ~kHelloFlagGlobal) != 0) return Status::Protocol("rdma hello: unknown flags");
  if (h->depth < 1 || h->depth > limits::kRdmaQueueDepth)
    return Status::Protocol("rdma hello: queue depth " + std::to_string(h->depth) + " out of range");
  if (h->controlBytes < limits::kFrameHeaderBytes || h->controlBytes > limits::kRdmaControlBytesMax)
    return Status::Protocol("rdma hello: control slot size out of range");
  return Status::OK();
}

void PutDescriptor(std::string* out, const std::vector<Segment>& segments) {
  uint8_t b[kSegmentBytes];
  Store(b, static_cast<uint32_t>(segments.size()));
  Store(b + 4, uint32_t{0});
  out->append(reinterpret_cast<const char*>(b), 8);
  for (const Segment& s : segments) {
    Store(b, s.addr);
    Store(b + 8, s.rkey);
    Store(b + 12, s.length);
    out->append(reinterpret_cast<const char*>(b), kSegmentBytes);
  }
}

Status ParseDescriptor(const uint8_t* in, size_t n, std::vector<Segment>* out, uint64_t* total) {
  out->clear();
  *total = 0;
  if (n < 8) return Status::Protocol("rdma descriptor truncated");
  uint32_t count = Load<uint32_t>(in);
  if (Load<uint32_t>(in + 4) != 0) return Status::Protocol("rdma descriptor reserved word not zero");
  if (count > limits::kRdmaSegmentsMax)
    return Status::Protocol("rdma descriptor of " + std::to_string(count) + " segments");
  if (n != 8 + size_t{count} * kSegmentBytes) return Status::Protocol("rdma descriptor length mismatch");
  out->reserve(count);
  for (uint32_t i = 0; i < count; i++) {
    const uint8_t* p = in + 8 + size_t{i} * kSegmentBytes;
    Segment s{Load<uint64_t>(p), Load<uint32_t>(p + 8), Load<uint32_t>(p + 12)};
    if (s.length == 0) return Status::Protocol("rdma descriptor: empty segment");
    if (s.addr + s.length < s.addr) return Status::Protocol("rdma descriptor: segment wraps");
    *total += s.length;
    out->push_back(s);
  }
  if (*total > limits::kFrameDataBytesMax) return Status::Protocol("rdma descriptor too large");
  return Status::OK();
}

Status ParseControl(const uint8_t* in, size_t n, bool isReply, ControlMessage* out) {
  if (n < frame::kHeaderBytes) return Status::Protocol("rdma control message truncated");
  MP_RETURN_IF_ERROR(frame::Header::Decode(in, &out->header));
  const frame::Header& h = out->header;
  if (((h.flags & frame::kFlagReply) != 0) != isReply)
    return Status::Protocol(isReply ? "rdma: request where a reply was due" : "rdma: unexpected reply");
  size_t rest = n - frame::kHeaderBytes;
  if (h.metaBytes > rest) return Status::Protocol("rdma control message: meta truncated");
  out->meta = in + frame::kHeaderBytes;
  out->segments.clear();
  out->segmentBytes = 0;
  if (isReply) {
    if (rest != h.metaBytes) return Status::Protocol("rdma reply: trailing bytes");
    return Status::OK();
  }
  MP_RETURN_IF_ERROR(ParseDescriptor(out->meta + h.metaBytes, rest - h.metaBytes, &out->segments,
                                     &out->segmentBytes));
  if (h.dataBytes > out->segmentBytes)
    return Status::Protocol("rdma request: payload larger than its descriptor");
  return Status::OK();
}

}  // namespace millpond::rdma
