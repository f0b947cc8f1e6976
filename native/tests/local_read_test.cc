// Short-circuit local reads end to end, in one process: a ChunkStore served by a DataServer
// (which offers its local socket), read by a ChunkClient with transport auto. Checked: the
// bytes and metadata equal a data-plane read's, a newer version is seen at once, damaged
// content is kCorrupt, and a server that offers no socket or goes away leaves reads correct.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/un.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "client/chunk_client.h"
#include "common/chunk_format.h"
#include "storage/chunk_store.h"
#include "storage/data_server.h"
#include "tests/test_support.h"
#include "transport/frame.h"
#include "transport/local_socket.h"

namespace millpond {
namespace {

using millpond::testing::Pattern;
using millpond::testing::RemoveTree;
constexpr auto kWait = std::chrono::seconds(20);

struct ReadResult {
  Status status;
  ChunkMeta meta;
  uint32_t bytes = 0;
};

class LocalReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/millpond-local-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ChunkStoreOptions so;
    so.syncWrites = false;
    ASSERT_TRUE(ChunkStore::Open(root_ + "/target", so, &store_).ok());
    ASSERT_TRUE(StartServer(true).ok());
    ChunkClientOptions tcp;
    tcp.transport = TransportChoice::kTcp;
    ASSERT_TRUE(ChunkClient::Create(tcp, &tcp_).ok());
    ChunkClientOptions automatic;  // transport auto: local reads on
    automatic.transport = TransportChoice::kAuto;
    automatic.timeoutMs = 3000;
    ASSERT_TRUE(ChunkClient::Create(automatic, &local_).ok());
  }
  void TearDown() override {
    local_.reset();
    tcp_.reset();
    server_.reset();
    store_.reset();
    RemoveTree(root_);
  }

  Status StartServer(bool localReads) {
    server_.reset();
    DataServerOptions o;
    o.transport = TransportChoice::kTcp;
    o.localReads = localReads;
    Status s = DataServer::Start(store_.get(), o, &server_);
    if (s.ok()) address_ = "127.0.0.1:" + std::to_string(server_->port());
    return s;
  }

  ChunkMeta Write(const ChunkId& id, uint32_t offset, const std::string& data) {
    frame::WriteArgs a;
    a.chunk = id;
    a.offset = offset;
    a.length = static_cast<uint32_t>(data.size());
    a.flags = frame::kWriteCommit;
    auto p = std::make_shared<std::promise<std::pair<Status, ChunkMeta>>>();
    tcp_->Write(address_, a, data.data(), [p](const Status& s, const ChunkMeta& m) { p->set_value({s, m}); });
    auto f = p->get_future();
    EXPECT_EQ(f.wait_for(kWait), std::future_status::ready);
    auto r = f.get();
    EXPECT_TRUE(r.first.ok()) << r.first.ToString();
    return r.second;
  }

  ReadResult Read(ChunkClient* c, const ChunkId& id, uint32_t offset, uint32_t length, char* dst) {
    frame::ReadArgs a;
    a.chunk = id;
    a.offset = offset;
    a.length = length;
    auto p = std::make_shared<std::promise<ReadResult>>();
    c->Read(address_, a, dst, [p](const Status& s, const ChunkMeta& m, uint32_t n) { p->set_value({s, m, n}); });
    auto f = p->get_future();
    if (f.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "read did not complete";
      std::abort();  // the callback refers to this frame
    }
    return f.get();
  }

