// TCP server transport: one accept thread, one receive thread per connection (blocking
// sockets; a storage server has tens of connections, not thousands), replies written by
// whichever thread answers the call, serialised per connection.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <list>
#include <mutex>
#include <thread>

#include "common/aead.h"
#include "common/crc32c.h"
#include "common/limits.h"
#include "common/log.h"
#include "transport/rdma/rdma_transport.h"
#include "transport/socket_io.h"
#include "transport/transport.h"

namespace millpond {

namespace {

constexpr uint32_t kReplySendTimeoutMs = 30000;

class TcpConnection {
 public:
  TcpConnection(UniqueFd fd, TransportCounters* counters)
      : fd_(std::move(fd)), counters_(counters) {}
  int fd() const { return fd_.get(); }
  const PeerIdentity& peer() const { return peer_; }
  void set_peer(const PeerIdentity& p) { peer_ = p; }  // before the first call is made
  // Before the first call is made; null: frames in the clear.
  void set_cipher(std::unique_ptr<FrameCipher> c) { cipher_ = std::move(c); }
  FrameCipher* cipher() const { return cipher_.get(); }  // the receive thread opens with it

  // Sends one reply frame; a failure shuts the socket so the receive thread ends.
  void SendReply(const frame::Header& request, const Status& status, const std::string& meta,
                 const struct iovec* data, int dataCount) {
    frame::Header h;
    h.opcode = request.opcode;
    h.flags = frame::kFlagReply;
    h.requestId = request.requestId;
    h.status = static_cast<int32_t>(status.code());
    std::string message;
    const std::string* m = &meta;
    if (!status.ok()) {
      message = status.message().substr(0, limits::kErrorMessageBytesMax);
      m = &message;
      dataCount = 0;
    }
    h.metaBytes = static_cast<uint32_t>(m->size());
    uint64_t dataBytes = 0;
    for (int i = 0; i < dataCount; i++) dataBytes += data[i].iov_len;
    h.dataBytes = static_cast<uint32_t>(dataBytes);
    uint8_t header[frame::kHeaderBytes];
    h.EncodeTo(header);
    std::vector<struct iovec> iov;
    iov.reserve(2 + dataCount);
    iov.push_back({header, sizeof header});
    iov.push_back({const_cast<char*>(m->data()), m->size()});
    for (int i = 0; i < dataCount; i++) iov.push_back(data[i]);
    std::lock_guard<std::mutex> lock(sendMu_);
    if (broken_) return;
    uint64_t tags = 0;
    if (cipher_) {  // header, meta, data: a sealed record each (empty meta or data: none)
      size_t metaAt = sizeof header + kAeadTagBytes;
      size_t dataAt = metaAt + (m->empty() ? 0 : m->size() + kAeadTagBytes);
      sealBuf_.resize(dataAt + (dataBytes == 0 ? 0 : dataBytes + kAeadTagBytes));
      std::memcpy(sealBuf_.data(), header, sizeof header);
      cipher_->Seal(sealBuf_.data(), sizeof header);
      if (!m->empty()) {
        std::memcpy(sealBuf_.data() + metaAt, m->data(), m->size());
        cipher_->Seal(sealBuf_.data() + metaAt, m->size());
      }
      if (dataBytes > 0) {
        size_t at = dataAt;
        for (int i = 0; i < dataCount; i++) {
          std::memcpy(sealBuf_.data() + at, data[i].iov_base, data[i].iov_len);
          at += data[i].iov_len;
        }
        cipher_->Seal(sealBuf_.data() + dataAt, dataBytes);
      }
      tags = sealBuf_.size() - sizeof header - m->size() - dataBytes;
      iov.assign(1, {sealBuf_.data(), sealBuf_.size()});
    }
    Status s = WritevAll(fd_.get(), iov.data(), static_cast<int>(iov.size()), kReplySendTimeoutMs);
    if (!s.ok()) {
      broken_ = true;
      ::shutdown(fd_.get(), SHUT_RDWR);
      return;
    }
    counters_->bytesSent += sizeof header + m->size() + dataBytes + tags;
    counters_->messagesSent++;
  }

