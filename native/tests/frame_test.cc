// The data-plane wire format: header encode/decode and its validation, the argument records
// and the bounds-checked Reader.
#include "transport/frame.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "tests/test_support.h"

namespace millpond {
namespace {

using frame::Header;

Header SampleHeader() {
  Header h;
  h.opcode = frame::kWrite;
  h.flags = frame::kFlagReply;
  h.requestId = 0x0102030405060708ull;
  h.metaBytes = 64;
  h.dataBytes = 4 << 20;
  h.status = static_cast<int32_t>(StatusCode::kNotCommitted);
  return h;
}

// Rewrites the header CRC after a test changed a field, so only that field is wrong.
void Reseal(uint8_t* raw) {
  uint32_t crc = Crc32c(raw, 28);
  std::memcpy(raw + 28, &crc, 4);
}

const uint8_t* U8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

TEST(Frame, HeaderRoundTrips) {
  Header h = SampleHeader();
  uint8_t raw[frame::kHeaderBytes];
  h.EncodeTo(raw);
  Header d;
  ASSERT_TRUE(Header::Decode(raw, &d).ok());
  EXPECT_EQ(d.magic, frame::kMagic);
  EXPECT_EQ(d.version, frame::kVersion);
  EXPECT_EQ(d.opcode, h.opcode);
  EXPECT_EQ(d.flags, h.flags);
  EXPECT_EQ(d.requestId, h.requestId);
  EXPECT_EQ(d.metaBytes, h.metaBytes);
  EXPECT_EQ(d.dataBytes, h.dataBytes);
  EXPECT_EQ(d.status, h.status);
}

TEST(Frame, HeaderLayoutMatchesTheDocumentedOffsets) {
  Header h = SampleHeader();
  uint8_t raw[frame::kHeaderBytes];
  h.EncodeTo(raw);
  uint32_t magic, meta, data, crc;
  uint64_t id;
  std::memcpy(&magic, raw, 4);
  std::memcpy(&id, raw + 8, 8);
  std::memcpy(&meta, raw + 16, 4);
  std::memcpy(&data, raw + 20, 4);
  std::memcpy(&crc, raw + 28, 4);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(raw), 4), "MPD1");
  EXPECT_EQ(raw[4], frame::kVersion);
  EXPECT_EQ(raw[5], frame::kWrite);
  EXPECT_EQ(id, h.requestId);
  EXPECT_EQ(meta, 64u);
  EXPECT_EQ(data, 4u << 20);
  EXPECT_EQ(crc, Crc32c(raw, 28));
}

TEST(Frame, BadMagicIsProtocol) {
  uint8_t raw[frame::kHeaderBytes];
  SampleHeader().EncodeTo(raw);
  raw[0] ^= 0xFF;
  Reseal(raw);
  Header d;
  EXPECT_EQ(Header::Decode(raw, &d).code(), StatusCode::kProtocol);
}

TEST(Frame, BadVersionIsProtocol) {
  Header h = SampleHeader();
  h.version = 2;
  uint8_t raw[frame::kHeaderBytes];
  h.EncodeTo(raw);
  Header d;
  EXPECT_EQ(Header::Decode(raw, &d).code(), StatusCode::kProtocol);
}

TEST(Frame, AnyFlippedHeaderByteFailsTheCrc) {
  uint8_t raw[frame::kHeaderBytes];
  SampleHeader().EncodeTo(raw);
  for (size_t i = 0; i < frame::kHeaderBytes; i++) {
    uint8_t copy[frame::kHeaderBytes];
    std::memcpy(copy, raw, sizeof raw);
    copy[i] ^= 0x01;
    Header d;
    EXPECT_EQ(Header::Decode(copy, &d).code(), StatusCode::kProtocol) << "byte " << i;
  }
}

