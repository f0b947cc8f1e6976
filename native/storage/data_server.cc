#include "storage/data_server.h"

#include <chrono>

#include "common/crc32c.h"
#include "common/log.h"
#include "common/metrics.h"
#include "transport/socket_io.h"
#include "transport/rdma/rdma_select.h"

namespace millpond {

namespace {

Status Malformed(const ServerCall& call) {
  return Status::Protocol(std::string("malformed ") + frame::OpcodeName(call.header().opcode) + " request");
}
// Wraps every call the server takes, so the process metrics (common/metrics.h) see each
// request once: in flight from arrival until its reply, counted with its latency and outcome
// when it is answered, whichever thread answers (chain writes answer from a forward's callback).
class MeteredCall : public ServerCall {
 public:
  explicit MeteredCall(std::unique_ptr<ServerCall> inner)
      : inner_(std::move(inner)),
        start_(std::chrono::steady_clock::now()),
        op_(metrics::OpForOpcode(inner_->header().opcode)),
        transport_(inner_->kind() == TransportKind::kRdma ? metrics::Transport::kRdma : metrics::Transport::kTcp) {
    metrics::CallArrived();
  }
  ~MeteredCall() override {
    if (!answered_) metrics::CallAnswered();  // dropped unanswered (server stopping)
  }
  const frame::Header& header() const override { return inner_->header(); }
  const uint8_t* meta() const override { return inner_->meta(); }
  Status TakePayload(AlignedBuffer* out) override { return inner_->TakePayload(out); }
  TransportKind kind() const override { return inner_->kind(); }
  const PeerIdentity& peer() const override { return inner_->peer(); }
  void Reply(const Status& status, const std::string& meta, const struct iovec* data, int dataCount) override {
    inner_->Reply(status, meta, data, dataCount);
    Count(status);
  }
  bool CanSendFile() const override { return inner_->CanSendFile(); }
  void ReplyFromFile(const std::string& meta, int fd, uint64_t offset, uint32_t bytes) override {
    inner_->ReplyFromFile(meta, fd, offset, bytes);
    Count(Status::OK());
  }

 private:
  void Count(const Status& status) {
    if (answered_) return;
    answered_ = true;
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start_).count();
    if (status.code() == StatusCode::kCorrupt) metrics::CrcFailure();
    metrics::RecordRequest(op_, transport_, status.ok(), static_cast<uint64_t>(us));
    metrics::CallAnswered();
  }

  std::unique_ptr<ServerCall> inner_;
  const std::chrono::steady_clock::time_point start_;
  const metrics::Op op_;  // taken at arrival: the request is not read after its reply
  const metrics::Transport transport_;
  bool answered_ = false;  // Reply is called once (ServerCall's contract); this guards the count
};

}  // namespace

DataServer::DataServer(ChunkStore* store, const DataServerOptions& options)
    : store_(store), options_(options), buffers_(limits::kServerBufferBytesMax) {}

DataServer::~DataServer() { Stop(); }

