// The RDMA ClientTransport: one queue pair per server address, set up over TCP (magic, then
// Hello both ways), the TCP socket then kept as the liveness channel. A call's data goes
// through registered blocks of the client's pool: a write's payload is copied there for the
// server to RDMA READ; a read's reply is RDMA WRITTEN there by the server and copied out to
// the caller's buffers. Copying beats registering arbitrary JS memory per call: no pinning
// syscalls, no MR cache that could outlive a freed buffer.
#include "transport/rdma/rdma_config.h"

#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "transport/rdma/rdma_blocks.h"
#include "transport/rdma/rdma_chain.h"
#include "transport/rdma/rdma_device.h"
#include "transport/rdma/rdma_poller.h"
#include "transport/rdma/rdma_transport.h"
#include "transport/rdma/rdma_wire.h"
#include "transport/socket_io.h"

namespace millpond {
namespace rdma {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kDepth = limits::kRdmaQueueDepth;
constexpr uint32_t kSlotBytes = limits::kRdmaControlBytesMax;

uint64_t ReplyCapacity(const ClientCall* call) {
  uint64_t n = 0;
  for (const auto& v : call->replyData) n += v.iov_len;
  return n;
}

struct Pending {
  ClientCall* call;
  Clock::time_point deadline;
};

struct Slot {
  bool busy = false;
  ClientCall* call = nullptr;  // nullptr once timed out: the slot waits for the late reply
  Clock::time_point deadline;
  uint64_t requestId = 0;
  std::vector<uint32_t> blocks;
};

enum class ConnState { kConnecting, kReady, kDead };

struct Conn {
  std::string address;
  ConnState state = ConnState::kConnecting;
  Status deathStatus;
  UniqueFd socket;
  std::unique_ptr<QueuePair> qp;
  std::unique_ptr<Region> control;  // kDepth receive slots, then kDepth send slots
  Hello remote;
  std::vector<Slot> slots = std::vector<Slot>(kDepth);
  std::deque<Pending> pending;
  uint64_t nextRequestId = 1;
  char* recvSlot(uint32_t i) const { return control->base() + size_t{i} * kSlotBytes; }
  char* sendSlot(uint32_t j) const { return control->base() + size_t{kDepth + j} * kSlotBytes; }
};

using Completions = std::vector<ClientCall*>;

void Finish(ClientCall* call, Status s, Completions* done) {
  call->status = std::move(s);
  call->carriedBy = TransportKind::kRdma;
  done->push_back(call);
}

void RunDone(const Completions& done) {
  for (ClientCall* c : done) c->done(c);
}

class Client : public ClientTransport, public Poller::Handler {
 public:
  explicit Client(const ClientTransportOptions& options) : options_(options) {}
  ~Client() override { Close(); }
  void Submit(const std::string& address, ClientCall* call) override;
  void Close() override;
  TransportKind kind() const override { return TransportKind::kRdma; }
  const TransportCounters& counters() const override { return counters_; }

  void OnCompletions(void* cqContext, const ibv_wc* wcs, int count) override;
  void OnSocket(void* tag) override;
  void OnTick() override;
  void Reap() override;

 private:
  Status EnsureDeviceLocked();
  void Connect(std::shared_ptr<Conn> c);
  Status Handshake(Conn* c);
  Status PostRecv(Conn* c, uint32_t i);
  void DispatchLocked(Conn* c, Completions* done);
  void DispatchAllLocked(Completions* done);
  void KillLocked(Conn* c, const Status& why, Completions* done);
  void OnReplyLocked(Conn* c, uint32_t recv, uint32_t bytes, Completions* done);

