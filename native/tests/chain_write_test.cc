// CRAQ chain writes through real DataServers on loopback: the head assigns versions, every
// replica ends committed with the same content and checksum, retries apply once, stale
// routing is refused, and a dead successor fails the write without committing it anywhere.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <string>
#include <vector>

#include "client/chunk_client.h"
#include "common/crc32c.h"
#include "storage/chunk_store.h"
#include "storage/data_server.h"

namespace millpond {
namespace {

struct Replica {
  std::string dir;
  std::unique_ptr<ChunkStore> store;
  std::unique_ptr<DataServer> server;
  std::string address() const { return "127.0.0.1:" + std::to_string(server->port()); }
};

class ChainWriteTest : public ::testing::Test {
 protected:
  static constexpr uint32_t kChain = 7;

  void SetUp() override {
    for (int i = 0; i < 3; i++) {
      Replica r;
      char tmpl[] = "/tmp/millpond-chain-XXXXXX";
      r.dir = mkdtemp(tmpl);
      ChunkStoreOptions so;
      so.syncWrites = false;
      ASSERT_TRUE(ChunkStore::Open(r.dir, so, &r.store).ok());
      DataServerOptions o;
      o.transport = TransportChoice::kTcp;
      ASSERT_TRUE(DataServer::Start(r.store.get(), o, &r.server).ok());
      replicas_.push_back(std::move(r));
    }
    SetChainVersion(1);
    ChunkClientOptions co;
    co.transport = TransportChoice::kTcp;
    ASSERT_TRUE(ChunkClient::Create(co, &client_).ok());
  }

  void TearDown() override {
    client_->Close();
    for (auto& r : replicas_) {
      r.server->Stop();
      std::system(("rm -rf " + r.dir).c_str());
    }
  }

  // head -> middle -> tail, in replicas_ order (the first `length` of them).
  void SetChainVersion(uint32_t version, size_t length = 3) {
    for (size_t i = 0; i < replicas_.size(); i++) {
      if (i >= length) {
        replicas_[i].server->RemoveChain(kChain);
        continue;
      }
      ChainPosition p;
      p.chainVersion = version;
      p.head = i == 0;
      if (i + 1 < length) p.successor = replicas_[i + 1].address();
      replicas_[i].server->SetChain(kChain, p);
    }
  }

  Status Write(const std::string& address, const ChunkId& id, uint32_t offset, const std::string& data,
               uint32_t chainVersion, uint64_t requestId, ChunkMeta* meta) {
    frame::WriteArgs a;
    a.chunk = id;
    a.offset = offset;
    a.length = static_cast<uint32_t>(data.size());
    a.flags = frame::kWriteChain;
    a.chainId = kChain;
    a.chainVersion = chainVersion;
    a.clientId = 99;
    a.requestId = requestId;
    std::promise<std::pair<Status, ChunkMeta>> done;
    client_->Write(address, a, data.data(), [&](const Status& s, const ChunkMeta& m) { done.set_value({s, m}); });
    auto [s, m] = done.get_future().get();
    *meta = m;
    return s;
  }

  // A reader's committed read through the replica's data server.
  Status ReadAt(size_t replica, const ChunkId& id, uint32_t length, std::string* out, ChunkMeta* meta) {
    out->assign(length, '\0');
    frame::ReadArgs a;
    a.chunk = id;
    a.length = length;
    std::promise<std::pair<Status, uint32_t>> done;
    client_->Read(replicas_[replica].address(), a, out->data(), [&](const Status& s, const ChunkMeta& m, uint32_t n) {
      *meta = m;
      done.set_value({s, n});
    });
    auto [s, n] = done.get_future().get();
    out->resize(s.ok() ? n : 0);
    return s;
  }

  std::string ReadCommitted(size_t replica, const ChunkId& id, uint32_t length, ChunkMeta* meta) {
    std::string out(length, '\0');
    uint32_t n = 0;
    Status s = replicas_[replica].store->Read(id, 0, length, out.data(), false, &n, meta);
    EXPECT_TRUE(s.ok()) << s.ToString();
    out.resize(n);
    return out;
  }