Status DataServer::Start(ChunkStore* store, const DataServerOptions& options,
                         std::unique_ptr<DataServer>* out) {
  if (options.ioThreads == 0 || options.ioThreads > limits::kServerIoThreadsMax)
    return Status::InvalidArgument("ioThreads must be 1.." + std::to_string(limits::kServerIoThreadsMax));
  std::unique_ptr<DataServer> server(new DataServer(store, options));
  server->workers_ = std::make_unique<WorkQueue>(options.ioThreads, limits::kServerQueuedCallsMax);

  ServerTransportOptions t;
  t.host = options.host;
  t.port = options.port;
  t.buffers = &server->buffers_;
  t.frameTimeoutMs = options.frameTimeoutMs;
  t.auth = options.auth;
  TransportKind kind;
  MP_RETURN_IF_ERROR(ResolveTransport(options.transport, &kind));
  if (kind == TransportKind::kRdma) {  // TCP always runs beside it: it carries the handshakes
    server->rdma_ = NewRdmaServerTransport();
    Status s = server->rdma_->Start(t, server.get());
    if (!s.ok()) {
      server->rdma_.reset();
      if (options.transport == TransportChoice::kRdma) return s;
      LogWarningOnce("server-rdma-start", "RDMA device present but unusable (" + s.message() + "); data server uses TCP");
    }
  }
  if (server->rdma_) {
    RdmaServerTransport* rdma = server->rdma_.get();
    t.upgrade = [rdma](UniqueFd fd, const PeerIdentity& peer) { rdma->Adopt(std::move(fd), peer); };
  }
  ChunkClientOptions forward;
  forward.transport = server->rdma_ ? TransportChoice::kAuto : TransportChoice::kTcp;
  forward.localReadThreads = 0;  // forwards are writes
  forward.timeoutMs = limits::kChainForwardTimeoutMs;  // inside the writer's request timeout
  if (options.auth) forward.credentials = ClientCredentials::ForNode(options.auth->secret, options.nodeId);
  MP_RETURN_IF_ERROR(ChunkClient::Create(forward, &server->forwarder_));
  if (options.localReads) {
    LocalReadServerOptions l;
    l.frameTimeoutMs = options.frameTimeoutMs;
    l.socketDir = options.localSocketDir.empty() ? store->dir() + "/run" : options.localSocketDir;
    l.auth = options.auth;
    MP_RETURN_IF_ERROR(LocalReadServer::Start(store, l, &server->local_));
  }
  server->tcp_ = NewTcpServerTransport();
  MP_RETURN_IF_ERROR(server->tcp_->Start(t, server.get()));
  *out = std::move(server);
  return Status::OK();
}

void DataServer::Stop() {
  if (stopped_.exchange(true)) return;
  if (tcp_) tcp_->Stop();
  if (rdma_) rdma_->Stop();
  if (local_) local_->Stop();
  if (forwarder_) forwarder_->Close();  // fails forwards in flight; their answers go to workers
  if (workers_) workers_->Stop();
}

DataServerStats DataServer::stats() const {
  DataServerStats s;
  s.reads = counters_.reads;
  s.writes = counters_.writes;
  s.batchReads = counters_.batchReads;
  s.batchReadEntries = counters_.batchReadEntries;
  s.others = counters_.others;
  s.bytesRead = counters_.bytesRead;
  s.bytesWritten = counters_.bytesWritten;
  s.errors = counters_.errors;
  s.busyRejections = counters_.busyRejections;
  s.chainWrites = counters_.chainWrites;
  s.forwards = counters_.forwards;
  s.duplicateWrites = counters_.duplicateWrites;
  s.wholeResends = counters_.wholeResends;
  s.rollForwards = counters_.rollForwards;
  s.localOpens = local_ ? local_->opens() : 0;
  s.refusals = counters_.refusals + (local_ ? local_->refusals() : 0);
  s.authFailures = tcp_->counters().authFailures;
  return s;
}

void DataServer::OnCall(std::unique_ptr<ServerCall> call) {
  ServerCall* raw = new MeteredCall(std::move(call));
  metrics::CallQueued();
  bool queued = workers_->TryPush([this, raw] {
    metrics::CallDequeued();
    Serve(std::unique_ptr<ServerCall>(raw));
  });
  if (!queued) {
    metrics::CallDequeued();
    std::unique_ptr<ServerCall> owned(raw);
    counters_.busyRejections++;
    metrics::BusyRejection();
    owned->Reply(Status::Busy("data server queue is full"), {}, nullptr, 0);
  }
}

Status DataServer::Refused(const ServerCall& call, const Status& why) {
  counters_.refusals++;
  counters_.errors++;
  // Logged, at most once a second (a misbehaving client must not flood the log).
  int64_t now = NowMs(), last = counters_.lastRefusalLogMs;
  if (now - last >= 1000 && counters_.lastRefusalLogMs.compare_exchange_strong(last, now))
    LogWarning("data server: refused " + std::string(frame::OpcodeName(call.header().opcode)) + " from " +
               call.peer().ToString() + ": " + why.ToString());
  return why;
}

Status DataServer::CheckOpcodeAllowed(const ServerCall& call) {
  if (call.peer().kind != PeerKind::kClient) return Status::OK();  // a node, or authentication off
  switch (call.header().opcode) {
    case frame::kRead: case frame::kBatchRead: case frame::kWrite: case frame::kStat:
    case frame::kPing: case frame::kLocalInfo:
      return Status::OK();
    default:
      return Refused(call, Status::Access(std::string(frame::OpcodeName(call.header().opcode)) +
                                          " is chain-internal: only storage nodes may send it"));
  }
}