TEST(Frame, UnknownOpcodeIsProtocol) {
  for (uint8_t op : {uint8_t{0}, uint8_t{frame::kOpcodeMax + 1}, uint8_t{255}}) {
    Header h = SampleHeader();
    h.opcode = op;
    uint8_t raw[frame::kHeaderBytes];
    h.EncodeTo(raw);
    Header d;
    EXPECT_EQ(Header::Decode(raw, &d).code(), StatusCode::kProtocol) << int(op);
  }
  for (uint8_t op = 1; op <= frame::kOpcodeMax; op++) {
    Header h = SampleHeader();
    h.opcode = op;
    uint8_t raw[frame::kHeaderBytes];
    h.EncodeTo(raw);
    Header d;
    EXPECT_TRUE(Header::Decode(raw, &d).ok()) << int(op);
    EXPECT_STRNE(frame::OpcodeName(op), "unknown");
  }
}

TEST(Frame, SizesAboveTheLimitsAreTooLarge) {
  Header d;
  uint8_t raw[frame::kHeaderBytes];
  Header h = SampleHeader();
  h.metaBytes = limits::kFrameMetaBytesMax;
  h.dataBytes = limits::kFrameDataBytesMax;
  h.EncodeTo(raw);
  EXPECT_TRUE(Header::Decode(raw, &d).ok()) << "exactly at the limits is allowed";

  h.metaBytes = limits::kFrameMetaBytesMax + 1;
  h.EncodeTo(raw);
  EXPECT_EQ(Header::Decode(raw, &d).code(), StatusCode::kTooLarge);

  h.metaBytes = 0;
  h.dataBytes = limits::kFrameDataBytesMax + 1;
  h.EncodeTo(raw);
  EXPECT_EQ(Header::Decode(raw, &d).code(), StatusCode::kTooLarge);

  h.dataBytes = 0xFFFFFFFFu;
  h.EncodeTo(raw);
  EXPECT_EQ(Header::Decode(raw, &d).code(), StatusCode::kTooLarge);
}

TEST(Frame, ReadArgsRoundTrip) {
  frame::ReadArgs a;
  a.chunk = {0xA1B2C3D4E5F60718ull, 0x89ABCDEFu};
  a.offset = 12345;
  a.length = 67890;
  a.flags = frame::kReadUncommitted;
  std::string s;
  frame::Put(&s, a);
  ASSERT_EQ(s.size(), frame::ReadArgs::kBytes);
  frame::ReadArgs b;
  frame::Reader r(U8(s), s.size());
  ASSERT_TRUE(r.Get(&b));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(b.chunk, a.chunk);
  EXPECT_EQ(b.offset, a.offset);
  EXPECT_EQ(b.length, a.length);
  EXPECT_EQ(b.flags, a.flags);
}

TEST(Frame, WriteArgsRoundTrip) {
  frame::WriteArgs a;
  a.chunk = {7, 9};
  a.offset = 4096;
  a.length = 8192;
  a.updateVersion = 0x1122334455667788ull;
  a.flags = frame::kWriteCommit | frame::kWriteReplace;
  a.payloadChecksum = 0xCAFEBABEu;
  a.chunkSizeBytes = 1 << 20;
  std::string s;
  frame::Put(&s, a);
  ASSERT_EQ(s.size(), frame::WriteArgs::kBytes);
  frame::WriteArgs b;
  frame::Reader r(U8(s), s.size());
  ASSERT_TRUE(r.Get(&b));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(b.chunk, a.chunk);
  EXPECT_EQ(b.offset, a.offset);
  EXPECT_EQ(b.length, a.length);
  EXPECT_EQ(b.updateVersion, a.updateVersion);
  EXPECT_EQ(b.flags, a.flags);
  EXPECT_EQ(b.payloadChecksum, a.payloadChecksum);
  EXPECT_EQ(b.chunkSizeBytes, a.chunkSizeBytes);
}

// The byte fixtures test/support/frames.ts writes (test/fixtures/dataplane/): the native
// encoder makes the same bytes, and the decoder reads back what was encoded.
std::string FixturePayload(size_t bytes) {
  std::string p(bytes, '\0');
  for (size_t i = 0; i < bytes; i++) p[i] = static_cast<char>((i * 7 + 3) & 0xff);
  return p;
}