  std::vector<Replica> replicas_;
  std::unique_ptr<ChunkClient> client_;
};

TEST_F(ChainWriteTest, EveryReplicaCommitsTheSameVersionAndContent) {
  ChunkId id{11, 0};
  ChunkMeta meta;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, std::string(100000, 'a'), 1, 1, &meta).ok());
  ASSERT_TRUE(Write(replicas_[0].address(), id, 5000, std::string(10, 'b'), 1, 2, &meta).ok());
  EXPECT_EQ(meta.commitVersion, 2u);
  EXPECT_EQ(meta.updateVersion, 2u);
  std::string expected(100000, 'a');
  expected.replace(5000, 10, std::string(10, 'b'));
  for (size_t i = 0; i < 3; i++) {
    ChunkMeta m;
    EXPECT_EQ(ReadCommitted(i, id, 100000, &m), expected) << "replica " << i;
    EXPECT_EQ(m.commitVersion, 2u);
    EXPECT_EQ(m.updateVersion, 2u);  // nothing left pending
    EXPECT_EQ(m.checksum, Crc32c(expected.data(), expected.size()));
  }
  DataServerStats head = replicas_[0].server->stats();
  EXPECT_EQ(head.forwards, 2u);
  EXPECT_EQ(replicas_[2].server->stats().forwards, 0u);  // the tail forwards nothing
}

TEST_F(ChainWriteTest, ARetriedWriteAppliesOnce) {
  ChunkId id{12, 0};
  ChunkMeta first, again;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "once", 1, 42, &first).ok());
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "once", 1, 42, &again).ok());
  EXPECT_EQ(again.commitVersion, first.commitVersion);
  EXPECT_EQ(replicas_[0].server->stats().duplicateWrites, 1u);
  ChunkMeta m;
  ReadCommitted(2, id, 4, &m);
  EXPECT_EQ(m.commitVersion, 1u);
}

TEST_F(ChainWriteTest, ConcurrentWritesToOneChunkAreSerialisedAtTheHead) {
  ChunkId id{13, 0};
  constexpr int kWrites = 40;
  std::vector<std::promise<Status>> done(kWrites);
  std::vector<std::string> payloads;
  for (int i = 0; i < kWrites; i++) payloads.push_back(std::string(8192, static_cast<char>('A' + i % 26)));
  for (int i = 0; i < kWrites; i++) {
    frame::WriteArgs a;
    a.chunk = id;
    a.length = 8192;
    a.flags = frame::kWriteChain;
    a.chainId = kChain;
    a.chainVersion = 1;
    a.clientId = 5;
    a.requestId = 1000 + i;
    client_->Write(replicas_[0].address(), a, payloads[i].data(),
                   [&done, i](const Status& s, const ChunkMeta&) { done[i].set_value(s); });
  }
  for (auto& d : done) EXPECT_TRUE(d.get_future().get().ok());
  ChunkMeta m0, m1, m2;
  std::string c0 = ReadCommitted(0, id, 8192, &m0), c1 = ReadCommitted(1, id, 8192, &m1),
              c2 = ReadCommitted(2, id, 8192, &m2);
  EXPECT_EQ(m0.commitVersion, static_cast<uint64_t>(kWrites));
  EXPECT_EQ(c0, c1);
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(m0.checksum, m2.checksum);
}

TEST_F(ChainWriteTest, StaleRoutingIsRefused) {
  ChunkId id{14, 0};
  ChunkMeta meta;
  Status s = Write(replicas_[0].address(), id, 0, "x", 2, 1, &meta);  // the client's table is newer
  EXPECT_EQ(s.code(), StatusCode::kStaleVersion) << s.ToString();
  s = Write(replicas_[1].address(), id, 0, "x", 1, 2, &meta);  // not the head
  EXPECT_EQ(s.code(), StatusCode::kStaleVersion) << s.ToString();
  ChunkMeta m;
  EXPECT_EQ(replicas_[0].store->Stat(id, &m).code(), StatusCode::kNotFound);
}

