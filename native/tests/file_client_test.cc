// FileClient against a REAL cluster of TS processes started by each test: mgmtd (short
// heartbeat timeouts, as test/cluster/support/processes.ts FAST), three storage daemons with
// one target each (101..103, TCP, no fsync), chain table 1 of 6 chains of length 3 created
// over RPC, and a meta server on SQLite. Each process writes stdout and stderr to files in the
// test's directory (a pipe nobody reads could fill and block it); TearDown SIGKILLs them.
// Covered: byte-exact round trips of edge sizes over 64 KiB chunks striped on 6 chains, holes,
// reads past the end, read-ahead (counters), write-behind bounded and a flush error surfacing,
// a storage daemon SIGKILLed mid-write (retries until the chain shortens; everything reads
// back), and the TS FileSystem API reading what the native client wrote and vice versa.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <random>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "client/client_auth.h"
#include "client/file_client.h"
#include "client/mgmtd_client.h"
#include "common/chunk_format.h"

namespace millpond {
namespace {

using millpond::testing::RepoRoot;
using millpond::testing::ReadFile;
using millpond::testing::SignalChild;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kStartTimeoutMs = 60000;      // node + tsx compile on a slow shared machine
constexpr uint32_t kChunk = 64 * 1024;      // limits::kChunkSizeBytesMin
constexpr uint32_t kChains = 6;

// One node process; stdout and stderr go to files.
class Proc {
 public:
  ~Proc() { Kill(); }

  std::string Start(const std::vector<std::string>& args, const std::string& logBase) {
    out_ = logBase + ".out";
    err_ = logBase + ".err";
    pid_ = ::fork();
    if (pid_ < 0) return "fork failed";
    if (pid_ == 0) {
      int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (o < 0 || e < 0) ::_exit(126);
      ::dup2(o, 1);
      ::dup2(e, 2);
      if (::chdir(RepoRoot().c_str()) != 0) ::_exit(126);
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>("node"));
      argv.push_back(const_cast<char*>("--import"));
      argv.push_back(const_cast<char*>("tsx"));
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp("node", argv.data());
      ::_exit(127);
    }
    return "";
  }

  // Waits for a stdout line matching `pattern`; its first group goes to *group.
  std::string WaitFor(const std::string& pattern, std::string* group = nullptr, int timeoutMs = kStartTimeoutMs) {
    std::regex re(pattern);
    auto deadline = Clock::now() + milliseconds(timeoutMs);
    while (Clock::now() < deadline) {
      std::string text = ReadFile(out_);
      std::istringstream lines(text);
      std::string line;
      while (std::getline(lines, line)) {
        std::smatch m;
        if (text.find(line + "\n") != std::string::npos && std::regex_match(line, m, re)) {
          if (group != nullptr && m.size() > 1) *group = m[1];
          return "";
        }
      }
      int status;
      if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "process exited before printing " + pattern + ": " + ReadFile(err_);
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return "no line matching " + pattern + " within " + std::to_string(timeoutMs) + " ms: " + ReadFile(err_);
  }

  // SIGSTOP pauses the process (alive to the kernel, silent to everyone), SIGCONT resumes it.
  void Signal(int sig) { SignalChild(pid_, sig); }

  void Kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
  std::string out_, err_;
};

// Deterministic contents: byte i of a file with `seed`.
std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    if (i % 8 == 0) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    s[i] = static_cast<char>(x >> (8 * (i % 8)));
  }
  return s;
}

class FileClientTest : public ::testing::Test {
 protected:
  // When mgmtd calls a silent storage daemon dead.
  virtual std::string HeartbeatTimeoutMs() const { return "1200"; }

  void SetUp() override {
    char tmpl[] = "/tmp/millpond-fc-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::string root = RepoRoot();
    struct stat st;
    ASSERT_EQ(::stat((root + "/node_modules/tsx").c_str(), &st), 0) << "run npm install under " << root;
    ASSERT_EQ(::stat((root + "/build/Release/millpond.node").c_str(), &st), 0)
        << "storage daemons need the addon: npx cmake-js compile --out build";

    auto t0 = Clock::now();
    // Authentication on: `millpond init` makes the cluster secret and the admin token.
    std::string init = "cd '" + root + "' && node --import tsx src/cli/main.ts init --dir '" + dir_ + "/keys' > '" + dir_ + "/init.log' 2>&1";
    ASSERT_EQ(std::system(init.c_str()), 0) << "millpond init failed: see " << dir_ << "/init.log";
    std::ifstream tokenFile(dir_ + "/keys/keys/admin.token");
    ASSERT_TRUE(std::getline(tokenFile, token_));
    std::stringstream cluster;
    cluster << std::ifstream(dir_ + "/keys/cluster.json").rdbuf();
    std::smatch m;
    std::string clusterText = cluster.str();
    ASSERT_TRUE(std::regex_search(clusterText, m, std::regex("\"serverKey\": \"([^\"]{40})\"")));
    serverKey_ = m[1];
    secretFile_ = dir_ + "/keys/keys/cluster.secret";
    mgmtd_ = std::make_unique<Proc>();
    ASSERT_EQ(mgmtd_->Start({"src/cluster/main.ts", "--db", dir_ + "/mgmtd.db", "--listen", "tcp://127.0.0.1:0",
                             "--heartbeat-timeout-ms", HeartbeatTimeoutMs(), "--lease-ms", "1500", "--lease-poll-ms", "100",
                             "--liveness-check-ms", "100", "--secret-file", secretFile_},
                            dir_ + "/mgmtd"),
              "");
    ASSERT_EQ(mgmtd_->WaitFor("^listening (\\S+)$", &mgmtdEndpoint_), "");
    meta_ = StartMeta("meta");
    ASSERT_EQ(mgmtd_->WaitFor("^primary$"), "");
    for (int node = 1; node <= 3; node++) StartStorage(node);
    for (int node = 1; node <= 3; node++) ASSERT_EQ(storage_[node - 1]->WaitFor("^listening (\\S+)$"), "");
    ASSERT_EQ(meta_->WaitFor("^listening (\\S+)$", &metaEndpoint_), "");

    MgmtdClientOptions mo;
    mo.rpc.endpoints = {mgmtdEndpoint_};
    mo.rpc.timeoutMs = 2000;
    mo.token = token_;
    ASSERT_TRUE(ApplyTokenCurve(token_, serverKey_, &mo.rpc).ok());
    ASSERT_TRUE(MgmtdClient::Create(mo, &admin_).ok());
    ChainTableInfo table;
    Status s = admin_->CreateChainTable(1, kChains, 3, &table);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(table.chainIds.size(), kChains);
    ASSERT_TRUE(WaitStates({{101, TargetState::kServing}, {102, TargetState::kServing}, {103, TargetState::kServing}}, 20000));

    client_ = NewClient();
    ASSERT_NE(client_, nullptr);
    Inode dir;
    ASSERT_TRUE(client_->meta()->Mkdir("/t", 0755, false, &dir).ok());
    Layout l;
    l.chunkSizeBytes = kChunk;
    l.stripeSize = kChains;
    s = client_->meta()->SetLayout("/t", l, &dir);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(dir.layout.chunkSizeBytes, kChunk);
    std::fprintf(stderr, "cluster up in %lld ms\n",
                 static_cast<long long>(std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count()));
  }

