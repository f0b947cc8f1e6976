// RpcClient and MetaClient against REAL TS meta servers: each test spawns
//   node --import tsx src/meta/main.ts --backend sqlite --db <tmp>/meta.db --listen tcp://127.0.0.1:0
// from the repository root ($MILLPOND_REPO_ROOT, else the tree this file is in), reads its
// "listening <endpoint>" line, and kills it in TearDown. Round trips, the server's error codes,
// a server stopped or killed mid-call (ETIMEDOUT after the attempts, never a hang), a second
// address taking over, a retried mutation applied once, Close() with calls in flight.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "client/client_auth.h"
#include "client/meta_client.h"
#include "client/rpc_client.h"
#include "common/msgpack.h"

namespace millpond {
namespace {

using millpond::testing::RepoRoot;
using millpond::testing::ReadFile;
using millpond::testing::SignalChild;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kStartTimeoutMs = 60000;  // node + tsx compile on a slow shared machine

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// One meta.stat of "/" through `rpc`: its status, and in *elapsedMs how long it took.
Status TimedStat(RpcClient* rpc, int64_t* elapsedMs) {
  auto start = Clock::now();
  MsgValue result;
  Status s = rpc->Call("meta.stat", MsgValue::Map({{"path", MsgValue::Str("/")}}), &result);
  *elapsedMs = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  return s;
}

// One meta server process.
class MetaProcess {
 public:
  ~MetaProcess() { Kill(SIGKILL); }

