// The TCP data plane end to end, in one process: a ChunkStore served by a DataServer over
// TCP on 127.0.0.1, driven by a ChunkClient and by raw sockets that send broken frames.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <dirent.h>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "client/chunk_client.h"
#include "common/crc32c.h"
#include "storage/chunk_store.h"
#include "storage/data_server.h"
#include "transport/frame.h"
#include "transport/socket_io.h"

namespace millpond {
namespace {

using millpond::testing::Pattern;
using millpond::testing::RemoveTree;

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::seconds(20);  // bound on every wait for a callback

// ---------------------------------------------------------------- helpers

::testing::AssertionResult SameBytes(const char* got, size_t gotBytes, const std::string& want) {
  if (gotBytes == want.size() && std::memcmp(got, want.data(), gotBytes) == 0)
    return ::testing::AssertionSuccess();
  size_t i = 0;
  while (i < gotBytes && i < want.size() && got[i] == want[i]) i++;
  return ::testing::AssertionFailure() << "got " << gotBytes << " bytes, want " << want.size()
                                       << "; first difference at offset " << i;
}

struct MetaResult {
  Status status;
  ChunkMeta meta;
  uint32_t bytes = 0;
};

// A raw TCP connection for sending hand-built frames; every receive is bounded.
class RawSocket {
 public:
  explicit RawSocket(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~RawSocket() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool Send(const void* p, size_t n) {
    return ::send(fd_, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
  }
  bool Send(const std::string& s) { return Send(s.data(), s.size()); }
  // Reads exactly n bytes; false on EOF, error or the 5 s receive timeout.
  bool RecvExact(void* p, size_t n) {
    char* c = static_cast<char*>(p);
    while (n) {
      ssize_t r = ::recv(fd_, c, n, 0);
      if (r <= 0) return false;
      c += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  // True when the peer closed the connection (EOF or reset) within the receive timeout.
  bool PeerClosed() {
    char c;
    ssize_t r = ::recv(fd_, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

struct RawReply {
  bool ok = false;  // a well-formed reply frame arrived
  frame::Header header;
  std::string meta;  // the error message for a failed status
  std::string data;
};

// Reads one reply frame. Checked by hand (magic, CRC, reply flag) rather than with
// Header::Decode, so a reply to garbage is still readable whatever opcode it echoes.
RawReply ReadReply(RawSocket& s) {
  RawReply r;
  uint8_t raw[frame::kHeaderBytes];
  if (!s.RecvExact(raw, sizeof raw)) return r;
  uint32_t magic, crc;
  std::memcpy(&magic, raw, 4);
  std::memcpy(&crc, raw + 28, 4);
  if (magic != frame::kMagic || crc != Crc32c(raw, 28)) return r;
  frame::Header& h = r.header;
  h.opcode = raw[5];
  std::memcpy(&h.flags, raw + 6, 2);
  std::memcpy(&h.requestId, raw + 8, 8);
  std::memcpy(&h.metaBytes, raw + 16, 4);
  std::memcpy(&h.dataBytes, raw + 20, 4);
  std::memcpy(&h.status, raw + 24, 4);
  if (!(h.flags & frame::kFlagReply) || h.metaBytes > limits::kFrameMetaBytesMax ||
      h.dataBytes > limits::kFrameDataBytesMax)
    return r;
  r.meta.resize(h.metaBytes);
  r.data.resize(h.dataBytes);
  if (!s.RecvExact(r.meta.data(), r.meta.size()) || !s.RecvExact(r.data.data(), r.data.size())) return r;
  r.ok = true;
  return r;
}

std::string EncodeHeader(const frame::Header& h) {
  uint8_t raw[frame::kHeaderBytes];
  h.EncodeTo(raw);
  return std::string(reinterpret_cast<char*>(raw), sizeof raw);
}

// A write request frame of `a` carrying `payload` (which may differ from what `a` claims).
std::string EncodeWriteFrame(uint64_t requestId, const frame::WriteArgs& a, const std::string& payload) {
  std::string meta;
  frame::Put(&meta, a);
  frame::Header h;
  h.opcode = frame::kWrite;
  h.requestId = requestId;
  h.metaBytes = static_cast<uint32_t>(meta.size());
  h.dataBytes = a.length;
  return EncodeHeader(h) + meta + payload;
}

// A whole write request frame built by hand; `checksum` is what the frame claims.
std::string WriteFrame(uint64_t requestId, const ChunkId& id, const std::string& payload, uint32_t checksum) {
  frame::WriteArgs a;
  a.chunk = id;
  a.length = static_cast<uint32_t>(payload.size());
  a.flags = frame::kWriteCommit;
  a.payloadChecksum = checksum;
  return EncodeWriteFrame(requestId, a, payload);
}

// A write frame as ChunkClient sends it (frame::kWriteBlockCrcs): block CRCs of `payload`
// computed first, then byte `damageAt` of the payload flipped (a flip on the wire); -1: none.
std::string BlockWriteFrame(uint64_t requestId, const ChunkId& id, uint32_t offset, std::string payload,
                            long damageAt = -1) {
  frame::WriteArgs a;
  a.chunk = id;
  a.offset = offset;
  a.length = static_cast<uint32_t>(payload.size());
  a.flags = frame::kWriteCommit | frame::kWriteBlockCrcs;
  a.payloadChecksum = frame::ComputeBlockCrcs(payload.data(), a.length, &a.blockCrcs);
  if (damageAt >= 0) payload[damageAt] ^= 0x10;
  return EncodeWriteFrame(requestId, a, payload);
}

std::string ReadFrame(uint64_t requestId, const ChunkId& id, uint32_t offset, uint32_t length, uint32_t flags) {
  frame::ReadArgs a;
  a.chunk = id;
  a.offset = offset;
  a.length = length;
  a.flags = flags;
  std::string meta;
  frame::Put(&meta, a);
  frame::Header h;
  h.opcode = frame::kRead;
  h.requestId = requestId;
  h.metaBytes = static_cast<uint32_t>(meta.size());
  return EncodeHeader(h) + meta;
}

// ---------------------------------------------------------------- fixture

class TcpDataPlaneTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/millpond-tcp-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ChunkStoreOptions so;
    so.syncWrites = false;
    ASSERT_TRUE(ChunkStore::Open(root_ + "/target", so, &store_).ok());
    ASSERT_TRUE(StartServer(DataServerOptions{}).ok());
    ASSERT_TRUE(MakeClient(ChunkClientOptions{}, &client_).ok());
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    server_.reset();
    store_.reset();
    RemoveTree(root_);
  }

  Status StartServer(DataServerOptions o) {
    o.host = "127.0.0.1";
    o.port = 0;
    o.transport = TransportChoice::kTcp;
    o.ioThreads = 2;
    if (server_) server_->Stop();
    server_.reset();
    Status s = DataServer::Start(store_.get(), o, &server_);
    if (s.ok()) address_ = "127.0.0.1:" + std::to_string(server_->port());
    return s;
  }
  static Status MakeClient(ChunkClientOptions o, std::unique_ptr<ChunkClient>* out) {
    o.transport = TransportChoice::kTcp;
    return ChunkClient::Create(o, out);
  }

  // Synchronous wrappers: each waits (bounded) for the callback.
  template <typename T>
  static T Await(std::future<T> f) {
    if (f.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "callback did not run within the bound";
      std::abort();  // the callback still refers to stack state; do not run on
    }
    return f.get();
  }

  MetaResult Write(const ChunkId& id, uint32_t offset, const std::string& data, uint32_t flags = frame::kWriteCommit,
                   uint64_t updateVersion = 0, ChunkClient* c = nullptr) {
    frame::WriteArgs a;
    a.chunk = id;
    a.offset = offset;
    a.length = static_cast<uint32_t>(data.size());
    a.flags = flags;
    a.updateVersion = updateVersion;
    auto p = std::make_shared<std::promise<MetaResult>>();
    (c ? c : client_.get())->Write(address_, a, data.data(), [p](const Status& s, const ChunkMeta& m) {
      p->set_value({s, m, 0});
    });
    return Await(p->get_future());
  }

  MetaResult Read(const ChunkId& id, uint32_t offset, uint32_t length, char* dst, uint32_t flags = 0,
                  ChunkClient* c = nullptr, const std::string& address = "") {
    frame::ReadArgs a;
    a.chunk = id;
    a.offset = offset;
    a.length = length;
    a.flags = flags;
    auto p = std::make_shared<std::promise<MetaResult>>();
    (c ? c : client_.get())->Read(address.empty() ? address_ : address, a, dst,
                                  [p](const Status& s, const ChunkMeta& m, uint32_t n) { p->set_value({s, m, n}); });
    return Await(p->get_future());
  }

  MetaResult Stat(const ChunkId& id) {
    auto p = std::make_shared<std::promise<MetaResult>>();
    client_->Stat(address_, id, [p](const Status& s, const ChunkMeta& m) { p->set_value({s, m, 0}); });
    return Await(p->get_future());
  }

  MetaResult Commit(const ChunkId& id, uint64_t version) {
    auto p = std::make_shared<std::promise<MetaResult>>();
    client_->Commit(address_, {id, version}, [p](const Status& s, const ChunkMeta& m) { p->set_value({s, m, 0}); });
    return Await(p->get_future());
  }

  Status Remove(const ChunkId& id) {
    auto p = std::make_shared<std::promise<Status>>();
    client_->Remove(address_, id, [p](const Status& s) { p->set_value(s); });
    return Await(p->get_future());
  }

  Status Ping(ChunkClient* c = nullptr) {
    auto p = std::make_shared<std::promise<Status>>();
    (c ? c : client_.get())->Ping(address_, [p](const Status& s) { p->set_value(s); });
    return Await(p->get_future());
  }

  std::pair<Status, std::vector<ChunkListEntry>> List(const ChunkId* after, uint32_t limit) {
    frame::ListArgs a;
    if (after) {
      a.after = *after;
      a.hasAfter = 1;
    }
    a.limit = limit;
    using R = std::pair<Status, std::vector<ChunkListEntry>>;
    auto p = std::make_shared<std::promise<R>>();
    client_->List(address_, a, [p](const Status& s, const std::vector<ChunkListEntry>& e) { p->set_value({s, e}); });
    return Await(p->get_future());
  }

  // A 1 MiB read of chunk {10, 0} from `address` into dst; the future holds its status.
  std::future<Status> ReadMiB(const std::string& address, char* dst, std::shared_ptr<std::atomic<bool>> abandon) {
    auto p = std::make_shared<std::promise<Status>>();
    frame::ReadArgs args{ChunkId{10, 0}, 0, 1 << 20, 0};
    client_->Read(address, args, dst, [p](const Status& s, const ChunkMeta&, uint32_t) { p->set_value(s); }, nullptr,
                  std::move(abandon));
    return p->get_future();
  }

  std::string root_, address_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<DataServer> server_;
  std::unique_ptr<ChunkClient> client_;
};

const ChunkId kA{10, 0};
const ChunkId kB{10, 1};

// ---------------------------------------------------------------- operations through the client

TEST_F(TcpDataPlaneTest, WriteThenReadRoundTrips) {
  std::string data = Pattern(4 << 20, 1);
  MetaResult w = Write(kA, 0, data);
  ASSERT_TRUE(w.status.ok()) << w.status.ToString();
  EXPECT_EQ(w.meta.commitVersion, 1u);
  EXPECT_EQ(w.meta.length, data.size());
  EXPECT_EQ(w.meta.checksum, Crc32c(data.data(), data.size()));

  std::vector<char> buf(data.size());
  MetaResult r = Read(kA, 0, data.size(), buf.data());
  ASSERT_TRUE(r.status.ok()) << r.status.ToString();
  EXPECT_EQ(r.bytes, data.size());
  EXPECT_EQ(r.meta.checksum, w.meta.checksum);
  EXPECT_TRUE(SameBytes(buf.data(), r.bytes, data));

  // An unaligned range, and a read running past the end that comes back short.
  r = Read(kA, 12345, 1000, buf.data());
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(SameBytes(buf.data(), r.bytes, data.substr(12345, 1000)));
  r = Read(kA, data.size() - 10, 100, buf.data());
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(SameBytes(buf.data(), r.bytes, data.substr(data.size() - 10)));
  // The server's store holds exactly what was sent.
  EXPECT_EQ(server_->stats().bytesWritten, data.size());
}

TEST_F(TcpDataPlaneTest, StatCommitListRemoveAndPing) {
  ASSERT_TRUE(Ping().ok());
  ASSERT_TRUE(Write(kA, 0, "committed").status.ok());
  MetaResult w = Write(kA, 0, "pending!!", /*flags=*/0);
  ASSERT_TRUE(w.status.ok());
  EXPECT_EQ(w.meta.commitVersion, 1u);
  EXPECT_EQ(w.meta.updateVersion, 2u);

  char buf[32];
  MetaResult r = Read(kA, 0, sizeof buf, buf);
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(SameBytes(buf, r.bytes, "committed"));
  r = Read(kA, 0, sizeof buf, buf, frame::kReadUncommitted);
  ASSERT_TRUE(r.status.ok());
  EXPECT_TRUE(SameBytes(buf, r.bytes, "pending!!"));

  MetaResult st = Stat(kA);
  ASSERT_TRUE(st.status.ok());
  EXPECT_EQ(st.meta.updateVersion, 2u);
  MetaResult c = Commit(kA, 2);
  ASSERT_TRUE(c.status.ok()) << c.status.ToString();
  EXPECT_EQ(c.meta.commitVersion, 2u);
  EXPECT_TRUE(Commit(kA, 2).status.ok()) << "a retried commit is OK";
  r = Read(kA, 0, sizeof buf, buf);
  EXPECT_TRUE(SameBytes(buf, r.bytes, "pending!!"));

  ASSERT_TRUE(Write(kB, 0, "b").status.ok());
  ASSERT_TRUE(Write({9, 5}, 0, "c").status.ok());
  auto [ls, entries] = List(nullptr, 0);
  ASSERT_TRUE(ls.ok()) << ls.ToString();
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].chunk, (ChunkId{9, 5}));
  EXPECT_EQ(entries[1].chunk, kA);
  EXPECT_EQ(entries[1].meta.commitVersion, 2u);
  EXPECT_EQ(entries[2].chunk, kB);
  auto [ls2, page] = List(&kA, 10);
  ASSERT_TRUE(ls2.ok());
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].chunk, kB);

  ASSERT_TRUE(Remove(kA).ok());
  EXPECT_EQ(Stat(kA).status.code(), StatusCode::kNotFound);
  EXPECT_EQ(Read(kA, 0, 4, buf).status.code(), StatusCode::kNotFound);
  EXPECT_EQ(Remove(kA).code(), StatusCode::kNotFound);
}

TEST_F(TcpDataPlaneTest, ServerErrorsArriveWithTheirCodes) {
  char buf[8];
  MetaResult r = Read({77, 7}, 0, sizeof buf, buf);
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound);
  EXPECT_FALSE(r.status.message().empty());
  EXPECT_EQ(r.bytes, 0u);
  ASSERT_TRUE(Write(kA, 0, "v5", frame::kWriteCommit, 5).status.ok());
  EXPECT_EQ(Write(kA, 0, "v4", frame::kWriteCommit, 4).status.code(), StatusCode::kStaleVersion);
  EXPECT_EQ(Write(kA, 1, "x", frame::kWriteCommit | frame::kWriteReplace).status.code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Commit(kA, 9).status.code(), StatusCode::kStaleVersion);
  // The connection keeps serving after errors.
  EXPECT_TRUE(Ping().ok());
  EXPECT_GE(server_->stats().errors, 4u);
}

TEST_F(TcpDataPlaneTest, BatchReadReturnsEachEntryInItsSlot) {
  std::string a = Pattern(10000, 1), b = Pattern(300, 2);
  ASSERT_TRUE(Write(kA, 0, a).status.ok());
  ASSERT_TRUE(Write(kB, 0, b).status.ok());
  std::vector<frame::ReadArgs> reads(4);
  reads[0] = {kA, 100, 5000, 0};
  reads[1] = {{99, 9}, 0, 64, 0};  // missing
  reads[2] = {kB, 200, 500, 0};    // short: only 100 bytes exist
  reads[3] = {kA, 0, 10000, 0};
  std::vector<std::vector<char>> bufs;
  std::vector<char*> dsts;
  for (auto& r : reads) bufs.emplace_back(r.length, '\x55');
  for (auto& v : bufs) dsts.push_back(v.data());
  using R = std::pair<Status, std::vector<BatchReadResult>>;
  auto p = std::make_shared<std::promise<R>>();
  client_->BatchRead(address_, reads, dsts, [p](const Status& s, const std::vector<BatchReadResult>& e) {
    p->set_value({s, e});
  });
  auto [s, results] = Await(p->get_future());
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(results.size(), 4u);
  EXPECT_EQ(results[0].code, StatusCode::kOk);
  EXPECT_EQ(results[0].bytesRead, 5000u);
  EXPECT_TRUE(SameBytes(bufs[0].data(), 5000, a.substr(100, 5000)));
  EXPECT_EQ(results[1].code, StatusCode::kNotFound);
  EXPECT_EQ(results[1].bytesRead, 0u);
  EXPECT_TRUE(SameBytes(bufs[1].data(), 64, std::string(64, '\0'))) << "a failed entry is zero-filled";
  EXPECT_EQ(results[2].code, StatusCode::kOk);
  EXPECT_EQ(results[2].bytesRead, 100u);
  EXPECT_TRUE(SameBytes(bufs[2].data(), 500, b.substr(200) + std::string(400, '\0')));
  EXPECT_EQ(results[3].bytesRead, 10000u);
  EXPECT_TRUE(SameBytes(bufs[3].data(), 10000, a));
}

TEST_F(TcpDataPlaneTest, ManyConcurrentReadsAllCompleteCorrectly) {
  constexpr int kChunks = 8, kReads = 200;
  constexpr uint32_t kChunkBytes = 256 * 1024;
  std::vector<std::string> data;
  for (int i = 0; i < kChunks; i++) {
    data.push_back(Pattern(kChunkBytes, 100 + i));
    ASSERT_TRUE(Write({20, static_cast<uint32_t>(i)}, 0, data.back()).status.ok());
  }
  struct Want {
    int chunk;
    uint32_t offset, length;
    std::vector<char> buf;
  };
  std::vector<Want> wants(kReads);
  std::mt19937 rng(5);
  std::atomic<int> left{kReads}, wrong{0};
  auto allDone = std::make_shared<std::promise<void>>();
  for (int i = 0; i < kReads; i++) {
    Want& w = wants[i];
    w.chunk = rng() % kChunks;
    w.offset = rng() % kChunkBytes;
    w.length = 1 + rng() % (64 * 1024);
    w.buf.assign(w.length, 0);
    frame::ReadArgs a{{20, static_cast<uint32_t>(w.chunk)}, w.offset, w.length, 0};
    client_->Read(address_, a, w.buf.data(), [&, i, allDone](const Status& s, const ChunkMeta&, uint32_t n) {
      const Want& w = wants[i];
      std::string expect = data[w.chunk].substr(w.offset, w.length);
      if (!s.ok() || n != expect.size() || std::memcmp(w.buf.data(), expect.data(), n) != 0) wrong++;
      if (--left == 0) allDone->set_value();
    });
  }
  ASSERT_EQ(allDone->get_future().wait_for(kWait), std::future_status::ready) << left.load() << " reads unanswered";
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GE(server_->stats().reads, uint64_t{kReads});
}

TEST_F(TcpDataPlaneTest, ClosedPortIsConnRefused) {
  // A port that was just bound and released has no listener.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  std::string dead = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  char buf[8];
  MetaResult r = Read(kA, 0, sizeof buf, buf, 0, nullptr, dead);
  EXPECT_EQ(r.status.code(), StatusCode::kConnRefused) << r.status.ToString();
  // The live server is unaffected.
  EXPECT_TRUE(Ping().ok());
}

// A 1 MiB in-flight budget with 4 MiB calls: each call is larger than the budget, so it
// goes alone, and all of them still complete.
TEST_F(TcpDataPlaneTest, SmallInflightBudgetStillCompletesLargeCalls) {
  ChunkClientOptions o;
  o.inflightBytesMax = 1 << 20;
  std::unique_ptr<ChunkClient> small;
  ASSERT_TRUE(MakeClient(o, &small).ok());
  constexpr int kCalls = 6;
  constexpr uint32_t kBytes = 4 << 20;
  std::vector<std::string> data;
  for (int i = 0; i < kCalls; i++) data.push_back(Pattern(kBytes, 300 + i));

  std::atomic<int> left{kCalls}, failed{0};
  auto writesDone = std::make_shared<std::promise<void>>();
  for (int i = 0; i < kCalls; i++) {
    frame::WriteArgs a;
    a.chunk = {30, static_cast<uint32_t>(i)};
    a.length = kBytes;
    a.flags = frame::kWriteCommit;
    small->Write(address_, a, data[i].data(), [&, writesDone](const Status& s, const ChunkMeta&) {
      if (!s.ok()) failed++;
      if (--left == 0) writesDone->set_value();
    });
  }
  ASSERT_EQ(writesDone->get_future().wait_for(kWait), std::future_status::ready);
  ASSERT_EQ(failed.load(), 0);

  std::vector<std::vector<char>> bufs(kCalls, std::vector<char>(kBytes));
  left = kCalls;
  std::atomic<int> wrong{0};
  auto readsDone = std::make_shared<std::promise<void>>();
  for (int i = 0; i < kCalls; i++) {
    frame::ReadArgs a{{30, static_cast<uint32_t>(i)}, 0, kBytes, 0};
    small->Read(address_, a, bufs[i].data(), [&, i, readsDone](const Status& s, const ChunkMeta&, uint32_t n) {
      if (!s.ok() || n != kBytes || std::memcmp(bufs[i].data(), data[i].data(), kBytes) != 0) wrong++;
      if (--left == 0) readsDone->set_value();
    });
  }
  ASSERT_EQ(readsDone->get_future().wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(wrong.load(), 0);
}

// Stopping the server while calls are in flight fails them (no hang, no lost callback).
TEST_F(TcpDataPlaneTest, ServerStoppedMidwayFailsInflightCalls) {
  constexpr uint32_t kBytes = 4 << 20;
  constexpr int kCalls = 24;
  std::string data = Pattern(kBytes, 7);
  ASSERT_TRUE(Write(kA, 0, data).status.ok());
  std::vector<std::vector<char>> bufs(kCalls, std::vector<char>(kBytes));
  std::atomic<int> left{kCalls}, failed{0}, wrong{0};
  auto first = std::make_shared<std::promise<void>>();
  auto allDone = std::make_shared<std::promise<void>>();
  std::atomic<bool> firstSet{false};
  for (int i = 0; i < kCalls; i++) {
    frame::ReadArgs a{kA, 0, kBytes, 0};
    client_->Read(address_, a, bufs[i].data(), [&, i, first, allDone](const Status& s, const ChunkMeta&, uint32_t n) {
      if (!s.ok()) failed++;
      else if (n != kBytes || std::memcmp(bufs[i].data(), data.data(), kBytes) != 0) wrong++;
      if (!firstSet.exchange(true)) first->set_value();
      if (--left == 0) allDone->set_value();
    });
  }
  ASSERT_EQ(first->get_future().wait_for(kWait), std::future_status::ready);
  server_->Stop();
  ASSERT_EQ(allDone->get_future().wait_for(kWait), std::future_status::ready)
      << left.load() << " calls never completed after the server stopped";
  EXPECT_EQ(wrong.load(), 0) << "a call that succeeded carries the right bytes";
  EXPECT_GT(failed.load(), 0) << "calls in flight when the server stopped fail";
  Status after = Ping();
  EXPECT_FALSE(after.ok());
  EXPECT_TRUE(after.code() == StatusCode::kConnRefused || after.code() == StatusCode::kConnReset)
      << after.ToString();
}

// Closing the client while calls are in flight settles each one exactly once, as done or as
// kClosed, wherever the call was: queued, waiting for in-flight budget, sent, or half received.
TEST_F(TcpDataPlaneTest, ClientClosedMidwaySettlesInflightCallsWithClosed) {
  constexpr uint32_t kBytes = 4 << 20;
  constexpr int kCalls = 32;
  ASSERT_TRUE(Write(kA, 0, Pattern(kBytes, 8)).status.ok());
  std::vector<std::vector<char>> bufs(kCalls, std::vector<char>(kBytes));
  for (int round = 0; round < 8; round++) {
    ChunkClientOptions o;
    o.inflightBytesMax = 8 << 20;  // most calls wait for budget when the client closes
    o.connectionsPerServer = 2;
    std::unique_ptr<ChunkClient> c;
    ASSERT_TRUE(MakeClient(o, &c).ok());
    std::mutex mu;
    std::vector<std::string> unexpected;
    std::atomic<int> left{kCalls};
    auto first = std::make_shared<std::promise<void>>();
    auto allDone = std::make_shared<std::promise<void>>();
    std::atomic<bool> firstSet{false};
    for (int i = 0; i < kCalls; i++) {
      frame::ReadArgs a{kA, 0, kBytes, 0};
      c->Read(address_, a, bufs[i].data(), [&, first, allDone](const Status& s, const ChunkMeta&, uint32_t) {
        if (!s.ok() && s.code() != StatusCode::kClosed) {
          std::lock_guard<std::mutex> lock(mu);
          unexpected.push_back(s.ToString());
        }
        if (!firstSet.exchange(true)) first->set_value();
        if (--left == 0) allDone->set_value();
      });
    }
    if (round % 2 == 1) {  // odd rounds close once a reply arrived, even ones at once
      ASSERT_EQ(first->get_future().wait_for(kWait), std::future_status::ready);
    }
    c->Close();
    ASSERT_EQ(allDone->get_future().wait_for(kWait), std::future_status::ready);
    EXPECT_EQ(unexpected, std::vector<std::string>{}) << "round " << round;
    EXPECT_EQ(Ping(c.get()).code(), StatusCode::kClosed);
  }
}

// ---------------------------------------------------------------- broken frames on raw sockets

TEST_F(TcpDataPlaneTest, GarbageGetsAProtocolReplyAndTheConnectionCloses) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  std::string garbage = "this is not a millpond frame....";  // 32 bytes
  ASSERT_EQ(garbage.size(), frame::kHeaderBytes);
  ASSERT_TRUE(raw.Send(garbage));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok) << "a well-formed reply frame";
  EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kProtocol));
  EXPECT_FALSE(r.meta.empty()) << "the reply carries a message";
  EXPECT_TRUE(raw.PeerClosed());
  EXPECT_TRUE(Ping().ok()) << "other clients keep being served";
  EXPECT_GE(server_->tcpCounters().protocolErrors.load(), 1u);
}

