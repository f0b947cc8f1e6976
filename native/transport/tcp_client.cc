// TCP client transport. Per server address: `connectionsPerServer` connections, each with a
// sender thread (connects, waits for in-flight budget, writes frames) and a receiver thread
// (reads replies straight into the caller's buffers, enforces deadlines). The caller's
// thread only queues, so it never blocks on the network.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "common/aead.h"
#include "common/buffer_pool.h"
#include "common/limits.h"
#include "transport/socket_io.h"
#include "transport/transport.h"

namespace millpond {

namespace {

using Clock = std::chrono::steady_clock;

// Bytes of calls sent and not yet answered, across all connections of one client.
class InflightBudget {
 public:
  explicit InflightBudget(size_t bytesMax) : bytesMax_(bytesMax) {}
  // Waits for room; a call larger than the whole budget goes alone. False when the client
  // closed or `abandon` became true (its connection died; see Wake()).
  bool Take(uint64_t bytes, const std::atomic<bool>& abandon) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return used_ == 0 || used_ + bytes <= bytesMax_ || closed_ || abandon; });
    if (closed_ || abandon) return false;
    used_ += bytes;
    return true;
  }
  void Wake() {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  void Give(uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    used_ -= bytes;
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  const size_t bytesMax_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t used_ = 0;
  bool closed_ = false;
};

struct Pending {
  ClientCall* call;
  Clock::time_point deadline;
  uint64_t budgetBytes;
  bool sending;  // the sender still reads the call's buffers: it must not complete yet
};

class TcpClientConnection {
 public:
  TcpClientConnection(std::string address, const ClientTransportOptions& options,
                      InflightBudget* budget, TransportCounters* counters,
                      std::atomic<uint32_t>* queued)
      : address_(std::move(address)), options_(options), budget_(budget),
        counters_(counters), queued_(queued) {
    sender_ = std::thread([this] { SendLoop(); });
    receiver_ = std::thread([this] {
      if (AwaitConnected()) ReceiveLoop();
    });
  }

  ~TcpClientConnection() { Close(Status::Closed("client closed")); }

  bool dead() const { return dead_.load(); }

  void Enqueue(ClientCall* call) {
    Status why;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!dead_) {
        queue_.push_back(call);
        cv_.notify_one();
        return;
      }
      why = deadReason_;  // e.g. the connect that failed before this call arrived
    }
    Finish(call, why);
  }

  void Close(const Status& why) {
    Fail(why);
    if (sender_.joinable()) sender_.join();
    if (receiver_.joinable()) receiver_.join();
  }

 private:
  void Finish(ClientCall* call, const Status& s) {
    if (!s.ok()) call->status = s;
    call->carriedBy = TransportKind::kTcp;
    (*queued_)--;
    call->done(call);
  }

  // Why a call failed: the reason the connection died if it has, else `otherwise`.
  Status DeadReasonOr(const Status& otherwise) {
    std::lock_guard<std::mutex> lock(mu_);
    return dead_ ? deadReason_ : otherwise;
  }

  // Marks the connection dead and fails every queued and pending call with `why`.
  void Fail(const Status& why) {
    std::deque<ClientCall*> queued;
    std::unordered_map<uint64_t, Pending> pending;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!dead_) deadReason_ = why;
      dead_ = true;
      queued.swap(queue_);
      pending.swap(pending_);
      if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
      if (handshakeFd_ >= 0) ::shutdown(handshakeFd_, SHUT_RDWR);
      cv_.notify_all();
      connectedCv_.notify_all();
    }
    budget_->Wake();
    for (ClientCall* c : queued) Finish(c, why);
    for (auto& [id, p] : pending) {
      budget_->Give(p.budgetBytes);
      Finish(p.call, why);
    }
  }

  void SendLoop() {
    UniqueFd fd;
    Status s = ConnectTcp(address_, options_.connectTimeoutMs, &fd);
    if (s.ok() && options_.credentials.present()) {
      {  // Close() during the handshake shuts this socket, so the handshake ends at once.
        std::lock_guard<std::mutex> lock(mu_);
        if (dead_) return;
        handshakeFd_ = fd.get();
      }
      s = AuthenticateToServer(fd.get(), options_.credentials, options_.connectTimeoutMs, false, &cipher_);
      std::lock_guard<std::mutex> lock(mu_);
      handshakeFd_ = -1;  // before fd may close below
    }
    if (!s.ok()) {
      Fail(s.code() == StatusCode::kAuth || s.code() == StatusCode::kEncryption
               ? Status(s.code(), address_ + ": " + s.message()) : s);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (dead_) return;
      fd_ = std::move(fd);
      connectedCv_.notify_all();
    }
    counters_->connectionsOpened++;
    for (;;) {
      ClientCall* call;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return dead_ || !queue_.empty(); });
        if (dead_) return;
        call = queue_.front();
        queue_.pop_front();
      }
      uint64_t bytes = call->bytesInFlight();
      if (!budget_->Take(bytes, dead_)) {  // the client closed, or this connection died
        Finish(call, DeadReasonOr(Status::Closed("client closed")));
        continue;
      }
      frame::Header h;
      h.opcode = call->opcode;
      h.requestId = nextRequestId_++;
      h.metaBytes = static_cast<uint32_t>(call->meta.size());
      h.dataBytes = call->payloadBytes;
      uint8_t header[frame::kHeaderBytes];
      h.EncodeTo(header);
      Status deadReason;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (dead_) deadReason = deadReason_;
        else pending_[h.requestId] = {call, Clock::now() + std::chrono::milliseconds(call->timeoutMs),
                                      bytes, true};
      }
      if (!deadReason.ok()) {
        budget_->Give(bytes);
        Finish(call, deadReason);
        continue;
      }
      struct iovec iov[3] = {{header, sizeof header},
                             {call->meta.data(), call->meta.size()},
                             {const_cast<char*>(call->payload), call->payloadBytes}};
      uint64_t sent = sizeof header + call->meta.size() + call->payloadBytes;
      if (cipher_) {  // each part sealed as one record (transport/auth_handshake.h)
        sent += SealFrame(iov, 3);
        s = WritevAll(fd_.get(), iov, 1, call->timeoutMs);
      } else {
        s = WritevAll(fd_.get(), iov, 3, call->timeoutMs);
      }
      if (!s.ok()) {
        Fail(Status::ConnReset("send to " + address_ + ": " + s.message()));
        return;
      }
      {  // From here the call may complete (and be freed) at any time: touch it no more.
        std::lock_guard<std::mutex> lock(mu_);
        auto it = pending_.find(h.requestId);
        if (it != pending_.end()) it->second.sending = false;
      }
      counters_->bytesSent += sent;
      counters_->messagesSent++;
    }
  }

  // Copies the parts (empty ones skipped, as their records) into sealBuf_, each followed by
  // its tag, seals them, and points iov[0] at the result. Returns the bytes the tags add.
  uint64_t SealFrame(struct iovec* iov, int count) {
    size_t total = 0;
    for (int i = 0; i < count; i++) total += iov[i].iov_len == 0 && i > 0 ? 0 : iov[i].iov_len + kAeadTagBytes;
    sealBuf_.resize(total);
    size_t at = 0;
    uint64_t tags = 0;
    for (int i = 0; i < count; i++) {
      if (iov[i].iov_len == 0 && i > 0) continue;
      std::memcpy(sealBuf_.data() + at, iov[i].iov_base, iov[i].iov_len);
      cipher_->Seal(sealBuf_.data() + at, iov[i].iov_len);
      at += iov[i].iov_len + kAeadTagBytes;
      tags += kAeadTagBytes;
    }
    iov[0] = {sealBuf_.data(), total};
    return tags;
  }

  // Reads one sealed record of n bytes (then its tag) into openBuf_ and opens it there.
  Status ReadRecord(size_t n, uint32_t timeoutMs, const QuietTick& onQuietTick) {
    openBuf_.resize(n + kAeadTagBytes);
    MP_RETURN_IF_ERROR(ReadExact(fd_.get(), openBuf_.data(), openBuf_.size(), timeoutMs, false, onQuietTick));
    return cipher_->Open(openBuf_.data(), n);
  }

  // The receiver thread until the sender connected and authenticated (true) or the connection
  // died (false). Meanwhile, calls queued here that their callers abandoned (a hedge won
  // elsewhere) end each tick, not after a connect and handshake that a paused server lets run
  // for the whole connect timeout.
  bool AwaitConnected() {
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (connectedCv_.wait_for(lock, std::chrono::milliseconds(limits::kTimerTickMs),
                                  [this] { return dead_ || fd_.valid(); }))
          return !dead_;
      }
      ExpireDeadlines();
    }
  }

  // Fails calls whose deadline passed or that were abandoned. Their late replies are
  // discarded on arrival. An abandoned call still being written (a peer that stopped reading)
  // cannot complete while the sender reads its buffers: the socket is shut instead, so the
  // sender's write fails and the connection fails every call on it.
  void ExpireDeadlines() {
    std::vector<Pending> expired;
    std::vector<ClientCall*> dropped;
    auto now = Clock::now();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = pending_.begin(); it != pending_.end();) {
        const bool abandoned = it->second.call->abandoned();
        if ((it->second.deadline <= now || abandoned) && !it->second.sending) {
          expired.push_back(it->second);
          it = pending_.erase(it);
        } else {
          if (abandoned && fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
          ++it;
        }
      }
      for (auto it = queue_.begin(); it != queue_.end();) {  // not sent yet
        if ((*it)->abandoned()) {
          dropped.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& p : expired) {
      budget_->Give(p.budgetBytes);
      Finish(p.call, p.call->abandoned() ? Status::TimedOut("request to " + address_ + " abandoned")
                                         : Status::TimedOut("no reply from " + address_ + " within " +
                                                            std::to_string(p.call->timeoutMs) + " ms"));
    }
    for (ClientCall* c : dropped) Finish(c, Status::TimedOut("request to " + address_ + " abandoned"));
  }

  Status ReceiveOne() {
    uint8_t raw[frame::kHeaderBytes];
    // Wait for the next reply in ticks so deadlines are checked while idle, and at least
    // once a tick while busy.
    for (;;) {
      if (Clock::now() - lastExpiry_ >= std::chrono::milliseconds(limits::kTimerTickMs)) {
        ExpireDeadlines();
        lastExpiry_ = Clock::now();
      }
      Status s = ReadExact(fd_.get(), raw, 1, limits::kTimerTickMs, false);
      if (s.ok()) break;
      if (s.code() != StatusCode::kTimedOut) return s;
    }
    if (cipher_) {  // the header's record: its first byte is in raw
      openBuf_.resize(sizeof raw + kAeadTagBytes);
      openBuf_[0] = raw[0];
      MP_RETURN_IF_ERROR(ReadExact(fd_.get(), openBuf_.data() + 1, openBuf_.size() - 1, limits::kClientTimeoutMsDefault, false));
      MP_RETURN_IF_ERROR(cipher_->Open(openBuf_.data(), sizeof raw));
      std::memcpy(raw, openBuf_.data(), sizeof raw);
      return ReceiveSealed(raw);
    }
    MP_RETURN_IF_ERROR(ReadExact(fd_.get(), raw + 1, sizeof raw - 1, limits::kClientTimeoutMsDefault, false));
    frame::Header h;
    MP_RETURN_IF_ERROR(frame::Header::Decode(raw, &h));
    if (!(h.flags & frame::kFlagReply)) return Status::Protocol("server sent a request frame");
    Pending p{nullptr, {}, 0, false};
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(h.requestId);
      if (it != pending_.end()) {
        p = it->second;
        pending_.erase(it);
      }
    }
    uint32_t timeoutMs = limits::kClientTimeoutMsDefault;
    ClientCall* call = p.call;  // null: timed out or abandoned earlier, its reply drained and dropped
    // A quiet tick mid-reply (a server paused while sending) expires the connection's other
    // calls, whose deadlines and abandons it must not hold for the request timeout. It ends
    // the connection once nobody waits for this reply: dropped, or its caller abandoned it (a
    // hedge won). The call itself cannot end sooner: its reply is written into its buffers.
    const QuietTick stalled = [this, call] {
      ExpireDeadlines();
      return call == nullptr || call->abandoned();
    };
    if (call == nullptr) return SkipExact(fd_.get(), uint64_t{h.metaBytes} + h.dataBytes, timeoutMs, stalled);
    call->replyMeta.assign(h.metaBytes, '\0');
    Status s = ReadExact(fd_.get(), call->replyMeta.data(), h.metaBytes, timeoutMs, false, stalled);
    uint64_t capacity = 0;
    for (const auto& v : call->replyData) capacity += v.iov_len;
    if (s.ok() && h.dataBytes > capacity)
      s = Status::Protocol("reply of " + std::to_string(h.dataBytes) + " bytes for a " +
                           std::to_string(capacity) + "-byte buffer");
    if (s.ok() && h.dataBytes > 0) {
      std::vector<struct iovec> iov;
      uint64_t left = h.dataBytes;
      for (const auto& v : call->replyData) {
        if (left == 0) break;
        size_t n = v.iov_len < left ? v.iov_len : left;
        PrefaultForWrite(v.iov_base, n);
        iov.push_back({v.iov_base, n});
        left -= n;
      }
      s = ReadvExact(fd_.get(), iov.data(), static_cast<int>(iov.size()), timeoutMs, stalled);
    }
    budget_->Give(p.budgetBytes);
    if (!s.ok()) {
      Finish(call, DeadReasonOr(s));  // a Close() that shut the socket mid-reply is the cause
      return s;
    }
    return CompleteReply(call, h);
  }

  // The rest of an encrypted reply whose header (opened) is in raw: the meta's record, then
  // the data's, each opened before a byte of it reaches the caller.
  Status ReceiveSealed(const uint8_t* raw) {
    frame::Header h;
    MP_RETURN_IF_ERROR(frame::Header::Decode(raw, &h));
    if (!(h.flags & frame::kFlagReply)) return Status::Protocol("server sent a request frame");
    if (h.metaBytes > limits::kFrameMetaBytesMax || h.dataBytes > limits::kFrameDataBytesMax)
      return Status::Protocol("reply larger than a frame may be");
    const uint32_t timeoutMs = limits::kClientTimeoutMsDefault;
    // As in ReceiveOne, but the records land in openBuf_, not in the call's buffers: the call
    // stays pending, so a quiet tick may expire it too, and then nobody waits for the rest.
    const QuietTick stalled = [this, id = h.requestId] {
      ExpireDeadlines();
      std::lock_guard<std::mutex> lock(mu_);
      return pending_.count(id) == 0;
    };
    std::string meta;
    if (h.metaBytes > 0) {
      MP_RETURN_IF_ERROR(ReadRecord(h.metaBytes, timeoutMs, stalled));
      meta.assign(reinterpret_cast<const char*>(openBuf_.data()), h.metaBytes);
    }
    if (h.dataBytes > 0) MP_RETURN_IF_ERROR(ReadRecord(h.dataBytes, timeoutMs, stalled));
    Pending p{nullptr, {}, 0, false};
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = pending_.find(h.requestId);
      if (it != pending_.end()) {
        p = it->second;
        pending_.erase(it);
      }
    }
    if (p.call == nullptr) return Status::OK();  // timed out earlier: dropped
    ClientCall* call = p.call;
    call->replyMeta = std::move(meta);
    uint64_t capacity = 0;
    for (const auto& v : call->replyData) capacity += v.iov_len;
    budget_->Give(p.budgetBytes);
    if (h.dataBytes > capacity) {
      Status s = Status::Protocol("reply of " + std::to_string(h.dataBytes) + " bytes for a " +
                                  std::to_string(capacity) + "-byte buffer");
      Finish(call, s);
      return s;
    }
    uint64_t at = 0;
    for (const auto& v : call->replyData) {
      if (at == h.dataBytes) break;
      size_t n = std::min<uint64_t>(v.iov_len, h.dataBytes - at);
      std::memcpy(v.iov_base, openBuf_.data() + at, n);
      at += n;
    }
    return CompleteReply(call, h);
  }

  // A reply read whole into `call` (plain or opened): counted, its status set, the call finished.
  Status CompleteReply(ClientCall* call, const frame::Header& h) {
    counters_->bytesReceived += frame::kHeaderBytes + h.metaBytes + h.dataBytes;
    counters_->messagesReceived++;
    call->replyDataBytes = h.dataBytes;
    if (h.status != 0) {
      call->status = Status(Status::CodeFromWire(h.status), call->replyMeta);
      call->replyMeta.clear();
    }
    Finish(call, Status::OK());
    return Status::OK();
  }

  void ReceiveLoop() {
    for (;;) {
      Status s = ReceiveOne();
      if (!s.ok()) {
        if (s.code() == StatusCode::kConnReset && s.message() == "closed")
          s = Status::ConnReset("connection to " + address_ + " closed by the server");
        else if (s.code() != StatusCode::kConnReset)
          s = Status(s.code(), "reply from " + address_ + ": " + s.message());
        Fail(s);
        return;
      }
    }
  }

  const std::string address_;
  const ClientTransportOptions options_;
  InflightBudget* budget_;
  TransportCounters* counters_;
  std::atomic<uint32_t>* queued_;
  std::thread sender_, receiver_;
  std::atomic<bool> dead_{false};
  uint64_t nextRequestId_ = 1;  // sender thread only
  Clock::time_point lastExpiry_;  // receiver thread only
  std::mutex mu_;
  std::condition_variable cv_;                    // the sender's: calls queued, or dead
  std::condition_variable connectedCv_;           // the receiver's: fd_ set, or dead
  UniqueFd fd_;                                   // set once by the sender thread
  int handshakeFd_ = -1;                          // GUARDED_BY(mu_): the socket while it authenticates
  std::unique_ptr<FrameCipher> cipher_;           // set before fd_; null: frames in the clear
  std::vector<uint8_t> sealBuf_;                  // sender thread only
  std::vector<uint8_t> openBuf_;                  // receiver thread only
  Status deadReason_;                             // GUARDED_BY(mu_): why dead_ became true
  std::deque<ClientCall*> queue_;                 // GUARDED_BY(mu_)
  std::unordered_map<uint64_t, Pending> pending_; // GUARDED_BY(mu_)
};