TEST_F(ChainWriteTest, ADeadSuccessorFailsTheWriteUncommittedThenTheShortenedChainServes) {
  ChunkId id{15, 0};
  ChunkMeta meta;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "v1", 1, 1, &meta).ok());
  replicas_[2].server->Stop();  // the tail dies
  Status s = Write(replicas_[0].address(), id, 0, "v2", 1, 2, &meta);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("forwarding to"), std::string::npos) << s.ToString();
  ChunkMeta m;
  EXPECT_EQ(ReadCommitted(0, id, 2, &m), "v1");  // never committed where the chain broke
  EXPECT_EQ(m.commitVersion, 1u);
  SetChainVersion(2, 2);  // mgmtd drops the dead target: head -> middle (now the tail)
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "v3", 2, 3, &meta).ok());
  EXPECT_EQ(ReadCommitted(0, id, 2, &m), "v3");
  EXPECT_EQ(ReadCommitted(1, id, 2, &m), "v3");
}

TEST_F(ChainWriteTest, ASyncingSuccessorReceivesWholeChunks) {
  ChunkId id{16, 0};
  ChunkMeta meta;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, std::string(50000, 'x'), 1, 1, &meta).ok());
  // The tail lost the chunk (it was away); mgmtd marks it syncing.
  ASSERT_TRUE(replicas_[2].store->Remove(id).ok());
  ChainPosition middle;
  middle.chainVersion = 1;
  middle.successor = replicas_[2].address();
  middle.successorSyncing = true;
  replicas_[1].server->SetChain(kChain, middle);
  // A small update in the middle of the chunk reaches the tail as the whole new version.
  ASSERT_TRUE(Write(replicas_[0].address(), id, 100, "patch", 1, 2, &meta).ok());
  std::string expected(50000, 'x');
  expected.replace(100, 5, "patch");
  ChunkMeta m;
  EXPECT_EQ(ReadCommitted(2, id, 50000, &m), expected);
  EXPECT_EQ(m.commitVersion, 2u);
}

// Issue 9 item 1. The head stored a pending version and its forward failed (or its writer
// died): that version was never acknowledged, so it is no base for the next write. The next
// ordinary write succeeds at once and every replica commits the same bytes, without the stale ones.
TEST_F(ChainWriteTest, AStalePendingVersionAtTheHeadIsNoBaseForTheNextWrite) {
  ChunkId id{18, 0};
  ChunkMeta meta;
  const std::string base(20000, 'a');
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, base, 1, 1, &meta).ok());
  ChunkWriteOptions o;
  o.updateVersion = 2;
  o.commit = false;
  ChunkMeta m;
  ASSERT_TRUE(replicas_[0].store->Write(id, 100, "STALE", 5, o, &m).ok());  // pending on the head only
  auto start = std::chrono::steady_clock::now();
  Status s = Write(replicas_[0].address(), id, 5000, "fresh", 1, 2, &meta);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_LT(seconds, 10.0);  // one write, no retries behind it
  std::string expected = base;
  expected.replace(5000, 5, "fresh");
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(ReadCommitted(i, id, 20000, &m), expected) << "replica " << i;
    EXPECT_EQ(m.commitVersion, meta.commitVersion) << "replica " << i;
    EXPECT_EQ(m.updateVersion, m.commitVersion) << "replica " << i << " kept a pending version";
    EXPECT_EQ(m.checksum, Crc32c(expected.data(), expected.size())) << "replica " << i;
  }
  // And the chunk stays writable.
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "next", 1, 3, &meta).ok());
  expected.replace(0, 4, "next");
  for (size_t i = 0; i < 3; i++) EXPECT_EQ(ReadCommitted(i, id, 20000, &m), expected) << "replica " << i;
}

