// RdmaServerTransport: queue pairs handed over by the TCP server (Adopt), requests received by
// SEND into pre-posted slots, request payloads pulled with RDMA READ, reply data pushed with
// RDMA WRITE followed by the reply's SEND (RC delivers them in that order).
#include "transport/rdma/rdma_config.h"

#include <chrono>
#include <condition_variable>
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
constexpr uint32_t kRecvSlots = limits::kRdmaQueueDepth;
constexpr uint32_t kCallSlots = limits::kRdmaServerCallSlots;
constexpr uint32_t kSlotBytes = limits::kRdmaControlBytesMax;

class ServerImpl;

struct CallSlot {
  bool busy = false;
  bool readPending = false;
  Status readStatus;
  std::vector<uint32_t> blocks;  // pool blocks the device may still touch for this slot
};

struct Conn {
  UniqueFd socket;
  PeerIdentity peer;  // what the TCP socket authenticated as before the upgrade
  std::unique_ptr<QueuePair> qp;
  std::unique_ptr<Region> control;  // kRecvSlots receive slots, then kCallSlots send slots
  Hello remote;
  bool dead = false;                // GUARDED_BY(mu_)
  bool reaped = false;              // GUARDED_BY(mu_): QP destroyed, blocks returned
  std::vector<CallSlot> slots = std::vector<CallSlot>(kCallSlots);
  std::deque<std::pair<uint32_t, uint32_t>> deferred;  // (recv slot, bytes) waiting for a call slot
  char* recvSlot(uint32_t i) const { return control->base() + size_t{i} * kSlotBytes; }
  char* sendSlot(uint32_t j) const { return control->base() + size_t{kRecvSlots + j} * kSlotBytes; }
};

class ServerCallImpl;

class ServerImpl : public Poller::Handler, public std::enable_shared_from_this<ServerImpl> {
 public:
  Status Start(const ServerTransportOptions& options, CallHandler* handler);
  void Stop();
  void Adopt(UniqueFd socket, const PeerIdentity& peer);
  TransportCounters counters;

  // For ServerCallImpl. All REQUIRE nothing held.
  Status TakePayload(Conn* c, uint32_t slot, const ControlMessage& req, AlignedBuffer* out);
  void Reply(Conn* c, uint32_t slot, const frame::Header& req, const std::vector<Segment>& segs,
             uint64_t segBytes, const Status& status, const std::string& meta,
             const struct iovec* data, int dataCount);

  // Poller::Handler (event thread)
  void OnCompletions(void* cqContext, const ibv_wc* wcs, int count) override;
  void OnSocket(void* tag) override;
  void OnTick() override {}
  void Reap() override;

 private:
  void HandshakeLoop();
  void Handshake(UniqueFd socket, const PeerIdentity& peer);
  void Refuse(int fd, StatusCode code);
  void KillLocked(Conn* c, const std::string& why);  // REQUIRES: mu_ held
  // Takes a call slot for the request in receive slot `recv`; returns the call to deliver.
  std::unique_ptr<ServerCall> StartCallLocked(const std::shared_ptr<Conn>& c, uint32_t recv, uint32_t bytes);
  Status PostRecv(Conn* c, uint32_t i);
  Status AllocateBlocks(Conn* c, size_t bytes, std::unique_lock<std::mutex>* lock, std::vector<uint32_t>* out);
  void FreeSlotLocked(Conn* c, uint32_t j, std::vector<std::unique_ptr<ServerCall>>* deliver);