  // Sends an OK reply whose data the kernel moves from `fileFd` (sendfile). REQUIRES: no
  // cipher (a sealed reply must pass through Seal).
  void SendReplyFromFile(const frame::Header& request, const std::string& meta, int fileFd, uint64_t offset,
                         uint32_t bytes) {
    frame::Header h;
    h.opcode = request.opcode;
    h.flags = frame::kFlagReply;
    h.requestId = request.requestId;
    h.metaBytes = static_cast<uint32_t>(meta.size());
    h.dataBytes = bytes;
    uint8_t header[frame::kHeaderBytes];
    h.EncodeTo(header);
    struct iovec iov[2] = {{header, sizeof header}, {const_cast<char*>(meta.data()), meta.size()}};
    std::lock_guard<std::mutex> lock(sendMu_);
    if (broken_) return;
    Status s = WritevAll(fd_.get(), iov, 2, kReplySendTimeoutMs);
    if (s.ok()) s = SendfileAll(fd_.get(), fileFd, offset, bytes, kReplySendTimeoutMs);
    if (!s.ok()) {  // the frame is cut: the client sees the connection end and retries
      broken_ = true;
      ::shutdown(fd_.get(), SHUT_RDWR);
      return;
    }
    counters_->bytesSent += sizeof header + meta.size() + bytes;
    counters_->messagesSent++;
  }

  void Shutdown() { ::shutdown(fd_.get(), SHUT_RDWR); }
  UniqueFd ReleaseFd() { return std::move(fd_); }

 private:
  UniqueFd fd_;
  PeerIdentity peer_;
  TransportCounters* counters_;
  std::unique_ptr<FrameCipher> cipher_;
  std::mutex sendMu_;
  bool broken_ = false;           // GUARDED_BY(sendMu_)
  std::vector<uint8_t> sealBuf_;  // GUARDED_BY(sendMu_)
};

class TcpServerCall : public ServerCall {
 public:
  TcpServerCall(std::shared_ptr<TcpConnection> conn, const frame::Header& h, std::string meta,
                AlignedBuffer payload)
      : conn_(std::move(conn)), header_(h), meta_(std::move(meta)), payload_(std::move(payload)) {}
  ~TcpServerCall() override {
    if (!replied_) Reply(Status::Internal("request dropped without a reply"), {}, nullptr, 0);
  }
  const frame::Header& header() const override { return header_; }
  const uint8_t* meta() const override { return reinterpret_cast<const uint8_t*>(meta_.data()); }
  Status TakePayload(AlignedBuffer* out) override {
    *out = std::move(payload_);
    return Status::OK();
  }
  void Reply(const Status& status, const std::string& meta, const struct iovec* data,
             int dataCount) override {
    replied_ = true;
    conn_->SendReply(header_, status, meta, data, dataCount);
  }
  bool CanSendFile() const override { return conn_->cipher() == nullptr; }
  void ReplyFromFile(const std::string& meta, int fd, uint64_t offset, uint32_t bytes) override {
    replied_ = true;
    conn_->SendReplyFromFile(header_, meta, fd, offset, bytes);
  }
  TransportKind kind() const override { return TransportKind::kTcp; }
  const PeerIdentity& peer() const override { return conn_->peer(); }

 private:
  std::shared_ptr<TcpConnection> conn_;
  frame::Header header_;
  std::string meta_;
  AlignedBuffer payload_;
  bool replied_ = false;
};

class TcpServerTransport : public ServerTransport {
 public:
  ~TcpServerTransport() override { Stop(); }

  Status Start(const ServerTransportOptions& options, CallHandler* handler) override {
    options_ = options;
    handler_ = handler;
    MP_RETURN_IF_ERROR(ListenTcp(options.host, options.port, &listenFd_, &port_));
    acceptThread_ = std::thread([this] { AcceptLoop(); });
    return Status::OK();
  }

  uint16_t port() const override { return port_; }
  TransportKind kind() const override { return TransportKind::kTcp; }
  const TransportCounters& counters() const override { return counters_; }

