// CRAQ chain writes of the DataServer (design §3), declared in data_server.h: a client's
// write enters at the head, which assigns the version and lets one update per chunk travel
// the chain at a time; each target stores a pending version and forwards it; the tail
// commits first and acknowledgements travel back, each target committing as the ack passes.
// A version any replica committed is never rolled back: a target whose successor holds a
// newer committed version adopts it (RollForward) before the write goes on.
#include "storage/data_server.h"

#include "common/crc32c.h"
#include "common/metrics.h"

namespace millpond {

struct DataServer::ChainWrite {
  std::unique_ptr<ServerCall> call;
  frame::WriteArgs args;
  AlignedBuffer payload;
  AlignedBuffer wholeChunk;  // the full new version, when the successor is syncing
  ChainPosition position;
  bool atHead = false;  // entered here from a client: this server assigns the version
  uint64_t version = 0;   // of the pending version stored here, once stored
  uint32_t checksum = 0;  // its CRC32C, which the successor's version must have
  bool sentWhole = false; // the successor was sent the whole version
  bool askedSuccessor = false;  // RollForward ran for this write at this target (once)
  // This target adopted its successor's committed version and rebuilt the write on it: its
  // result no longer matches its predecessor's (which adopts it in turn from the ack).
  bool rolledForward = false;
};

void DataServer::SetChain(uint32_t chainId, const ChainPosition& position) {
  MutexLock lock(&chainsMu_);
  if (chains_.size() >= limits::kChainsPerServerMax && chains_.count(chainId) == 0) return;
  chains_[chainId] = position;
}

void DataServer::RemoveChain(uint32_t chainId) {
  MutexLock lock(&chainsMu_);
  chains_.erase(chainId);
}

Status DataServer::CheckChainPosition(const frame::WriteArgs& args, bool atHead, ChainPosition* position) {
  {
    MutexLock lock(&chainsMu_);
    auto it = chains_.find(args.chainId);
    if (it == chains_.end()) return Status::StaleVersion("this target is not on chain " + std::to_string(args.chainId));
    *position = it->second;
  }
  if (args.chainVersion != position->chainVersion)
    return Status::StaleVersion("chain " + std::to_string(args.chainId) + " is at version " +
                                std::to_string(position->chainVersion) + ", the write has " +
                                std::to_string(args.chainVersion));
  if (atHead && !position->head)
    return Status::StaleVersion("this target is not the head of chain " + std::to_string(args.chainId));
  return Status::OK();
}

void DataServer::ServeChainWrite(std::unique_ptr<ServerCall> call, const frame::WriteArgs& args,
                                 AlignedBuffer payload) {
  counters_.chainWrites++;
  auto w = std::make_shared<ChainWrite>();
  w->call = std::move(call);
  w->args = args;
  w->payload = std::move(payload);
  w->atHead = args.updateVersion == 0;
  Status s = CheckChainPosition(args, w->atHead, &w->position);
  if (!s.ok()) {
    counters_.errors++;
    return w->call->Reply(s, {}, nullptr, 0);
  }
  if (w->atHead) {  // one update per chunk travels the chain at a time; the rest wait here
    MutexLock lock(&updatesMu_);
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
      MutexLock lock(&dedupMu_);
      auto it = applied_.find(key);
      if (it != applied_.end()) applied = true, meta = it->second;
    }
    if (!applied) {
      // This head may have restarted or taken over since the write went through: every
      // version records the writes it applied (chunk_format.h), so ask the committed one.
      bool found = false;
      Status s = store_->FindRequest(a.chunk, a.clientId, a.requestId, &found, &meta);
      if (!s.ok() && s.code() != StatusCode::kNotFound) return FinishChainWrite(w, s, {});
      applied = s.ok() && found;
    }
    if (applied) {
      counters_.duplicateWrites++;
      return FinishChainWrite(w, Status::OK(), meta);
    }
  }
  if (w->atHead) {  // it may have waited behind other updates: the chain may have changed since
    Status s = CheckChainPosition(a, true, &w->position);
    if (!s.ok()) return FinishChainWrite(w, s, {});
  }
  StoreChainWrite(std::move(w));
}

