// RpcClient and MetaClient against a scripted in-process ZeroMQ ROUTER: the exact bytes of
// requests (the TS fixtures), the same requestId on every resend, ENOTPRIMARY moving to the next
// address at once, and replies that are garbage, multi-frame, late or of unknown codes.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "client/meta_client.h"
#include "client/rpc_client.h"
#include "client/zmq_api.h"
#include "common/msgpack.h"

namespace millpond {
namespace {

using millpond::testing::RepoRoot;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string Fixture(const std::string& name) {
  return millpond::testing::ReadFile(RepoRoot() + "/test/fixtures/protocol/" + name + ".bin");
}

MsgValue Reply(uint64_t requestId, bool ok, MsgValue body) {
  return MsgValue::Array({MsgValue::Uint(1), MsgValue::Uint(requestId), MsgValue::Bool(ok), std::move(body)});
}

MsgValue Error(const std::string& code, const std::string& message) {
  return MsgValue::Map({{"code", MsgValue::Str(code)}, {"message", MsgValue::Str(message)}});
}

// A ROUTER on 127.0.0.1 whose handler sees each request frame and returns the reply frames
// to send (none: stay silent).
class FakeServer {
 public:
  using Handler = std::function<std::vector<std::string>(const std::string& request)>;

  explicit FakeServer(Handler handler) : handler_(std::move(handler)) {
    Status s = LoadZmqApi(&api_);
    EXPECT_TRUE(s.ok()) << s.ToString();
    ctx_ = api_->ctxNew();
    socket_ = api_->socket(ctx_, zmq::kRouter);
    int linger = 0;
    api_->setsockopt(socket_, zmq::kLinger, &linger, sizeof linger);
    EXPECT_EQ(api_->bind(socket_, "tcp://127.0.0.1:*"), 0);
    char buf[256];
    size_t size = sizeof buf;
    api_->getsockopt(socket_, zmq::kLastEndpoint, buf, &size);
    endpoint_ = std::string(buf, strnlen(buf, size));
    thread_ = std::thread([this] { Loop(); });
  }

  ~FakeServer() {
    stop_ = true;
    thread_.join();
    api_->close(socket_);
    api_->ctxTerm(ctx_);
  }

  const std::string& endpoint() const { return endpoint_; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  std::string RecvFrame(bool* more) {
    zmq::Msg msg;
    api_->msgInit(&msg);
    std::string out;
    if (api_->msgRecv(&msg, socket_, zmq::kDontWait) >= 0) {
      out.assign(static_cast<const char*>(api_->msgData(&msg)), api_->msgSize(&msg));
      *more = api_->msgMore(&msg) != 0;
    } else {
      *more = false;
    }
    api_->msgClose(&msg);
    return out;
  }

  void Loop() {
    while (!stop_) {
      zmq::PollItem item = {socket_, 0, zmq::kPollIn, 0};
      if (api_->poll(&item, 1, 20) <= 0) continue;
      bool more = false;
      std::string peer = RecvFrame(&more);
      if (!more) continue;
      std::string request = RecvFrame(&more);
      while (more) RecvFrame(&more);
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(request);
      }
      std::vector<std::string> replies = handler_(request);
      if (replies.empty()) continue;
      api_->send(socket_, peer.data(), peer.size(), zmq::kSndMore);
      for (size_t i = 0; i < replies.size(); i++) {
        api_->send(socket_, replies[i].data(), replies[i].size(), i + 1 < replies.size() ? zmq::kSndMore : 0);
      }
    }
  }