std::string EncodeFrame(uint8_t opcode, uint64_t requestId, const std::string& meta, const std::string& data) {
  frame::Header h;
  h.opcode = opcode;
  h.requestId = requestId;
  h.metaBytes = static_cast<uint32_t>(meta.size());
  h.dataBytes = static_cast<uint32_t>(data.size());
  uint8_t raw[frame::kHeaderBytes];
  h.EncodeTo(raw);
  return std::string(reinterpret_cast<char*>(raw), sizeof raw) + meta + data;
}

TEST(Frame, BlockCrcMessagesMatchTheTsFixtures) {
  const std::string dir = testing::RepoRoot() + "/test/fixtures/dataplane/";
  const std::string payload = FixturePayload(5000);
  frame::WriteArgs w;
  w.chunk = {0x0102030405060708ull, 9};
  w.offset = 4096;
  w.length = static_cast<uint32_t>(payload.size());
  w.flags = frame::kWriteCommit | frame::kWriteBlockCrcs;
  w.payloadChecksum = frame::ComputeBlockCrcs(payload.data(), w.length, &w.blockCrcs);
  EXPECT_EQ(w.payloadChecksum, Crc32c(payload.data(), payload.size()));
  ASSERT_EQ(w.blockCrcs.size(), 2u);
  std::string meta;
  frame::Put(&meta, w);
  ASSERT_EQ(meta.size(), frame::WriteArgs::kBytes + 8);
  EXPECT_EQ(EncodeFrame(frame::kWrite, 42, meta, payload), testing::ReadFile(dir + "write-request-block-crcs.bin"));
  frame::WriteArgs back;
  frame::Reader r(U8(meta), meta.size());
  ASSERT_TRUE(r.Get(&back));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(back.blockCrcs, w.blockCrcs);
  // Fewer CRC bytes than the length needs: malformed, never read past the meta.
  frame::Reader shortR(U8(meta), meta.size() - 1);
  EXPECT_FALSE(shortR.Get(&back));

  frame::ReadArgs a;
  a.chunk = w.chunk;
  a.offset = 8192;
  a.length = 1 << 20;
  a.flags = frame::kReadBlockCrcs;
  std::string rmeta;
  frame::Put(&rmeta, a);
  EXPECT_EQ(EncodeFrame(frame::kRead, 43, rmeta, ""), testing::ReadFile(dir + "read-request-block-crcs.bin"));
}

// A list reply (what a data server sends, data_server.cc): entries carry the chain their
// replica's version was tagged with (chunk_format.h, format 3), after their flags.
TEST(Frame, ListReplyMatchesTheTsFixture) {
  std::vector<ChunkListEntry> entries(3);
  entries[0].chunk = {0x0102030405060708ull, 9};
  entries[0].meta = {5, 6, 5000, 0xa1b2c3d4u};
  entries[0].chainId = 7;
  entries[1].chunk = {0x0102030405060708ull, 10};
  entries[1].meta = {3, 3, 4096, 0x01020304u};
  entries[2].chunk = {0x1112131415161718ull, 0};
  entries[2].corrupt = true;
  std::string meta;
  frame::PutU32(&meta, static_cast<uint32_t>(entries.size()));
  for (const auto& e : entries) frame::Put(&meta, e);
  ASSERT_EQ(meta.size(), 4 + 3 * frame::kListEntryBytes);
  ASSERT_EQ(frame::kListEntryBytes, 44u);
  frame::Header h;
  h.opcode = frame::kList;
  h.flags = frame::kFlagReply;
  h.requestId = 44;
  h.metaBytes = static_cast<uint32_t>(meta.size());
  uint8_t raw[frame::kHeaderBytes];
  h.EncodeTo(raw);
  const std::string dir = testing::RepoRoot() + "/test/fixtures/dataplane/";
  EXPECT_EQ(std::string(reinterpret_cast<char*>(raw), sizeof raw) + meta, testing::ReadFile(dir + "list-reply.bin"));

  frame::Reader r(U8(meta), meta.size());
  uint32_t count = 0;
  ASSERT_TRUE(r.GetU32(&count));
  ASSERT_EQ(count, 3u);
  for (const auto& want : entries) {
    ChunkListEntry got;
    ASSERT_TRUE(r.Get(&got));
    EXPECT_EQ(got.chunk, want.chunk);
    EXPECT_EQ(got.meta.commitVersion, want.meta.commitVersion);
    EXPECT_EQ(got.meta.updateVersion, want.meta.updateVersion);
    EXPECT_EQ(got.meta.length, want.meta.length);
    EXPECT_EQ(got.meta.checksum, want.meta.checksum);
    EXPECT_EQ(got.corrupt, want.corrupt);
    EXPECT_EQ(got.chainId, want.chainId);
  }
  EXPECT_EQ(r.remaining(), 0u);
  // One byte short of an entry (its chain id cut): malformed, never read past the meta.
  ChunkListEntry e;
  EXPECT_FALSE(frame::Reader(U8(meta) + 4, frame::kListEntryBytes - 1).Get(&e));
}