Status DataServer::CheckCapability(const ServerCall& call, frame::Reader* r, uint64_t inode, uint32_t right) {
  if (call.peer().kind != PeerKind::kClient) return Status::OK();
  Capability cap;
  Status s = r->GetCapability(&cap) ? options_.auth->capabilities.Check(cap, inode, right, WallClockMs())
                                    : Status::Auth("request carries no capability");
  return s.ok() ? s : Refused(call, s);
}

void DataServer::Serve(std::unique_ptr<ServerCall> call) {
  Status allowed = CheckOpcodeAllowed(*call);
  if (!allowed.ok()) return call->Reply(allowed, {}, nullptr, 0);
  switch (call->header().opcode) {
    case frame::kRead: return ServeRead(call.get());
    case frame::kBatchRead: return ServeBatchRead(call.get());
    case frame::kWrite: return ServeWrite(std::move(call));
    default: return ServeSmall(call.get());
  }
}

void DataServer::RunOnWorker(std::function<void()> task) {
  // A full queue (or a stopped server) must not lose the continuation: run it here.
  auto shared = std::make_shared<std::function<void()>>(std::move(task));
  if (!workers_->TryPush([shared] { (*shared)(); })) (*shared)();
}

void DataServer::ServeRead(ServerCall* call) {
  counters_.reads++;
  frame::ReadArgs a;
  frame::Reader r(call->meta(), call->header().metaBytes);
  Status s = r.Get(&a) ? Status::OK() : Malformed(*call);
  if (s.ok()) s = CheckCapability(*call, &r, a.chunk.inode, kRightRead);
  if (s.ok() && a.length > limits::kFrameDataBytesMax)
    s = Status::TooLarge("read of " + std::to_string(a.length) + " bytes exceeds one message");
  const bool uncommitted = a.flags & frame::kReadUncommitted;
  ChunkMeta meta;
  if (s.ok() && (a.flags & frame::kReadBlockCrcs)) {
    // The client verifies: send the stored block CRCs and the bytes as they are on disk,
    // moved by the kernel where the transport can (no pass over them here, no copy).
    VersionSpan span;
    bool whole = false;
    s = store_->LocateBlocks(a.chunk, a.offset, a.length, uncommitted, &span, &whole, &meta);
    if (s.ok() && whole) return ReplyBlocks(call, meta, span);
  }
  AlignedBuffer buf;
  if (s.ok()) s = buffers_.Acquire(a.length, limits::kServerBufferWaitMs, &buf);
  uint32_t n = 0;
  if (s.ok()) s = store_->Read(a.chunk, a.offset, a.length, buf.data(), uncommitted, &n, &meta);
  if (!s.ok()) {
    counters_.errors++;
    return call->Reply(s, {}, nullptr, 0);
  }
  counters_.bytesRead += n;
  metrics::AddBytesRead(n);
  std::string out;
  frame::Put(&out, meta);
  struct iovec iov = {buf.data(), n};
  call->Reply(Status::OK(), out, &iov, 1);
}

void DataServer::ReplyBlocks(ServerCall* call, const ChunkMeta& meta, const VersionSpan& span) {
  std::string out;
  frame::Put(&out, meta);
  frame::PutBlockCrcs(&out, span.blockCrcs.data(), static_cast<uint32_t>(span.blockCrcs.size()));
  counters_.bytesRead += span.bytes;
  metrics::AddBytesRead(span.bytes);
  if (span.bytes == 0) return call->Reply(Status::OK(), out, nullptr, 0);
  if (call->CanSendFile()) return call->ReplyFromFile(out, span.fd, span.fileOffset, span.bytes);
  // Sealed TCP and RDMA need the bytes in memory: read them (unchecked: the client checks).
  AlignedBuffer buf;
  Status s = buffers_.Acquire(span.bytes, limits::kServerBufferWaitMs, &buf);
  size_t got = 0;
  if (s.ok()) s = PreadFull(span.fd, buf.data(), span.bytes, span.fileOffset, &got, "chunk version file");
  if (s.ok() && got != span.bytes) s = Status::Corrupt("chunk version file is truncated");
  if (!s.ok()) {
    counters_.errors++;
    return call->Reply(s, {}, nullptr, 0);
  }
  struct iovec iov = {buf.data(), span.bytes};
  call->Reply(Status::OK(), out, &iov, 1);
}