class TcpClientTransport : public ClientTransport {
 public:
  explicit TcpClientTransport(const ClientTransportOptions& options)
      : options_(options), budget_(options.inflightBytesMax) {}
  ~TcpClientTransport() override { Close(); }

  void Submit(const std::string& address, ClientCall* call) override {
    if (queued_.fetch_add(1) >= limits::kClientQueuedCallsMax) {
      call->status = Status::Busy("more than " + std::to_string(limits::kClientQueuedCallsMax) +
                                  " calls queued");
      queued_--;
      call->done(call);
      return;
    }
    std::shared_ptr<TcpClientConnection> conn, dead;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) {
        queued_--;
        call->status = Status::Closed("client closed");
        call->done(call);
        return;
      }
      if (connections_.size() >= limits::kClientServersMax && connections_.count(address) == 0) {
        queued_--;
        call->status = Status::Busy("more than " + std::to_string(limits::kClientServersMax) + " servers");
        call->done(call);
        return;
      }
      auto& slots = connections_[address];
      uint32_t n = options_.connectionsPerServer == 0 ? 1 : options_.connectionsPerServer;
      if (n > limits::kClientConnectionsPerServerMax) n = limits::kClientConnectionsPerServerMax;
      if (slots.size() < n) slots.resize(n);
      auto& slot = slots[nextSlot_++ % n];
      if (!slot || slot->dead()) {
        dead = std::move(slot);
        slot = std::make_shared<TcpClientConnection>(address, options_, &budget_, &counters_, &queued_);
      }
      conn = slot;
    }
    if (dead) dead->Close(Status::ConnReset("replaced"));  // its threads are already exiting
    conn->Enqueue(call);
  }

  void Close() override {
    std::map<std::string, std::vector<std::shared_ptr<TcpClientConnection>>> conns;
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      conns.swap(connections_);
    }
    budget_.Close();
    for (auto& [addr, slots] : conns)
      for (auto& c : slots)
        if (c) c->Close(Status::Closed("client closed"));
  }

  TransportKind kind() const override { return TransportKind::kTcp; }
  const TransportCounters& counters() const override { return counters_; }

 private:
  const ClientTransportOptions options_;
  InflightBudget budget_;
  TransportCounters counters_;
  std::atomic<uint32_t> queued_{0};
  std::mutex mu_;
  bool closed_ = false;  // GUARDED_BY(mu_)
  uint64_t nextSlot_ = 0;
  std::map<std::string, std::vector<std::shared_ptr<TcpClientConnection>>> connections_;  // GUARDED_BY(mu_)
};

}  // namespace

std::unique_ptr<ClientTransport> NewTcpClientTransport(const ClientTransportOptions& options) {
  return std::make_unique<TcpClientTransport>(options);
}

}  // namespace millpond