// The same when the unacknowledged update got further: the tail committed it and the middle
// holds it pending (the acknowledgement was lost on the way back). The replicas' bases now
// differ; the successor whose result would differ refuses before storing anything, and no
// replica ever commits bytes that differ from its neighbours'. The tail committed the update,
// so the chain rolls forward to it (AVersionTheTailCommittedIsRolledForwardNeverLost); a base
// that differs at the same committed version (a diverged replica) is resent the whole version.
TEST_F(ChainWriteTest, ABaseThatDiffersAlongTheChainIsResyncedNeverCommittedApart) {
  ChunkId id{19, 0};
  ChunkMeta meta;
  const std::string base(30000, 'b');
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, base, 1, 1, &meta).ok());
  ChunkWriteOptions pending;
  pending.updateVersion = 2;
  pending.commit = false;
  ChunkMeta m;
  ASSERT_TRUE(replicas_[0].store->Write(id, 100, "LOST", 4, pending, &m).ok());
  ASSERT_TRUE(replicas_[1].store->Write(id, 100, "LOST", 4, pending, &m).ok());
  ChunkWriteOptions committed = pending;
  committed.commit = true;
  ASSERT_TRUE(replicas_[2].store->Write(id, 100, "LOST", 4, committed, &m).ok());
  Status s = Write(replicas_[0].address(), id, 9000, "fresh", 1, 2, &meta);
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::string head = ReadCommitted(0, id, 30000, &m);
  EXPECT_EQ(head.substr(9000, 5), "fresh");
  EXPECT_EQ(head.substr(100, 4), "LOST");  // the tail committed it: kept
  for (size_t i = 1; i < 3; i++) {
    ChunkMeta mi;
    EXPECT_TRUE(ReadCommitted(i, id, 30000, &mi) == head) << "replica " << i;
    EXPECT_EQ(mi.commitVersion, m.commitVersion) << "replica " << i;
    EXPECT_EQ(mi.checksum, m.checksum) << "replica " << i;
  }
  EXPECT_GE(replicas_[1].server->stats().rollForwards, 1u);

  // The tail diverged at the committed version itself: same version, other bytes. Nothing is
  // newer downstream, so the middle resends it the whole version.
  ChunkWriteOptions diverged;
  diverged.updateVersion = m.commitVersion;
  diverged.replace = true;
  diverged.commit = true;
  diverged.install = true;
  const std::string other(30000, 'd');
  ASSERT_TRUE(replicas_[2].store->Write(id, 0, other.data(), other.size(), diverged, &m).ok());
  s = Write(replicas_[0].address(), id, 200, "again", 1, 3, &meta);
  ASSERT_TRUE(s.ok()) << s.ToString();
  head.replace(200, 5, "again");
  for (size_t i = 0; i < 3; i++) {
    ChunkMeta mi;
    EXPECT_TRUE(ReadCommitted(i, id, 30000, &mi) == head) << "replica " << i;
    EXPECT_EQ(mi.commitVersion, meta.commitVersion) << "replica " << i;
    EXPECT_EQ(mi.checksum, Crc32c(head.data(), head.size())) << "replica " << i;
  }
  EXPECT_GE(replicas_[1].server->stats().wholeResends, 1u);
}