TEST_F(TcpDataPlaneTest, BadMagicHeaderGetsAProtocolReply) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  frame::Header h;
  h.magic = 0x58585858u;  // "XXXX"
  h.opcode = frame::kPing;
  h.requestId = 42;
  ASSERT_TRUE(raw.Send(EncodeHeader(h)));  // CRC is valid; only the magic is wrong
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kProtocol));
  EXPECT_EQ(r.header.requestId, 42u);
  frame::Header d;
  uint8_t enc[frame::kHeaderBytes];
  r.header.magic = frame::kMagic;
  r.header.EncodeTo(enc);
  EXPECT_TRUE(frame::Header::Decode(enc, &d).ok());
  EXPECT_TRUE(raw.PeerClosed());
  EXPECT_TRUE(Ping().ok());
}

// Issue 9: a peer that announces a large write takes buffer memory only as its bytes arrive.
// Sixteen connections announcing 64 MiB writes (the whole 1 GiB pool, were it reserved up
// front) and sending nothing must not keep a reader waiting for buffer memory.
TEST_F(TcpDataPlaneTest, PeersAnnouncingLargeWritesAndSendingNothingDoNotStallReads) {
  const ChunkId id{77, 0};
  const std::string data = Pattern(256 * 1024, 21);
  ASSERT_TRUE(Write(id, 0, data).status.ok());
  std::vector<std::unique_ptr<RawSocket>> idle;
  for (uint32_t i = 0; i < 16; i++) {
    auto raw = std::make_unique<RawSocket>(server_->port());
    ASSERT_TRUE(raw->connected());
    frame::WriteArgs a;
    a.chunk = ChunkId{1000 + i, 0};
    a.length = limits::kFrameDataBytesMax;
    a.flags = frame::kWriteCommit;
    ASSERT_TRUE(raw->Send(EncodeWriteFrame(i + 1, a, "")));  // and not one byte of the payload
    idle.push_back(std::move(raw));
  }
  std::this_thread::sleep_for(milliseconds(1000));  // the server has taken every announcement in
  std::unique_ptr<ChunkClient> reader;
  ChunkClientOptions co;
  co.localReadThreads = 0;
  ASSERT_TRUE(MakeClient(co, &reader).ok());
  for (int i = 0; i < 4; i++) {
    // Bounded well below the 30 s a reader waited before (buffer wait and frame timeout).
    auto buf = std::make_shared<std::string>(data.size(), '\0');
    auto p = std::make_shared<std::promise<MetaResult>>();
    frame::ReadArgs a;
    a.chunk = id;
    a.length = static_cast<uint32_t>(data.size());
    reader->Read(address_, a, buf->data(),
                 [p, buf](const Status& s, const ChunkMeta& m, uint32_t n) { p->set_value({s, m, n}); });
    auto f = p->get_future();
    ASSERT_EQ(f.wait_for(std::chrono::seconds(15)), std::future_status::ready) << "read " << i << " stalled";
    MetaResult r = f.get();
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    EXPECT_TRUE(SameBytes(buf->data(), r.bytes, data));
  }
  reader->Close();
}

