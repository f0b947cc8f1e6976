// The RDMA transports end to end on a real device: the TCP server accepts and hands the
// socket over (upgrade), the RDMA server answers. Skipped where RdmaProbe() finds no device
// (CI hosts); run for real inside the soft-RoCE VM (scripts/rxe-vm.sh).
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <thread>

#include "common/crc32c.h"
#include "transport/rdma/rdma_transport.h"
#include "transport/transport.h"

namespace millpond {
namespace {

// Answers on two worker threads: kWrite echoes its payload back and puts its CRC in the meta,
// kRead returns `length` pattern bytes, kStat fails with kNotFound, kCommit is held forever.
class TestHandler : public CallHandler {
 public:
  TestHandler() {
    for (int i = 0; i < 2; i++) workers_.emplace_back([this] { Work(); });
  }
  ~TestHandler() override { Shutdown(); }
  void Shutdown() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
      held_.clear();
    }
    cv_.notify_all();
    for (auto& t : workers_) if (t.joinable()) t.join();
  }
  void OnCall(std::unique_ptr<ServerCall> call) override {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(call));
    cv_.notify_one();
  }
  void DropHeld() {
    std::lock_guard<std::mutex> l(mu_);
    held_.clear();
  }

 private:
  void Work() {
    for (;;) {
      std::unique_ptr<ServerCall> call;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        call = std::move(queue_.front());
        queue_.pop_front();
      }
      Serve(std::move(call));
    }
  }
  void Serve(std::unique_ptr<ServerCall> call) {
    switch (call->header().opcode) {
      case frame::kWrite: {
        AlignedBuffer payload;
        Status s = call->TakePayload(&payload);
        if (!s.ok()) return call->Reply(s, "", nullptr, 0);
        uint32_t n = call->header().dataBytes;
        std::string meta;
        frame::PutU32(&meta, Crc32c(payload.data(), n));
        struct iovec iov{payload.data(), n};
        return call->Reply(Status::OK(), meta, &iov, n ? 1 : 0);
      }
      case frame::kRead: {
        uint32_t n;
        std::memcpy(&n, call->meta(), 4);
        std::string data(n, '\0');
        for (uint32_t i = 0; i < n; i++) data[i] = static_cast<char>(i * 7 + (i >> 12));
        struct iovec iov[2] = {{&data[0], n / 2}, {&data[n / 2], n - n / 2}};  // scattered source
        return call->Reply(Status::OK(), "", iov, 2);
      }
      case frame::kStat:
        return call->Reply(Status::NotFound("no such chunk, by design"), "", nullptr, 0);
      case frame::kCommit: {
        std::lock_guard<std::mutex> l(mu_);
        held_.push_back(std::move(call));
        return;
      }
      default:
        return call->Reply(Status::OK(), "", nullptr, 0);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<ServerCall>> queue_;
  std::vector<std::unique_ptr<ServerCall>> held_;
  std::vector<std::thread> workers_;
  bool stop_ = false;
};

class RdmaTransportTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string detail;
    if (!RdmaProbe(&detail).ok()) GTEST_SKIP() << "no RDMA device: " << detail;
    StartServer(true);
    client_ = NewRdmaClientTransport(ClientTransportOptions{});
  }
  void TearDown() override {
    if (client_) client_->Close();
    StopServer();
  }
  void StartServer(bool withRdma) {
    ServerTransportOptions o;
    o.host = "127.0.0.1";
    if (withRdma) {
      rdma_ = NewRdmaServerTransport();
      ASSERT_TRUE(rdma_->Start(o, &handler_).ok());
      RdmaServerTransport* r = rdma_.get();
      o.upgrade = [r](UniqueFd fd, const PeerIdentity& peer) { r->Adopt(std::move(fd), peer); };
    }
    tcp_ = NewTcpServerTransport();
    ASSERT_TRUE(tcp_->Start(o, &handler_).ok());
    address_ = "127.0.0.1:" + std::to_string(tcp_->port());
  }
  void StopServer() {
    if (tcp_) tcp_->Stop();
    if (rdma_) rdma_->Stop();
    handler_.DropHeld();
  }
  // Submits and waits for the answer.
  void Call(ClientCall* call) {
    std::promise<void> done;
    call->done = [&](ClientCall*) { done.set_value(); };
    client_->Submit(address_, call);
    ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(120)), std::future_status::ready);
  }

  TestHandler handler_;
  std::unique_ptr<RdmaServerTransport> rdma_;
  std::unique_ptr<ServerTransport> tcp_;
  std::unique_ptr<ClientTransport> client_;
  std::string address_;
};