  // Reads through the auto client until the server is learned as local (the first read goes
  // over the data plane while the probe runs).
  void WarmUp(const ChunkId& id) {
    char byte;
    for (int i = 0; i < 200 && local_->localCounters()->reads == 0; i++) {
      ASSERT_TRUE(Read(local_.get(), id, 0, 1, &byte).status.ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_GT(local_->localCounters()->reads.load(), 0u) << "reads never went local";
  }

  std::string root_, address_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<DataServer> server_;
  std::unique_ptr<ChunkClient> tcp_, local_;
};

const ChunkId kA{7, 0};
const ChunkId kB{7, 1};

TEST_F(LocalReadTest, ReadsGoLocalAndEqualDataPlaneReads) {
  const std::string data = Pattern(4 << 20, 1);
  ChunkMeta written = Write(kA, 0, data);
  WarmUp(kA);
  const uint64_t tcpBytesBefore = local_->tcpCounters().bytesReceived;
  const uint64_t opensBefore = server_->stats().localOpens;

  // Whole chunk (O_DIRECT path), unaligned ranges (staging), a short read past the end, and
  // an aligned destination buffer (straight into it).
  struct Range { uint32_t offset, length; };
  for (Range r : {Range{0, 4u << 20}, Range{12345, 1000}, Range{4095, 300000}, Range{(4u << 20) - 10, 100},
                  Range{1 << 20, 1 << 20}}) {
    std::vector<char> viaLocal(r.length, 'x'), viaTcp(r.length, 'y');
    ReadResult a = Read(local_.get(), kA, r.offset, r.length, viaLocal.data());
    ReadResult b = Read(tcp_.get(), kA, r.offset, r.length, viaTcp.data());
    ASSERT_TRUE(a.status.ok()) << a.status.ToString();
    ASSERT_TRUE(b.status.ok()) << b.status.ToString();
    EXPECT_EQ(a.bytes, b.bytes) << "offset " << r.offset;
    EXPECT_EQ(a.bytes, std::min<uint32_t>(r.length, data.size() - r.offset));
    EXPECT_EQ(0, std::memcmp(viaLocal.data(), data.data() + r.offset, a.bytes)) << "offset " << r.offset;
    EXPECT_EQ(a.meta.commitVersion, written.commitVersion);
    EXPECT_EQ(a.meta.checksum, b.meta.checksum);
  }
  AlignedBuffer aligned = AlignedBuffer::Allocate(4 << 20);
  ReadResult a = Read(local_.get(), kA, 0, 4 << 20, aligned.data());
  ASSERT_TRUE(a.status.ok());
  EXPECT_EQ(0, std::memcmp(aligned.data(), data.data(), data.size()));

  EXPECT_EQ(server_->stats().localOpens - opensBefore, 6u);
  EXPECT_EQ(local_->tcpCounters().bytesReceived, tcpBytesBefore) << "no read data came over TCP";
  EXPECT_GE(local_->localCounters()->bytes.load(), (4u << 20) * 2);
}

TEST_F(LocalReadTest, NewerVersionIsSeenAtOnceAndMissingChunksKeepTheirCodes) {
  Write(kA, 0, Pattern(64 << 10, 1));
  WarmUp(kA);
  const std::string update = Pattern(8192, 2);
  ChunkMeta after = Write(kA, 4096, update);
  std::vector<char> buf(8192);
  ReadResult r = Read(local_.get(), kA, 4096, 8192, buf.data());
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(r.meta.commitVersion, after.commitVersion);
  EXPECT_EQ(0, std::memcmp(buf.data(), update.data(), update.size()));

  r = Read(local_.get(), kB, 0, 10, buf.data());
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound) << r.status.ToString();
  ASSERT_TRUE(store_->Remove(kA).ok());
  r = Read(local_.get(), kA, 0, 10, buf.data());
  EXPECT_EQ(r.status.code(), StatusCode::kNotFound) << r.status.ToString();
}

TEST_F(LocalReadTest, DamagedContentIsCorruptNeverData) {
  const std::string data = Pattern(1 << 20, 3);
  Write(kA, 0, data);
  WarmUp(kA);
  // Flip one byte of block 5 in the committed version file, behind the store's back.
  UniqueFd fd;
  ChunkMeta meta;
  ASSERT_TRUE(store_->OpenVersionFile(kA, false, &fd, &meta).ok());
  uint8_t head[chunk_format::kHeadBytes];  // what Decode reads (format 3: with the extension)
  ASSERT_EQ(::pread(fd.get(), head, sizeof head, 0), static_cast<ssize_t>(sizeof head));
  chunk_format::FixedHeader h;
  ASSERT_TRUE(chunk_format::FixedHeader::Decode(head, &h).ok());
  UniqueFd rw(::open(("/proc/self/fd/" + std::to_string(fd.get())).c_str(), O_RDWR));
  ASSERT_TRUE(rw.valid());
  const off_t at = h.headerBytes + 5 * 4096 + 17;
  char byte;
  ASSERT_EQ(::pread(rw.get(), &byte, 1, at), 1);
  byte ^= 0x40;
  ASSERT_EQ(::pwrite(rw.get(), &byte, 1, at), 1);

  std::vector<char> buf(data.size());
  ReadResult r = Read(local_.get(), kA, 0, data.size(), buf.data());
  EXPECT_EQ(r.status.code(), StatusCode::kCorrupt) << r.status.ToString();
  EXPECT_NE(r.status.message().find("block 5"), std::string::npos) << r.status.message();
  r = Read(local_.get(), kA, 20 * 4096, 4096, buf.data());  // blocks away from the damage read fine
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(0, std::memcmp(buf.data(), data.data() + 20 * 4096, 4096));
}

TEST_F(LocalReadTest, ServerWithoutLocalReadsIsReadOverTheDataPlane) {
  ASSERT_TRUE(StartServer(false).ok());
  const std::string data = Pattern(300000, 4);
  Write(kA, 0, data);
  std::vector<char> buf(data.size());
  for (int i = 0; i < 20; i++) {
    ReadResult r = Read(local_.get(), kA, 0, data.size(), buf.data());
    ASSERT_TRUE(r.status.ok()) << r.status.ToString();
    ASSERT_EQ(0, std::memcmp(buf.data(), data.data(), data.size()));
  }
  EXPECT_EQ(local_->localCounters()->reads.load(), 0u);
  EXPECT_GE(local_->tcpCounters().bytesReceived.load(), 20u * data.size());
}

TEST_F(LocalReadTest, ServerGoneFallsBackAndARestartedServerIsLearnedAgain) {
  const std::string data = Pattern(200000, 5);
  Write(kA, 0, data);
  WarmUp(kA);
  std::string old = address_;
  ASSERT_TRUE(StartServer(true).ok());  // the old server (and its socket) is gone
  std::vector<char> buf(data.size());
  // The old address now refuses: the local connection breaks, the fallback over TCP fails
  // like any read of a dead server would.
  std::swap(address_, old);
  ReadResult r = Read(local_.get(), kA, 0, data.size(), buf.data());
  EXPECT_FALSE(r.status.ok());
  EXPECT_EQ(local_->localCounters()->fallbacks.load(), 1u);
  std::swap(address_, old);
  // The new server at its new address is learned and read locally.
  const uint64_t before = local_->localCounters()->reads;
  for (int i = 0; i < 200 && local_->localCounters()->reads == before; i++) {
    ASSERT_TRUE(Read(local_.get(), kA, 0, data.size(), buf.data()).status.ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GT(local_->localCounters()->reads.load(), before);
  EXPECT_EQ(0, std::memcmp(buf.data(), data.data(), data.size()));
}

TEST_F(LocalReadTest, MalformedRequestsOnTheLocalSocketCloseOnlyThatConnection) {
  Write(kA, 0, Pattern(10000, 6));
  WarmUp(kA);
  // Connect the way a client does, then send garbage.
  const std::string name = server_->localSocketName();
  ASSERT_FALSE(name.empty());
  UniqueFd conn;
  ASSERT_TRUE(ConnectLocal(name, &conn).ok());
  std::string garbage(64, 'z');
  ASSERT_TRUE(SendWithFd(conn.get(), garbage.data(), garbage.size(), -1, 1000).ok());
  uint8_t raw[frame::kHeaderBytes];
  UniqueFd none;
  ASSERT_TRUE(RecvWithFd(conn.get(), raw, sizeof raw, 3000, &none).ok());
  frame::Header reply;
  ASSERT_TRUE(frame::Header::Decode(raw, &reply).ok());
  EXPECT_EQ(Status::CodeFromWire(reply.status), StatusCode::kProtocol);
  EXPECT_FALSE(none.valid());
  std::string rest(reply.metaBytes, '\0');
  ASSERT_TRUE(RecvWithFd(conn.get(), &rest[0], rest.size(), 3000, &none).ok());
  char byte;
  EXPECT_EQ(RecvWithFd(conn.get(), &byte, 1, 3000, &none).code(), StatusCode::kConnReset)
      << "the server closes a connection after a malformed frame";
  // Other clients are served as before.
  std::vector<char> buf(10000);
  const uint64_t before = local_->localCounters()->reads;
  ReadResult r = Read(local_.get(), kA, 0, 10000, buf.data());
  ASSERT_TRUE(r.status.ok());
  EXPECT_EQ(local_->localCounters()->reads.load(), before + 1);
}

// A server that accepts nothing (paused with SIGSTOP) fills its listen backlog; a blocking
// local connect would then wait until it accepts again, holding a local-read thread for the
// whole pause. Connects fail at once with kBusy instead (the read then goes over the network,
// hedged).
TEST(LocalSocketTest, ConnectsToAServerThatAcceptsNothingFailAtOnceWithBusy) {
  char tmpl[] = "/tmp/millpond-lsock-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string name = std::string(tmpl) + "/s";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name.c_str(), name.size() + 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 0), 0);  // never accepted
  std::vector<UniqueFd> held;
  Status last;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 64 && (last.ok() || held.empty()); i++) {
    UniqueFd conn;
    last = ConnectLocal(name, &conn);
    if (last.ok()) held.push_back(std::move(conn));
  }
  EXPECT_FALSE(held.empty()) << "the backlog takes the first connects";
  EXPECT_EQ(last.code(), StatusCode::kBusy) << last.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1)) << "a connect waited for the server";
  held.clear();
  listener.Reset();
  ::unlink(name.c_str());
  ::rmdir(tmpl);
}

}  // namespace
}  // namespace millpond