  ServerTransportOptions options_;
  CallHandler* handler_ = nullptr;
  std::unique_ptr<Device> device_;
  std::unique_ptr<Region> pool_;
  std::unique_ptr<BlockAllocator> blocks_;  // GUARDED_BY(mu_)
  Poller poller_;
  std::mutex mu_;
  std::condition_variable cv_;  // a read completed, blocks or a slot freed, a connection died
  std::map<Conn*, std::shared_ptr<Conn>> conns_;  // GUARDED_BY(mu_)
  std::vector<std::shared_ptr<Conn>> dying_;      // GUARDED_BY(mu_): killed, not yet reaped
  bool started_ = false, stopping_ = false;
  std::deque<std::pair<UniqueFd, PeerIdentity>> handshakes_;  // GUARDED_BY(mu_)
  std::condition_variable handshakeCv_;
  std::thread handshakeThread_;
  std::mt19937 psnRandom_{std::random_device{}()};
};

class ServerCallImpl : public ServerCall {
 public:
  ServerCallImpl(std::shared_ptr<ServerImpl> server, std::shared_ptr<Conn> conn, uint32_t slot,
                 const ControlMessage& msg)
      : server_(std::move(server)), conn_(std::move(conn)), slot_(slot), msg_(msg),
        meta_(msg.meta, msg.meta + msg.header.metaBytes) {
    msg_.meta = meta_.data();
  }
  ~ServerCallImpl() override {
    if (!replied_) Reply(Status::Internal("rdma server call dropped without a reply"), "", nullptr, 0);
  }
  const frame::Header& header() const override { return msg_.header; }
  const uint8_t* meta() const override { return meta_.data(); }
  Status TakePayload(AlignedBuffer* out) override {
    if (taken_) return Status::Internal("TakePayload called twice");
    taken_ = true;
    return server_->TakePayload(conn_.get(), slot_, msg_, out);
  }
  void Reply(const Status& status, const std::string& meta, const struct iovec* data, int dataCount) override {
    if (replied_) return;
    replied_ = true;
    server_->Reply(conn_.get(), slot_, msg_.header, msg_.segments, msg_.segmentBytes, status, meta, data, dataCount);
  }
  TransportKind kind() const override { return TransportKind::kRdma; }
  const PeerIdentity& peer() const override { return conn_->peer; }

 private:
  std::shared_ptr<ServerImpl> server_;  // declared first: outlives conn_
  std::shared_ptr<Conn> conn_;
  uint32_t slot_;
  ControlMessage msg_;
  std::vector<uint8_t> meta_;
  bool taken_ = false, replied_ = false;
};

Status ServerImpl::Start(const ServerTransportOptions& options, CallHandler* handler) {
  options_ = options;
  handler_ = handler;
  MP_RETURN_IF_ERROR(Device::Open(&device_));
  if (device_->maxQpWr() < limits::kRdmaSendWrMax)
    return Status::NoDevice(device_->name() + ": max_qp_wr " + std::to_string(device_->maxQpWr()) +
                            " below the " + std::to_string(limits::kRdmaSendWrMax) + " needed");
  MP_RETURN_IF_ERROR(Region::Register(device_.get(), limits::kRdmaServerPoolBytesDefault, &pool_));
  blocks_ = std::make_unique<BlockAllocator>(pool_->bytes(), limits::kRdmaBlockBytes);
  MP_RETURN_IF_ERROR(poller_.Start(device_.get(), this));
  started_ = true;
  handshakeThread_ = std::thread([this] { HandshakeLoop(); });
  return Status::OK();
}

void ServerImpl::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
    handshakes_.clear();
    std::vector<Conn*> all;
    for (auto& entry : conns_) all.push_back(entry.first);
    for (Conn* c : all) KillLocked(c, "server stopping");
  }
  handshakeCv_.notify_all();
  cv_.notify_all();
  if (handshakeThread_.joinable()) handshakeThread_.join();
  poller_.Stop();
  Reap();  // the event thread is gone: reap what it did not
}

void ServerImpl::Adopt(UniqueFd socket, const PeerIdentity& peer) {
  std::lock_guard<std::mutex> l(mu_);
  if (!started_ || stopping_ || handshakes_.size() >= limits::kRdmaPendingHandshakesMax) {
    Refuse(socket.get(), started_ ? StatusCode::kBusy : StatusCode::kNoDevice);
    return;  // closing the socket ends it
  }
  handshakes_.emplace_back(std::move(socket), peer);
  handshakeCv_.notify_one();
}