TEST_F(TcpDataPlaneTest, OversizedDataHeaderGetsTooLargeWithoutReadingThePayload) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  frame::Header h;
  h.opcode = frame::kWrite;
  h.requestId = 7;
  h.metaBytes = frame::WriteArgs::kBytes;
  h.dataBytes = limits::kFrameDataBytesMax + 1;
  ASSERT_TRUE(raw.Send(EncodeHeader(h)));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kTooLarge)) << r.meta;
  EXPECT_EQ(r.header.requestId, 7u);
  EXPECT_EQ(r.header.opcode, frame::kWrite);
  EXPECT_TRUE(raw.PeerClosed());
  EXPECT_TRUE(Ping().ok());
}

TEST_F(TcpDataPlaneTest, ReplyFrameSentToTheServerIsProtocol) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  frame::Header h;
  h.opcode = frame::kPing;
  h.flags = frame::kFlagReply;
  ASSERT_TRUE(raw.Send(EncodeHeader(h)));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kProtocol));
  EXPECT_TRUE(raw.PeerClosed());
}

TEST_F(TcpDataPlaneTest, RawWellFormedFramesAreServed) {
  // The control case for the hand-built frames: a correct write and a ping on one socket.
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  std::string payload = Pattern(5000, 4);
  ASSERT_TRUE(raw.Send(WriteFrame(1, kA, payload, Crc32c(payload.data(), payload.size()))));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, 0) << r.meta;
  EXPECT_EQ(r.header.requestId, 1u);
  ChunkMeta m;
  frame::Reader rd(reinterpret_cast<const uint8_t*>(r.meta.data()), r.meta.size());
  ASSERT_TRUE(rd.Get(&m));
  EXPECT_EQ(m.length, payload.size());
  frame::Header ping;
  ping.opcode = frame::kPing;
  ping.requestId = 2;
  ASSERT_TRUE(raw.Send(EncodeHeader(ping)));
  r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, 0);
  EXPECT_EQ(r.header.requestId, 2u);
}