  void Stop() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      for (auto& c : connections_) c->Shutdown();
    }
    if (listenFd_.valid()) ::shutdown(listenFd_.get(), SHUT_RDWR);
    if (acceptThread_.joinable()) acceptThread_.join();
    std::unique_lock<std::mutex> lock(mu_);
    receiversDone_.wait(lock, [this] { return receivers_ == 0; });
    listenFd_.Reset();
  }

 private:
  void AcceptLoop() {
    for (;;) {
      int fd = ::accept4(listenFd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE) {  // out of descriptors: back off, keep serving
          std::this_thread::sleep_for(std::chrono::milliseconds(limits::kTimerTickMs));
          continue;
        }
        return;  // listener shut down
      }
      SetDataSocketOptions(fd);
      auto conn = std::make_shared<TcpConnection>(UniqueFd(fd), &counters_);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || connections_.size() >= options_.connectionsMax) continue;  // conn closes
      connections_.push_back(conn);
      auto it = std::prev(connections_.end());
      receivers_++;
      std::thread([this, conn, it] { ReceiveLoop(conn, it); }).detach();
      counters_.connectionsOpened++;
    }
  }

  // Answers a frame that cannot be served, then the connection ends (its framing is lost).
  void RejectFrame(TcpConnection* conn, const uint8_t* raw, const Status& why) {
    counters_.protocolErrors++;
    frame::Header h;
    std::memcpy(&h.requestId, raw + 8, 8);  // best effort: the id the peer probably sent
    h.opcode = raw[5] >= 1 && raw[5] <= frame::kOpcodeMax ? raw[5] : uint8_t{frame::kPing};  // keep the reply decodable
    conn->SendReply(h, why, {}, nullptr, 0);
  }

  // Receives a frame's payload into one buffer of the pool, taking budget as the bytes
  // arrive (at most kServerReceiveAheadBytes ahead of them), never for bytes merely announced:
  // a peer that announces a large write and sends nothing holds no memory others need.
  // The whole payload must arrive within frameTimeoutMs of its first byte.
  // *noMemory: the failure is the pool's (no budget in time, or too large), not the socket's.
  Status ReceivePayload(int fd, uint32_t bytes, AlignedBuffer* out, bool* noMemory) {
    BufferPool* pool = options_.buffers;
    if (bytes > pool->bytesMax()) {
      *noMemory = true;
      return Status::TooLarge("payload of " + std::to_string(bytes) + " bytes exceeds the server's buffers");
    }
    char first;
    // Nothing is taken before the first byte (within the frame deadline, as the meta was).
    MP_RETURN_IF_ERROR(ReadExact(fd, &first, 1, options_.frameTimeoutMs, false));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.frameTimeoutMs);
    auto remainingMs = [&deadline] {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
      return static_cast<uint32_t>(std::max<int64_t>(left, 1));
    };
    Status s = pool->AcquireCharged(bytes, std::min<size_t>(bytes, limits::kServerReceiveAheadBytes), remainingMs(), out);
    if (!s.ok()) return *noMemory = true, s;
    out->data()[0] = first;
    size_t got = 1;
    while (got < bytes) {
      size_t upTo = std::min<size_t>(bytes, got + limits::kServerReceiveAheadBytes);
      s = pool->Charge(out, upTo, remainingMs());
      if (!s.ok()) return *noMemory = true, s;
      MP_RETURN_IF_ERROR(ReadExact(fd, out->data() + got, upTo - got, remainingMs(), false));
      got = upTo;
    }
    return Status::OK();
  }

  // Reads a new connection's first 4 bytes (into raw) and, when the server has a secret,
  // runs the handshake and reads the 4 after it. False when the connection must close: it
  // did not authenticate (logged; a request frame sent instead is answered with kAuth).
  bool Authenticate(TcpConnection* conn, uint8_t* raw, uint32_t* magic) {
    // Without a secret an idle new connection is fine; with one it must authenticate now.
    if (!ReadExact(conn->fd(), raw, 4, options_.frameTimeoutMs, !options_.auth).ok()) return false;
    std::memcpy(magic, raw, 4);
    if (!options_.auth) {
      if (*magic != kAuthHelloMagic) return true;
      RefuseHandshake(conn->fd(), Status::Auth("this data server has no cluster secret: authentication is off"),
                      options_.frameTimeoutMs);
      return false;
    }
    Status s;
    PeerIdentity peer;
    bool rdma = false;
    std::unique_ptr<FrameCipher> cipher;
    if (*magic == kAuthHelloMagic) {
      s = AuthenticateClient(conn->fd(), *options_.auth, options_.frameTimeoutMs, &peer, &rdma, &cipher);
    } else {
      s = Status::Auth("connection did not authenticate before its first request");
      if (*magic == frame::kMagic &&
          ReadExact(conn->fd(), raw + 4, frame::kHeaderBytes - 4, options_.frameTimeoutMs, false).ok()) {
        RejectFrame(conn, raw, s);  // the raw client gets a decodable EAUTH reply
      }
    }
    if (!s.ok()) {
      counters_.authFailures++;
      LogWarning("data server: refused a connection from " + PeerAddress(conn->fd()) + ": " + s.ToString());
      return false;
    }
    conn->set_peer(peer);
    conn->set_cipher(std::move(cipher));
    if (!ReadExact(conn->fd(), raw, 4, options_.frameTimeoutMs, true).ok()) return false;
    std::memcpy(magic, raw, 4);
    // A peer that announced an RDMA set-up gets nothing else on this (unencrypted) socket.
    if (rdma && *magic != kRdmaHandshakeMagic) {
      counters_.protocolErrors++;
      LogWarning("data server: " + peer.ToString() + " announced an RDMA set-up and sent something else; closed");
      return false;
    }
    return true;
  }

  // Reads the rest of a sealed record whose first `have` bytes are in dst, then its tag, and
  // opens it in place. dst has room for n + kAeadTagBytes. A record that fails to open
  // (altered on the way) is logged; the connection then ends.
  Status ReadRecord(TcpConnection* conn, uint8_t* dst, size_t n, size_t have) {
    MP_RETURN_IF_ERROR(ReadExact(conn->fd(), dst + have, n + kAeadTagBytes - have, options_.frameTimeoutMs, false));
    Status s = conn->cipher()->Open(dst, n);
    if (!s.ok()) {
      counters_.authFailures++;
      LogWarning("data server: refused a frame from " + conn->peer().ToString() + " at " + PeerAddress(conn->fd()) +
                 ": " + s.ToString());
    }
    return s;
  }

  // One encrypted request whose header record begins with the 4 bytes in raw (when `have`
  // is 4) or with none (0). False when the connection must end.
  bool ReceiveSealed(const std::shared_ptr<TcpConnection>& conn, uint8_t* raw, size_t have) {
    uint8_t record[frame::kHeaderBytes + kAeadTagBytes];
    std::memcpy(record, raw, have);
    if (have == 0) {
      if (!ReadExact(conn->fd(), record, 1, options_.frameTimeoutMs, true).ok()) return false;
      have = 1;
    }
    if (!ReadRecord(conn.get(), record, frame::kHeaderBytes, have).ok()) return false;
    std::memcpy(raw, record, frame::kHeaderBytes);
    frame::Header h;
    Status s = frame::Header::Decode(raw, &h);
    if (s.ok() && (h.flags & frame::kFlagReply)) s = Status::Protocol("a reply frame sent to a server");
    if (!s.ok()) {
      RejectFrame(conn.get(), raw, s);
      return false;
    }
    std::string meta;
    if (h.metaBytes > 0) {
      std::string sealed(h.metaBytes + kAeadTagBytes, '\0');
      if (!ReadRecord(conn.get(), reinterpret_cast<uint8_t*>(sealed.data()), h.metaBytes, 0).ok()) return false;
      meta.assign(sealed.data(), h.metaBytes);
    }
    AlignedBuffer payload;
    if (h.dataBytes > 0) {
      // The payload arrives into the pool as in the clear (budget taken as bytes arrive), then
      // its tag; it is opened in place before the handler sees it.
      bool noMemory = false;
      s = ReceivePayload(conn->fd(), h.dataBytes, &payload, &noMemory);
      if (noMemory) RejectFrame(conn.get(), raw, s);
      if (!s.ok()) return false;
      uint8_t tag[kAeadTagBytes];
      if (!ReadExact(conn->fd(), tag, sizeof tag, options_.frameTimeoutMs, false).ok()) return false;
      s = conn->cipher()->OpenDetached(reinterpret_cast<uint8_t*>(payload.data()), h.dataBytes, tag);
      if (!s.ok()) {
        counters_.authFailures++;
        LogWarning("data server: refused a frame from " + conn->peer().ToString() + " at " + PeerAddress(conn->fd()) +
                   ": " + s.ToString());
        RejectFrame(conn.get(), raw, s);  // its header opened: the sender hears which request failed
        return false;
      }
    }
    counters_.bytesReceived += sizeof record + h.metaBytes + h.dataBytes;
    counters_.messagesReceived++;
    handler_->OnCall(std::make_unique<TcpServerCall>(conn, h, std::move(meta), std::move(payload)));
    return true;
  }

  void ReceiveLoop(std::shared_ptr<TcpConnection> conn,
                   std::list<std::shared_ptr<TcpConnection>>::iterator self) {
    bool first = true;
    for (;;) {
      uint8_t raw[frame::kHeaderBytes];
      if (first) {  // a new connection authenticates, then may ask for RDMA instead of TCP framing
        uint32_t magic;
        if (!Authenticate(conn.get(), raw, &magic)) break;
        if (magic == kRdmaHandshakeMagic && !conn->cipher()) {
          if (options_.upgrade) options_.upgrade(conn->ReleaseFd(), conn->peer());
          break;
        }
        first = false;
        if (conn->cipher()) {  // every frame sealed from here on
          if (!ReceiveSealed(conn, raw, 4)) break;
          while (ReceiveSealed(conn, raw, 0)) {
          }
          break;
        }
        if (!ReadExact(conn->fd(), raw + 4, sizeof raw - 4, options_.frameTimeoutMs, false).ok()) break;
      } else if (!ReadExact(conn->fd(), raw, sizeof raw, options_.frameTimeoutMs, true).ok()) {
        break;
      }
      frame::Header h;
      Status s = frame::Header::Decode(raw, &h);
      if (s.ok() && (h.flags & frame::kFlagReply)) s = Status::Protocol("a reply frame sent to a server");
      if (!s.ok()) {
        RejectFrame(conn.get(), raw, s);
        break;
      }
      std::string meta(h.metaBytes, '\0');
      if (!ReadExact(conn->fd(), meta.data(), meta.size(), options_.frameTimeoutMs, false).ok()) break;
      AlignedBuffer payload;
      if (h.dataBytes > 0) {
        bool noMemory = false;
        s = ReceivePayload(conn->fd(), h.dataBytes, &payload, &noMemory);
        if (noMemory) RejectFrame(conn.get(), raw, s);  // the peer hears why; framing is lost
        if (!s.ok()) break;
      }
      counters_.bytesReceived += sizeof raw + h.metaBytes + h.dataBytes;
      counters_.messagesReceived++;
      handler_->OnCall(std::make_unique<TcpServerCall>(conn, h, std::move(meta), std::move(payload)));
    }
    conn->Shutdown();
    std::lock_guard<std::mutex> lock(mu_);
    connections_.erase(self);
    receivers_--;
    receiversDone_.notify_all();  // the last touch of `this`: Stop() may return after it
  }

  ServerTransportOptions options_;
  CallHandler* handler_ = nullptr;
  UniqueFd listenFd_;
  uint16_t port_ = 0;
  std::thread acceptThread_;
  TransportCounters counters_;
  std::mutex mu_;
  bool stopping_ = false;                                  // GUARDED_BY(mu_)
  std::list<std::shared_ptr<TcpConnection>> connections_;  // GUARDED_BY(mu_)
  int receivers_ = 0;                                      // GUARDED_BY(mu_)
  std::condition_variable receiversDone_;
};

}  // namespace

std::unique_ptr<ServerTransport> NewTcpServerTransport() {
  return std::make_unique<TcpServerTransport>();
}

}  // namespace millpond