  // Starts the server on `db`; fills endpoint(). Returns an error text, empty on success.
  std::string Start(const std::string& db, const std::string& logPath, const std::string& sessionTimeoutMs,
                    const std::string& secretFile, const std::string& adminTokenFile) {
    log_ = logPath;
    std::string root = RepoRoot();
    if (!Exists(root + "/src/meta/main.ts")) return "no src/meta/main.ts under " + root + " (set MILLPOND_REPO_ROOT)";
    if (!Exists(root + "/node_modules/tsx")) return "tsx is not installed under " + root + "/node_modules: run npm install";
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return "pipe failed";
    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      int err = ::open(logPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (err >= 0) ::dup2(err, 2);
      if (::chdir(root.c_str()) != 0) ::_exit(126);
      ::execlp("node", "node", "--import", "tsx", "src/meta/main.ts", "--backend", "sqlite", "--db",
               db.c_str(), "--synchronous", "normal", "--listen", "tcp://127.0.0.1:0",
               "--session-timeout-ms", sessionTimeoutMs.c_str(), "--secret-file", secretFile.c_str(),
               "--admin-token-file", adminTokenFile.c_str(), static_cast<char*>(nullptr));
      const char msg[] = "exec node failed: is node on PATH?\n";
      ssize_t n = ::write(2, msg, sizeof msg - 1);
      (void)n;
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    auto deadline = Clock::now() + milliseconds(kStartTimeoutMs);
    bool found = false;
    while (!found && Clock::now() < deadline) {
      struct pollfd p = {out[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;  // the process ended
      line.append(buf, n);
      size_t at = line.find("listening ");
      if (at != std::string::npos && line.find('\n', at) != std::string::npos) {
        endpoint_ = line.substr(at + 10, line.find('\n', at) - at - 10);
        found = true;
      }
    }
    stdout_ = out[0];  // kept open so the server never writes to a closed pipe
    if (!found) {
      Kill(SIGKILL);
      return "meta server did not print 'listening' (node and tsx reachable? stdout: " + line +
             ", stderr: " + ReadFile(logPath) + ")";
    }
    return "";
  }

  void Signal(int sig) { SignalChild(pid_, sig); }

  void Kill(int sig) {
    if (pid_ > 0) {
      // A stopped process needs SIGCONT to act on another signal, but SIGKILL ends it as it is:
      // resumed first, it could still answer a request it had queued before the kill lands.
      if (sig != SIGKILL) ::kill(pid_, SIGCONT);
      ::kill(pid_, sig);
      int status;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (stdout_ >= 0) {
      ::close(stdout_);
      stdout_ = -1;
    }
  }

  const std::string& endpoint() const { return endpoint_; }
  std::string log() const { return ReadFile(log_); }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
  std::string endpoint_;
  std::string log_;
};

class MetaRpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/millpond-rpc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    db_ = dir_ + "/meta.db";
    // Authentication on: `millpond init` makes the secret and the admin token; clients present
    // the admin token and act as the test's users (the admin may).
    std::string init = "cd '" + RepoRoot() + "' && node --import tsx src/cli/main.ts init --dir '" + dir_ +
                       "/keys' > '" + dir_ + "/init.log' 2>&1";
    ASSERT_EQ(std::system(init.c_str()), 0) << ReadFile(dir_ + "/init.log");
    std::string token = ReadFile(dir_ + "/keys/keys/admin.token");
    token_ = token.substr(0, token.find('\n'));
    std::string cluster = ReadFile(dir_ + "/keys/cluster.json");
    size_t at = cluster.find("\"serverKey\": \"");
    ASSERT_NE(at, std::string::npos);
    serverKey_ = cluster.substr(at + 14, 40);
  }

  void Auth(MetaClientOptions* o) {
    o->token = token_;
    o->actAs = true;
    Status s = ApplyTokenCurve(token_, serverKey_, &o->rpc);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void TearDown() override {
    servers_.clear();  // kills them
    std::string cmd = "rm -rf '" + dir_ + "'";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  // Starts one more server on the shared database.
  MetaProcess* StartServer(uint32_t sessionTimeoutMs = 60000) {
    auto p = std::make_unique<MetaProcess>();
    std::string err = p->Start(db_, dir_ + "/server-" + std::to_string(servers_.size()) + ".log",
                               std::to_string(sessionTimeoutMs), dir_ + "/keys/keys/cluster.secret",
                               dir_ + "/keys/keys/admin.token");
    EXPECT_EQ(err, "");
    if (!err.empty()) return nullptr;
    servers_.push_back(std::move(p));
    return servers_.back().get();
  }

  std::unique_ptr<MetaClient> Client(std::vector<std::string> endpoints, uint32_t timeoutMs = 5000,
                                     uint32_t attempts = 3, MetaUser user = {},
                                     uint32_t heartbeatMs = limits::kMetaSessionHeartbeatMsDefault) {
    MetaClientOptions o;
    o.sessionHeartbeatMs = heartbeatMs;
    o.rpc.endpoints = std::move(endpoints);
    o.rpc.timeoutMs = timeoutMs;
    o.rpc.attemptsMax = attempts;
    o.user = user;
    Auth(&o);
    std::unique_ptr<MetaClient> c;
    Status s = MetaClient::Create(o, &c);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return c;
  }

  std::string dir_;
  std::string db_;
  std::string token_, serverKey_;
  std::vector<std::unique_ptr<MetaProcess>> servers_;
};

#define START_OR_FAIL(var)        \
  MetaProcess* var = StartServer(); \
  ASSERT_NE(var, nullptr)

// ---------------------------------------------------------------- round trips

// The calls the FUSE mount makes: each acts as the identity it names (`as`), not the client's.
TEST_F(MetaRpcTest, SymlinkReadlinkLinkSetattrReaddirPlusActAsTheNamedIdentity) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()});  // its own user: root
  ASSERT_NE(meta, nullptr);
  MetaUser alice;
  alice.uid = 1000;
  alice.gid = 1000;
  MetaUser bob;
  bob.uid = 1001;
  bob.gid = 1001;
  Inode dir;
  ASSERT_TRUE(meta->Mkdir("/shared", 01777, false, &dir).ok());

  Inode link;
  Status s = meta->Symlink("../x/y", "/shared/l", &link, &alice);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(link.type, FileType::kSymlink);
  EXPECT_EQ(link.target, "../x/y");
  EXPECT_EQ(link.lengthBytes, 6u);
  EXPECT_EQ(link.uid, 1000u);
  std::string target;
  ASSERT_TRUE(meta->Readlink("/shared/l", &target, &bob).ok());
  EXPECT_EQ(target, "../x/y");
  EXPECT_EQ(meta->Readlink("/shared", &target).code(), StatusCode::kInvalidArgument);

  OpenFlags create;
  create.write = create.create = true;
  OpenResult opened;
  ASSERT_TRUE(meta->Open("/shared/f", create, 0600, &opened, &alice).ok());
  EXPECT_EQ(opened.inode.uid, 1000u);
  Inode closed;
  ASSERT_TRUE(meta->Close(opened.inode.id, opened.session, 5, &closed, &alice).ok());
  OpenFlags readOnly;
  readOnly.read = true;
  OpenResult r;
  EXPECT_EQ(meta->Open("/shared/f", readOnly, 0, &r, &bob).code(), StatusCode::kAccess);
  EXPECT_TRUE(meta->Open("/shared/f", readOnly, 0, &r, &alice).ok());

  SetAttrs attrs;
  attrs.hasMode = true;
  attrs.mode = 0644;
  attrs.hasMtime = true;
  attrs.mtimeMs = 1234567;
  EXPECT_EQ(meta->Setattr("/shared/f", attrs, &closed, &bob).code(), StatusCode::kPermission);
  ASSERT_TRUE(meta->Setattr("/shared/f", attrs, &closed, &alice).ok());
  EXPECT_EQ(closed.mode, 0644u);
  EXPECT_EQ(closed.mtimeMs, 1234567);

  Inode linked;
  ASSERT_TRUE(meta->Link("/shared/f", "/shared/g", &linked, &bob).ok());
  EXPECT_EQ(linked.id, opened.inode.id);
  EXPECT_EQ(linked.nlink, 2u);

  ReaddirPage page;
  ASSERT_TRUE(meta->ReaddirPlus("/shared", "", 0, &page, &bob).ok());
  ASSERT_EQ(page.entries.size(), 3u);
  EXPECT_EQ(page.entries[0].name, "f");
  ASSERT_TRUE(page.entries[0].hasAttrs);
  EXPECT_EQ(page.entries[0].attrs.mtimeMs, 1234567);
  EXPECT_EQ(page.entries[0].attrs.nlink, 2u);
  EXPECT_EQ(page.entries[2].name, "l");
  EXPECT_EQ(page.entries[2].type, FileType::kSymlink);
  EXPECT_EQ(page.entries[2].attrs.target, "../x/y");
  ASSERT_TRUE(meta->Readdir("/shared", "", 0, &page).ok());
  EXPECT_FALSE(page.entries[0].hasAttrs);
}


TEST_F(MetaRpcTest, CreateStatReaddirRenameUnlinkRoundTrip) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()});
  ASSERT_NE(meta, nullptr);