void ServerImpl::Refuse(int fd, StatusCode code) {
  Hello h;
  h.status = static_cast<int32_t>(code);
  uint8_t b[kHelloBytes];
  h.EncodeTo(b);
  struct iovec iov{b, sizeof b};
  WritevAll(fd, &iov, 1, 1000);  // best effort
}

void ServerImpl::HandshakeLoop() {
  for (;;) {
    UniqueFd socket;
    PeerIdentity peer;
    {
      std::unique_lock<std::mutex> l(mu_);
      handshakeCv_.wait(l, [&] { return stopping_ || !handshakes_.empty(); });
      if (stopping_) return;
      socket = std::move(handshakes_.front().first);
      peer = handshakes_.front().second;
      handshakes_.pop_front();
    }
    Handshake(std::move(socket), peer);
  }
}

void ServerImpl::Handshake(UniqueFd socket, const PeerIdentity& peer) {
  uint8_t b[kHelloBytes];
  Hello remote;
  Status s = ReadExact(socket.get(), b, sizeof b, limits::kRdmaHandshakeTimeoutMs, false);
  if (s.ok()) s = Hello::Decode(b, sizeof b, &remote);
  if (s.ok() && remote.status != 0) s = Status::Protocol("rdma hello from a client with a status");
  if (!s.ok()) {
    counters.protocolErrors++;
    return;
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (conns_.size() >= limits::kRdmaConnectionsMax) {
      Refuse(socket.get(), StatusCode::kBusy);
      return;
    }
  }
  auto c = std::make_shared<Conn>();
  c->peer = peer;
  c->remote = remote;
  s = QueuePair::Create(device_.get(), c.get(), limits::kRdmaSendWrMax, kRecvSlots, &c->qp);
  if (s.ok()) s = Region::Register(device_.get(), size_t{kRecvSlots + kCallSlots} * kSlotBytes, &c->control);
  for (uint32_t i = 0; s.ok() && i < kRecvSlots; i++) s = PostRecv(c.get(), i);
  Hello local;
  if (s.ok()) {
    uint32_t psn;
    {
      std::lock_guard<std::mutex> l(mu_);
      psn = psnRandom_() & 0xffffff;
    }
    local = device_->LocalHello(c->qp->qpn(), psn, kRecvSlots, kSlotBytes);
    s = c->qp->Connect(local, remote);
  }
  if (!s.ok()) {
    Refuse(socket.get(), s.code() == StatusCode::kOk ? StatusCode::kInternal : s.code());
    return;
  }
  // Publish the connection before answering: the client may send its first request as soon
  // as it reads the answer, and a completion for an unknown connection is dropped.
  int fd = socket.get();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    c->socket = std::move(socket);
    if (!poller_.Watch(fd, c.get()).ok()) return;
    conns_[c.get()] = c;
    counters.connectionsOpened++;
  }
  local.EncodeTo(b);
  struct iovec iov{b, sizeof b};
  if (!WritevAll(fd, &iov, 1, limits::kRdmaHandshakeTimeoutMs).ok()) {
    std::lock_guard<std::mutex> l(mu_);
    KillLocked(c.get(), "could not answer the rdma handshake");
  }
}