void DataServer::ServeBatchRead(ServerCall* call) {
  counters_.batchReads++;
  frame::Reader r(call->meta(), call->header().metaBytes);
  uint32_t count = 0;
  Status s = r.GetU32(&count) ? Status::OK() : Malformed(*call);
  if (s.ok() && count > limits::kBatchReadEntriesMax)
    s = Status::TooLarge("batch of " + std::to_string(count) + " reads exceeds " +
                         std::to_string(limits::kBatchReadEntriesMax));
  std::vector<frame::ReadArgs> reads;
  uint64_t total = 0;
  for (uint32_t i = 0; s.ok() && i < count; i++) {
    frame::ReadArgs a;
    if (!r.Get(&a)) s = Malformed(*call);
    total += a.length;
    reads.push_back(a);
  }
  if (s.ok() && call->peer().kind == PeerKind::kClient) {  // every inode read needs a capability
    uint32_t caps = 0;
    std::vector<Capability> table;
    if (!r.GetU32(&caps) || caps > limits::kBatchReadEntriesMax) s = Status::Auth("batch read carries no capabilities");
    for (uint32_t i = 0; s.ok() && i < caps; i++) {
      Capability c;
      if (!r.GetCapability(&c)) s = Malformed(*call);
      else table.push_back(c);
    }
    uint64_t now = WallClockMs();
    for (size_t i = 0; s.ok() && i < table.size(); i++)
      s = options_.auth->capabilities.Check(table[i], table[i].inode, kRightRead, now);
    for (size_t i = 0; s.ok() && i < reads.size(); i++) {
      bool covered = false;
      for (const auto& c : table) covered = covered || c.inode == reads[i].chunk.inode;
      if (!covered) s = Status::Auth("no capability for inode " + std::to_string(reads[i].chunk.inode));
    }
    if (!s.ok() && s.code() != StatusCode::kProtocol) s = Refused(*call, s);
  }
  if (s.ok() && total > limits::kBatchReadBytesMax)
    s = Status::TooLarge("batch of " + std::to_string(total) + " bytes exceeds " +
                         std::to_string(limits::kBatchReadBytesMax));
  AlignedBuffer buf;
  if (s.ok()) s = buffers_.Acquire(total, limits::kServerBufferWaitMs, &buf);
  if (!s.ok()) {
    counters_.errors++;
    return call->Reply(s, {}, nullptr, 0);
  }
  counters_.batchReadEntries += count;
  std::string out;
  out.reserve(count * frame::kBatchEntryBytes);
  uint64_t at = 0;
  for (const auto& a : reads) {
    ChunkMeta meta;
    uint32_t n = 0;
    Status rs = store_->Read(a.chunk, a.offset, a.length, buf.data() + at, a.flags & frame::kReadUncommitted, &n, &meta);
    if (!rs.ok()) n = 0;
    if (n < a.length) std::memset(buf.data() + at + n, 0, a.length - n);  // each entry keeps its slot
    frame::PutI32(&out, static_cast<int32_t>(rs.code()));
    frame::PutU32(&out, n);
    counters_.bytesRead += n;
    metrics::AddBytesRead(n);
    if (rs.code() == StatusCode::kCorrupt) metrics::CrcFailure();
    at += a.length;
  }
  struct iovec iov = {buf.data(), static_cast<size_t>(total)};
  call->Reply(Status::OK(), out, &iov, 1);
}