  Inode dir;
  ASSERT_TRUE(meta->Mkdir("/data", 0755, false, &dir).ok());
  EXPECT_EQ(dir.type, FileType::kDir);
  EXPECT_EQ(dir.mode, 0755u);
  EXPECT_FALSE(dir.layout.hasSeed);

  OpenFlags create;
  create.write = create.create = create.exclusive = true;
  OpenResult opened;
  Status s = meta->Open("/data/part-0", create, 0644, &opened);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(opened.inode.type, FileType::kFile);
  EXPECT_EQ(opened.inode.lengthBytes, 0u);
  EXPECT_EQ(opened.session.size(), 32u);
  EXPECT_EQ(opened.inode.layout.chunkSizeBytes, limits::kChunkSizeBytesDefault);
  EXPECT_GE(opened.inode.layout.stripeSize, 1u);
  EXPECT_TRUE(opened.inode.layout.hasSeed);
  EXPECT_GT(opened.inode.id, 1u);

  Inode closed;
  s = meta->Close(opened.inode.id, opened.session, 12582912, &closed);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(closed.lengthBytes, 12582912u);

  Inode st;
  ASSERT_TRUE(meta->Stat("/data/part-0", &st).ok());
  EXPECT_EQ(st.id, opened.inode.id);
  EXPECT_EQ(st.lengthBytes, 12582912u);
  EXPECT_EQ(st.layout.seed, opened.inode.layout.seed);

  OpenFlags readOnly;
  readOnly.read = true;
  OpenResult r;
  ASSERT_TRUE(meta->Open("/data/part-0", readOnly, 0, &r).ok());
  EXPECT_TRUE(r.session.empty());
  EXPECT_EQ(r.inode.id, st.id);

  ReaddirPage page;
  ASSERT_TRUE(meta->Readdir("/data", "", 0, &page).ok());
  ASSERT_EQ(page.entries.size(), 1u);
  EXPECT_EQ(page.entries[0].name, "part-0");
  EXPECT_EQ(page.entries[0].inode, st.id);
  EXPECT_EQ(page.entries[0].type, FileType::kFile);
  EXPECT_FALSE(page.more);

  ASSERT_TRUE(meta->Rename("/data/part-0", "/data/part-1").ok());
  EXPECT_EQ(meta->Stat("/data/part-0", &st).code(), StatusCode::kNotFound);
  ASSERT_TRUE(meta->Stat("/data/part-1", &st).ok());
  EXPECT_EQ(st.id, opened.inode.id);