TEST_F(TcpDataPlaneTest, WrongPayloadChecksumIsCorruptAndNothingIsStored) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  std::string payload = Pattern(9000, 3);
  uint32_t good = Crc32c(payload.data(), payload.size());
  ASSERT_TRUE(raw.Send(WriteFrame(5, kA, payload, good ^ 1)));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kCorrupt)) << r.meta;
  ChunkMeta meta;
  EXPECT_EQ(store_->Stat(kA, &meta).code(), StatusCode::kNotFound) << "the damaged payload was not stored";
  // Framing was intact, so the same connection goes on: the same write with the right
  // checksum is stored.
  ASSERT_TRUE(raw.Send(WriteFrame(6, kA, payload, good)));
  r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, 0) << r.meta;
  ASSERT_TRUE(store_->Stat(kA, &meta).ok());
  EXPECT_EQ(meta.checksum, good);
}

TEST_F(TcpDataPlaneTest, BlockChecksummedWriteWithAFlippedByteIsCorruptAndNothingIsStored) {
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  const std::string payload = Pattern(9000, 5);  // blocks 0 and 1 whole, block 2 partial
  uint64_t id = 1;
  // A flip in a whole block (checked as the block table is made) and in the partial last one.
  for (long at : {5000L, 8500L}) {
    ASSERT_TRUE(raw.Send(BlockWriteFrame(id++, kA, 0, payload, at)));
    RawReply r = ReadReply(raw);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kCorrupt)) << "flip at " << at << ": " << r.meta;
    ChunkMeta meta;
    EXPECT_EQ(store_->Stat(kA, &meta).code(), StatusCode::kNotFound) << "the damaged payload was not stored";
  }
  ASSERT_TRUE(raw.Send(BlockWriteFrame(id++, kA, 0, payload)));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  ASSERT_EQ(r.header.status, 0) << r.meta;
  ChunkMeta meta;
  ASSERT_TRUE(store_->Stat(kA, &meta).ok());
  EXPECT_EQ(meta.checksum, Crc32c(payload.data(), payload.size()));
  // Partial updates: an aligned one whose last block merges with the base (checked on its
  // own), and an unaligned one (every block checked on its own). Neither lands.
  const std::string update = Pattern(5000, 6);
  for (auto [offset, at] : {std::pair<uint32_t, long>{0, 4500}, {4096, 100}, {10, 4200}, {10, 3}}) {
    ASSERT_TRUE(raw.Send(BlockWriteFrame(id++, kA, offset, update, at)));
    r = ReadReply(raw);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.header.status, static_cast<int32_t>(StatusCode::kCorrupt)) << "offset " << offset << " flip at " << at;
    ChunkMeta now;
    ASSERT_TRUE(store_->Stat(kA, &now).ok());
    EXPECT_EQ(now.commitVersion, meta.commitVersion) << "offset " << offset << " flip at " << at;
  }
  // Undamaged, the same updates land with the content's CRC.
  std::string want = payload;
  for (uint32_t offset : {0u, 4096u, 10u}) {
    ASSERT_TRUE(raw.Send(BlockWriteFrame(id++, kA, offset, update)));
    r = ReadReply(raw);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.header.status, 0) << r.meta;
    want.replace(offset, update.size(), update);
  }
  ASSERT_TRUE(store_->Stat(kA, &meta).ok());
  EXPECT_EQ(meta.checksum, Crc32c(want.data(), want.size()));
  std::vector<char> buf(want.size());
  MetaResult got = Read(kA, 0, want.size(), buf.data());
  ASSERT_TRUE(got.status.ok()) << got.status.ToString();
  EXPECT_TRUE(SameBytes(buf.data(), got.bytes, want));
}