TEST(Frame, BlockCrcHelpersAgreeAndFindTheBadBlock) {
  std::string data = FixturePayload(3 * 4096 + 1);
  std::vector<uint32_t> crcs;
  uint32_t whole = frame::ComputeBlockCrcs(data.data(), data.size(), &crcs);
  ASSERT_EQ(crcs.size(), 4u);
  EXPECT_EQ(whole, Crc32c(data.data(), data.size()));
  EXPECT_EQ(frame::CombineBlockCrcs(crcs.data(), data.size()), whole);
  EXPECT_TRUE(frame::VerifyBlockCrcs(data.data(), data.size(), crcs.data(), "x").ok());
  data[2 * 4096 + 5] ^= 1;
  Status s = frame::VerifyBlockCrcs(data.data(), data.size(), crcs.data(), "x");
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_NE(s.message().find("block 2"), std::string::npos) << s.message();
  std::string reply;
  frame::PutBlockCrcs(&reply, crcs.data(), 4);
  frame::Reader r(U8(reply), reply.size());
  std::vector<uint32_t> got;
  EXPECT_FALSE(frame::Reader(U8(reply), reply.size()).GetBlockCrcs(&got, 3)) << "more than countMax";
  ASSERT_TRUE(r.GetBlockCrcs(&got, 4));
  EXPECT_EQ(got, crcs);
}

TEST(Frame, CommitListAndMetaRoundTrip) {
  std::string s;
  frame::CommitArgs c;
  c.chunk = {1, 2};
  c.version = 77;
  frame::Put(&s, c);
  ASSERT_EQ(s.size(), frame::CommitArgs::kBytes);
  frame::ListArgs l;
  l.after = {0xFFFFFFFFFFFFFFFFull, 0xFFFFFFFFu};
  l.hasAfter = 1;
  l.limit = 2048;
  frame::Put(&s, l);
  ASSERT_EQ(s.size(), frame::CommitArgs::kBytes + frame::ListArgs::kBytes);
  ChunkMeta m;
  m.commitVersion = 5;
  m.updateVersion = 6;
  m.length = 4 << 20;
  m.checksum = 0x01020304u;
  frame::Put(&s, m);
  ASSERT_EQ(s.size(), frame::CommitArgs::kBytes + frame::ListArgs::kBytes + frame::kChunkMetaBytes);

  frame::Reader r(U8(s), s.size());
  frame::CommitArgs c2;
  frame::ListArgs l2;
  ChunkMeta m2;
  ASSERT_TRUE(r.Get(&c2));
  ASSERT_TRUE(r.Get(&l2));
  ASSERT_TRUE(r.Get(&m2));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_EQ(c2.chunk, c.chunk);
  EXPECT_EQ(c2.version, c.version);
  EXPECT_EQ(l2.after, l.after);
  EXPECT_EQ(l2.hasAfter, l.hasAfter);
  EXPECT_EQ(l2.limit, l.limit);
  EXPECT_EQ(m2.commitVersion, m.commitVersion);
  EXPECT_EQ(m2.updateVersion, m.updateVersion);
  EXPECT_EQ(m2.length, m.length);
  EXPECT_EQ(m2.checksum, m.checksum);
}