  // RENAME_NOREPLACE: an existing target is kExists and both names stay as they were.
  ASSERT_TRUE(meta->Open("/data/other", create, 0644, &r).ok());
  EXPECT_EQ(meta->Rename("/data/part-1", "/data/other", nullptr, /*noReplace=*/true).code(), StatusCode::kExists);
  Inode other;
  ASSERT_TRUE(meta->Stat("/data/other", &other).ok());
  EXPECT_NE(other.id, opened.inode.id);
  ASSERT_TRUE(meta->Stat("/data/part-1", &st).ok());
  ASSERT_TRUE(meta->Rename("/data/other", "/data/other-2", nullptr, /*noReplace=*/true).ok());
  ASSERT_TRUE(meta->Unlink("/data/other-2").ok());

  Inode t;
  ASSERT_TRUE(meta->Truncate("/data/part-1", 100, &t).ok());
  EXPECT_EQ(t.lengthBytes, 100u);

  ASSERT_TRUE(meta->Unlink("/data/part-1").ok());
  ASSERT_TRUE(meta->Readdir("/data", "", 0, &page).ok());
  EXPECT_TRUE(page.entries.empty());
  ASSERT_TRUE(meta->Rmdir("/data").ok());
  EXPECT_EQ(meta->Stat("/data", &st).code(), StatusCode::kNotFound);
}

TEST_F(MetaRpcTest, ReaddirPages) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()});
  Inode ignored;
  ASSERT_TRUE(meta->Mkdir("/d", 0755, false, &ignored).ok());
  for (int i = 0; i < 7; i++) {
    ASSERT_TRUE(meta->Mkdir("/d/e" + std::to_string(i), 0755, false, &ignored).ok());
  }
  std::vector<std::string> names;
  std::string after;
  for (int pages = 0;; pages++) {
    ASSERT_LT(pages, 10);
    ReaddirPage page;
    ASSERT_TRUE(meta->Readdir("/d", after, 3, &page).ok());
    for (const DirEntry& e : page.entries) names.push_back(e.name);
    if (!page.more) break;
    after = page.entries.back().name;
  }
  ASSERT_EQ(names.size(), 7u);
  for (int i = 0; i < 7; i++) EXPECT_EQ(names[i], "e" + std::to_string(i));
}

// The service ends the sessions of clients quiet past its timeout (1 s here): a client that
// heartbeats keeps its session past several timeouts; one that stops (destroyed without
// Close, as a crashed process) loses it.
TEST_F(MetaRpcTest, HeartbeatsKeepSessionsThatEndWhenTheyStop) {
  MetaProcess* server = StartServer(1000);
  ASSERT_NE(server, nullptr);
  auto live = Client({server->endpoint()}, 5000, 3, {}, /*heartbeatMs=*/100);
  auto gone = Client({server->endpoint()}, 5000, 3, {}, /*heartbeatMs=*/100);
  OpenFlags create;
  create.write = create.create = true;
  OpenResult kept, lost;
  ASSERT_TRUE(live->Open("/kept", create, 0644, &kept).ok());
  ASSERT_TRUE(gone->Open("/lost", create, 0644, &lost).ok());
  gone.reset();  // its heartbeats stop; its session stays open
  std::this_thread::sleep_for(milliseconds(3000));
  Inode n;
  Status s = live->Close(kept.inode.id, kept.session, 10, &n);
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(n.lengthBytes, 10u);
  s = live->Close(lost.inode.id, lost.session, 10, &n);
  EXPECT_EQ(s.code(), StatusCode::kBadHandle) << s.ToString();
}