void DataServer::ServeWrite(std::unique_ptr<ServerCall> call) {
  counters_.writes++;
  frame::WriteArgs a;
  frame::Reader r(call->meta(), call->header().metaBytes);
  Status s = r.Get(&a) ? Status::OK() : Malformed(*call);
  if (s.ok()) s = CheckCapability(*call, &r, a.chunk.inode, kRightWrite);
  // A client's write enters a chain at its head, which assigns the version; a direct write
  // to one replica, or one posing as a predecessor's forward, is a node's business.
  if (s.ok() && call->peer().kind == PeerKind::kClient && (!(a.flags & frame::kWriteChain) || a.updateVersion != 0))
    s = Refused(*call, Status::Access("clients write only through a chain's head"));
  if (s.ok() && a.length != call->header().dataBytes)
    s = Status::Protocol("write length " + std::to_string(a.length) + " does not match its payload of " +
                         std::to_string(call->header().dataBytes) + " bytes");
  AlignedBuffer payload;
  if (s.ok()) s = call->TakePayload(&payload);
  // With block CRCs the store checks the payload as it makes the version's block table (one
  // pass); without them (older writers), the whole payload's CRC is checked here first.
  if (s.ok() && (a.flags & frame::kWriteBlockCrcs) && frame::CombineBlockCrcs(a.blockCrcs.data(), a.length) != a.payloadChecksum)
    s = Status::Corrupt("write payload checksum does not match its block checksums");
  if (s.ok() && !(a.flags & frame::kWriteBlockCrcs) && Crc32c(payload.data(), a.length) != a.payloadChecksum)
    s = Status::Corrupt("write payload checksum mismatch: the data was damaged in transit");
  if (s.ok() && (a.flags & frame::kWriteChain)) return ServeChainWrite(std::move(call), a, std::move(payload));
  ChunkMeta meta;
  if (s.ok()) {
    ChunkWriteOptions o;
    o.updateVersion = a.updateVersion;
    o.commit = a.flags & frame::kWriteCommit;
    o.replace = a.flags & frame::kWriteReplace;
    o.chunkSizeBytes = a.chunkSizeBytes;
    o.chainId = a.chainId;  // a write that names its chain tags the chunk with it
    if (a.flags & frame::kWriteBlockCrcs) o.dataBlockCrcs = a.blockCrcs.data();
    s = store_->Write(a.chunk, a.offset, payload.data(), a.length, o, &meta);
  }
  if (!s.ok()) {
    counters_.errors++;
    return call->Reply(s, {}, nullptr, 0);
  }
  counters_.bytesWritten += a.length;
  metrics::AddBytesWritten(a.length);
  std::string out;
  frame::Put(&out, meta);
  call->Reply(Status::OK(), out, nullptr, 0);
}

void DataServer::ServeSmall(ServerCall* call) {
  counters_.others++;
  frame::Reader r(call->meta(), call->header().metaBytes);
  std::string out;
  Status s;
  ChunkMeta meta;
  ChunkId id;
  switch (call->header().opcode) {
    case frame::kPing:
      break;
    case frame::kLocalInfo:
      if (local_) out = local_->name();
      else s = Status(StatusCode::kNotSupported, "this data server offers no local reads");
      break;
    case frame::kStat:
      s = r.GetChunkId(&id) ? CheckCapability(*call, &r, id.inode, kRightRead | kRightWrite) : Malformed(*call);
      if (s.ok()) s = store_->Stat(id, &meta);
      if (s.ok()) frame::Put(&out, meta);
      break;
    case frame::kRemove:
      s = r.GetChunkId(&id) ? store_->Remove(id) : Malformed(*call);
      break;
    case frame::kCommit: {
      frame::CommitArgs a;
      s = r.Get(&a) ? store_->Commit(a.chunk, a.version, &meta) : Malformed(*call);
      if (s.ok()) frame::Put(&out, meta);
      break;
    }
    case frame::kList: {
      frame::ListArgs a;
      std::vector<ChunkListEntry> entries;
      if (!r.Get(&a)) {
        s = Malformed(*call);
        break;
      }
      uint32_t limit = a.limit == 0 || a.limit > limits::kListReplyEntriesMax ? limits::kListReplyEntriesMax : a.limit;
      s = store_->List(a.hasAfter ? &a.after : nullptr, limit, &entries);
      if (!s.ok()) break;
      frame::PutU32(&out, static_cast<uint32_t>(entries.size()));
      for (const auto& e : entries) frame::Put(&out, e);
      break;
    }
    default:
      s = Status::Protocol("unexpected opcode");
  }
  if (!s.ok()) counters_.errors++;
  call->Reply(s, out, nullptr, 0);
}

}  // namespace millpond