  const ClientTransportOptions options_;
  TransportCounters counters_;
  std::mutex mu_;
  bool closed_ = false;                       // GUARDED_BY(mu_)
  bool deviceTried_ = false;                  // GUARDED_BY(mu_)
  Status deviceStatus_;                       // GUARDED_BY(mu_)
  std::unique_ptr<Device> device_;
  std::unique_ptr<Region> pool_;
  std::unique_ptr<BlockAllocator> blocks_;    // GUARDED_BY(mu_)
  Poller poller_;
  std::map<std::string, std::shared_ptr<Conn>> conns_;  // GUARDED_BY(mu_)
  std::map<Conn*, std::shared_ptr<Conn>> live_;         // GUARDED_BY(mu_): every un-reaped Conn
  std::vector<std::shared_ptr<Conn>> dying_;            // GUARDED_BY(mu_)
  std::vector<std::thread> connectors_;                 // GUARDED_BY(mu_)
  size_t queued_ = 0;                                   // GUARDED_BY(mu_): calls not yet done
  std::mt19937 psnRandom_{std::random_device{}()};
};

Status Client::EnsureDeviceLocked() {
  if (deviceTried_) return deviceStatus_;
  deviceTried_ = true;
  Status s = Device::Open(&device_);
  if (s.ok()) s = Region::Register(device_.get(), limits::kRdmaClientPoolBytesDefault, &pool_);
  if (s.ok()) {
    blocks_ = std::make_unique<BlockAllocator>(pool_->bytes(), limits::kRdmaBlockBytes);
    s = poller_.Start(device_.get(), this);
  }
  if (!s.ok() && s.code() != StatusCode::kNoDevice) s = Status::NoDevice("rdma client: " + s.ToString());
  deviceStatus_ = s;
  return s;
}

void Client::Submit(const std::string& address, ClientCall* call) {
  Completions done;
  {
    std::lock_guard<std::mutex> l(mu_);
    Status s;
    if (closed_) {
      s = Status::Closed("rdma client transport closed");
    } else if (call->meta.size() > limits::kFrameMetaBytesMax) {
      s = Status::TooLarge("request meta above the frame limit");
    } else if (call->payloadBytes > limits::kFrameDataBytesMax || ReplyCapacity(call) > limits::kFrameDataBytesMax) {
      s = Status::TooLarge("request data above the frame limit");
    } else if (queued_ >= limits::kClientQueuedCallsMax) {
      s = Status::Busy("rdma client: too many calls queued");
    } else {
      s = EnsureDeviceLocked();
    }
    if (!s.ok()) {
      Finish(call, s, &done);
    } else {
      std::shared_ptr<Conn>& c = conns_[address];
      if (!c || c->state == ConnState::kDead) {
        if (conns_.size() > limits::kClientServersMax) {
          conns_.erase(address);
          Finish(call, Status::Busy("rdma client: too many servers"), &done);
          goto out;
        }
        c = std::make_shared<Conn>();
        c->address = address;
        live_[c.get()] = c;
        connectors_.emplace_back([this, c] { Connect(c); });
      }
      queued_++;
      c->pending.push_back({call, Clock::now() + std::chrono::milliseconds(call->timeoutMs)});
      if (c->state == ConnState::kReady) DispatchLocked(c.get(), &done);
    }
  }
out:
  RunDone(done);
}

Status Client::PostRecv(Conn* c, uint32_t i) {
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(c->recvSlot(i));
  sge.length = kSlotBytes;
  sge.lkey = c->control->lkey();
  ibv_recv_wr wr{};
  wr.wr_id = MakeWrId(kWrRecv, i);
  wr.sg_list = &sge;
  wr.num_sge = 1;
  ibv_recv_wr* bad;
  int rc = ibv_post_recv(c->qp->qp(), &wr, &bad);
  return rc == 0 ? Status::OK() : Status::FromErrno(rc, "ibv_post_recv");
}

// Runs on a connector thread; the Conn is not visible to the event thread until kReady.
Status Client::Handshake(Conn* c) {
  UniqueFd fd;
  MP_RETURN_IF_ERROR(ConnectTcp(c->address, options_.connectTimeoutMs, &fd));
  if (options_.credentials.present()) {  // the queue pair is set up over an authenticated socket
    std::unique_ptr<FrameCipher> none;   // RDMA is not encrypted (README Security)
    MP_RETURN_IF_ERROR(AuthenticateToServer(fd.get(), options_.credentials, options_.connectTimeoutMs, true, &none));
  }
  MP_RETURN_IF_ERROR(QueuePair::Create(device_.get(), c, kDepth + 1, kDepth, &c->qp));
  MP_RETURN_IF_ERROR(Region::Register(device_.get(), size_t{2 * kDepth} * kSlotBytes, &c->control));
  uint32_t psn;
  {
    std::lock_guard<std::mutex> l(mu_);
    psn = psnRandom_() & 0xffffff;
  }
  Hello local = device_->LocalHello(c->qp->qpn(), psn, kDepth, kSlotBytes);
  uint8_t out[4 + kHelloBytes];
  std::memcpy(out, &kRdmaHandshakeMagic, 4);
  local.EncodeTo(out + 4);
  struct iovec iov{out, sizeof out};
  MP_RETURN_IF_ERROR(WritevAll(fd.get(), &iov, 1, limits::kRdmaHandshakeTimeoutMs));
  uint8_t in[kHelloBytes];
  Status s = ReadExact(fd.get(), in, sizeof in, limits::kRdmaHandshakeTimeoutMs, false);
  if (!s.ok()) {
    // A server without RDMA closes the socket (or answers with TCP framing): let `auto` fall back.
    return Status::NoDevice("server " + c->address + " did not accept RDMA: " + s.message());
  }
  MP_RETURN_IF_ERROR(Hello::Decode(in, sizeof in, &c->remote));
  if (c->remote.status != 0) {
    StatusCode code = Status::CodeFromWire(c->remote.status);
    return Status(code, std::string("server ") + c->address + " refused RDMA (" + Status::CodeName(code) + ")");
  }
  for (uint32_t i = 0; i < kDepth; i++) MP_RETURN_IF_ERROR(PostRecv(c, i));
  MP_RETURN_IF_ERROR(c->qp->Connect(local, c->remote));
  c->socket = std::move(fd);
  return Status::OK();
}

void Client::Connect(std::shared_ptr<Conn> c) {
  Status s = Handshake(c.get());
  Completions done;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_ && s.ok()) s = Status::Closed("rdma client transport closed");
    if (s.ok()) s = poller_.Watch(c->socket.get(), c.get());
    if (s.ok() && c->state == ConnState::kConnecting) {
      c->state = ConnState::kReady;
      counters_.connectionsOpened++;
      DispatchLocked(c.get(), &done);
    } else {
      KillLocked(c.get(), s, &done);
      live_.erase(c.get());
      dying_.push_back(c);  // Reap destroys what the handshake built
    }
  }
  RunDone(done);
}