void DataServer::StoreChainWrite(std::shared_ptr<ChainWrite> w) {
  const frame::WriteArgs& a = w->args;
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
  // CRAQ: a pending version nobody acknowledged (a forward that failed, a writer that gave
  // up) is never the base of the next update; every replica applies it to its committed
  // version, and a successor whose result differs from its predecessor's refuses before it
  // stores or commits anything (the predecessor then adopts a newer version the successor
  // committed, see RollForward, or else sends it the whole version).
  o.baseCommitted = true;
  o.expectChecksum = !w->atHead && !w->rolledForward && (a.flags & frame::kWriteExpectChecksum);
  o.expectedChecksum = a.expectedChecksum;
  o.clientId = a.clientId;  // recorded with the version at every replica: retries apply once
  o.requestId = a.requestId;  // even after the head changes
  o.chainId = a.chainId;  // every replica tags the version with the chain it travelled
  if (a.flags & frame::kWriteBlockCrcs) o.dataBlockCrcs = a.blockCrcs.data();
  ChunkMeta meta;
  Status s = store_->Write(a.chunk, a.offset, w->payload.data(), a.length, o, &meta);
  if (!s.ok() || tail) {
    if (s.ok()) {
      counters_.bytesWritten += a.length;
      metrics::AddBytesWritten(a.length);
    }
    return FinishChainWrite(w, s, meta);
  }
  uint32_t length = 0;
  s = store_->PendingVersion(a.chunk, version, &length, &w->checksum);
  if (!s.ok()) return FinishChainWrite(w, s, {});
  w->version = version;
  const bool whole = w->position.successorSyncing;
  ForwardChainWrite(std::move(w), whole);
}

void DataServer::ForwardChainWrite(std::shared_ptr<ChainWrite> w, bool whole) {
  const frame::WriteArgs& a = w->args;
  frame::WriteArgs forward = a;
  forward.updateVersion = w->version;
  forward.flags = (a.flags & ~frame::kWriteCommit) | frame::kWriteChain | frame::kWriteExpectChecksum;
  forward.expectedChecksum = w->checksum;
  const char* data = w->payload.data();
  if (whole && !(a.flags & frame::kWriteReplace)) {
    // The successor may lack the base this update applies to (it is syncing, or its base
    // differs): send the whole version.
    uint32_t length = 0, checksum = 0, n = 0;
    ChunkMeta meta;
    Status s = store_->PendingVersion(a.chunk, w->version, &length, &checksum);
    if (s.ok() && w->wholeChunk.empty()) s = buffers_.Acquire(length, limits::kServerBufferWaitMs, &w->wholeChunk);
    if (s.ok()) s = store_->Read(a.chunk, 0, length, w->wholeChunk.data(), true, &n, &meta);
    if (!s.ok()) return FinishChainWrite(w, s, {});
    forward.offset = 0;
    forward.length = n;
    forward.flags |= frame::kWriteReplace;
    forward.blockCrcs.clear();  // the forwarder computes the whole version's
    data = w->wholeChunk.data();
  }
  w->sentWhole = whole || (a.flags & frame::kWriteReplace);
  counters_.forwards++;
  metrics::ChainForward();
  const uint64_t version = w->version;
  forwarder_->Write(w->position.successor, forward, data,
                    [this, w, version](const Status& fs, const ChunkMeta& successor) {
                      RunOnWorker([this, w, version, fs, successor] { AfterForward(w, version, fs, successor); });
                    });
}

void DataServer::AfterForward(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& fs,
                              const ChunkMeta& successor) {
  const ChunkId& chunk = w->args.chunk;
  if ((fs.code() == StatusCode::kCorrupt || fs.code() == StatusCode::kStaleVersion) && !w->askedSuccessor) {
    // The successor's base differs from ours, or it already has this version: it may hold a
    // committed version we only have pending, or dropped (its acknowledgement was lost).
    return RollForward(w, version, fs, [this, w, version, fs] { AfterForward(w, version, fs, ChunkMeta()); });
  }
  if (fs.code() == StatusCode::kCorrupt && !w->sentWhole) {
    // The successor's base differs from ours (it holds an update we never acknowledged, or
    // it diverged): it stored nothing. Resync it with the whole version, once.
    counters_.wholeResends++;
    return ForwardChainWrite(std::move(w), true);
  }
  if (!fs.ok())
    return FinishChainWrite(w, Status(fs.code(), "forwarding to " + w->position.successor + ": " + fs.message()), {});
  uint32_t mine = 0, length = 0;
  Status s = store_->PendingVersion(chunk, version, &length, &mine);
  if (s.ok() && mine != successor.checksum && successor.commitVersion == version && !w->askedSuccessor) {
    // The successor rolled forward to a version committed further down and committed this
    // write on it: that is the chain's version now.
    return RollForward(w, version, Status::OK(),
                       [this, w, version, successor] { AfterForward(w, version, Status::OK(), successor); });
  }
  if (s.ok() && mine != successor.checksum)
    s = Status::Corrupt("replicas disagree on chunk " + chunk.ToHex() + " version " + std::to_string(version) +
                        ": checksum " + std::to_string(mine) + " here, " + std::to_string(successor.checksum) +
                        " at " + w->position.successor);
  ChunkMeta meta;
  if (s.ok()) s = store_->Commit(chunk, version, &meta);
  if (s.ok()) {
    counters_.bytesWritten += w->args.length;
    metrics::AddBytesWritten(w->args.length);
  }
  FinishChainWrite(w, s, meta);
}