  const ZmqApi* api_ = nullptr;
  void* ctx_ = nullptr;
  void* socket_ = nullptr;
  std::string endpoint_;
  Handler handler_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

uint64_t RequestId(const std::string& frame) {
  MsgValue v;
  EXPECT_TRUE(MsgDecode(frame, &v).ok());
  uint64_t id = 0;
  EXPECT_TRUE(v.is_array() && v.array().size() == 4 && v.array()[1].GetUint64(&id));
  return id;
}

std::unique_ptr<RpcClient> Client(std::vector<std::string> endpoints, uint32_t timeoutMs, uint32_t attempts) {
  RpcClientOptions o;
  o.endpoints = std::move(endpoints);
  o.timeoutMs = timeoutMs;
  o.attemptsMax = attempts;
  std::unique_ptr<RpcClient> c;
  Status s = RpcClient::Create(o, &c);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return c;
}

TEST(RpcWire, MetaRequestsAreTheFixtureBytes) {
  FakeServer server([](const std::string& req) {
    return std::vector<std::string>{MsgEncode(Reply(RequestId(req), false, Error("ENOENT", "no")))};
  });
  MetaClientOptions o;
  o.rpc.endpoints = {server.endpoint()};
  o.user.uid = o.user.gid = 1000;
  o.clientId = std::string("\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff", 16);
  std::unique_ptr<MetaClient> meta;
  ASSERT_TRUE(MetaClient::Create(o, &meta).ok());
  Inode n;
  // The first request of a client has requestId 1, as in the fixture.
  EXPECT_EQ(meta->Stat("/data/part-0.parquet", &n).code(), StatusCode::kNotFound);
  ReaddirPage page;
  EXPECT_EQ(meta->Readdir("/data", "part-9", 256, &page).code(), StatusCode::kNotFound);
  EXPECT_EQ(meta->Close(4097, "b2dc5deb95bbfa7598552e38c3722a8f", 12582912, &n).code(), StatusCode::kNotFound);
  o.user.gids = {10, 20};
  std::unique_ptr<MetaClient> withGids;
  ASSERT_TRUE(MetaClient::Create(o, &withGids).ok());
  OpenFlags flags;
  flags.write = flags.create = true;
  OpenResult r;
  EXPECT_EQ(withGids->Open("/data/out", flags, 0644, &r).code(), StatusCode::kNotFound);

  std::vector<std::string> sent = server.requests();
  ASSERT_EQ(sent.size(), 4u);
  EXPECT_EQ(sent[0], Fixture("stat-request"));
  // The others differ from their fixture only in requestId: compare method and params.
  const char* names[] = {"readdir-request", "close-request", "open-request"};
  for (int i = 0; i < 3; i++) {
    SCOPED_TRACE(names[i]);
    MsgValue got, want;
    ASSERT_TRUE(MsgDecode(sent[i + 1], &got).ok());
    ASSERT_TRUE(MsgDecode(Fixture(names[i]), &want).ok());
    EXPECT_EQ(got.array()[2], want.array()[2]);
    EXPECT_EQ(MsgEncode(got.array()[3]), MsgEncode(want.array()[3]))
        << got.array()[3].DebugString() << "\n vs\n" << want.array()[3].DebugString();
  }
}

TEST(RpcWire, ResendsCarryTheSameRequestId) {
  std::atomic<int> seen{0};
  FakeServer server([&](const std::string& req) {
    if (++seen < 3) return std::vector<std::string>{};  // lose the first two
    return std::vector<std::string>{MsgEncode(Reply(RequestId(req), true, MsgValue::Str("done")))};
  });
  auto c = Client({server.endpoint()}, 200, 5);
  MsgValue r;
  Status s = c->Call("x.y", MsgValue::Map(), &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r, MsgValue::Str("done"));
  std::vector<std::string> sent = server.requests();
  ASSERT_EQ(sent.size(), 3u);
  EXPECT_EQ(sent[0], sent[1]);
  EXPECT_EQ(sent[1], sent[2]);
  EXPECT_EQ(c->counters().timeouts.load(), 2u);
  // retry=false: one send only.
  seen = -100;
  auto start = Clock::now();
  EXPECT_EQ(c->Call("x.y", MsgValue::Map(), &r, /*retry=*/false).code(), StatusCode::kTimedOut);
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 400);
  EXPECT_EQ(server.requests().size(), 4u);
}

TEST(RpcWire, NotPrimaryMovesToTheNextAddressAtOnce) {
  FakeServer standby([](const std::string& req) {
    return std::vector<std::string>{MsgEncode(Reply(RequestId(req), false, Error("ENOTPRIMARY", "standby")))};
  });
  FakeServer primary([](const std::string& req) {
    return std::vector<std::string>{MsgEncode(Reply(RequestId(req), true, MsgValue::Uint(7)))};
  });
  auto c = Client({standby.endpoint(), primary.endpoint()}, 5000, 3);
  auto start = Clock::now();
  MsgValue r;
  Status s = c->Call("mgmtd.routing", MsgValue::Map(), &r);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(r, MsgValue::Uint(7));
  EXPECT_LT(std::chrono::duration_cast<milliseconds>(Clock::now() - start).count(), 2000);
  EXPECT_EQ(c->CurrentEndpoint(), primary.endpoint());
  EXPECT_EQ(c->counters().timeouts.load(), 0u);
  // Only standbys: ENOTPRIMARY after the attempts.
  auto lonely = Client({standby.endpoint()}, 5000, 2);
  s = lonely->Call("mgmtd.routing", MsgValue::Map(), &r);
  EXPECT_EQ(s.code(), StatusCode::kNotPrimary) << s.ToString();
  EXPECT_STREQ(s.CodeName(), "ENOTPRIMARY");
}

TEST(RpcWire, BadRepliesNeverCrashTheClient) {
  // Replies that can't be matched to the request are dropped (the call times out); error
  // replies of the wrong shape or with an unknown code fail the call with EPROTO.
  struct Case {
    std::string name;
    std::function<std::vector<std::string>(uint64_t id)> reply;
    StatusCode want;
  };
  std::vector<Case> cases = {
      {"not msgpack", [](uint64_t) { return std::vector<std::string>{"\xc1\xc1"}; }, StatusCode::kTimedOut},
      {"wrong version",
       [](uint64_t id) {
         return std::vector<std::string>{MsgEncode(MsgValue::Array(
             {MsgValue::Uint(2), MsgValue::Uint(id), MsgValue::Bool(true), MsgValue::Nil()}))};
       },
       StatusCode::kTimedOut},
      {"two frames", [](uint64_t id) { return std::vector<std::string>{"a", MsgEncode(Reply(id, true, MsgValue::Nil()))}; },
       StatusCode::kTimedOut},
      {"unknown id", [](uint64_t) { return std::vector<std::string>{MsgEncode(Reply(999999, true, MsgValue::Nil()))}; },
       StatusCode::kTimedOut},
      {"unknown code", [](uint64_t id) { return std::vector<std::string>{MsgEncode(Reply(id, false, Error("EWHAT", "x")))}; },
       StatusCode::kProtocol},
      {"error not a map", [](uint64_t id) { return std::vector<std::string>{MsgEncode(Reply(id, false, MsgValue::Str("x")))}; },
       StatusCode::kProtocol},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    std::atomic<int> n{0};
    // The first request gets the bad reply, later ones a good one.
    FakeServer server([&](const std::string& req) {
      uint64_t id = RequestId(req);
      if (n++ == 0) return c.reply(id);
      return std::vector<std::string>{MsgEncode(Reply(id, true, MsgValue::Str("good")))};
    });
    auto client = Client({server.endpoint()}, 200, 1);
    MsgValue r;
    Status st = client->Call("x.y", MsgValue::Map(), &r);
    EXPECT_EQ(st.code(), c.want) << st.ToString();
    if (c.name == "unknown code") {
      EXPECT_NE(st.message().find("EWHAT"), std::string::npos);
    }
    st = client->Call("x.y", MsgValue::Map(), &r);
    EXPECT_TRUE(st.ok()) << st.ToString();
    EXPECT_EQ(r, MsgValue::Str("good"));
  }
}

TEST(RpcWire, ManyCallsInFlightAreAllAnswered) {
  FakeServer server([](const std::string& req) {
    MsgValue v;
    MsgDecode(req, &v);
    return std::vector<std::string>{MsgEncode(Reply(RequestId(req), true, v.array()[3]))};
  });
  RpcClientOptions o;
  o.endpoints = {server.endpoint()};
  o.inflightRequestsMax = 8;
  std::unique_ptr<RpcClient> c;
  ASSERT_TRUE(RpcClient::Create(o, &c).ok());
  constexpr int kCalls = 2000;
  std::atomic<int> done{0}, wrong{0};
  for (int i = 0; i < kCalls; i++) {
    MsgValue p = MsgValue::Map({{"i", MsgValue::Uint(i)}});
    c->CallAsync("echo", p, true, [&, i](const Status& s, MsgValue r) {
      const MsgValue* got = r.Find("i");
      uint64_t v = 0;
      if (!s.ok() || got == nullptr || !got->GetUint64(&v) || v != static_cast<uint64_t>(i)) wrong++;
      done++;
    });
  }
  auto deadline = Clock::now() + std::chrono::seconds(20);
  while (done.load() < kCalls && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
  EXPECT_EQ(done.load(), kCalls);
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace millpond