  void TearDown() override {
    client_.reset();
    admin_.reset();
    for (auto& p : storage_) p.reset();
    meta_.reset();
    mgmtd_.reset();
    if (::testing::Test::HasFailure()) {
      std::fprintf(stderr, "logs kept in %s\n", dir_.c_str());
    } else {
      std::string cmd = "rm -rf '" + dir_ + "'";
      ASSERT_EQ(std::system(cmd.c_str()), 0);
    }
  }

  // A meta server on the test's SQLite file, with --mgmtd (as `millpond up` runs it: shrinks
  // cut the files' chunks) and `extra` flags.
  std::unique_ptr<Proc> StartMeta(const std::string& name, const std::vector<std::string>& extra = {}) {
    auto p = std::make_unique<Proc>();
    std::vector<std::string> args = {"src/meta/main.ts", "--backend", "sqlite", "--db", dir_ + "/meta.db",
                                     "--synchronous", "normal", "--listen", "tcp://127.0.0.1:0",
                                     "--mgmtd", mgmtdEndpoint_, "--secret-file", secretFile_,
                                     "--admin-token-file", dir_ + "/keys/keys/admin.token"};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(p->Start(args, dir_ + "/" + name), "");
    return p;
  }

  void StartStorage(int node) {
    auto p = std::make_unique<Proc>();
    std::string target = std::to_string(100 + node) + ":" + dir_ + "/t" + std::to_string(100 + node);
    ASSERT_EQ(p->Start({"src/storage/main.ts", "--node-id", std::to_string(node), "--mgmtd", mgmtdEndpoint_,
                        "--transport", "tcp", "--no-sync", "--heartbeat-ms", "150", "--routing-poll-ms", "150",
                        "--mgmtd-timeout-ms", "400", "--target", target, "--secret-file", secretFile_},
                       dir_ + "/storage-" + std::to_string(node)),
              "");
    storage_.push_back(std::move(p));
  }

