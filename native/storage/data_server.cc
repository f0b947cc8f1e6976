#include "storage/data_server.h"

#include "common/crc32c.h"
#include "common/log.h"

namespace millpond {

namespace {
constexpr uint32_t kBufferWaitMs = 30000;

Status Malformed(const ServerCall& call) {
  return Status::Protocol(std::string("malformed ") + frame::OpcodeName(call.header().opcode) + " request");
}
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
  if (options.transport != TransportChoice::kTcp) {
    std::string detail;
    Status probe = RdmaProbe(&detail);
    if (probe.ok()) {
      server->rdma_ = NewRdmaServerTransport();
      probe = server->rdma_->Start(t, server.get());
      if (!probe.ok()) server->rdma_.reset();
    }
    if (!probe.ok()) {
      if (options.transport == TransportChoice::kRdma) return probe;
      LogWarningOnce("server-rdma-fallback", "RDMA unavailable (" + probe.message() + "); data server uses TCP");
    }
  }
  if (server->rdma_) {
    RdmaServerTransport* rdma = server->rdma_.get();
    t.upgrade = [rdma](UniqueFd fd) { rdma->Adopt(std::move(fd)); };
  }
  ChunkClientOptions forward;
  forward.transport = server->rdma_ ? TransportChoice::kAuto : TransportChoice::kTcp;
  MP_RETURN_IF_ERROR(ChunkClient::Create(forward, &server->forwarder_));
  server->tcp_ = NewTcpServerTransport();
  MP_RETURN_IF_ERROR(server->tcp_->Start(t, server.get()));
  *out = std::move(server);
  return Status::OK();
}

void DataServer::Stop() {
  if (stopped_.exchange(true)) return;
  if (tcp_) tcp_->Stop();
  if (rdma_) rdma_->Stop();
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
  return s;
}

void DataServer::OnCall(std::unique_ptr<ServerCall> call) {
  ServerCall* raw = call.release();
  bool queued = workers_->TryPush([this, raw] { Serve(std::unique_ptr<ServerCall>(raw)); });
  if (!queued) {
    std::unique_ptr<ServerCall> owned(raw);
    counters_.busyRejections++;
    owned->Reply(Status::Busy("data server queue is full"), {}, nullptr, 0);
  }
}

void DataServer::Serve(std::unique_ptr<ServerCall> call) {
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
  if (s.ok() && a.length > limits::kFrameDataBytesMax)
    s = Status::TooLarge("read of " + std::to_string(a.length) + " bytes exceeds one message");
  AlignedBuffer buf;
  if (s.ok()) s = buffers_.Acquire(a.length, kBufferWaitMs, &buf);
  ChunkMeta meta;
  uint32_t n = 0;
  if (s.ok()) s = store_->Read(a.chunk, a.offset, a.length, buf.data(), a.flags & frame::kReadUncommitted, &n, &meta);
  if (!s.ok()) {
    counters_.errors++;
    return call->Reply(s, {}, nullptr, 0);
  }
  counters_.bytesRead += n;
  std::string out;
  frame::Put(&out, meta);
  struct iovec iov = {buf.data(), n};
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
  if (s.ok() && total > limits::kBatchReadBytesMax)
    s = Status::TooLarge("batch of " + std::to_string(total) + " bytes exceeds " +
                         std::to_string(limits::kBatchReadBytesMax));
  AlignedBuffer buf;
  if (s.ok()) s = buffers_.Acquire(total, kBufferWaitMs, &buf);
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
  if (s.ok() && a.length != call->header().dataBytes)
    s = Status::Protocol("write length " + std::to_string(a.length) + " does not match its payload of " +
                         std::to_string(call->header().dataBytes) + " bytes");
  AlignedBuffer payload;
  if (s.ok()) s = call->TakePayload(&payload);
  if (s.ok() && Crc32c(payload.data(), a.length) != a.payloadChecksum)
    s = Status::Corrupt("write payload checksum mismatch: the data was damaged in transit");
  if (s.ok() && (a.flags & frame::kWriteChain)) return ServeChainWrite(std::move(call), a, std::move(payload));
  ChunkMeta meta;
  if (s.ok()) {
    ChunkWriteOptions o;
    o.updateVersion = a.updateVersion;
    o.commit = a.flags & frame::kWriteCommit;
    o.replace = a.flags & frame::kWriteReplace;
    o.chunkSizeBytes = a.chunkSizeBytes;
    s = store_->Write(a.chunk, a.offset, payload.data(), a.length, o, &meta);
  }
  if (!s.ok()) {
    counters_.errors++;
    return call->Reply(s, {}, nullptr, 0);
  }
  counters_.bytesWritten += a.length;
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
    case frame::kStat:
      s = r.GetChunkId(&id) ? store_->Stat(id, &meta) : Malformed(*call);
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
      for (const auto& e : entries) {
        frame::PutChunkId(&out, e.chunk);
        frame::Put(&out, e.meta);
        frame::PutU32(&out, e.corrupt ? frame::kListEntryCorrupt : 0);
      }
      break;
    }
    default:
      s = Status::Protocol("unexpected opcode");
  }
  if (!s.ok()) counters_.errors++;
  call->Reply(s, out, nullptr, 0);
}

}  // namespace millpond