TEST_F(TcpDataPlaneTest, AlignedReadsCarryStoredBlockChecksumsAndTheClientChecksThem) {
  const std::string data = Pattern(3 * 4096 + 100, 7);
  ASSERT_TRUE(Write(kA, 0, data).status.ok());
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  // Aligned reads (ending on a block boundary, or at the end) come with the stored CRCs.
  for (auto [offset, length] : {std::pair<uint32_t, uint32_t>{4096, 8192}, {8192, 1 << 20}, {0, 4096}}) {
    ASSERT_TRUE(raw.Send(ReadFrame(1, kA, offset, length, frame::kReadBlockCrcs)));
    RawReply r = ReadReply(raw);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.header.status, 0) << r.meta;
    const std::string want = data.substr(offset, length);
    EXPECT_TRUE(SameBytes(r.data.data(), r.data.size(), want));
    frame::Reader rd(reinterpret_cast<const uint8_t*>(r.meta.data()), r.meta.size());
    ChunkMeta m;
    std::vector<uint32_t> crcs, expected;
    ASSERT_TRUE(rd.Get(&m));
    ASSERT_TRUE(rd.GetBlockCrcs(&crcs, limits::kChunkBlocksMax)) << "offset " << offset;
    frame::ComputeBlockCrcs(want.data(), want.size(), &expected);
    EXPECT_EQ(crcs, expected);
  }
  // A read ending inside a block, or without the flag: the server checks, and sends no CRCs.
  for (uint32_t flags : {uint32_t{frame::kReadBlockCrcs}, 0u}) {
    ASSERT_TRUE(raw.Send(ReadFrame(2, kA, 4096, flags ? 5000 : 8192, flags)));
    RawReply r = ReadReply(raw);
    ASSERT_TRUE(r.ok);
    ASSERT_EQ(r.header.status, 0);
    EXPECT_EQ(r.meta.size(), frame::kChunkMetaBytes);
  }

  // A byte flipped on disk in block 1: the server sends aligned reads as they are, and the
  // client's one check finds it; the server still checks the reads it answers alone.
  char sub[8];
  std::snprintf(sub, sizeof sub, "%02x", static_cast<unsigned>(kA.Hash() % 256));
  const std::string file = root_ + "/target/chunks/" + sub + "/" + kA.ToHex() + ".c";
  {
    int fd = ::open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << file;
    char c;
    const uint64_t at = chunk_format::HeaderBytes(data.size()) + 4096 + 17;
    ASSERT_EQ(::pread(fd, &c, 1, at), 1);
    c ^= 0x01;
    ASSERT_EQ(::pwrite(fd, &c, 1, at), 1);
    ::close(fd);
  }
  std::vector<char> buf(data.size());
  EXPECT_EQ(Read(kA, 0, data.size(), buf.data()).status.code(), StatusCode::kCorrupt);
  EXPECT_EQ(Read(kA, 4096, 4096, buf.data()).status.code(), StatusCode::kCorrupt);
  EXPECT_EQ(Read(kA, 4100, 10, buf.data()).status.code(), StatusCode::kCorrupt) << "checked by the server";
  EXPECT_TRUE(Read(kA, 8192, 4096, buf.data()).status.ok()) << "other blocks are intact";
  ASSERT_TRUE(raw.Send(ReadFrame(3, kA, 0, data.size(), frame::kReadBlockCrcs)));
  RawReply r = ReadReply(raw);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.header.status, 0) << "the server left the check to the client";
}