// Issue 9, what item 1's fix left open. The tail committed W1 but its acknowledgement was lost
// on the way back: the head and middle hold W1 only pending, or dropped it. A reader at the tail
// has read W1, so W1 is committed (CRAQ) and must survive: the next write rolls the chain
// forward to the tail's version and applies on top of it, never resending the tail a version
// without W1.
TEST_F(ChainWriteTest, AVersionTheTailCommittedIsRolledForwardNeverLost) {
  const std::string base(30000, 'c');
  // Which replicas still hold W1 pending (the others dropped it); the tail committed it.
  const std::vector<std::vector<bool>> cases = {{true, true}, {false, true}, {false, false}};
  for (size_t c = 0; c < cases.size(); c++) {
    SCOPED_TRACE("case " + std::to_string(c));
    ChunkId id{22 + c, 0};
    ChunkMeta meta, m;
    const uint64_t request = 100 * (c + 1);  // the head remembers requests across chunks
    ASSERT_TRUE(Write(replicas_[0].address(), id, 0, base, 1, request, &meta).ok());
    ChunkWriteOptions pending;
    pending.updateVersion = 2;
    pending.commit = false;
    pending.baseCommitted = true;
    for (size_t i = 0; i < 2; i++) {
      if (cases[c][i]) {
        ASSERT_TRUE(replicas_[i].store->Write(id, 100, "W1W1", 4, pending, &m).ok());
      }
    }
    ChunkWriteOptions committed = pending;
    committed.commit = true;
    ASSERT_TRUE(replicas_[2].store->Write(id, 100, "W1W1", 4, committed, &m).ok());  // the ack is lost
    std::string seen;
    ASSERT_TRUE(ReadAt(2, id, 30000, &seen, &m).ok());
    ASSERT_EQ(seen.substr(100, 4), "W1W1");  // a reader at the tail has read W1
    Status s = Write(replicas_[0].address(), id, 9000, "W2W2", 1, request + 2, &meta);
    ASSERT_TRUE(s.ok()) << s.ToString();
    std::string expected = base;
    expected.replace(100, 4, "W1W1");
    expected.replace(9000, 4, "W2W2");
    EXPECT_EQ(meta.checksum, Crc32c(expected.data(), expected.size()));
    for (size_t i = 0; i < 3; i++) {
      std::string got;
      Status rs = ReadAt(i, id, 30000, &got, &m);
      ASSERT_TRUE(rs.ok()) << "replica " << i << ": " << rs.ToString();
      EXPECT_EQ(got.substr(100, 4), "W1W1") << "replica " << i << " lost W1, which the tail committed";
      EXPECT_TRUE(got == expected) << "replica " << i << " holds other bytes";
      EXPECT_EQ(m.commitVersion, meta.commitVersion) << "replica " << i;
      EXPECT_GT(m.commitVersion, 2u) << "replica " << i;
      EXPECT_EQ(m.updateVersion, m.commitVersion) << "replica " << i << " kept a pending version";
      EXPECT_EQ(m.checksum, Crc32c(expected.data(), expected.size())) << "replica " << i;
    }
    // The chain stays writable, as plain updates.
    ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "next", 1, request + 3, &meta).ok());
    expected.replace(0, 4, "next");
    for (size_t i = 0; i < 3; i++) EXPECT_TRUE(ReadCommitted(i, id, 30000, &m) == expected) << "replica " << i;
  }
  EXPECT_GE(replicas_[1].server->stats().rollForwards, 1u);  // the middle adopted the tail's version
  EXPECT_GE(replicas_[0].server->stats().rollForwards, 1u);  // and the head the middle's
}

// Issue 9 item 3. A write whose acknowledgement was lost, a later acknowledged write, then the
// head changes and the first write is retried: the retry must not apply again (the later
// write's bytes remain). The new head never saw the first write in its memory; it finds it in
// the request table the committed version carries.
TEST_F(ChainWriteTest, ARetryAfterAFailoverDoesNotUndoALaterWrite) {
  ChunkId id{20, 0};
  ChunkMeta meta;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "first", 1, 501, &meta).ok());   // its ack was lost
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "later", 1, 502, &meta).ok());   // acknowledged
  // mgmtd takes the head out: middle -> tail at chain version 2.
  replicas_[0].server->RemoveChain(kChain);
  ChainPosition head;
  head.chainVersion = 2;
  head.head = true;
  head.successor = replicas_[2].address();
  replicas_[1].server->SetChain(kChain, head);
  ChainPosition tail;
  tail.chainVersion = 2;
  replicas_[2].server->SetChain(kChain, tail);
  ASSERT_TRUE(Write(replicas_[1].address(), id, 0, "first", 2, 501, &meta).ok());  // the retry
  EXPECT_EQ(replicas_[1].server->stats().duplicateWrites, 1u);
  for (size_t i = 1; i < 3; i++) {
    ChunkMeta m;
    EXPECT_EQ(ReadCommitted(i, id, 5, &m), "later") << "replica " << i;
    EXPECT_EQ(m.commitVersion, 2u) << "replica " << i;
  }
}