// ------------------------------------------------------------------ CRAQ chain writes

namespace millpond {

struct DataServer::ChainWrite {
  std::unique_ptr<ServerCall> call;
  frame::WriteArgs args;
  AlignedBuffer payload;
  AlignedBuffer wholeChunk;  // the full new version, when the successor is syncing
  ChainPosition position;
  bool atHead = false;  // entered here from a client: this server assigns the version
};

void DataServer::SetChain(uint32_t chainId, const ChainPosition& position) {
  std::lock_guard<std::mutex> lock(chainsMu_);
  if (chains_.size() >= limits::kChainsPerServerMax && chains_.count(chainId) == 0) return;
  chains_[chainId] = position;
}

void DataServer::RemoveChain(uint32_t chainId) {
  std::lock_guard<std::mutex> lock(chainsMu_);
  chains_.erase(chainId);
}

void DataServer::ServeChainWrite(std::unique_ptr<ServerCall> call, const frame::WriteArgs& args,
                                 AlignedBuffer payload) {
  counters_.chainWrites++;
  auto w = std::make_shared<ChainWrite>();
  w->call = std::move(call);
  w->args = args;
  w->payload = std::move(payload);
  w->atHead = args.updateVersion == 0;
  Status s;
  {
    std::lock_guard<std::mutex> lock(chainsMu_);
    auto it = chains_.find(args.chainId);
    if (it == chains_.end()) s = Status::StaleVersion("this target is not on chain " + std::to_string(args.chainId));
    else w->position = it->second;
  }
  if (s.ok() && args.chainVersion != w->position.chainVersion)
    s = Status::StaleVersion("chain " + std::to_string(args.chainId) + " is at version " +
                             std::to_string(w->position.chainVersion) + ", the write has " +
                             std::to_string(args.chainVersion));
  if (s.ok() && w->atHead && !w->position.head)
    s = Status::StaleVersion("this target is not the head of chain " + std::to_string(args.chainId));
  if (!s.ok()) {
    counters_.errors++;
    return w->call->Reply(s, {}, nullptr, 0);
  }
  if (w->atHead) {  // one update per chunk travels the chain at a time; the rest wait here
    std::lock_guard<std::mutex> lock(updatesMu_);
    auto it = updating_.find(args.chunk);
    if (it != updating_.end()) {
      it->second.push_back(std::move(w));
      return;
    }
    updating_[args.chunk];
  }
  ApplyChainWrite(std::move(w));
}

void DataServer::ApplyChainWrite(std::shared_ptr<ChainWrite> w) {
  const frame::WriteArgs& a = w->args;
  const auto key = std::make_pair(a.clientId, a.requestId);
  if (w->atHead && a.clientId != 0) {  // a retry of a write that already went through
    bool applied = false;
    ChunkMeta meta;
    {
      std::lock_guard<std::mutex> lock(dedupMu_);
      auto it = applied_.find(key);
      if (it != applied_.end()) applied = true, meta = it->second;
    }
    if (applied) {
      counters_.duplicateWrites++;
      return FinishChainWrite(w, Status::OK(), meta);
    }
  }
  uint64_t version = a.updateVersion;
  if (w->atHead) {
    ChunkMeta current;
    Status s = store_->Stat(a.chunk, &current);
    if (!s.ok() && s.code() != StatusCode::kNotFound) return FinishChainWrite(w, s, {});
    version = std::max(current.commitVersion, current.updateVersion) + 1;
  }
  const bool tail = w->position.successor.empty();
  ChunkWriteOptions o;
  o.updateVersion = version;
  o.commit = tail;  // the tail commits first
  o.replace = a.flags & frame::kWriteReplace;
  o.chunkSizeBytes = a.chunkSizeBytes;
  ChunkMeta meta;
  Status s = store_->Write(a.chunk, a.offset, w->payload.data(), a.length, o, &meta);
  if (!s.ok() || tail) {
    if (s.ok()) counters_.bytesWritten += a.length;
    return FinishChainWrite(w, s, meta);
  }
  frame::WriteArgs forward = a;
  forward.updateVersion = version;
  forward.flags = (a.flags & ~frame::kWriteCommit) | frame::kWriteChain;
  const char* data = w->payload.data();
  if (w->position.successorSyncing) {
    // A syncing successor may lack the base this update applies to: send the whole version.
    uint32_t length = 0, checksum = 0, n = 0;
    s = store_->PendingVersion(a.chunk, version, &length, &checksum);
    if (s.ok()) s = buffers_.Acquire(length, kBufferWaitMs, &w->wholeChunk);
    if (s.ok()) s = store_->Read(a.chunk, 0, length, w->wholeChunk.data(), true, &n, &meta);
    if (!s.ok()) return FinishChainWrite(w, s, {});
    forward.offset = 0;
    forward.length = n;
    forward.flags |= frame::kWriteReplace;
    data = w->wholeChunk.data();
  }
  counters_.forwards++;
  forwarder_->Write(w->position.successor, forward, data,
                    [this, w, version](const Status& fs, const ChunkMeta& successor) {
                      RunOnWorker([this, w, version, fs, successor] { AfterForward(w, version, fs, successor); });
                    });
}

void DataServer::AfterForward(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& fs,
                              const ChunkMeta& successor) {
  const ChunkId& chunk = w->args.chunk;
  if (!fs.ok())
    return FinishChainWrite(w, Status(fs.code(), "forwarding to " + w->position.successor + ": " + fs.message()), {});
  uint32_t mine = 0, length = 0;
  Status s = store_->PendingVersion(chunk, version, &length, &mine);
  if (s.ok() && mine != successor.checksum)
    s = Status::Corrupt("replicas disagree on chunk " + chunk.ToHex() + " version " + std::to_string(version) +
                        ": checksum " + std::to_string(mine) + " here, " + std::to_string(successor.checksum) +
                        " at " + w->position.successor);
  ChunkMeta meta;
  if (s.ok()) s = store_->Commit(chunk, version, &meta);
  if (s.ok()) counters_.bytesWritten += w->args.length;
  FinishChainWrite(w, s, meta);
}

void DataServer::FinishChainWrite(const std::shared_ptr<ChainWrite>& w, const Status& s, const ChunkMeta& meta) {
  if (s.ok() && w->atHead && w->args.clientId != 0) {
    std::lock_guard<std::mutex> lock(dedupMu_);
    auto key = std::make_pair(w->args.clientId, w->args.requestId);
    if (applied_.emplace(key, meta).second) {
      appliedOrder_.push_back(key);
      if (appliedOrder_.size() > limits::kServerAppliedWritesMax) {
        applied_.erase(appliedOrder_.front());
        appliedOrder_.pop_front();
      }
    }
  }
  if (!s.ok()) counters_.errors++;
  std::string out;
  if (s.ok()) frame::Put(&out, meta);
  w->call->Reply(s, out, nullptr, 0);
  if (!w->atHead) return;
  std::shared_ptr<ChainWrite> next;
  {
    std::lock_guard<std::mutex> lock(updatesMu_);
    auto it = updating_.find(w->args.chunk);
    if (it == updating_.end()) return;
    if (it->second.empty()) {
      updating_.erase(it);
      return;
    }
    next = std::move(it->second.front());
    it->second.pop_front();
  }
  RunOnWorker([this, next] { ApplyChainWrite(next); });
}

}  // namespace millpond