  bool WaitStates(const std::vector<std::pair<uint32_t, TargetState>>& want, int timeoutMs, Routing* last = nullptr) {
    auto deadline = Clock::now() + milliseconds(timeoutMs);
    while (Clock::now() < deadline) {
      Routing r;
      bool unchanged = false;
      if (admin_->GetRouting(false, 0, &r, &unchanged).ok()) {
        bool all = true;
        for (const auto& [id, state] : want) {
          bool found = false;
          for (const TargetInfo& t : r.targets) found = found || (t.targetId == id && t.state == state);
          all = all && found;
        }
        if (last != nullptr) *last = r;
        if (all) return true;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  // The admin's credentials on a client's meta, mgmtd and data connections (auth is on: the
  // data servers serve the token with the capabilities meta hands out).
  bool PresentAdmin(FileClientOptions* o) {
    o->meta.token = token_;
    o->token = token_;
    return ApplyTokenCurve(token_, serverKey_, &o->meta.rpc).ok() && ApplyTokenCurve(token_, serverKey_, &o->mgmtd.rpc).ok();
  }

  std::unique_ptr<FileClient> NewClient(size_t writeBehindBytes = 1 << 20, size_t readAheadBytes = 256 * 1024,
                                        uint32_t writeRetryMs = 20000) {
    FileClientOptions o;
    o.meta.rpc.endpoints = {metaEndpoint_};
    o.mgmtd.rpc.endpoints = {mgmtdEndpoint_};
    if (!PresentAdmin(&o)) return nullptr;
    o.mgmtd.rpc.timeoutMs = 1000;
    o.chunks.transport = TransportChoice::kTcp;
    o.chunks.timeoutMs = 3000;
    o.routingPollMs = 150;
    o.writeRetryMs = writeRetryMs;
    o.writeBehindBytes = writeBehindBytes;
    o.readAheadBytes = readAheadBytes;
    std::unique_ptr<FileClient> c;
    Status s = FileClient::Create(o, &c);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return c;
  }

  // A client as applications get it: default request timeout and write retry window,
  // transport `transport` (kAuto: short-circuit local reads on this host).
  std::unique_ptr<FileClient> DefaultClient(TransportChoice transport, size_t writeBehindBytes, size_t readAheadBytes) {
    FileClientOptions o;
    o.meta.rpc.endpoints = {metaEndpoint_};
    o.mgmtd.rpc.endpoints = {mgmtdEndpoint_};
    if (!PresentAdmin(&o)) return nullptr;
    o.mgmtd.rpc.timeoutMs = 1000;
    o.chunks.transport = transport;
    o.routingPollMs = 150;
    o.writeBehindBytes = writeBehindBytes;
    o.readAheadBytes = readAheadBytes;
    std::unique_ptr<FileClient> c;
    Status s = FileClient::Create(o, &c);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return c;
  }

  // Writes `data` at offsets in slices of `sliceBytes` to a new file; closes it.
  Status WriteFile(FileClient* c, const std::string& path, const std::string& data, size_t sliceBytes) {
    OpenFlags f;
    f.write = f.create = f.truncate = true;
    std::unique_ptr<FileHandle> h;
    MP_RETURN_IF_ERROR(c->Open(path, f, 0644, &h));
    for (size_t at = 0; at < data.size(); at += sliceBytes) {
      MP_RETURN_IF_ERROR(h->Write(at, data.data() + at, std::min(sliceBytes, data.size() - at)));
    }
    return h->Close();
  }

  // Reads the whole file in slices of `sliceBytes`.
  Status ReadAll(FileClient* c, const std::string& path, size_t sliceBytes, std::string* out) {
    OpenFlags f;
    f.read = true;
    std::unique_ptr<FileHandle> h;
    MP_RETURN_IF_ERROR(c->Open(path, f, 0, &h));
    out->assign(h->lengthBytes(), '\x55');
    for (size_t at = 0; at < out->size(); at += sliceBytes) {
      size_t n = 0;
      MP_RETURN_IF_ERROR(h->Read(at, std::min(sliceBytes, out->size() - at), &(*out)[at], &n));
      if (n != std::min(sliceBytes, out->size() - at)) return Status::IoError("short read at " + std::to_string(at));
    }
    return h->Close();
  }

  // The committed chunk files (*.c) under a target's chunk directory.
  static std::vector<std::string> ChunkFiles(const std::string& root) {
    std::vector<std::string> files;
    std::function<void(const std::string&)> walk = [&](const std::string& d) {
      DIR* dir = ::opendir(d.c_str());
      if (!dir) return;
      while (struct dirent* e = ::readdir(dir)) {
        std::string name = e->d_name;
        if (name == "." || name == "..") continue;
        if (e->d_type == DT_DIR) walk(d + "/" + name);
        else if (name.size() > 2 && name.compare(name.size() - 2, 2, ".c") == 0) files.push_back(d + "/" + name);
      }
      ::closedir(dir);
    };
    walk(root);
    return files;
  }

  // Flips one bit of the content byte at `offset` of a chunk file of kChunk-byte chunks.
  static void FlipContentByte(const std::string& file, uint64_t offset) {
    int fd = ::open(file.c_str(), O_RDWR);
    ASSERT_GE(fd, 0) << file;
    char c;
    const uint64_t at = chunk_format::HeaderBytes(kChunk) + offset;
    ASSERT_EQ(::pread(fd, &c, 1, at), 1);
    c ^= 0x01;
    ASSERT_EQ(::pwrite(fd, &c, 1, at), 1);
    ::close(fd);
  }

  // Runs a TS snippet (ESM, top-level await) with FS bound to a connected FileSystem.
  std::string RunTs(const std::string& body) {
    std::string script = dir_ + "/snippet.mts";
    std::ofstream(script) << "import { connect } from '" << RepoRoot() << "/src/fs/file-system.ts';\n"
                          << "const fs = await connect({ meta: '" << metaEndpoint_ << "', mgmtd: '"
                          << mgmtdEndpoint_ << "', transport: 'tcp', tokenFile: '" << dir_
                          << "/keys/keys/admin.token', serverKey: '" << serverKey_ << "' });\n"
                          << body << "\nfs.close();\nprocess.exit(0);\n";
    Proc p;
    std::string err = p.Start({script}, dir_ + "/snippet");
    if (!err.empty()) return err;
    return p.WaitFor("^done$", nullptr, 30000);
  }

  std::string dir_;
  std::string mgmtdEndpoint_, metaEndpoint_;
  std::string token_, serverKey_, secretFile_;
  std::unique_ptr<Proc> mgmtd_, meta_;
  std::vector<std::unique_ptr<Proc>> storage_;
  std::unique_ptr<MgmtdClient> admin_;
  std::unique_ptr<FileClient> client_;
};

TEST_F(FileClientTest, EdgeSizesRoundTripByteExact) {
  const size_t sizes[] = {0, 1, kChunk - 1, kChunk, kChunk + 1, 7 * kChunk + 12345};
  uint32_t seed = 1;
  auto writeThrough = NewClient(0, 0);  // Write returns once every replica committed
  uint64_t wroteThrough = 0, wroteBehind = 0, read = 0;  // what the byte counters must show
  for (size_t size : sizes) {
    for (size_t slice : {size_t{4096}, size_t{kChunk}, size_t{3 * kChunk + 7}}) {
      std::string path = "/t/f-" + std::to_string(size) + "-" + std::to_string(slice);
      std::string data = Pattern(size, seed++);
      (slice == kChunk ? wroteThrough : wroteBehind) += size;
      read += 2 * size;  // two reads of the whole file below
      Status s = WriteFile(slice == kChunk ? writeThrough.get() : client_.get(), path, data, slice);
      ASSERT_TRUE(s.ok()) << path << ": " << s.ToString();
      Inode st;
      ASSERT_TRUE(client_->meta()->Stat(path, &st).ok());
      EXPECT_EQ(st.lengthBytes, size) << path;
      EXPECT_EQ(st.layout.chunkSizeBytes, kChunk);
      for (size_t readSlice : {size_t{1000}, size_t{5 * kChunk}}) {
        std::string back;
        s = ReadAll(client_.get(), path, readSlice, &back);
        ASSERT_TRUE(s.ok()) << path << ": " << s.ToString();
        ASSERT_EQ(back.size(), data.size()) << path;
        ASSERT_TRUE(back == data) << path << " differs (read slices of " << readSlice << ")";
      }
    }
  }
  EXPECT_GT(client_->counters().chunkWrites.load(), 0u);
  // Bytes are counted once, where Read returns and Write accepts them (not per replica or retry).
  EXPECT_EQ(writeThrough->counters().bytesWritten.load(), wroteThrough);
  EXPECT_EQ(client_->counters().bytesWritten.load(), wroteBehind);
  EXPECT_EQ(client_->counters().bytesRead.load(), read);
  EXPECT_EQ(writeThrough->counters().bytesRead.load(), 0u);
}

TEST_F(FileClientTest, AReplicaRottedOnDiskIsReadAroundByteExact) {
  const std::string data = Pattern(2 * kChains * kChunk, 21);
  auto writeThrough = NewClient(0, 0);  // every replica committed before the flip below
  ASSERT_TRUE(WriteFile(writeThrough.get(), "/t/rot", data, kChunk).ok());
  // A byte flipped in the content of every committed chunk file of target 102 (in every
  // chain). Aligned reads go out unverified by the server (sendfile); the client's check finds
  // the damage (ECHUNK_CORRUPT) and reads another replica.
  std::vector<std::string> files = ChunkFiles(dir_ + "/t102/chunks");
  ASSERT_EQ(files.size(), 2 * kChains);
  for (const auto& f : files) FlipContentByte(f, 5000);
  auto reader = DefaultClient(TransportChoice::kTcp, 0, 0);
  for (int round = 0; round < 3; round++) {
    std::string back;
    Status s = ReadAll(reader.get(), "/t/rot", kChunk, &back);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_TRUE(back == data) << "round " << round;
  }
  EXPECT_GT(reader->counters().readRetries.load(), 0u) << "no read met the rotted replica";
}

TEST_F(FileClientTest, HolesReadAsZerosAndReadsStopAtTheEnd) {
  // Chunks 0 and 5 written (chunk 5 only partly), 1..4 never: holes up to the file's length.
  OpenFlags f;
  f.write = f.create = true;
  f.read = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(client_->Open("/t/sparse", f, 0644, &h).ok());
  std::string a = Pattern(1000, 7), b = Pattern(3000, 8);
  ASSERT_TRUE(h->Write(10, a.data(), a.size()).ok());
  ASSERT_TRUE(h->Write(5 * kChunk + 100, b.data(), b.size()).ok());
  const uint64_t length = 5 * kChunk + 100 + 3000;
  EXPECT_EQ(h->lengthBytes(), length);

  std::string want(length, '\0');
  std::memcpy(&want[10], a.data(), a.size());
  std::memcpy(&want[5 * kChunk + 100], b.data(), b.size());
  std::string got(length + 5000, '\x77');
  size_t n = 0;
  Status s = h->Read(0, got.size(), &got[0], &n);  // flushes the buffered writes first
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(n, length);
  got.resize(n);
  EXPECT_TRUE(got == want);
  ASSERT_TRUE(h->Read(length, 10, &got[0], &n).ok());
  EXPECT_EQ(n, 0u);
  ASSERT_TRUE(h->Read(length - 3, 10, &got[0], &n).ok());
  EXPECT_EQ(n, 3u);
  ASSERT_TRUE(h->Close().ok());
  EXPECT_GT(client_->counters().holes.load(), 0u);

  // Another client sees the published length and the same bytes.
  auto other = NewClient(0, 0);
  std::string back;
  ASSERT_TRUE(ReadAll(other.get(), "/t/sparse", 70000, &back).ok());
  EXPECT_TRUE(back == want);

  // Read-only handles refuse writes; a directory is no file.
  f = OpenFlags();
  f.read = true;
  ASSERT_TRUE(client_->Open("/t/sparse", f, 0, &h).ok());
  EXPECT_EQ(h->Write(0, "x", 1).code(), StatusCode::kBadHandle);
  EXPECT_EQ(client_->Open("/t", f, 0, &h).code(), StatusCode::kIsDir);
}

// The TS FileSystem's path: meta opened by the caller, the file attached to a client with no
// meta of its own; batched reads across chunk edges, holes and a replica rotted on disk come
// back byte-exact (what a batch could not serve is read again with the retry rules).
TEST_F(FileClientTest, AttachedHandlesReadBatchesByteExact) {
  std::string data = Pattern(3 * kChains * kChunk, 33);
  std::memset(&data[kChunk], 0, kChunk);  // chunk 1 never written: a hole
  {
    auto writer = NewClient(0, 0);
    OpenFlags f;
    f.write = f.create = f.truncate = true;
    std::unique_ptr<FileHandle> h;
    ASSERT_TRUE(writer->Open("/t/batch", f, 0644, &h).ok());
    ASSERT_TRUE(h->Write(0, data.data(), kChunk).ok());
    ASSERT_TRUE(h->Write(2 * kChunk, data.data() + 2 * kChunk, data.size() - 2 * kChunk).ok());
    ASSERT_TRUE(h->Close().ok());
  }
  FileClientOptions o;
  o.mgmtd.rpc.endpoints = {mgmtdEndpoint_};
  ASSERT_TRUE(ApplyTokenCurve(token_, serverKey_, &o.mgmtd.rpc).ok());
  o.token = token_;
  o.chunks.transport = TransportChoice::kTcp;
  o.writeBehindBytes = 0;
  std::unique_ptr<FileClient> attached;
  ASSERT_TRUE(FileClient::Create(o, &attached).ok());
  OpenFlags read;
  read.read = true;
  std::unique_ptr<FileHandle> h;
  EXPECT_EQ(attached->Open("/t/batch", read, 0, &h).code(), StatusCode::kInvalidArgument);  // no meta here

  OpenResult opened;
  ASSERT_TRUE(client_->meta()->Open("/t/batch", read, 0, &opened).ok());
  ASSERT_TRUE(opened.hasCapability);
  ASSERT_TRUE(attached->Attach(opened, "/t/batch", /*writable=*/false, &h).ok());
  EXPECT_EQ(h->Write(0, "x", 1).code(), StatusCode::kBadHandle);

  // Ranges inside a chunk, across chunk edges, in the hole, and the file's last bytes.
  const std::vector<std::pair<uint64_t, uint32_t>> want = {
      {10, 4096}, {kChunk - 100, 300}, {kChunk + 5, 1000}, {2 * kChunk - 1, 2}, {data.size() - 777, 777}, {0, 1}};
  auto check = [&](const char* what) {
    std::vector<std::string> got(want.size());
    std::vector<FileHandle::Range> ranges;
    for (size_t i = 0; i < want.size(); i++) {
      got[i].assign(want[i].second, '\x55');
      ranges.push_back({want[i].first, want[i].second, &got[i][0]});
    }
    Status s = h->ReadBatch(ranges);
    ASSERT_TRUE(s.ok()) << what << ": " << s.ToString();
    for (size_t i = 0; i < want.size(); i++) {
      EXPECT_TRUE(got[i] == data.substr(want[i].first, want[i].second)) << what << ": range " << i;
    }
  };
  check("clean");
  // A byte flipped in every chunk file of target 102: the server checks batched reads, so the
  // batches sent there come back ECHUNK_CORRUPT per entry and are read again elsewhere.
  for (const std::string& f : ChunkFiles(dir_ + "/t102/chunks")) FlipContentByte(f, 17);
  for (int round = 0; round < 4; round++) check("rotted");
  EXPECT_GT(attached->counters().batchMisses.load(), 0u) << "no batch met the rotted replica";
  ASSERT_TRUE(h->Close().ok());
}

TEST_F(FileClientTest, SequentialReadsPrefetchAhead) {
  const std::string data = Pattern(20 * kChunk + 999, 42);
  ASSERT_TRUE(WriteFile(client_.get(), "/t/seq", data, kChunk).ok());

  auto reader = NewClient(0, 4 * kChunk);
  OpenFlags f;
  f.read = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(reader->Open("/t/seq", f, 0, &h).ok());
  std::string got(data.size(), '\0');
  for (size_t at = 0; at < data.size(); at += 16384) {
    size_t n = 0;
    Status s = h->Read(at, std::min<size_t>(16384, data.size() - at), &got[at], &n);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_LE(h->readAheadCachedBytes(), 4 * kChunk);
  }
  EXPECT_TRUE(got == data);
  uint64_t prefetches = reader->counters().prefetches.load();
  uint64_t hits = reader->counters().prefetchHits.load();
  EXPECT_GE(prefetches, 20u);
  // Nearly every piece after the first chunk came from a prefetched chunk.
  EXPECT_GE(hits, data.size() / 16384 - 8);
  std::fprintf(stderr, "prefetches %llu hits %llu chunk reads %llu\n", (unsigned long long)prefetches,
               (unsigned long long)hits, (unsigned long long)reader->counters().chunkReads.load());
  ASSERT_TRUE(h->Close().ok());

  // Random reads start no read-ahead.
  ASSERT_TRUE(reader->Open("/t/seq", f, 0, &h).ok());
  for (uint64_t at : {uint64_t{5 * kChunk + 17}, uint64_t{kChunk * 2}, uint64_t{11 * kChunk + 5}}) {
    std::string part(1000, '\0');
    size_t n = 0;
    ASSERT_TRUE(h->Read(at, part.size(), &part[0], &n).ok());
    EXPECT_EQ(part, data.substr(at, 1000));
  }
  EXPECT_EQ(reader->counters().prefetches.load(), prefetches);
}

// A read longer than the read-ahead window goes in steps, each topping the window up, so the
// reads after the first find their chunks prefetched. Served whole, a read's own chunks took
// the window's budget: nothing past it was prefetched, and most reads went to the servers.
TEST_F(FileClientTest, ReadsLongerThanTheWindowArePrefetchedAhead) {
  constexpr uint32_t kChunks = 48;
  const std::string data = Pattern(kChunks * kChunk, 44);
  ASSERT_TRUE(WriteFile(client_.get(), "/t/long", data, kChunk).ok());
  auto reader = NewClient(0, 8 * kChunk);  // a window of 8 chunks: steps of 2
  OpenFlags f;
  f.read = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(reader->Open("/t/long", f, 0, &h).ok());
  const size_t readBytes = 12 * kChunk;  // a window and a half
  std::string got(data.size(), '\0');
  for (size_t at = 0; at < data.size(); at += readBytes) {
    size_t n = 0;
    Status s = h->Read(at, readBytes, &got[at], &n);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(n, readBytes);
    EXPECT_LE(h->readAheadCachedBytes(), 8 * kChunk);
  }
  EXPECT_TRUE(got == data);
  const uint64_t hits = reader->counters().prefetchHits.load();
  std::fprintf(stderr, "prefetches %llu hits %llu chunk reads %llu\n",
               (unsigned long long)reader->counters().prefetches.load(), (unsigned long long)hits,
               (unsigned long long)reader->counters().chunkReads.load());
  // One piece per chunk. Stepped: all but the first read's first steps come prefetched (44 of
  // 48 when no prefetch is slower than a hedge); whole reads: 8 of 48.
  EXPECT_GE(hits, kChunks / 2);
  ASSERT_TRUE(h->Close().ok());
}

// DuckDB's pattern: threads read alternate row groups, each through its own handle, so every
// handle reads strided while the file as a whole is read in order. The read-ahead is the
// file's, so it still sees the order and prefetches for all of them.
TEST_F(FileClientTest, HandlesOfOneFileShareTheirReadAhead) {
  const std::string data = Pattern(24 * kChunk, 43);
  ASSERT_TRUE(WriteFile(client_.get(), "/t/groups", data, kChunk).ok());
  auto reader = NewClient(0, 4 * kChunk);
  OpenFlags f;
  f.read = true;
  std::unique_ptr<FileHandle> a, b;
  ASSERT_TRUE(reader->Open("/t/groups", f, 0, &a).ok());
  ASSERT_TRUE(reader->Open("/t/groups", f, 0, &b).ok());
  const size_t group = 2 * kChunk;
  std::string got(data.size(), '\0');
  for (size_t at = 0, i = 0; at < data.size(); at += group, i++) {
    FileHandle* h = (i % 2 == 0 ? a : b).get();  // a reads groups 0, 2, 4...; b reads 1, 3, 5...
    size_t n = 0;
    ASSERT_TRUE(h->Read(at, group, &got[at], &n).ok());
    ASSERT_EQ(n, group);
  }
  EXPECT_TRUE(got == data);
  EXPECT_EQ(a->readAheadCachedBytes(), b->readAheadCachedBytes()) << "one state for the file";
  const uint64_t hits = reader->counters().prefetchHits.load();
  std::fprintf(stderr, "prefetches %llu hits %llu chunk reads %llu\n",
               (unsigned long long)reader->counters().prefetches.load(), (unsigned long long)hits,
               (unsigned long long)reader->counters().chunkReads.load());
  // Every group after the first two comes from chunks prefetched by the other handle's read.
  EXPECT_GE(hits, 24u - 4u);
  ASSERT_TRUE(a->Close().ok());
  ASSERT_TRUE(b->Close().ok());
}

TEST_F(FileClientTest, WriteBehindStaysBoundedAndSurfacesFlushErrors) {
  const size_t bound = 4 * kChunk;
  auto writer = NewClient(bound, 0);
  const std::string data = Pattern(64 * kChunk + 5, 9);
  OpenFlags f;
  f.write = f.create = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(writer->Open("/t/wb", f, 0644, &h).ok());
  for (size_t at = 0; at < data.size(); at += 10000) {
    Status s = h->Write(at, data.data() + at, std::min<size_t>(10000, data.size() - at));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  ASSERT_TRUE(h->Close().ok());
  EXPECT_LE(h->writeBehindPeakBytes(), bound);
  EXPECT_GE(h->writeBehindPeakBytes(), 3 * kChunk);  // the buffer was used, up to its bound
  EXPECT_GT(writer->counters().writeBehindBatches.load(), 0u);
  // Sequential 10000-byte writes were coalesced into whole chunks (65 chunk writes, not 420).
  EXPECT_LE(writer->counters().chunkWrites.load() - writer->counters().writeRetries.load(), 70u);
  std::string back;
  ASSERT_TRUE(ReadAll(client_.get(), "/t/wb", kChunk, &back).ok());
  EXPECT_TRUE(back == data);

  // A file on a chain table that does not exist: Write buffers and returns OK; the flush
  // fails; the failure comes back from every later call, and Close publishes nothing.
  Inode dir;
  ASSERT_TRUE(writer->meta()->Mkdir("/bad", 0755, false, &dir).ok());
  Layout l;
  l.chainTableId = 2;
  ASSERT_TRUE(writer->meta()->SetLayout("/bad", l, &dir).ok());
  ASSERT_TRUE(writer->Open("/bad/f", f, 0644, &h).ok());
  ASSERT_TRUE(h->Write(0, data.data(), 1000).ok());
  Status s = h->Flush();
  EXPECT_EQ(s.code(), StatusCode::kIoError) << s.ToString();
  EXPECT_EQ(h->Write(1000, data.data(), 1000).code(), StatusCode::kIoError);
  size_t n;
  EXPECT_EQ(h->Read(0, 10, &back[0], &n).code(), StatusCode::kIoError);
  EXPECT_EQ(h->Close().code(), StatusCode::kIoError);
  EXPECT_EQ(h->Close().code(), StatusCode::kIoError);  // idempotent
  Inode st;
  ASSERT_TRUE(writer->meta()->Stat("/bad/f", &st).ok());
  EXPECT_EQ(st.lengthBytes, 0u);
}

TEST_F(FileClientTest, StorageDaemonKilledMidWriteRetriesAndLosesNothing) {
  auto writer = NewClient(8 * kChunk, 0, 20000);
  const std::string data = Pattern(240 * kChunk + 77, 5);
  OpenFlags f;
  f.write = f.create = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(writer->Open("/t/kill", f, 0644, &h).ok());
  std::atomic<size_t> written{0};
  std::atomic<bool> finished{false};
  Status writeStatus;
  std::thread t([&] {
    struct Done {
      std::atomic<bool>* f;
      ~Done() { *f = true; }
    } done{&finished};
    for (size_t at = 0; at < data.size(); at += 32768) {
      writeStatus = h->Write(at, data.data() + at, std::min<size_t>(32768, data.size() - at));
      if (!writeStatus.ok()) return;
      written = at;
      // Pace the writer so the kill lands mid-stream on a slow machine too.
      if (at % (8 * kChunk) == 0) std::this_thread::sleep_for(milliseconds(20));
    }
    writeStatus = h->Close();
  });
  while (written < 40 * kChunk && !finished) std::this_thread::sleep_for(milliseconds(5));
  storage_[1]->Kill();  // node 2, target 102: in every chain (length 3 of 3 targets)
  auto killedAt = Clock::now();
  t.join();
  ASSERT_TRUE(writeStatus.ok()) << writeStatus.ToString();
  std::fprintf(stderr, "write finished %lld ms after the kill; %llu write retries, %llu chunk writes\n",
               static_cast<long long>(std::chrono::duration_cast<milliseconds>(Clock::now() - killedAt).count()),
               (unsigned long long)writer->counters().writeRetries.load(),
               (unsigned long long)writer->counters().chunkWrites.load());

  Routing r;
  ASSERT_TRUE(WaitStates({{102, TargetState::kOffline}}, 10000, &r));
  for (const ChainInfo& c : r.chains) {
    size_t serving = 0;
    for (uint32_t id : c.targets) {
      for (const TargetInfo& t2 : r.targets) serving += t2.targetId == id && t2.state == TargetState::kServing;
    }
    EXPECT_EQ(serving, 2u) << "chain " << c.chainId;
  }

  // Everything acknowledged reads back, through a fresh client (no cache of the writer's).
  auto reader = NewClient(0, 8 * kChunk);
  std::string back;
  Status s = ReadAll(reader.get(), "/t/kill", 100000, &back);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(back.size(), data.size());
  EXPECT_TRUE(back == data);
}

TEST_F(FileClientTest, TsFileSystemReadsNativeWritesAndBack) {
  const std::string data = Pattern(9 * kChunk + 4321, 77);
  ASSERT_TRUE(WriteFile(client_.get(), "/t/native", data, 50000).ok());
  std::string out = dir_ + "/from-ts.bin";
  std::string err = RunTs(
      "const b = await fs.readFile('/t/native');\n"
      "(await import('node:fs')).writeFileSync('" + out + "', b);\n"
      "await fs.writeFile('/t/from-ts', Buffer.concat([b, b.subarray(0, 1000)]));\n"
      "console.log('done');");
  ASSERT_EQ(err, "");
  EXPECT_TRUE(ReadFile(out) == data);
  std::string back;
  ASSERT_TRUE(ReadAll(client_.get(), "/t/from-ts", 30000, &back).ok());
  EXPECT_TRUE(back == data + data.substr(0, 1000));
}

// Issue 9 item 2: a shrink (meta truncate, as the DuckDB extension calls it, or open with
// truncate, as COPY ... TO an existing file does) cuts the file's chunks when it commits:
// growing the file again reads zeros in the gap, never the old bytes.
TEST_F(FileClientTest, ShrinkThenGrowReadsZerosNotOldBytes) {
  const std::string data = Pattern(3 * kChunk + 500, 9);
  ASSERT_TRUE(WriteFile(client_.get(), "/t/shrink", data, 40000).ok());
  Inode inode;
  Status s = client_->meta()->Truncate("/t/shrink", 1000, &inode);
  ASSERT_TRUE(s.ok()) << s.ToString();
  OpenFlags rw;
  rw.read = rw.write = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(client_->Open("/t/shrink", rw, 0, &h).ok());
  ASSERT_TRUE(h->Write(3 * kChunk + 499, "!", 1).ok());  // past the end: a gap of 3 chunks
  ASSERT_TRUE(h->Close().ok());
  std::string back;
  ASSERT_TRUE(ReadAll(client_.get(), "/t/shrink", 50000, &back).ok());
  ASSERT_EQ(back.size(), data.size());
  EXPECT_EQ(back.substr(0, 1000), data.substr(0, 1000));
  EXPECT_EQ(back.find_first_not_of('\0', 1000), back.size() - 1) << "old bytes after the cut";

  // Open with truncate over a longer file (DuckDB's overwrite), a short write, then past the end.
  OpenFlags tr;
  tr.write = tr.truncate = true;
  ASSERT_TRUE(client_->Open("/t/shrink", tr, 0, &h).ok());
  ASSERT_TRUE(h->Write(0, "short", 5).ok());
  ASSERT_TRUE(h->Write(2 * kChunk, "?", 1).ok());
  ASSERT_TRUE(h->Close().ok());
  ASSERT_TRUE(ReadAll(client_.get(), "/t/shrink", 50000, &back).ok());
  ASSERT_EQ(back.size(), 2 * kChunk + 1);
  EXPECT_EQ(back.substr(0, 5), "short");
  EXPECT_EQ(back.find_first_not_of('\0', 5), back.size() - 1) << "old bytes after the truncate";
}

// Issue 9 item 4: a writer whose session the service ended (it was cut off from its meta
// server past the session timeout: here that server is SIGSTOPped while another on the same
// database ends quiet clients' sessions) gets kBadHandle (EBADF) on its next write and on
// close, instead of acknowledgements for bytes never published.
TEST_F(FileClientTest, WriterWhoseSessionEndedGetsEBADF) {
  const std::vector<std::string> quick = {"--session-timeout-ms", "1500"};
  auto mine = StartMeta("meta-mine", quick);
  auto other = StartMeta("meta-other", quick);
  std::string mineEndpoint;
  ASSERT_EQ(mine->WaitFor("^listening (\\S+)$", &mineEndpoint), "");
  ASSERT_EQ(other->WaitFor("^listening (\\S+)$"), "");
  FileClientOptions o;
  o.meta.rpc.endpoints = {mineEndpoint};
  o.meta.rpc.timeoutMs = 1000;
  o.meta.sessionHeartbeatMs = 200;
  o.mgmtd.rpc.endpoints = {mgmtdEndpoint_};
  ASSERT_TRUE(PresentAdmin(&o));
  o.chunks.transport = TransportChoice::kTcp;
  o.writeBehindBytes = 0;
  std::unique_ptr<FileClient> c;
  ASSERT_TRUE(FileClient::Create(o, &c).ok());
  OpenFlags f;
  f.write = f.create = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(c->Open("/t/quiet", f, 0644, &h).ok());
  ASSERT_TRUE(h->Write(0, "before", 6).ok());
  std::this_thread::sleep_for(milliseconds(4500));  // 3 timeouts: heartbeats keep the session
  Status s = h->Write(6, " still", 6);
  ASSERT_TRUE(s.ok()) << s.ToString();

  mine->Signal(SIGSTOP);  // cut off: the other server ends the session
  std::this_thread::sleep_for(milliseconds(4500));
  mine->Signal(SIGCONT);
  // A file opened now is fine, and confirms only its own session, not the ended one.
  std::unique_ptr<FileHandle> second;
  s = c->Open("/t/quiet-2", f, 0644, &second);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = h->Write(12, " after", 6);
  EXPECT_EQ(s.code(), StatusCode::kBadHandle) << s.ToString();
  s = h->Close();
  EXPECT_EQ(s.code(), StatusCode::kBadHandle) << s.ToString();
  EXPECT_TRUE(second->Write(0, "fine", 4).ok());
  s = second->Close();
  EXPECT_TRUE(s.ok()) << s.ToString();
  second.reset();
  h.reset();
  c.reset();
}

// Gray failure (issue 9 item 8): storage daemon 1 (target 101, head of chains 1 and 4 and
// in every chain) paused for 10 s under a write-through writer with the default request
// timeout and write window. mgmtd replaces it after 1.2 s; writes go on at the new heads
// instead of waiting for the paused one (before: each write to it waited for the pause).
TEST_F(FileClientTest, PausedChainHeadWritesMoveToTheNewHead) {
  // Write-behind: each round's chunks (two per chain) are written several at once, so some
  // write is waiting at the paused head when the routing replaces it.
  const size_t slices = 2 * kChains;
  auto writer = DefaultClient(TransportChoice::kTcp, slices * kChunk, 0);
  OpenFlags f;
  f.write = f.create = true;
  std::unique_ptr<FileHandle> h;
  ASSERT_TRUE(writer->Open("/t/paused-head", f, 0644, &h).ok());
  std::atomic<bool> stop{false};
  std::atomic<int64_t> maxMs{0};
  std::atomic<uint32_t> round{0};
  Status writeStatus;
  std::thread t([&] {
    for (uint32_t r = 1; !stop; r++) {  // a round: every slice written, then flushed
      const std::string data = Pattern(slices * kChunk, r);
      auto start = Clock::now();
      for (size_t i = 0; i < slices && writeStatus.ok(); i++) writeStatus = h->Write(i * kChunk, data.data() + i * kChunk, kChunk);
      if (writeStatus.ok()) writeStatus = h->Flush();
      if (!writeStatus.ok()) return;
      int64_t ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
      if (ms > maxMs) maxMs = ms;
      round = r;
    }
  });
  while (round < 2) std::this_thread::sleep_for(milliseconds(10));
  maxMs = 0;
  storage_[0]->Signal(SIGSTOP);
  const bool offline = WaitStates({{101, TargetState::kOffline}}, 8000);
  std::this_thread::sleep_for(milliseconds(10000) - milliseconds(1200));
  storage_[0]->Signal(SIGCONT);
  const uint32_t after = round;
  while (round < after + 2 && writeStatus.ok()) std::this_thread::sleep_for(milliseconds(10));
  stop = true;
  t.join();
  ASSERT_TRUE(offline);
  ASSERT_TRUE(writeStatus.ok()) << writeStatus.ToString();
  const uint32_t last = round;
  ASSERT_TRUE(h->Close().ok());
  std::fprintf(stderr, "paused head: longest round %lld ms, %llu abandoned, %llu retries\n", (long long)maxMs.load(),
               (unsigned long long)writer->counters().abandonedRequests.load(),
               (unsigned long long)writer->counters().writeRetries.load());
  // Chains where the paused target was the head: at the new head once the routing says so
  // (a write waiting there is abandoned, or, when the routing changed between two writes,
  // the next one goes straight to the new head). Chains where it followed: the head's forward
  // gives up (kChainForwardTimeoutMs), the write is retried on the shortened chain. Which of
  // these a run sees depends on timing; that writes left the paused target does not.
  EXPECT_LT(maxMs.load(), 7500);
  EXPECT_GT(writer->counters().abandonedRequests.load() + writer->counters().writeRetries.load(), 0u);
  std::string back;
  ASSERT_TRUE(ReadAll(client_.get(), "/t/paused-head", kChunk, &back).ok());
  EXPECT_TRUE(back == Pattern(slices * kChunk, last)) << "the last round, flushed, reads back";
}

// Gray failure (issue 9 item 7): mgmtd here takes 20 s to call a silent daemon dead, so only
// the client can keep reads going while one is paused: readers with the default request
// timeout, over the short-circuit local path (transport auto) and the network, with and
// without read-ahead, must not wait for the pause.
class FileClientSlowDeathTest : public FileClientTest {
 protected:
  std::string HeartbeatTimeoutMs() const override { return "20000"; }
};

TEST_F(FileClientSlowDeathTest, ReadsHedgeAroundAPausedReplica) {
  const std::string data = Pattern(4 * kChains * kChunk + 999, 11);
  ASSERT_TRUE(WriteFile(client_.get(), "/t/hedged", data, kChunk).ok());
  struct Reader {
    std::unique_ptr<FileClient> client;
    std::atomic<int64_t> maxMs{0};
    std::atomic<uint64_t> reads{0};
    Status status;
    bool mismatch = false;
  };
  Reader readers[4];
  readers[0].client = DefaultClient(TransportChoice::kAuto, 0, 0);
  readers[1].client = DefaultClient(TransportChoice::kTcp, 0, 0);
  readers[2].client = DefaultClient(TransportChoice::kAuto, 0, 4 * kChunk);  // sequential: read-ahead
  // The default read-ahead: a window of the whole file, a third of it prefetched from the paused
  // server, more than the local-read threads (each waits for the server it asked).
  readers[3].client = DefaultClient(TransportChoice::kAuto, 0, limits::kFileReadAheadBytesDefault);
  std::atomic<bool> stop{false}, paused{false};
  std::vector<std::thread> threads;
  for (Reader& r : readers) {
    threads.emplace_back([&] {
      std::string back(data.size(), '\0');
      while (!stop) {
        OpenFlags f;
        f.read = true;
        std::unique_ptr<FileHandle> h;
        r.status = r.client->Open("/t/hedged", f, 0, &h);
        if (!r.status.ok()) return;
        for (size_t at = 0; at < data.size() && !stop; at += kChunk) {
          size_t n = 0;
          auto start = Clock::now();
          const bool during = paused;  // a read that started during the pause counts, however late it ends
          r.status = h->Read(at, kChunk, &back[at], &n);
          if (!r.status.ok()) return;
          int64_t ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
          if (during && ms > r.maxMs) r.maxMs = ms;
          if (during && paused) r.reads++;
          if (std::memcmp(&back[at], data.data() + at, n) != 0) r.mismatch = true;
        }
      }
    });
  }
  // Batched reads: 16 random 4 KiB ranges a call, grouped by chain into one message per chain.
  Reader batcher;
  batcher.client = DefaultClient(TransportChoice::kTcp, 0, 0);
  threads.emplace_back([&] {
    OpenFlags f;
    f.read = true;
    std::unique_ptr<FileHandle> h;
    batcher.status = batcher.client->Open("/t/hedged", f, 0, &h);
    std::mt19937_64 rng(5);
    std::vector<std::string> back(16, std::string(4096, '\0'));
    while (batcher.status.ok() && !stop) {
      std::vector<FileHandle::Range> ranges;
      for (std::string& b : back) ranges.push_back({rng() % (data.size() - 4096), 4096, &b[0]});
      auto start = Clock::now();
      const bool during = paused;
      batcher.status = h->ReadBatch(ranges);
      int64_t ms = std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
      if (during && ms > batcher.maxMs) batcher.maxMs = ms;
      if (during && paused) batcher.reads++;
      for (size_t i = 0; i < ranges.size(); i++)
        if (std::memcmp(&back[i][0], data.data() + ranges[i].offset, 4096) != 0) batcher.mismatch = true;
    }
  });
  std::this_thread::sleep_for(milliseconds(500));
  storage_[1]->Signal(SIGSTOP);  // node 2, target 102: in every chain
  paused = true;
  std::this_thread::sleep_for(milliseconds(8000));
  paused = false;
  storage_[1]->Signal(SIGCONT);
  stop = true;
  for (std::thread& t : threads) t.join();
  // A batch sent to the paused replica is given up on after the batch hedge delay (a few
  // times the median batch) and its pieces read hedged, not waited out for the request timeout.
  std::fprintf(stderr, "batches: %llu during the pause, longest %lld ms, %llu hedged\n",
               (unsigned long long)batcher.reads.load(), (long long)batcher.maxMs.load(),
               (unsigned long long)batcher.client->counters().hedgedReads.load());
  EXPECT_TRUE(batcher.status.ok()) << batcher.status.ToString();
  EXPECT_FALSE(batcher.mismatch);
  EXPECT_GT(batcher.reads.load(), 20u);
  EXPECT_LT(batcher.maxMs.load(), 3000);
  EXPECT_GT(batcher.client->counters().hedgedReads.load(), 0u);
  const char* names[] = {"auto (local reads)", "tcp", "auto + read-ahead", "auto + default read-ahead"};
  for (int i = 0; i < 4; i++) {
    Reader& r = readers[i];
    std::fprintf(stderr, "%s: %llu reads during the pause, longest %lld ms, %llu hedged\n", names[i],
                 (unsigned long long)r.reads.load(), (long long)r.maxMs.load(),
                 (unsigned long long)r.client->counters().hedgedReads.load());
    EXPECT_TRUE(r.status.ok()) << names[i] << ": " << r.status.ToString();
    EXPECT_FALSE(r.mismatch) << names[i];
    EXPECT_GT(r.reads.load(), 20u) << names[i];
    EXPECT_LT(r.maxMs.load(), 3000) << names[i];
    EXPECT_GT(r.client->counters().hedgedReads.load(), 0u) << names[i];
  }
  Routing r;
  EXPECT_TRUE(WaitStates({{102, TargetState::kServing}}, 1000, &r));  // never called dead
}

// Routing replies decoded without a cluster: the unchanged form, a full one, bad shapes.
TEST(FileClientDecodeTest, RoutingRepliesDecodeOrAreEPROTO) {
  Routing r;
  bool unchanged = false;
  MsgValue same = MsgValue::Map();
  same.Add("version", MsgValue::Uint(7)).Add("unchanged", MsgValue::Bool(true));
  ASSERT_TRUE(MgmtdClient::DecodeRouting(same, &r, &unchanged).ok());
  EXPECT_TRUE(unchanged);

  MsgValue target = MsgValue::Map();
  target.Add("targetId", MsgValue::Uint(101)).Add("nodeId", MsgValue::Uint(1))
      .Add("dataAddress", MsgValue::Str("127.0.0.1:9000")).Add("state", MsgValue::Str("syncing"))
      .Add("localState", MsgValue::Str("online")).Add("stateVersion", MsgValue::Uint(3));
  MsgValue chain = MsgValue::Map();
  chain.Add("chainId", MsgValue::Uint(1)).Add("version", MsgValue::Uint(2))
      .Add("targets", MsgValue::Array({MsgValue::Uint(101)}));
  MsgValue table = MsgValue::Map();
  table.Add("tableId", MsgValue::Uint(1)).Add("version", MsgValue::Uint(1))
      .Add("chainIds", MsgValue::Array({MsgValue::Uint(1)}));
  MsgValue full = MsgValue::Map();
  full.Add("version", MsgValue::Uint(9)).Add("nodes", MsgValue::Array())
      .Add("targets", MsgValue::Array({target})).Add("chains", MsgValue::Array({chain}))
      .Add("chainTables", MsgValue::Array({table}));
  Status s = MgmtdClient::DecodeRouting(full, &r, &unchanged);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(unchanged);
  EXPECT_EQ(r.version, 9u);
  ASSERT_EQ(r.targets.size(), 1u);
  EXPECT_EQ(r.targets[0].state, TargetState::kSyncing);
  EXPECT_EQ(r.targets[0].dataAddress, "127.0.0.1:9000");
  ASSERT_EQ(r.chains.size(), 1u);
  EXPECT_EQ(r.chains[0].version, 2u);
  ASSERT_EQ(r.chainTables.size(), 1u);
  EXPECT_EQ(r.chainTables[0].chainIds, std::vector<uint32_t>{1});

  MsgValue badState = MsgValue::Map();
  badState.Add("targetId", MsgValue::Uint(1)).Add("nodeId", MsgValue::Uint(1))
      .Add("dataAddress", MsgValue::Str("x")).Add("state", MsgValue::Str("dancing"))
      .Add("stateVersion", MsgValue::Uint(1));
  MsgValue bad = MsgValue::Map();
  bad.Add("version", MsgValue::Uint(9)).Add("targets", MsgValue::Array({badState}))
      .Add("chains", MsgValue::Array()).Add("chainTables", MsgValue::Array());
  EXPECT_EQ(MgmtdClient::DecodeRouting(bad, &r, &unchanged).code(), StatusCode::kProtocol);
  MsgValue noChains = MsgValue::Map();
  noChains.Add("version", MsgValue::Uint(9)).Add("targets", MsgValue::Array());
  EXPECT_EQ(MgmtdClient::DecodeRouting(noChains, &r, &unchanged).code(), StatusCode::kProtocol);
  EXPECT_EQ(MgmtdClient::DecodeRouting(MsgValue::Str("x"), &r, &unchanged).code(), StatusCode::kProtocol);
}

}  // namespace
}  // namespace millpond