TEST_F(TcpDataPlaneTest, HalfSentFrameIsDroppedAfterTheFrameTimeout) {
  DataServerOptions o;
  o.frameTimeoutMs = 300;
  ASSERT_TRUE(StartServer(o).ok());
  std::unique_ptr<ChunkClient> fresh;  // the fixture's client knew the old address only
  ASSERT_TRUE(MakeClient(ChunkClientOptions{}, &fresh).ok());

  // Half a header.
  RawSocket raw(server_->port());
  ASSERT_TRUE(raw.connected());
  frame::Header h;
  h.opcode = frame::kPing;
  std::string header = EncodeHeader(h);
  auto start = Clock::now();
  ASSERT_TRUE(raw.Send(header.substr(0, 10)));
  EXPECT_TRUE(raw.PeerClosed()) << "the server gave up on the frame";
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LT(waited, milliseconds(4000));

  // A whole header and meta, but only part of the payload.
  RawSocket raw2(server_->port());
  ASSERT_TRUE(raw2.connected());
  std::string payload = Pattern(100000, 9);
  std::string frame = WriteFrame(1, kB, payload, Crc32c(payload.data(), payload.size()));
  start = Clock::now();
  ASSERT_TRUE(raw2.Send(frame.substr(0, frame.size() - 1000)));
  EXPECT_TRUE(raw2.PeerClosed());
  EXPECT_GE(Clock::now() - start, milliseconds(250));
  ChunkMeta meta;
  EXPECT_EQ(store_->Stat(kB, &meta).code(), StatusCode::kNotFound) << "a partial write stores nothing";

  // The server keeps serving, and an idle connection between frames is not timed out.
  RawSocket idle(server_->port());
  ASSERT_TRUE(idle.connected());
  EXPECT_TRUE(Ping(fresh.get()).ok());
  std::this_thread::sleep_for(milliseconds(600));  // idle well past the frame timeout
  h.requestId = 3;
  ASSERT_TRUE(idle.Send(EncodeHeader(h)));
  RawReply r = ReadReply(idle);
  ASSERT_TRUE(r.ok) << "an idle connection survives the frame timeout";
  EXPECT_EQ(r.header.status, 0);
}