TEST_F(MetaRpcTest, ServerErrorsArriveWithTheirCodes) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()});
  Inode n;
  OpenResult o;
  ASSERT_TRUE(meta->Mkdir("/a", 0755, false, &n).ok());
  ASSERT_TRUE(meta->Mkdir("/a/sub", 0755, false, &n).ok());
  OpenFlags create;
  create.write = create.create = true;
  ASSERT_TRUE(meta->Open("/a/f", create, 0644, &o).ok());

  Status s = meta->Stat("/missing", &n);
  EXPECT_EQ(s.code(), StatusCode::kNotFound) << s.ToString();
  EXPECT_NE(s.message().find("/missing"), std::string::npos) << s.message();
  EXPECT_STREQ(s.CodeName(), "ENOENT");
  EXPECT_EQ(meta->Mkdir("/a", 0755, false, &n).code(), StatusCode::kExists);
  OpenFlags exclusive = create;
  exclusive.exclusive = true;
  EXPECT_EQ(meta->Open("/a/f", exclusive, 0644, &o).code(), StatusCode::kExists);
  EXPECT_EQ(meta->Rmdir("/a").code(), StatusCode::kNotEmpty);
  ReaddirPage page;
  EXPECT_EQ(meta->Readdir("/a/f", "", 0, &page).code(), StatusCode::kNotDir);
  EXPECT_EQ(meta->Open("/a/sub", create, 0644, &o).code(), StatusCode::kIsDir);
  EXPECT_EQ(meta->Unlink("/a/sub").code(), StatusCode::kIsDir);
  EXPECT_EQ(meta->Close(n.id, "00000000000000000000000000000000", 0, &n).code(), StatusCode::kBadHandle);
  EXPECT_EQ(meta->Mkdir("/a/" + std::string(300, 'x'), 0755, false, &n).code(), StatusCode::kNameTooLong);
  EXPECT_EQ(meta->Stat("relative", &n).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(meta->Readdir("/a", "", 5000, &page).code(), StatusCode::kInvalidArgument);  // caught here

  // Another user: no write permission in /a (0755, owned by root).
  MetaUser alice;
  alice.uid = alice.gid = 1000;
  auto asAlice = Client({server->endpoint()}, 5000, 3, alice);
  EXPECT_EQ(asAlice->Open("/a/g", create, 0644, &o).code(), StatusCode::kAccess);

  // An unknown method and a malformed params map: EPROTO from the server.
  MsgValue result;
  s = meta->rpc()->Call("meta.nope", MsgValue::Map(), &result);
  EXPECT_EQ(s.code(), StatusCode::kProtocol) << s.ToString();
  s = meta->rpc()->Call("meta.stat", MsgValue::Map({{"path", MsgValue::Str("/a")}}), &result);
  EXPECT_EQ(s.code(), StatusCode::kAuth) << s.ToString();  // no token
  // Refused before sending.
  EXPECT_EQ(meta->rpc()->Call("", MsgValue::Map(), &result).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(meta->rpc()->Call("meta.stat", MsgValue::Array(), &result).code(), StatusCode::kInvalidArgument);
  MsgValue big = MsgValue::Map({{"blob", MsgValue::Bin(std::string(limits::kMsgBytesMax, 'x'))}});
  EXPECT_EQ(meta->rpc()->Call("meta.stat", big, &result).code(), StatusCode::kTooLarge);
}

TEST_F(MetaRpcTest, ManyThreadsShareOneClient) {
  START_OR_FAIL(server);
  MetaClientOptions o;
  o.rpc.endpoints = {server->endpoint()};
  o.rpc.inflightRequestsMax = 4;  // most calls wait for a slot
  Auth(&o);
  std::unique_ptr<MetaClient> meta;
  ASSERT_TRUE(MetaClient::Create(o, &meta).ok());
  Inode n;
  ASSERT_TRUE(meta->Mkdir("/m", 0755, false, &n).ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; i++) {
        Inode x;
        std::string path = "/m/t" + std::to_string(t) + "-" + std::to_string(i);
        if (!meta->Mkdir(path, 0755, false, &x).ok()) failures++;
        Inode y;
        if (!meta->Stat(path, &y).ok() || y.id != x.id) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::string after;
  size_t count = 0;
  for (;;) {
    ReaddirPage page;
    ASSERT_TRUE(meta->Readdir("/m", after, 64, &page).ok());
    count += page.entries.size();
    if (!page.more) break;
    after = page.entries.back().name;
  }
  EXPECT_EQ(count, 200u);
}

// ---------------------------------------------------------------- failures

// A server that refuses the handshake gives no reply; the socket monitor sees the refusal and
// the call ends at once with kAuth, not after attempts x timeoutMs with kTimedOut.
TEST_F(MetaRpcTest, RefusedHandshakeIsEAUTHAtOnce) {
  START_OR_FAIL(server);
  const ZmqApi* api = nullptr;
  ASSERT_TRUE(LoadZmqApi(&api).ok());
  uint8_t raw[32];
  for (auto& b : raw) b = static_cast<uint8_t>(std::rand());
  char secret[41], pub[41];
  ASSERT_NE(api->z85Encode(secret, raw, sizeof raw), nullptr);
  ASSERT_EQ(api->curvePublic(pub, secret), 0);
  struct Case {
    const char* what;
    std::string publicKey, secretKey, serverKey;
    const char* says;
  };
  const Case cases[] = {
      {"a key this cluster never admitted", pub, secret, serverKey_, "refused this client's credentials"},
      {"no key at all", "", "", "", "requires a token and this client has none"},
  };
  for (const Case& c : cases) {
    RpcClientOptions o;
    o.endpoints = {server->endpoint()};
    o.timeoutMs = 5000;
    o.attemptsMax = 3;
    o.curvePublicKey = c.publicKey;
    o.curveSecretKey = c.secretKey;
    o.curveServerKey = c.serverKey;
    std::unique_ptr<RpcClient> rpc;
    ASSERT_TRUE(RpcClient::Create(o, &rpc).ok());
    int64_t elapsedMs = 0;
    Status s = TimedStat(rpc.get(), &elapsedMs);
    EXPECT_EQ(s.code(), StatusCode::kAuth) << c.what << ": " << s.ToString();
    EXPECT_NE(s.message().find(c.says), std::string::npos) << s.message();
    EXPECT_LT(elapsedMs, 4000) << c.what;  // one attempt is 5 s: no timeout was waited for
    // Later calls too, promptly.
    EXPECT_EQ(TimedStat(rpc.get(), &elapsedMs).code(), StatusCode::kAuth);
    EXPECT_LT(elapsedMs, 4000);
  }
  // The right credentials still work on the same server.
  auto meta = Client({server->endpoint()});
  Inode n;
  EXPECT_TRUE(meta->Stat("/", &n).ok());
}

TEST_F(MetaRpcTest, ServerKilledMidCallTimesOutNotHangs) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()}, /*timeoutMs=*/300, /*attempts=*/2);
  Inode n;
  ASSERT_TRUE(meta->Mkdir("/k", 0755, false, &n).ok());
  server->Signal(SIGSTOP);  // the request reaches the socket, no reply comes
  auto start = Clock::now();
  auto call = std::async(std::launch::async, [&] {
    Inode x;
    return meta->Stat("/k", &x);
  });
  std::this_thread::sleep_for(milliseconds(100));
  server->Kill(SIGKILL);
  ASSERT_EQ(call.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "call hangs";
  Status s = call.get();
  auto elapsedMs = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
  EXPECT_EQ(s.code(), StatusCode::kTimedOut) << s.ToString();
  EXPECT_GE(elapsedMs, 550);  // two attempts of 300 ms
  EXPECT_LT(elapsedMs, 3000);
  EXPECT_GE(meta->rpc()->counters().timeouts.load(), 2u);
  // Later calls fail the same way, promptly.
  start = Clock::now();
  EXPECT_EQ(meta->Stat("/k", &n).code(), StatusCode::kTimedOut);
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 3000);
}