std::string Pattern(size_t n, uint32_t seed) {
  std::string s(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = static_cast<char>(x >> 16);
  }
  return s;
}

void Echo(RdmaTransportTest* t, ClientCall* call, const std::string& payload, std::string* back) {
  call->opcode = frame::kWrite;
  call->payload = payload.data();
  call->payloadBytes = static_cast<uint32_t>(payload.size());
  back->assign(payload.size(), '\0');
  call->replyData = {{&(*back)[0], back->size()}};
}

TEST_F(RdmaTransportTest, EchoMovesBytesBothWaysOverRdma) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{4096}, size_t{1} << 20, (size_t{3} << 20) + 17}) {
    std::string payload = Pattern(n, static_cast<uint32_t>(n)), back;
    ClientCall call;
    Echo(this, &call, payload, &back);
    Call(&call);
    ASSERT_TRUE(call.status.ok()) << n << ": " << call.status.ToString();
    EXPECT_EQ(call.carriedBy, TransportKind::kRdma);
    EXPECT_EQ(call.replyDataBytes, n);
    ASSERT_EQ(call.replyMeta.size(), 4u);
    uint32_t crc;
    std::memcpy(&crc, call.replyMeta.data(), 4);
    EXPECT_EQ(crc, Crc32c(payload.data(), n)) << n;
    EXPECT_TRUE(back == payload) << n;
  }
  EXPECT_GE(client_->counters().bytesSent.load(), (size_t{4} << 20));
  EXPECT_GE(client_->counters().bytesReceived.load(), (size_t{4} << 20));
  EXPECT_GE(rdma_->counters().bytesReceived.load(), (size_t{4} << 20));
  EXPECT_EQ(tcp_->counters().bytesReceived.load(), 0u) << "no frame went over TCP";
  EXPECT_EQ(client_->counters().connectionsOpened.load(), 1u);
}

TEST_F(RdmaTransportTest, LargestMessage) {
  std::string payload = Pattern(limits::kFrameDataBytesMax, 5), back;
  ClientCall call;
  Echo(this, &call, payload, &back);
  // Soft-RoCE under qemu TCG moves a few MB/s: 64 MiB each way takes longer than the default
  // request timeout (limits::kClientTimeoutMsDefault). This test is about the size, not speed.
  call.timeoutMs = 180000;
  auto t0 = std::chrono::steady_clock::now();
  Call(&call);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(call.status.ok()) << call.status.ToString();
  EXPECT_TRUE(back == payload);
  std::printf("64 MiB echo (RDMA READ + RDMA WRITE) in %.3f s: %.1f MB/s each way\n", s,
              limits::kFrameDataBytesMax / s / 1e6);
}