// A fake server's half of a stalled reply: reads `requests` requests on `conn`, waits until
// `go` (when given), then sends the header of a 1 MiB reply to the first and 1,000 bytes of it,
// and nothing more (a server paused mid-reply). False when a request did not arrive whole.
bool SendHalfReply(int conn, const std::atomic<bool>* go = nullptr, int requests = 1) {
  uint64_t firstId = 0;
  uint16_t firstOpcode = 0;
  for (int i = 0; i < requests; i++) {
    uint8_t raw[frame::kHeaderBytes];
    frame::Header req;
    if (!ReadExact(conn, raw, sizeof raw, 5000, false).ok() || !frame::Header::Decode(raw, &req).ok()) return false;
    if (!SkipExact(conn, uint64_t{req.metaBytes} + req.dataBytes, 5000).ok()) return false;
    if (i == 0) {
      firstId = req.requestId;
      firstOpcode = req.opcode;
    }
  }
  while (go != nullptr && !*go) std::this_thread::sleep_for(milliseconds(10));
  frame::Header reply;
  reply.opcode = firstOpcode;
  reply.flags = frame::kFlagReply;
  reply.requestId = firstId;
  reply.dataBytes = 1 << 20;
  const std::string head = EncodeHeader(reply) + std::string(1000, 'x');
  return ::send(conn, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size());
}