TEST_F(MetaRpcTest, SecondAddressTakesOver) {
  START_OR_FAIL(a);
  START_OR_FAIL(b);  // same SQLite database: either serves the namespace
  auto meta = Client({a->endpoint(), b->endpoint()}, /*timeoutMs=*/500, /*attempts=*/4);
  Inode n;
  ASSERT_TRUE(meta->Mkdir("/shared", 0755, false, &n).ok());
  EXPECT_EQ(meta->rpc()->CurrentEndpoint(), a->endpoint());
  a->Kill(SIGKILL);
  Inode st;
  Status s = meta->Stat("/shared", &st);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(st.id, n.id);
  EXPECT_EQ(meta->rpc()->CurrentEndpoint(), b->endpoint());
  EXPECT_GE(meta->rpc()->counters().failovers.load(), 1u);
  // Mutations follow without another timeout.
  auto start = Clock::now();
  ASSERT_TRUE(meta->Mkdir("/shared/after", 0755, false, &n).ok());
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 450);
}

TEST_F(MetaRpcTest, DeadFirstAddressIsSkipped) {
  START_OR_FAIL(server);
  // A port nobody listens on.
  auto meta = Client({"tcp://127.0.0.1:1", server->endpoint()}, /*timeoutMs=*/300, /*attempts=*/3);
  Inode n;
  Status s = meta->Stat("/", &n);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(n.type, FileType::kDir);
  EXPECT_EQ(meta->rpc()->CurrentEndpoint(), server->endpoint());
}