TEST_F(RdmaTransportTest, ManyCallsInFlightAreQueuedAndAllAnswered) {
  constexpr int kCalls = 100;  // above the queue depth: the client queues the rest
  std::vector<std::string> payloads(kCalls), backs(kCalls);
  std::vector<ClientCall> calls(kCalls);
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; i++) {
    payloads[i] = Pattern(256 * 1024 + i, i);
    Echo(this, &calls[i], payloads[i], &backs[i]);
    calls[i].done = [&](ClientCall*) {
      std::lock_guard<std::mutex> l(mu);
      done++;
      cv.notify_all();
    };
  }
  for (int i = 0; i < kCalls; i++) client_->Submit(address_, &calls[i]);
  std::unique_lock<std::mutex> l(mu);
  ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(120), [&] { return done == kCalls; }));
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int i = 0; i < kCalls; i++) {
    ASSERT_TRUE(calls[i].status.ok()) << i << ": " << calls[i].status.ToString();
    EXPECT_TRUE(backs[i] == payloads[i]) << i;
  }
  std::printf("%d x 256 KiB echoes in %.3f s: %.1f MB/s each way\n", kCalls, s, kCalls * 262144.0 / s / 1e6);
}

TEST_F(RdmaTransportTest, ScatteredReplyBuffers) {
  ClientCall call;
  call.opcode = frame::kRead;
  uint32_t n = 3 * 1024 * 1024 + 5;
  frame::PutU32(&call.meta, n);
  std::string a(1000, 'x'), b(2 * 1024 * 1024, 'x'), c(n, 'x');  // more room than needed
  call.replyData = {{&a[0], a.size()}, {&b[0], b.size()}, {&c[0], c.size()}};
  Call(&call);
  ASSERT_TRUE(call.status.ok()) << call.status.ToString();
  EXPECT_EQ(call.replyDataBytes, n);
  std::string got = a + b + c.substr(0, n - a.size() - b.size());
  for (uint32_t i = 0; i < n; i++)
    ASSERT_EQ(got[i], static_cast<char>(i * 7 + (i >> 12))) << i;
}

TEST_F(RdmaTransportTest, ServerErrorsArriveWithCodeAndMessage) {
  ClientCall call;
  call.opcode = frame::kStat;
  Call(&call);
  EXPECT_EQ(call.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(call.status.message(), "no such chunk, by design");
}

TEST_F(RdmaTransportTest, ReplyLargerThanTheBuffersIsRefused) {
  ClientCall call;
  call.opcode = frame::kRead;
  frame::PutU32(&call.meta, 8192);
  std::string small(100, '\0');
  call.replyData = {{&small[0], small.size()}};
  Call(&call);
  EXPECT_EQ(call.status.code(), StatusCode::kTooLarge) << call.status.ToString();
}

TEST_F(RdmaTransportTest, TimeoutWhileTheServerHoldsTheCall) {
  ClientCall call;
  call.opcode = frame::kCommit;
  call.timeoutMs = 300;
  Call(&call);
  EXPECT_EQ(call.status.code(), StatusCode::kTimedOut);
  ClientCall ping;  // the connection still works
  ping.opcode = frame::kPing;
  Call(&ping);
  EXPECT_TRUE(ping.status.ok()) << ping.status.ToString();
}

TEST_F(RdmaTransportTest, PeerVanishingFailsTheWaitingCall) {
  ClientCall ping;
  ping.opcode = frame::kPing;
  Call(&ping);
  ASSERT_TRUE(ping.status.ok());
  ClientCall held;
  held.opcode = frame::kCommit;  // the server sits on it
  held.timeoutMs = 60000;
  std::promise<void> done;
  held.done = [&](ClientCall*) { done.set_value(); };
  client_->Submit(address_, &held);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  StopServer();  // the queue pair and its socket go away mid-call
  ASSERT_EQ(done.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(held.status.code(), StatusCode::kConnReset) << held.status.ToString();
  std::printf("peer loss noticed after %.3f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  tcp_.reset();
  rdma_.reset();
}

TEST_F(RdmaTransportTest, ServerWithoutRdmaIsENODEV) {
  StopServer();
  tcp_.reset();
  rdma_.reset();
  StartServer(false);  // TCP only: the magic is refused
  ClientCall ping;
  ping.opcode = frame::kPing;
  Call(&ping);
  EXPECT_EQ(ping.status.code(), StatusCode::kNoDevice) << ping.status.ToString();
}

}  // namespace
}  // namespace millpond