// A fake server on a free port: accepts one connection, answers it with SendHalfReply(go,
// requests) and holds it, stalled, until Release() (or 15 s).
class HalfReplyServer {
 public:
  explicit HalfReplyServer(const std::atomic<bool>* go = nullptr, int requests = 1) {
    uint16_t port = 0;
    ok_ = ListenTcp("127.0.0.1", 0, &listener_, &port).ok();
    address_ = "127.0.0.1:" + std::to_string(port);
    thread_ = std::thread([this, go, requests] {
      UniqueFd conn(::accept(listener_.get(), nullptr, nullptr));
      if (!conn.valid() || !SendHalfReply(conn.get(), go, requests)) return;
      for (int i = 0; i < 1500 && !released_; i++) std::this_thread::sleep_for(milliseconds(10));
    });
  }
  ~HalfReplyServer() { Release(); }
  void Release() {
    released_ = true;
    if (thread_.joinable()) thread_.join();
  }
  bool ok() const { return ok_; }
  const std::string& address() const { return address_; }

 private:
  UniqueFd listener_;
  bool ok_ = false;
  std::string address_;
  std::atomic<bool> released_{false};
  std::thread thread_;
};

// A server that stalls mid-reply (paused with SIGSTOP while sending) must not hold a read its
// caller abandoned (another replica answered a hedge): the call ends within a few timer ticks,
// not at the request timeout, and the connection it held is closed.
TEST_F(TcpDataPlaneTest, AbandonedReadStalledMidReplyEndsWithinTicks) {
  UniqueFd listener;
  uint16_t port = 0;
  ASSERT_TRUE(ListenTcp("127.0.0.1", 0, &listener, &port).ok());
  std::atomic<bool> peerClosed{false};
  std::thread stalling([&] {
    UniqueFd conn(::accept(listener.get(), nullptr, nullptr));
    if (!conn.valid() || !SendHalfReply(conn.get())) return;
    char c;
    peerClosed = ReadExact(conn.get(), &c, 1, 15000, false).code() == StatusCode::kConnReset;
  });
  std::vector<char> buf(1 << 20);
  auto abandon = std::make_shared<std::atomic<bool>>(false);
  auto f = ReadMiB("127.0.0.1:" + std::to_string(port), buf.data(), abandon);
  EXPECT_EQ(f.wait_for(milliseconds(500)), std::future_status::timeout) << "the stalled reply is still awaited";
  const auto abandonedAt = Clock::now();
  abandon->store(true);
  ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "an abandoned read held on";
  EXPECT_LT(Clock::now() - abandonedAt, milliseconds(1000));
  EXPECT_EQ(f.get().code(), StatusCode::kTimedOut);
  stalling.join();
  EXPECT_TRUE(peerClosed) << "the connection that held the half reply is closed";
  EXPECT_TRUE(Ping().ok()) << "other servers are unaffected";
}

// A reply that no call waits for any more (abandoned, then dropped on arrival) and that
// stalls mid-frame must not hold the receiver: the other calls on the connection, abandoned
// meanwhile, end within ticks, not when the request timeout drains the stalled reply.
TEST_F(TcpDataPlaneTest, AStalledReplyNobodyWaitsForDoesNotHoldTheOtherCalls) {
  std::atomic<bool> firstDropped{false};
  HalfReplyServer stalling(&firstDropped);
  ASSERT_TRUE(stalling.ok());
  std::vector<char> a(1 << 20), b(1 << 20);
  auto abandonA = std::make_shared<std::atomic<bool>>(false);
  auto fa = ReadMiB(stalling.address(), a.data(), abandonA);
  std::this_thread::sleep_for(milliseconds(200));
  abandonA->store(true);  // dropped before its reply comes
  ASSERT_EQ(fa.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  auto abandonB = std::make_shared<std::atomic<bool>>(false);
  auto fb = ReadMiB(stalling.address(), b.data(), abandonB);
  firstDropped = true;  // now the server starts A's reply, and stalls in it
  std::this_thread::sleep_for(milliseconds(500));
  const auto abandonedAt = Clock::now();
  abandonB->store(true);
  ASSERT_EQ(fb.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_LT(Clock::now() - abandonedAt, milliseconds(1000)) << "the stalled orphan reply held the connection";
  EXPECT_FALSE(fb.get().ok());
}

// A reply still awaited (a prefetch nobody has reached yet) that stalls mid-frame must not
// hold the other calls on the connection either: one abandoned meanwhile (a hedge won) ends
// within ticks, while the stalled one is still waited for.
TEST_F(TcpDataPlaneTest, AStalledAwaitedReplyDoesNotHoldTheOtherCallsAbandons) {
  HalfReplyServer stalling(nullptr, /*requests=*/2);
  ASSERT_TRUE(stalling.ok());
  std::vector<char> a(1 << 20), b(1 << 20);
  auto fa = ReadMiB(stalling.address(), a.data(), std::make_shared<std::atomic<bool>>(false));  // its reply stalls
  auto abandonB = std::make_shared<std::atomic<bool>>(false);
  auto fb = ReadMiB(stalling.address(), b.data(), abandonB);
  std::this_thread::sleep_for(milliseconds(500));  // the half reply has come and stalled
  const auto abandonedAt = Clock::now();
  abandonB->store(true);
  ASSERT_EQ(fb.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_LT(Clock::now() - abandonedAt, milliseconds(1000)) << "the stalled reply held the other call's abandon";
  EXPECT_EQ(fb.get().code(), StatusCode::kTimedOut);
  EXPECT_EQ(fa.wait_for(milliseconds(0)), std::future_status::timeout) << "the stalled reply is still awaited";
  stalling.Release();
  ASSERT_EQ(fa.wait_for(std::chrono::seconds(15)), std::future_status::ready);
  EXPECT_FALSE(fa.get().ok()) << "the server closed mid-reply";
}

}  // namespace
}  // namespace millpond