TEST_F(MetaRpcTest, RetriedMutationIsAppliedOnce) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()}, /*timeoutMs=*/250, /*attempts=*/20);
  Inode n;
  ASSERT_TRUE(meta->Mkdir("/once", 0755, false, &n).ok());
  server->Signal(SIGSTOP);  // every attempt queues at the stopped server
  auto call = std::async(std::launch::async, [&] {
    Inode x;
    return meta->Mkdir("/once/dir", 0755, false, &x);
  });
  std::this_thread::sleep_for(milliseconds(900));  // three or four sends of one requestId
  server->Signal(SIGCONT);
  Status s = call.get();
  // Without deduplication the second copy would fail with EEXIST, or the first's reply would
  // be lost: the server answers every copy with the first result.
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_GE(meta->rpc()->counters().attempts.load(), 3u);
  ReaddirPage page;
  ASSERT_TRUE(meta->Readdir("/once", "", 0, &page).ok());
  EXPECT_EQ(page.entries.size(), 1u);
}

TEST_F(MetaRpcTest, CloseFailsCallsInFlight) {
  START_OR_FAIL(server);
  auto meta = Client({server->endpoint()}, /*timeoutMs=*/10000, /*attempts=*/1);
  Inode n;
  ASSERT_TRUE(meta->Stat("/", &n).ok());
  server->Signal(SIGSTOP);
  auto call = std::async(std::launch::async, [&] {
    Inode x;
    return meta->Stat("/", &x);
  });
  std::this_thread::sleep_for(milliseconds(100));
  auto start = Clock::now();
  meta->rpc()->Close();
  ASSERT_EQ(call.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(call.get().code(), StatusCode::kClosed);
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 2000);
  EXPECT_EQ(meta->Stat("/", &n).code(), StatusCode::kClosed);
  server->Signal(SIGCONT);
}

// A server that resets each connection before the client has read its greeting leaves the
// monitor no handshake-failure event, only connects and disconnects (a CURVE server meeting a
// NULL client can do this). A run of such drops is a refusal: kAuth at once, not a timeout.
TEST(RpcClientHandshake, ConnectionsDroppedBeforeTheHandshakeAreEAUTHNotATimeout) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::atomic<bool> stop{false};
  std::atomic<int> resets{0};
  std::thread server([&] {
    while (!stop) {
      pollfd p{listener, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const linger reset{1, 0};  // close() sends RST: nothing the server sent is readable
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      ::close(fd);
      resets++;
    }
  });
  RpcClientOptions o;
  o.endpoints = {"tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))};
  o.timeoutMs = 5000;
  o.attemptsMax = 3;
  std::unique_ptr<RpcClient> rpc;
  ASSERT_TRUE(RpcClient::Create(o, &rpc).ok());
  int64_t elapsedMs = 0;
  Status s = TimedStat(rpc.get(), &elapsedMs);
  stop = true;
  server.join();
  ::close(listener);
  EXPECT_EQ(s.code(), StatusCode::kAuth) << s.ToString();
  EXPECT_NE(s.message().find("requires a token and this client has none"), std::string::npos) << s.message();
  EXPECT_LT(elapsedMs, 4000);  // one attempt is 5 s: no timeout was waited for
  EXPECT_GE(resets.load(), static_cast<int>(limits::kRpcHandshakeDropsMax));
}

TEST(RpcClientOptions, BadOptionsAreRefused) {
  std::unique_ptr<RpcClient> c;
  RpcClientOptions o;
  EXPECT_EQ(RpcClient::Create(o, &c).code(), StatusCode::kInvalidArgument);  // no endpoints
  o.endpoints = {"nonsense://x"};
  EXPECT_EQ(RpcClient::Create(o, &c).code(), StatusCode::kInvalidArgument);
  o.endpoints = {"tcp://127.0.0.1:1"};
  o.inflightRequestsMax = limits::kRpcInflightRequestsMax + 1;
  EXPECT_EQ(RpcClient::Create(o, &c).code(), StatusCode::kInvalidArgument);
  o.inflightRequestsMax = 1;
  o.timeoutMs = 100;
  o.attemptsMax = 1;
  ASSERT_TRUE(RpcClient::Create(o, &c).ok());
  MsgValue r;
  EXPECT_EQ(c->Call("x.y", MsgValue::Map(), &r).code(), StatusCode::kTimedOut);
}

}  // namespace
}  // namespace millpond