void Client::DispatchLocked(Conn* c, Completions* done) {
  while (c->state == ConnState::kReady && !c->pending.empty()) {
    uint32_t j = 0;
    while (j < kDepth && c->slots[j].busy) j++;
    if (j == kDepth) return;
    ClientCall* call = c->pending.front().call;
    size_t dataBytes = std::max<uint64_t>(call->payloadBytes, ReplyCapacity(call));
    std::vector<uint32_t> blocks;
    Status s = blocks_->Allocate(dataBytes, &blocks);
    if (s.code() == StatusCode::kBusy) return;  // retried when blocks come back
    Slot& slot = c->slots[j];
    slot.deadline = c->pending.front().deadline;
    c->pending.pop_front();
    if (s.ok() && frame::kHeaderBytes + call->meta.size() + 8 + 16 * blocks.size() > c->remote.controlBytes)
      s = Status::TooLarge("request does not fit the server's control slot");
    if (!s.ok()) {
      blocks_->Free(blocks);
      queued_--;
      Finish(call, s, done);
      continue;
    }
    if (call->payloadBytes > 0) CopyToBlocks(pool_->base(), *blocks_, blocks, 0, call->payload, call->payloadBytes);
    std::vector<Segment> segs;
    for (size_t b = 0; b < blocks.size(); b++) {
      size_t len = std::min<size_t>(limits::kRdmaBlockBytes, dataBytes - b * limits::kRdmaBlockBytes);
      segs.push_back({reinterpret_cast<uintptr_t>(pool_->base() + blocks_->offsetOf(blocks[b])), pool_->rkey(),
                      static_cast<uint32_t>(len)});
    }
    frame::Header h;
    h.opcode = call->opcode;
    h.requestId = c->nextRequestId++;
    h.metaBytes = static_cast<uint32_t>(call->meta.size());
    h.dataBytes = call->payloadBytes;
    std::string msg(frame::kHeaderBytes, '\0');
    h.EncodeTo(reinterpret_cast<uint8_t*>(&msg[0]));
    msg += call->meta;
    PutDescriptor(&msg, segs);
    char* out = c->sendSlot(j);
    std::memcpy(out, msg.data(), msg.size());
    ibv_sge sge{};
    sge.addr = reinterpret_cast<uintptr_t>(out);
    sge.length = static_cast<uint32_t>(msg.size());
    sge.lkey = c->control->lkey();
    ibv_send_wr wr{};
    wr.wr_id = MakeWrId(kWrSend, j);
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    slot.busy = true;
    slot.call = call;
    slot.requestId = h.requestId;
    slot.blocks = std::move(blocks);
    ibv_send_wr* bad;
    int rc = ibv_post_send(c->qp->qp(), &wr, &bad);
    if (rc != 0) {
      KillLocked(c, Status::FromErrno(rc, "ibv_post_send"), done);
      return;
    }
    counters_.messagesSent++;
    counters_.bytesSent += msg.size() + call->payloadBytes;
  }
}