TEST_F(ChainWriteTest, ARetryAfterTheHeadRestartsDoesNotUndoALaterWrite) {
  ChunkId id{21, 0};
  ChunkMeta meta;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "first", 1, 601, &meta).ok());
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "later", 1, 602, &meta).ok());
  // The head's process restarts: a new server over the reopened target, nothing in memory.
  replicas_[0].server->Stop();
  replicas_[0].server.reset();
  replicas_[0].store.reset();
  ChunkStoreOptions so;
  so.syncWrites = false;
  ASSERT_TRUE(ChunkStore::Open(replicas_[0].dir, so, &replicas_[0].store).ok());
  DataServerOptions o;
  o.transport = TransportChoice::kTcp;
  ASSERT_TRUE(DataServer::Start(replicas_[0].store.get(), o, &replicas_[0].server).ok());
  SetChainVersion(1);
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "first", 1, 601, &meta).ok());  // the retry
  EXPECT_EQ(replicas_[0].server->stats().duplicateWrites, 1u);
  for (size_t i = 0; i < 3; i++) {
    ChunkMeta m;
    EXPECT_EQ(ReadCommitted(i, id, 5, &m), "later") << "replica " << i;
    EXPECT_EQ(m.commitVersion, 2u) << "replica " << i;
  }
  // A write the chunk has not seen still applies, and the table keeps only the latest writes.
  for (uint64_t r = 0; r < limits::kChunkRequestsRemembered + 1; r++)
    ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "n" + std::to_string(r % 10), 1, 700 + r, &meta).ok());
  replicas_[0].server->Stop();  // forget the in-memory table again
  replicas_[0].server.reset();
  ASSERT_TRUE(DataServer::Start(replicas_[0].store.get(), o, &replicas_[0].server).ok());
  SetChainVersion(1);
  ChunkMeta before = meta;
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "late", 1, 700 + limits::kChunkRequestsRemembered, &meta).ok());
  EXPECT_EQ(meta.commitVersion, before.commitVersion);  // remembered: not applied again
  ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "gone", 1, 700, &meta).ok());
  EXPECT_EQ(meta.commitVersion, before.commitVersion + 1);  // beyond the table: applied
}

TEST_F(ChainWriteTest, InstallReplacesACopyAtTheSameVersionButNeverANewerOne) {
  ChunkId id{17, 0};
  ChunkMeta meta;
  for (int i = 0; i < 3; i++) ASSERT_TRUE(Write(replicas_[0].address(), id, 0, "v" + std::to_string(i), 1, 10 + i, &meta).ok());
  ASSERT_EQ(meta.commitVersion, 3u);
  ChunkWriteOptions o;
  o.updateVersion = 3;
  o.replace = true;
  o.commit = true;
  o.install = true;
  ChunkMeta m;
  ASSERT_TRUE(replicas_[2].store->Write(id, 0, "source", 6, o, &m).ok());  // same version, other bytes
  EXPECT_EQ(m.commitVersion, 3u);
  EXPECT_EQ(ReadCommitted(2, id, 6, &m), "source");
  o.updateVersion = 2;  // an older copy never replaces a newer one
  EXPECT_EQ(replicas_[2].store->Write(id, 0, "old", 3, o, &m).code(), StatusCode::kStaleVersion);
  o.updateVersion = 4;
  ASSERT_TRUE(replicas_[2].store->Write(id, 0, "newer", 5, o, &m).ok());
  EXPECT_EQ(m.commitVersion, 4u);
  o.replace = false;
  EXPECT_EQ(replicas_[2].store->Write(id, 0, "x", 1, o, &m).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace millpond