void DataServer::RollForward(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& refused,
                             std::function<void()> otherwise) {
  w->askedSuccessor = true;
  forwarder_->Stat(w->position.successor, w->args.chunk,
                   [this, w, version, refused, otherwise](const Status& ss, const ChunkMeta& successor) {
                     RunOnWorker([this, w, version, refused, otherwise, ss, successor] {
                       ChunkMeta mine;
                       Status s = store_->Stat(w->args.chunk, &mine);
                       if (!ss.ok() || (!s.ok() && s.code() != StatusCode::kNotFound) ||
                           successor.commitVersion <= mine.commitVersion)
                         return otherwise();  // nothing committed downstream that this target lacks
                       InstallFromSuccessor(w, version, refused, successor, otherwise);
                     });
                   });
}

void DataServer::InstallFromSuccessor(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& refused,
                                      const ChunkMeta& successor, std::function<void()> otherwise) {
  // The whole committed version, read over the chain. Its length is the one Stat reported;
  // a successor that moved on since answers with another version, checked below.
  auto buffer = std::make_shared<AlignedBuffer>();
  Status s = buffers_.Acquire(std::max<uint32_t>(successor.length, 1), limits::kServerBufferWaitMs, buffer.get());
  if (!s.ok()) return FinishChainWrite(w, s, {});
  frame::ReadArgs r;
  r.chunk = w->args.chunk;
  r.length = successor.length;
  forwarder_->Read(w->position.successor, r, buffer->data(),
                   [this, w, version, refused, otherwise, buffer](const Status& rs, const ChunkMeta& got, uint32_t n) {
    RunOnWorker([this, w, version, refused, otherwise, buffer, rs, got, n] {
      const ChunkId& chunk = w->args.chunk;
      Status s = rs.ok() ? Status::OK()
                         : Status(rs.code(), "rolling forward from " + w->position.successor + ": " + rs.message());
      if (s.ok() && (n != got.length || Crc32c(buffer->data(), n) != got.checksum))
        s = Status::Corrupt("rolling forward chunk " + chunk.ToHex() + ": " + w->position.successor +
                            " sent a version that is not its committed one");
      ChunkMeta meta;
      if (s.ok()) {
        ChunkWriteOptions o;  // replaces the committed copy here and any pending version
        o.install = true;
        o.replace = true;
        o.commit = true;
        o.updateVersion = got.commitVersion;
        o.chunkSizeBytes = w->args.chunkSizeBytes;
        o.chainId = w->args.chainId;
        if (refused.ok()) {  // the version this write made: it records the write, retries apply once
          o.clientId = w->args.clientId;
          o.requestId = w->args.requestId;
        }
        s = store_->Write(chunk, 0, buffer->data(), n, o, &meta);
      }
      if (!s.ok()) return FinishChainWrite(w, s, {});
      counters_.rollForwards++;
      if (refused.ok()) {  // the successor acknowledged `version` with the bytes installed here
        if (got.commitVersion != version) return otherwise();  // it moved on: this write fails
        counters_.bytesWritten += w->args.length;
        metrics::AddBytesWritten(w->args.length);
        return FinishChainWrite(w, Status::OK(), meta);
      }
      w->wholeChunk = AlignedBuffer();  // the new version may be longer
      if (w->atHead) return StoreChainWrite(w);  // under a version above the one installed
      if (got.commitVersion >= version)
        return FinishChainWrite(w, Status::StaleVersion("chunk " + chunk.ToHex() + " has committed version " +
                                                        std::to_string(got.commitVersion) + " down the chain, the write has " +
                                                        std::to_string(version) + "; rolled forward to it"), {});
      w->rolledForward = true;
      StoreChainWrite(w);
    });
  });
}

void DataServer::FinishChainWrite(const std::shared_ptr<ChainWrite>& w, const Status& s, const ChunkMeta& meta) {
  if (s.ok() && w->atHead && w->args.clientId != 0) {
    MutexLock lock(&dedupMu_);
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
    MutexLock lock(&updatesMu_);
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