Status ServerImpl::PostRecv(Conn* c, uint32_t i) {
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

void ServerImpl::KillLocked(Conn* c, const std::string& why) {
  if (c->dead) return;
  c->dead = true;
  c->qp->Fail();
  auto it = conns_.find(c);
  if (it != conns_.end()) {
    dying_.push_back(it->second);
    conns_.erase(it);
  }
  cv_.notify_all();
}

void ServerImpl::Reap() {
  std::vector<std::shared_ptr<Conn>> dead;
  {
    std::lock_guard<std::mutex> l(mu_);
    dead.swap(dying_);
    for (auto& c : dead) {
      if (c->socket.valid()) poller_.Unwatch(c->socket.get());
      c->qp.reset();  // QP then CQ: the device no longer touches this connection's memory
      for (CallSlot& s : c->slots) {
        blocks_->Free(s.blocks);
        s.blocks.clear();
        s.readPending = false;
      }
      c->reaped = true;
      c->socket.Reset();
      // The control region goes with the last reference (calls still hold the Conn).
    }
  }
  cv_.notify_all();
}

void ServerImpl::OnSocket(void* tag) {
  std::lock_guard<std::mutex> l(mu_);
  Conn* c = static_cast<Conn*>(tag);
  // After the handshake the client sends nothing on the socket: readable means closed.
  KillLocked(c, "peer closed its liveness socket");
}

std::unique_ptr<ServerCall> ServerImpl::StartCallLocked(const std::shared_ptr<Conn>& c, uint32_t recv,
                                                        uint32_t bytes) {
  ControlMessage msg;
  Status s = ParseControl(reinterpret_cast<const uint8_t*>(c->recvSlot(recv)), bytes, false, &msg);
  if (!s.ok()) {
    counters.protocolErrors++;
    KillLocked(c.get(), s.message());
    return nullptr;
  }
  uint32_t j = 0;
  while (j < kCallSlots && c->slots[j].busy) j++;
  if (j == kCallSlots) {  // a reply's send completion is not polled yet: wait for it
    c->deferred.emplace_back(recv, bytes);
    return nullptr;
  }
  c->slots[j].busy = true;
  counters.messagesReceived++;
  counters.bytesReceived += bytes;
  auto call = std::make_unique<ServerCallImpl>(shared_from_this(), c, j, msg);  // copies meta
  if (!PostRecv(c.get(), recv).ok()) KillLocked(c.get(), "ibv_post_recv failed");
  return call;
}

void ServerImpl::FreeSlotLocked(Conn* c, uint32_t j, std::vector<std::unique_ptr<ServerCall>>* deliver) {
  CallSlot& s = c->slots[j];
  blocks_->Free(s.blocks);
  s.blocks.clear();
  s.busy = false;
  cv_.notify_all();
  if (!c->deferred.empty() && !c->dead) {
    auto [recv, bytes] = c->deferred.front();
    c->deferred.pop_front();
    auto it = conns_.find(c);
    auto call = it == conns_.end() ? nullptr : StartCallLocked(it->second, recv, bytes);
    if (call) deliver->push_back(std::move(call));
  }
}

void ServerImpl::OnCompletions(void* cqContext, const ibv_wc* wcs, int count) {
  std::vector<std::unique_ptr<ServerCall>> deliver;
  {
    std::lock_guard<std::mutex> l(mu_);
    Conn* c = static_cast<Conn*>(cqContext);
    auto it = conns_.find(c);
    if (it == conns_.end()) return;  // dead already: flushes
    std::shared_ptr<Conn> conn = it->second;
    for (int i = 0; i < count && !c->dead; i++) {
      const ibv_wc& wc = wcs[i];
      uint32_t index = WrIndexOf(wc.wr_id);
      if (wc.status != IBV_WC_SUCCESS) {
        if (WrKindOf(wc.wr_id) == kWrRead && index < kCallSlots) c->slots[index].readStatus = Status::ConnReset(WcError(*device_, wc));
        KillLocked(c, WcError(*device_, wc));
        break;
      }
      switch (WrKindOf(wc.wr_id)) {
        case kWrRecv: {
          auto call = StartCallLocked(conn, index, wc.byte_len);
          if (call) deliver.push_back(std::move(call));
          break;
        }
        case kWrRead:
          c->slots[index].readPending = false;
          cv_.notify_all();
          break;
        case kWrSend:
          FreeSlotLocked(c, index, &deliver);
          break;
      }
    }
  }
  for (auto& call : deliver) handler_->OnCall(std::move(call));
}

Status ServerImpl::AllocateBlocks(Conn* c, size_t bytes, std::unique_lock<std::mutex>* lock,
                                  std::vector<uint32_t>* out) {
  auto deadline = Clock::now() + std::chrono::milliseconds(limits::kRdmaResourceWaitMsMax);
  for (;;) {
    if (c->dead) return Status::ConnReset("rdma connection lost");
    Status s = blocks_->Allocate(bytes, out);
    if (s.code() != StatusCode::kBusy) return s;
    if (cv_.wait_until(*lock, deadline) == std::cv_status::timeout)
      return Status::Busy("rdma server pool exhausted for " + std::to_string(limits::kRdmaResourceWaitMsMax) + " ms");
  }
}

Status ServerImpl::TakePayload(Conn* c, uint32_t slot, const ControlMessage& req, AlignedBuffer* out) {
  const size_t n = req.header.dataBytes;
  if (n == 0) {
    *out = AlignedBuffer();
    return Status::OK();
  }
  AlignedBuffer buffer;
  if (options_.buffers) {
    MP_RETURN_IF_ERROR(options_.buffers->Acquire(n, options_.frameTimeoutMs, &buffer));
  } else {
    buffer = AlignedBuffer::Allocate(n);
  }
  std::unique_lock<std::mutex> l(mu_);
  std::vector<uint32_t> blocks;
  MP_RETURN_IF_ERROR(AllocateBlocks(c, n, &l, &blocks));
  Chain chain;
  Status s = BuildDataChain(IBV_WR_RDMA_READ, pool_->base(), pool_->lkey(), *blocks_, blocks,
                            req.segments, n, MakeWrId(kWrRead, slot), &chain);
  if (!s.ok()) {
    blocks_->Free(blocks);
    counters.protocolErrors++;
    return s;
  }
  CallSlot& cs = c->slots[slot];
  cs.blocks = std::move(blocks);  // the device owns them until the READs complete
  cs.readPending = true;
  cs.readStatus = Status::OK();
  ibv_send_wr* bad;
  int rc = ibv_post_send(c->qp->qp(), chain.head(), &bad);
  if (rc != 0) {
    KillLocked(c, "ibv_post_send of RDMA READ failed");
    return Status::FromErrno(rc, "ibv_post_send (RDMA READ)");
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(options_.frameTimeoutMs);
  while (cs.readPending && !c->dead) {
    if (cv_.wait_until(l, deadline) == std::cv_status::timeout) {
      KillLocked(c, "RDMA READ timed out");
      return Status::TimedOut("RDMA READ of the request payload timed out");
    }
  }
  if (c->dead) return cs.readStatus.ok() ? Status::ConnReset("rdma connection lost during RDMA READ") : cs.readStatus;
  blocks = std::move(cs.blocks);
  cs.blocks.clear();
  l.unlock();
  CopyFromBlocks(pool_->base(), *blocks_, blocks, 0, buffer.data(), n);  // blocks_ geometry is const
  counters.bytesReceived += n;
  l.lock();
  blocks_->Free(blocks);
  cv_.notify_all();
  *out = std::move(buffer);
  return Status::OK();
}

void ServerImpl::Reply(Conn* c, uint32_t slot, const frame::Header& req, const std::vector<Segment>& segs,
                       uint64_t segBytes, const Status& statusIn, const std::string& metaIn,
                       const struct iovec* data, int dataCount) {
  Status status = statusIn;
  size_t total = 0;
  for (int i = 0; i < dataCount; i++) total += data[i].iov_len;
  if (status.ok() && total > segBytes) {
    status = Status::TooLarge("reply data of " + std::to_string(total) + " bytes exceeds the client's " +
                              std::to_string(segBytes) + " byte buffer");
  }
  const std::string* meta = &metaIn;
  std::string message;
  if (!status.ok()) {
    message = status.message().substr(0, limits::kErrorMessageBytesMax);
    meta = &message;
    total = 0;
  }
  if (frame::kHeaderBytes + meta->size() > c->remote.controlBytes) {
    status = Status::TooLarge("reply meta exceeds the client's control slot");
    message = status.message();
    meta = &message;
    total = 0;
  }
  std::unique_lock<std::mutex> l(mu_);
  if (c->dead) return;
  std::vector<uint32_t> blocks;
  if (total > 0) {
    Status s = AllocateBlocks(c, total, &l, &blocks);
    if (!s.ok()) {
      if (c->dead) return;
      KillLocked(c, s.message());  // cannot answer without memory: the client sees a reset
      return;
    }
    l.unlock();
    size_t off = 0;
    for (int i = 0; i < dataCount; i++) {
      CopyToBlocks(pool_->base(), *blocks_, blocks, off, static_cast<const char*>(data[i].iov_base), data[i].iov_len);
      off += data[i].iov_len;
    }
    l.lock();
    if (c->dead) {
      blocks_->Free(blocks);
      cv_.notify_all();
      return;
    }
  }
  frame::Header h;
  h.opcode = req.opcode;
  h.flags = frame::kFlagReply;
  h.requestId = req.requestId;
  h.metaBytes = static_cast<uint32_t>(meta->size());
  h.dataBytes = static_cast<uint32_t>(total);
  h.status = static_cast<int32_t>(status.code());
  char* out = c->sendSlot(slot);
  h.EncodeTo(reinterpret_cast<uint8_t*>(out));
  std::memcpy(out + frame::kHeaderBytes, meta->data(), meta->size());
  Chain chain;
  Status s = BuildDataChain(IBV_WR_RDMA_WRITE, pool_->base(), pool_->lkey(), *blocks_, blocks, segs, total,
                            0, &chain);
  if (!s.ok()) {  // cannot happen: total <= segBytes was checked
    blocks_->Free(blocks);
    KillLocked(c, s.message());
    return;
  }
  if (!chain.wrs.empty()) chain.wrs.back().send_flags = 0;  // the SEND below is the signalled one
  ibv_sge sge{};
  sge.addr = reinterpret_cast<uintptr_t>(out);
  sge.length = static_cast<uint32_t>(frame::kHeaderBytes + meta->size());
  sge.lkey = c->control->lkey();
  ibv_send_wr wr{};
  wr.wr_id = MakeWrId(kWrSend, slot);
  wr.opcode = IBV_WR_SEND;
  wr.send_flags = IBV_SEND_SIGNALED;
  chain.Append(wr, sge);
  c->slots[slot].blocks = std::move(blocks);  // freed by the SEND's completion
  ibv_send_wr* bad;
  int rc = ibv_post_send(c->qp->qp(), chain.head(), &bad);
  if (rc != 0) {
    KillLocked(c, "ibv_post_send of a reply failed");
    return;
  }
  counters.messagesSent++;
  counters.bytesSent += sge.length + total;
}

class Server : public RdmaServerTransport {
 public:
  Server() : impl_(std::make_shared<ServerImpl>()) {}
  ~Server() override { Stop(); }
  Status Start(const ServerTransportOptions& options, CallHandler* handler) override {
    Status s = impl_->Start(options, handler);
    if (!s.ok()) impl_->Stop();
    return s;
  }
  uint16_t port() const override { return 0; }
  void Stop() override { impl_->Stop(); }
  TransportKind kind() const override { return TransportKind::kRdma; }
  const TransportCounters& counters() const override { return impl_->counters; }
  void Adopt(UniqueFd socket, const PeerIdentity& peer) override { impl_->Adopt(std::move(socket), peer); }

 private:
  std::shared_ptr<ServerImpl> impl_;  // calls in the handler's hands share it
};

}  // namespace
}  // namespace rdma

std::unique_ptr<RdmaServerTransport> NewRdmaServerTransport() { return std::make_unique<rdma::Server>(); }

}  // namespace millpond