TEST(Frame, ChunkIdIsBigEndianOnTheWireAndSortsLikeIds) {
  std::string a, b;
  frame::PutChunkId(&a, {1, 0xFFFFFFFFu});
  frame::PutChunkId(&b, {2, 0});
  ASSERT_EQ(a.size(), ChunkId::kWireBytes);
  EXPECT_EQ(static_cast<uint8_t>(a[7]), 1);
  EXPECT_EQ(static_cast<uint8_t>(a[8]), 0xFF);
  EXPECT_LT(a, b);  // byte order sorts as (inode, index)
}

// Every Get on input one byte short of its record fails (and none reads past the end).
TEST(Frame, ReaderRejectsShortInput) {
  std::string full(64, '\x5A');
  auto shortBy1 = [&](size_t n) { return std::string(full.data(), n - 1); };
  {
    std::string s = shortBy1(frame::ReadArgs::kBytes);
    frame::ReadArgs a;
    EXPECT_FALSE(frame::Reader(U8(s), s.size()).Get(&a));
  }
  {
    std::string s = shortBy1(frame::WriteArgs::kBytes);
    frame::WriteArgs a;
    EXPECT_FALSE(frame::Reader(U8(s), s.size()).Get(&a));
  }
  {
    std::string s = shortBy1(frame::CommitArgs::kBytes);
    frame::CommitArgs a;
    EXPECT_FALSE(frame::Reader(U8(s), s.size()).Get(&a));
  }
  {
    std::string s = shortBy1(frame::ListArgs::kBytes);
    frame::ListArgs a;
    EXPECT_FALSE(frame::Reader(U8(s), s.size()).Get(&a));
  }
  {
    std::string s = shortBy1(frame::kChunkMetaBytes);
    ChunkMeta m;
    EXPECT_FALSE(frame::Reader(U8(s), s.size()).Get(&m));
  }
  {
    std::string s = shortBy1(ChunkId::kWireBytes);
    ChunkId id;
    EXPECT_FALSE(frame::Reader(U8(s), s.size()).GetChunkId(&id));
  }
  uint32_t u32;
  int32_t i32;
  uint64_t u64;
  EXPECT_FALSE(frame::Reader(U8(full), 3).GetU32(&u32));
  EXPECT_FALSE(frame::Reader(U8(full), 3).GetI32(&i32));
  EXPECT_FALSE(frame::Reader(U8(full), 7).GetU64(&u64));
  EXPECT_FALSE(frame::Reader(nullptr, 0).GetU32(&u32));
  // Exactly enough succeeds and consumes everything.
  frame::Reader r(U8(full), 8);
  EXPECT_TRUE(r.GetU32(&u32));
  EXPECT_TRUE(r.GetI32(&i32));
  EXPECT_EQ(r.remaining(), 0u);
  EXPECT_FALSE(r.GetU32(&u32));
}

TEST(Frame, StatusCodesFromTheWire) {
  EXPECT_EQ(Status::CodeFromWire(6), StatusCode::kCorrupt);
  EXPECT_EQ(Status::CodeFromWire(0), StatusCode::kOk);
  EXPECT_EQ(Status::CodeFromWire(-1), StatusCode::kProtocol);
  EXPECT_EQ(Status::CodeFromWire(1000), StatusCode::kProtocol);
  EXPECT_STREQ(Status::CodeName(StatusCode::kCorrupt), "ECHUNK_CORRUPT");
}

}  // namespace
}  // namespace millpond
