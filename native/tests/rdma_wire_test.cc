// The RDMA handshake and control-message codecs, fed valid and malformed bytes.
#include <gtest/gtest.h>

#include <cstring>

#include "common/crc32c.h"
#include "transport/rdma/rdma_wire.h"

namespace millpond::rdma {
namespace {

Hello ValidHello() {
  Hello h;
  h.qpn = 0x1234;
  h.psn = 0xabcdef;
  h.lid = 7;
  h.mtu = 3;
  h.flags = kHelloFlagGlobal;
  for (int i = 0; i < 16; i++) h.gid[i] = static_cast<uint8_t>(i);
  h.depth = limits::kRdmaQueueDepth;
  h.controlBytes = limits::kRdmaControlBytesMax;
  return h;
}

// Re-seals the checksum after a test corrupts a field on purpose.
void Reseal(uint8_t* b) {
  uint32_t crc = Crc32c(b, 60);
  std::memcpy(b + 60, &crc, 4);
}

TEST(RdmaHello, RoundTrip) {
  uint8_t b[kHelloBytes];
  ValidHello().EncodeTo(b);
  Hello h;
  ASSERT_TRUE(Hello::Decode(b, sizeof b, &h).ok());
  EXPECT_EQ(h.qpn, 0x1234u);
  EXPECT_EQ(h.psn, 0xabcdefu);
  EXPECT_EQ(h.lid, 7);
  EXPECT_EQ(h.mtu, 3);
  EXPECT_EQ(h.gid[15], 15);
  EXPECT_EQ(h.depth, limits::kRdmaQueueDepth);
}

TEST(RdmaHello, RefusalCarriesOnlyStatus) {
  Hello r;
  r.status = static_cast<int32_t>(StatusCode::kNoDevice);
  uint8_t b[kHelloBytes];
  r.EncodeTo(b);
  Hello h;
  ASSERT_TRUE(Hello::Decode(b, sizeof b, &h).ok());
  EXPECT_EQ(h.status, static_cast<int32_t>(StatusCode::kNoDevice));
}

TEST(RdmaHello, RejectsWrongLengths) {
  uint8_t b[kHelloBytes + 1];
  ValidHello().EncodeTo(b);
  Hello h;
  EXPECT_EQ(Hello::Decode(b, kHelloBytes - 1, &h).code(), StatusCode::kProtocol);
  EXPECT_EQ(Hello::Decode(b, kHelloBytes + 1, &h).code(), StatusCode::kProtocol);
  EXPECT_EQ(Hello::Decode(b, 0, &h).code(), StatusCode::kProtocol);
}

TEST(RdmaHello, RejectsCorruption) {
  Hello h;
  for (size_t i = 0; i < kHelloBytes; i++) {  // any flipped bit: magic or checksum catches it
    uint8_t b[kHelloBytes];
    ValidHello().EncodeTo(b);
    b[i] ^= 0x40;
    EXPECT_EQ(Hello::Decode(b, sizeof b, &h).code(), StatusCode::kProtocol) << "byte " << i;
  }
}

TEST(RdmaHello, RejectsOutOfRangeFieldsEvenWhenSealed) {
  struct Case {
    const char* name;
    void (*mutate)(uint8_t*);
  } cases[] = {
      {"version", [](uint8_t* b) { b[4] = 9; }},
      {"length", [](uint8_t* b) { b[6] = 63; }},
      {"reserved", [](uint8_t* b) { b[50] = 1; }},
      {"qpn zero", [](uint8_t* b) { std::memset(b + 12, 0, 4); }},
      {"qpn 25 bits", [](uint8_t* b) { b[15] = 1; }},
      {"psn 25 bits", [](uint8_t* b) { b[19] = 1; }},
      {"mtu 0", [](uint8_t* b) { b[22] = 0; }},
      {"mtu 6", [](uint8_t* b) { b[22] = 6; }},
      {"flags", [](uint8_t* b) { b[23] = 0x80; }},
      {"depth 0", [](uint8_t* b) { std::memset(b + 40, 0, 4); }},
      {"depth big", [](uint8_t* b) { b[42] = 1; }},
      {"control small", [](uint8_t* b) { std::memset(b + 44, 0, 4); b[44] = 8; }},
      {"control big", [](uint8_t* b) { b[47] = 1; }},
  };
  for (const Case& c : cases) {
    uint8_t b[kHelloBytes];
    ValidHello().EncodeTo(b);
    c.mutate(b);
    Reseal(b);
    Hello h;
    EXPECT_EQ(Hello::Decode(b, sizeof b, &h).code(), StatusCode::kProtocol) << c.name;
  }
}

std::string Request(uint32_t dataBytes, const std::vector<Segment>& segs, const std::string& meta = "abc") {
  frame::Header h;
  h.opcode = frame::kWrite;
  h.requestId = 42;
  h.metaBytes = static_cast<uint32_t>(meta.size());
  h.dataBytes = dataBytes;
  std::string out(frame::kHeaderBytes, '\0');
  h.EncodeTo(reinterpret_cast<uint8_t*>(&out[0]));
  out += meta;
  PutDescriptor(&out, segs);
  return out;
}

Status Parse(const std::string& m, bool isReply, ControlMessage* out) {
  return ParseControl(reinterpret_cast<const uint8_t*>(m.data()), m.size(), isReply, out);
}

TEST(RdmaControl, ParsesRequest) {
  ControlMessage msg;
  std::string m = Request(5000, {{0x1000, 7, 4096}, {0x9000, 7, 4096}});
  ASSERT_TRUE(Parse(m, false, &msg).ok());
  EXPECT_EQ(msg.header.requestId, 42u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(msg.meta), 3), "abc");
  ASSERT_EQ(msg.segments.size(), 2u);
  EXPECT_EQ(msg.segments[1].addr, 0x9000u);
  EXPECT_EQ(msg.segmentBytes, 8192u);
}

TEST(RdmaControl, RejectsMalformedRequests) {
  ControlMessage msg;
  std::string ok = Request(10, {{0x1000, 7, 10}});
  EXPECT_EQ(Parse(ok.substr(0, 20), false, &msg).code(), StatusCode::kProtocol);           // short header
  EXPECT_EQ(Parse(ok.substr(0, 34), false, &msg).code(), StatusCode::kProtocol);           // meta cut
  EXPECT_EQ(Parse(ok.substr(0, ok.size() - 1), false, &msg).code(), StatusCode::kProtocol);  // segment cut
  EXPECT_EQ(Parse(ok + "x", false, &msg).code(), StatusCode::kProtocol);                    // trailing byte
  EXPECT_EQ(Parse(Request(11, {{0x1000, 7, 10}}), false, &msg).code(), StatusCode::kProtocol);  // no room
  EXPECT_EQ(Parse(Request(0, {{0x1000, 7, 0}}), false, &msg).code(), StatusCode::kProtocol);    // empty seg
  EXPECT_EQ(Parse(Request(0, {{~0ull - 4, 7, 10}}), false, &msg).code(), StatusCode::kProtocol);  // wraps
  std::vector<Segment> many(limits::kRdmaSegmentsMax + 1, Segment{0x1000, 1, 1});
  EXPECT_EQ(Parse(Request(0, many), false, &msg).code(), StatusCode::kProtocol);
  std::vector<Segment> huge(2, Segment{0x1000, 1, limits::kFrameDataBytesMax});
  EXPECT_EQ(Parse(Request(0, huge), false, &msg).code(), StatusCode::kProtocol);
  std::string bad = ok;
  bad[frame::kHeaderBytes + 3 + 4] = 1;  // descriptor reserved word
  EXPECT_EQ(Parse(bad, false, &msg).code(), StatusCode::kProtocol);
  bad = ok;
  bad[5] = 99;  // header corrupted: its checksum catches it
  EXPECT_EQ(Parse(bad, false, &msg).code(), StatusCode::kProtocol);
  EXPECT_EQ(Parse(ok, true, &msg).code(), StatusCode::kProtocol);  // a request is not a reply
}

TEST(RdmaControl, Replies) {
  frame::Header h;
  h.opcode = frame::kRead;
  h.flags = frame::kFlagReply;
  h.requestId = 9;
  h.metaBytes = 4;
  h.dataBytes = 100;
  std::string m(frame::kHeaderBytes, '\0');
  h.EncodeTo(reinterpret_cast<uint8_t*>(&m[0]));
  m += "meta";
  ControlMessage msg;
  ASSERT_TRUE(Parse(m, true, &msg).ok());
  EXPECT_TRUE(msg.segments.empty());
  EXPECT_EQ(Parse(m + "zz", true, &msg).code(), StatusCode::kProtocol);
  EXPECT_EQ(Parse(m, false, &msg).code(), StatusCode::kProtocol);
}

}  // namespace
}  // namespace millpond::rdma