void Client::DispatchAllLocked(Completions* done) {
  for (auto& [address, c] : conns_)
    if (c->state == ConnState::kReady) DispatchLocked(c.get(), done);
}

void Client::KillLocked(Conn* c, const Status& why, Completions* done) {
  if (c->state == ConnState::kDead) return;
  bool wasReady = c->state == ConnState::kReady;
  c->state = ConnState::kDead;
  c->deathStatus = why;
  for (Slot& s : c->slots) {
    if (s.call) {
      queued_--;
      Finish(s.call, why, done);
      s.call = nullptr;
    }
  }
  for (Pending& p : c->pending) {
    queued_--;
    Finish(p.call, why, done);
  }
  c->pending.clear();
  auto it = conns_.find(c->address);
  if (it != conns_.end() && it->second.get() == c) conns_.erase(it);
  // A connection still in its handshake is its connector thread's: that thread reaps it.
  if (!wasReady) return;
  c->qp->Fail();
  auto live = live_.find(c);
  if (live != live_.end()) {
    dying_.push_back(live->second);
    live_.erase(live);
  }
}

void Client::Reap() {
  std::vector<std::shared_ptr<Conn>> dead;
  {
    std::lock_guard<std::mutex> l(mu_);
    dead.swap(dying_);
    for (auto& c : dead) {
      if (c->socket.valid()) poller_.Unwatch(c->socket.get());
      c->qp.reset();
      for (Slot& s : c->slots) {
        blocks_->Free(s.blocks);
        s.blocks.clear();
      }
    }
    if (!dead.empty()) {
      Completions done;
      DispatchAllLocked(&done);  // blocks came back
      // Calls completed by dispatch failures run below, after the lock.
      dead.clear();
      mu_.unlock();
      RunDone(done);
      mu_.lock();
    }
  }
}

void Client::OnSocket(void* tag) {
  Completions done;
  {
    std::lock_guard<std::mutex> l(mu_);
    KillLocked(static_cast<Conn*>(tag), Status::ConnReset("rdma peer closed the connection"), &done);
  }
  RunDone(done);
}

void Client::OnTick() {
  Completions done;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto now = Clock::now();
    for (auto& [raw, c] : live_) {
      for (Slot& s : c->slots) {
        if (s.call && (now >= s.deadline || s.call->abandoned())) {
          queued_--;
          Finish(s.call, Status::TimedOut(s.call->abandoned() ? "rdma call abandoned" : "rdma call timed out"), &done);
          s.call = nullptr;  // the slot and its blocks wait for the reply (or the connection's end)
        }
      }
      for (auto it = c->pending.begin(); it != c->pending.end();) {
        if (now >= it->deadline || it->call->abandoned()) {
          queued_--;
          Finish(it->call, Status::TimedOut(it->call->abandoned() ? "rdma call abandoned in the queue"
                                                                   : "rdma call timed out in the queue"), &done);
          it = c->pending.erase(it);
        } else {
          ++it;
        }
      }
    }
  }
  RunDone(done);
}

