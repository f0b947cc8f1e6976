// The RDMA transport's own wire records. Pure byte codecs (no verbs.h), so the host tests
// can feed them malformed input.
//
// Handshake, on the TCP socket after the 4-byte kRdmaHandshakeMagic: the client sends one
// Hello describing its queue pair, the server answers with one Hello (status 0 and its queue
// pair) or a refusal (status != 0, e.g. kNoDevice). Each is exactly kRdmaHandshakeBytes:
//   0 magic u32 ('MPRH')  4 version u16  6 bytes u16 (= 64)  8 status i32  12 qpn u32
//   16 psn u32  20 lid u16  22 mtu u8 (IBV_MTU_*)  23 flags u8 (bit 0: GRH needed)
//   24 gid[16]  40 depth u32  44 controlBytes u32  48..59 zero  60 crc u32 (CRC32C of 0..59)
//
// Control message, by SEND into a receive slot: frame header + meta (frame.h), then the data
// descriptor: segmentCount u32, zero u32, segmentCount x (addr u64, rkey u32, length u32).
// Requests describe the client's registered buffers: the payload for a write (the server
// RDMA READs it) or the space for the reply data (the server RDMA WRITEs into it). Replies
// carry no descriptor; their header's dataBytes says how much was written before the SEND.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/limits.h"
#include "common/status.h"
#include "transport/frame.h"

namespace millpond::rdma {

constexpr uint32_t kHelloMagic = 0x4852504Du;  // "MPRH"
constexpr uint16_t kHelloVersion = 1;
constexpr size_t kHelloBytes = limits::kRdmaHandshakeBytes;
static_assert(kHelloBytes == 64, "layout above");

struct Hello {
  int32_t status = 0;      // a StatusCode; non-zero: refused, the rest is meaningless
  uint32_t qpn = 0;        // 24-bit queue pair number
  uint32_t psn = 0;        // 24-bit first packet sequence number
  uint16_t lid = 0;
  uint8_t mtu = 0;         // enum ibv_mtu, 1 (256) .. 5 (4096)
  uint8_t flags = 0;
  uint8_t gid[16] = {};
  uint32_t depth = 0;          // requests the sender accepts in flight on this queue pair
  uint32_t controlBytes = 0;   // size of each of the sender's receive slots

  void EncodeTo(uint8_t* out) const;  // writes kHelloBytes
  // kProtocol for anything not written by EncodeTo with values in range.
  static Status Decode(const uint8_t* in, size_t n, Hello* out);
};
constexpr uint8_t kHelloFlagGlobal = 1;

struct Segment {
  uint64_t addr = 0;
  uint32_t rkey = 0;
  uint32_t length = 0;
};

// Appends the descriptor. REQUIRES: segments.size() <= kRdmaSegmentsMax.
void PutDescriptor(std::string* out, const std::vector<Segment>& segments);
// Parses a descriptor that must fill [in, in + n) exactly; lengths must be non-zero and their
// sum at most kFrameDataBytesMax.
Status ParseDescriptor(const uint8_t* in, size_t n, std::vector<Segment>* out, uint64_t* totalBytes);

// A parsed control message. `meta` points into the receive slot it was parsed from.
struct ControlMessage {
  frame::Header header;
  const uint8_t* meta = nullptr;
  std::vector<Segment> segments;  // requests only
  uint64_t segmentBytes = 0;
};
// Parses a control message of n bytes. Requests (`isReply` false) must carry a descriptor
// with room for header.dataBytes when that is a write payload; replies must not carry one.
Status ParseControl(const uint8_t* in, size_t n, bool isReply, ControlMessage* out);

}  // namespace millpond::rdma