void Client::OnReplyLocked(Conn* c, uint32_t recv, uint32_t bytes, Completions* done) {
  ControlMessage msg;
  Status s = ParseControl(reinterpret_cast<const uint8_t*>(c->recvSlot(recv)), bytes, true, &msg);
  uint32_t j = 0;
  if (s.ok()) {
    while (j < kDepth && !(c->slots[j].busy && c->slots[j].requestId == msg.header.requestId)) j++;
    if (j == kDepth) s = Status::Protocol("rdma reply to an unknown request");
  }
  if (!s.ok()) {
    counters_.protocolErrors++;
    KillLocked(c, s, done);
    return;
  }
  Slot& slot = c->slots[j];
  const frame::Header& h = msg.header;
  counters_.messagesReceived++;
  counters_.bytesReceived += bytes + h.dataBytes;
  if (ClientCall* call = slot.call) {
    Status result;
    if (h.status != 0) {
      result = Status(Status::CodeFromWire(h.status), std::string(reinterpret_cast<const char*>(msg.meta), h.metaBytes));
    } else if (h.dataBytes > ReplyCapacity(call)) {
      result = Status::Protocol("rdma reply data larger than the reply buffers");
    } else {
      call->replyMeta.assign(reinterpret_cast<const char*>(msg.meta), h.metaBytes);
      size_t off = 0;
      for (const auto& v : call->replyData) {
        size_t n = std::min<size_t>(v.iov_len, h.dataBytes - off);
        if (n == 0) break;
        CopyFromBlocks(pool_->base(), *blocks_, slot.blocks, off, static_cast<char*>(v.iov_base), n);
        off += n;
      }
      call->replyDataBytes = h.dataBytes;
    }
    queued_--;
    Finish(call, result, done);
  }
  blocks_->Free(slot.blocks);
  slot.blocks.clear();
  slot.busy = false;
  slot.call = nullptr;
  if (!PostRecv(c, recv).ok()) {
    KillLocked(c, Status::ConnReset("ibv_post_recv failed"), done);
    return;
  }
  DispatchAllLocked(done);
}

void Client::OnCompletions(void* cqContext, const ibv_wc* wcs, int count) {
  Completions done;
  {
    std::lock_guard<std::mutex> l(mu_);
    Conn* c = static_cast<Conn*>(cqContext);
    if (live_.count(c) == 0) return;
    for (int i = 0; i < count && c->state == ConnState::kReady; i++) {
      const ibv_wc& wc = wcs[i];
      if (wc.status != IBV_WC_SUCCESS) {
        KillLocked(c, Status::ConnReset(WcError(*device_, wc)), &done);
        break;
      }
      if (WrKindOf(wc.wr_id) == kWrRecv) OnReplyLocked(c, WrIndexOf(wc.wr_id), wc.byte_len, &done);
      // kWrSend: nothing to do; the slot is freed by the reply, which follows the send.
    }
  }
  RunDone(done);
}

void Client::Close() {
  Completions done;
  std::vector<std::thread> connectors;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (closed_) return;
    closed_ = true;
    std::vector<Conn*> all;
    for (auto& [raw, c] : live_) all.push_back(raw);
    for (Conn* c : all) KillLocked(c, Status::Closed("rdma client transport closed"), &done);
    connectors.swap(connectors_);
  }
  RunDone(done);
  for (auto& t : connectors) t.join();
  poller_.Stop();
  if (blocks_) Reap();
  std::lock_guard<std::mutex> l(mu_);
  dying_.clear();
  live_.clear();
  conns_.clear();
}

}  // namespace
}  // namespace rdma

std::unique_ptr<ClientTransport> NewRdmaClientTransport(const ClientTransportOptions& options) {
  return std::make_unique<rdma::Client>(options);
}

}  // namespace millpond
