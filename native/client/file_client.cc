#include "client/file_client.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "client/layout.h"

namespace millpond {

namespace {

using Clock = std::chrono::steady_clock;

// Errors after which a chunk read or write may succeed at a fresher route or a little later
// (RETRYABLE in src/cluster/routing-client.ts).
bool Retryable(StatusCode code) {
  switch (code) {
    case StatusCode::kStaleVersion:
    case StatusCode::kConnRefused:
    case StatusCode::kConnReset:
    case StatusCode::kTimedOut:
    case StatusCode::kClosed:
    case StatusCode::kBusy:
    case StatusCode::kNotCommitted:
    case StatusCode::kCorrupt:
      return true;
    default:
      return false;
  }
}

std::mt19937_64& Rng() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng;
}

// Uniform in [0, n); 0 when n is 0.
uint64_t RandomBelow(uint64_t n) { return n == 0 ? 0 : Rng()() % n; }

// The replicas a read tries in turn: the serving non-tail ones from a random start (spreading
// reads), then the tail, which commits first and so always has the newest committed version.
std::vector<std::string> ReadOrder(const ChainRoute& route) {
  std::vector<std::string> order;
  if (route.serving.empty()) return order;
  const size_t others = route.serving.size() - 1;
  const size_t start = RandomBelow(others);
  for (size_t k = 0; k < others; k++) order.push_back(route.serving[(start + k) % others]);
  order.push_back(route.serving.back());
  return order;
}

// Math.random() * capMs, as the TS client backs off.
Clock::duration Backoff(uint32_t capMs) {
  return std::chrono::microseconds(RandomBelow(uint64_t{capMs} * 1000 + 1));
}

Status CheckFileLayout(const Inode& inode, const std::string& path) {
  if (inode.type != FileType::kFile) return Status(StatusCode::kIsDir, "not a file: " + path);
  const Layout& l = inode.layout;
  if (l.chunkSizeBytes < limits::kChunkSizeBytesMin || l.chunkSizeBytes > limits::kChunkSizeBytesMax ||
      l.stripeSize < 1 || !l.hasSeed) {
    return Status::Protocol("inode " + std::to_string(inode.id) + " of " + path + " has a bad layout");
  }
  return Status::OK();
}

}  // namespace

// ---------------------------------------------------------------- chunk I/O with retries

// The retry state of one piece.
struct FileClient::Op {
  // One request in flight for the piece.
  struct Attempt {
    bool inflight = false;
    std::string address;
    uint32_t chainVersion = 0;  // writes: of the route the request was sent at
    Clock::time_point sentAt;
    std::shared_ptr<std::atomic<bool>> abandon;  // set: the transport ends the request now
  };
  // Reads: the replicas of this round (random non-tail first, the tail last; those seen
  // stalled after the others: client/hedge_governor.h) and the index of
  // the next one to try. Up to two attempts run at once: [0] reads into the piece's buffer,
  // [1] (a hedge, or a retry while [0] still stalls) into hedgeBuf. The first valid answer
  // wins; the piece is finished once no attempt is in flight, since until then a request's
  // buffer may still be written.
  uint32_t round = 0;
  std::vector<std::string> order;
  std::string tail;  // of this round's route: its ENOENT means a hole (the tail commits first)
  size_t next = 0;
  Attempt attempts[2];
  AlignedBuffer hedgeBuf;  // from FileClient::hedgeBuffers_ when it had room
  int winner = -1;  // reads: the attempt whose answer is taken; kHole: a hole; -1: none yet
  uint32_t winnerBytes = 0;
  // Writes: the ids every attempt carries, and the bounds of the retries (attempts[0] only).
  uint64_t requestId = 0;
  uint32_t attempt = 1;
  Clock::time_point deadline;
  // Both.
  bool refresh = false;  // refresh routing before the next attempt
  Clock::time_point wakeAt;
  Status last;

  static constexpr int kHole = -2;
  int InflightCount() const { return int{attempts[0].inflight} + int{attempts[1].inflight}; }
  void AbandonAll() {
    for (Attempt& a : attempts)
      if (a.inflight && a.abandon) a.abandon->store(true);
  }
};

// One ReadPieces/WritePieces call. Driven by the calling thread; transport threads only queue
// completions (they must not block, and a retry may wait for mgmtd).
struct FileClient::Run {
  struct Done {
    size_t index;
    int slot;
    Status status;
    uint32_t bytesRead;
  };
  bool write = false;
  std::vector<ChunkPiece>* pieces = nullptr;
  std::vector<Op> ops;
  std::deque<size_t> ready;    // to send now
  std::vector<size_t> delayed; // to send at ops[i].wakeAt
  size_t inflight = 0;         // requests sent, completion not handled
  Clock::duration hedgeDelay{};  // reads: a second replica is asked after this
  Status first;                // the first failure

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Done> done;  // GUARDED_BY(mu)

  void Complete(size_t index, int slot, const Status& s, uint32_t bytesRead) {
    std::lock_guard<std::mutex> lock(mu);
    done.push_back({index, slot, s, bytesRead});
    cv.notify_one();
  }
  void Fail(const Status& s) {
    if (first.ok()) {
      first = s;
      for (Op& op : ops) op.AbandonAll();  // nothing waits for a stalled replica now
    }
  }
};

Status FileClient::ReadPieces(std::vector<ChunkPiece>* pieces) { return RunPieces(false, pieces); }
Status FileClient::WritePieces(std::vector<ChunkPiece>* pieces) { return RunPieces(true, pieces); }

std::chrono::milliseconds FileClient::ReadHedgeDelay() {
  return chunkReadLatency_.HedgeDelay(limits::kReadHedgeDelayMsMin, limits::kReadHedgeDelayMsMax);
}

std::chrono::milliseconds FileClient::BatchReadHedgeDelay() {
  return batchReadLatency_.HedgeDelay(limits::kReadHedgeDelayMsMin, limits::kBatchReadHedgeDelayMsMax);
}

Status FileClient::RunPieces(bool write, std::vector<ChunkPiece>* pieces) {
  if (pieces->empty()) return Status::OK();
  Run run;
  run.write = write;
  run.pieces = pieces;
  run.ops.resize(pieces->size());
  if (!write) run.hedgeDelay = ReadHedgeDelay();
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.writeRetryMs);
  for (size_t i = 0; i < pieces->size(); i++) {
    if (write) {
      run.ops[i].requestId = nextRequestId_++;
      run.ops[i].deadline = deadline;
    }
    run.ready.push_back(i);
  }
  auto nextWatch = Clock::now() + std::chrono::milliseconds(limits::kTimerTickMs);
  for (;;) {
    if (!run.first.ok()) {
      run.ready.clear();
      run.delayed.clear();
    }
    auto now = Clock::now();
    for (auto it = run.delayed.begin(); it != run.delayed.end();) {
      if (run.ops[*it].wakeAt <= now) {
        run.ready.push_back(*it);
        it = run.delayed.erase(it);
      } else {
        ++it;
      }
    }
    while (run.first.ok() && run.inflight < options_.chunksInflight && !run.ready.empty()) {
      size_t i = run.ready.front();
      run.ready.pop_front();
      Issue(&run, i);
    }
    if (run.inflight == 0 && run.ready.empty() && run.delayed.empty()) break;
    // While requests are in flight: hedge slow reads, and give up on requests to targets the
    // routing no longer sends them to.
    Clock::time_point wake = Clock::time_point::max();
    if (run.inflight > 0) {
      if (now >= nextWatch) {
        Watch(&run);
        nextWatch = now + std::chrono::milliseconds(limits::kTimerTickMs);
      }
      if (!run.write && run.first.ok()) Hedge(&run, now, &wake);
      wake = std::min(wake, nextWatch);
    }
    for (size_t i : run.delayed) wake = std::min(wake, run.ops[i].wakeAt);

    std::deque<Run::Done> finished;
    {
      std::unique_lock<std::mutex> lock(run.mu);
      auto any = [&] { return !run.done.empty(); };
      if (!run.ready.empty() && run.inflight < options_.chunksInflight && run.first.ok()) {
        // more to send at once
      } else if (wake != Clock::time_point::max()) {
        run.cv.wait_until(lock, wake, any);
      } else {
        run.cv.wait(lock, any);
      }
      finished.swap(run.done);
    }
    for (const Run::Done& d : finished) {
      run.inflight--;
      Handle(&run, d.index, d.slot, d.status, d.bytesRead);
    }
  }
  return run.first;
}

void FileClient::Watch(Run* run) {
  for (size_t i = 0; i < run->ops.size(); i++) {
    Op& op = run->ops[i];
    if (op.InflightCount() == 0) continue;
    ChainRoute route;
    if (!routing_->Route((*run->pieces)[i].chainId, &route).ok()) continue;
    for (Op::Attempt& a : op.attempts) {
      if (!a.inflight || a.abandon->load()) continue;
      bool gone;
      if (run->write) {  // a head the routing replaced: resend to the new one at once
        gone = route.version != a.chainVersion && route.head != a.address;
      } else {           // a replica that no longer serves (offline, or syncing again)
        gone = std::find(route.serving.begin(), route.serving.end(), a.address) == route.serving.end();
      }
      if (gone) {
        a.abandon->store(true);
        counters_.abandonedRequests++;
      }
    }
  }
}

void FileClient::Hedge(Run* run, Clock::time_point now, Clock::time_point* wake) {
  for (size_t i = 0; i < run->ops.size(); i++) {
    Op& op = run->ops[i];
    if (op.InflightCount() != 1 || op.winner != -1 || op.next >= op.order.size()) continue;
    const Op::Attempt& a = op.attempts[op.attempts[0].inflight ? 0 : 1];
    const auto at = a.sentAt + run->hedgeDelay;
    if (at > now) {
      *wake = std::min(*wake, at);
      continue;
    }
    hedging_.Stalled(a.address, now);
    if (!hedging_.TrySpend()) {  // none saved: looked at again as later reads earn some
      *wake = std::min(*wake, now + std::chrono::milliseconds(limits::kTimerTickMs));
      continue;
    }
    if (IssueRead(run, i)) counters_.hedgedReads++;
  }
}

void FileClient::Issue(Run* run, size_t index) {
  Op& op = run->ops[index];
  ChunkPiece& p = (*run->pieces)[index];
  if (op.refresh) {
    op.refresh = false;
    routing_->Refresh();  // a failure leaves the cached routing, which the next attempt uses
  }
  if (!run->write) {
    // Hedges and retries of one piece may cross: two requests at most, none after an answer,
    // and a new round only once the last one ended.
    if (op.winner != -1 || op.InflightCount() >= 2) return;
    if (op.next >= op.order.size() && op.InflightCount() > 0) return;
    if (op.next >= op.order.size()) {  // a new round
      ChainRoute route;
      Status s = routing_->Route(p.chainId, &route);
      if (!s.ok()) return run->Fail(s);
      op.order = ReadOrder(route);
      hedging_.PreferResponsive(&op.order, Clock::now());
      op.tail = route.serving.empty() ? std::string() : route.serving.back();
      op.next = 0;
      if (op.order.empty()) {
        return Handle(run, index, -1, Status::Busy("chain " + std::to_string(p.chainId) + " has no serving target"), 0);
      }
    }
    IssueRead(run, index);
    return;
  }
  ChainRoute route;
  Status s = routing_->Route(p.chainId, &route);
  if (!s.ok()) return run->Fail(s);
  if (route.head.empty()) {
    return Handle(run, index, -1, Status::Busy("chain " + std::to_string(p.chainId) + " has no serving target"), 0);
  }
  Op::Attempt& a = op.attempts[0];
  a.inflight = true;
  a.address = route.head;
  a.chainVersion = route.version;
  a.sentAt = Clock::now();
  a.abandon = std::make_shared<std::atomic<bool>>(false);
  frame::WriteArgs args;
  args.chunk = p.chunk;
  args.offset = p.offsetInChunk;
  args.length = p.lengthBytes;
  args.flags = frame::kWriteChain;
  args.chunkSizeBytes = p.chunkSizeBytes;
  args.chainId = p.chainId;
  args.chainVersion = route.version;
  args.clientId = clientId_;
  args.requestId = op.requestId;  // the same on every attempt: the head applies it once
  Capability cap;
  bool hasCap = CapabilityFor(p.chunk.inode, /*write=*/true, true, &cap);
  run->inflight++;
  counters_.chunkWrites++;
  chunks_->Write(a.address, args, p.src, [run, index](const Status& s, const ChunkMeta&) {
    run->Complete(index, 0, s, 0);
  }, hasCap ? &cap : nullptr, a.abandon);
}

bool FileClient::IssueRead(Run* run, size_t index) {
  Op& op = run->ops[index];
  ChunkPiece& p = (*run->pieces)[index];
  const int slot = op.attempts[0].inflight ? 1 : 0;
  Op::Attempt& a = op.attempts[slot];
  char* dst = p.dst;
  if (slot == 1) {
    const size_t bytes = std::max<size_t>(p.lengthBytes, 1);
    if (op.hedgeBuf.empty() && !hedgeBuffers_.TryAcquire(bytes, &op.hedgeBuf).ok()) op.hedgeBuf = AlignedBuffer::Allocate(bytes);
    if (op.hedgeBuf.empty()) return false;
    dst = op.hedgeBuf.data();
  } else {
    hedging_.Earn();
  }
  a.inflight = true;
  a.address = op.order[op.next++];
  a.sentAt = Clock::now();
  a.abandon = std::make_shared<std::atomic<bool>>(false);
  frame::ReadArgs args;
  args.chunk = p.chunk;
  args.offset = p.offsetInChunk;
  args.length = p.lengthBytes;
  Capability cap;
  bool hasCap = CapabilityFor(p.chunk.inode, /*write=*/false, true, &cap);
  run->inflight++;
  counters_.chunkReads++;
  chunks_->Read(a.address, args, dst, [run, index, slot](const Status& s, const ChunkMeta&, uint32_t n) {
    run->Complete(index, slot, s, n);
  }, hasCap ? &cap : nullptr, a.abandon);
  return true;
}

void FileClient::FinishRead(Run* run, size_t index) {
  Op& op = run->ops[index];
  ChunkPiece& p = (*run->pieces)[index];
  if (op.winner == Op::kHole) {
    std::memset(p.dst, 0, p.lengthBytes);
    counters_.holes++;
  } else {
    if (op.winner == 1) std::memcpy(p.dst, op.hedgeBuf.data(), op.winnerBytes);
    if (op.winnerBytes < p.lengthBytes) std::memset(p.dst + op.winnerBytes, 0, p.lengthBytes - op.winnerBytes);
  }
  op.hedgeBuf = AlignedBuffer();  // back to the pool
}

void FileClient::Handle(Run* run, size_t index, int slot, const Status& s, uint32_t bytesRead) {
  Op& op = run->ops[index];
  auto now = Clock::now();
  std::string address;
  if (slot >= 0) {
    Op::Attempt& a = op.attempts[slot];
    a.inflight = false;
    address = a.address;
    if (!run->write && s.ok()) chunkReadLatency_.Record(now - a.sentAt);
    if (!run->write && (s.ok() || s.code() == StatusCode::kNotFound)) hedging_.Answered(address);
  }
  if (!run->write) {
    if (op.winner != -1 || !run->first.ok()) {  // decided: wait for the other request's end
      if (op.winner != -1 && op.InflightCount() == 0) FinishRead(run, index);
      return;
    }
    const bool tail = !op.tail.empty() && address == op.tail;
    if (s.ok() || (s.code() == StatusCode::kNotFound && tail)) {  // an answer, or never written
      op.winner = s.ok() ? slot : Op::kHole;
      op.winnerBytes = s.ok() ? bytesRead : 0;
      op.AbandonAll();
      if (op.InflightCount() == 0) FinishRead(run, index);
      return;
    }
    // ENOENT at a non-tail replica: the write may not have reached it yet; ask the others.
    if (!Retryable(s.code()) && s.code() != StatusCode::kNotFound) return run->Fail(s);
    op.last = s;
    if (run->first.ok()) counters_.readRetries++;
    if (op.next < op.order.size()) {  // the next replica now, even while another request stalls
      run->ready.push_back(index);
      return;
    }
    if (op.InflightCount() > 0) return;  // the other request may still answer
    if (++op.round >= limits::kReadRoundsMax) return run->Fail(op.last);
    op.order.clear();
    op.next = 0;
    op.refresh = true;
    op.wakeAt = now + Backoff(std::min(limits::kWriteRetryBackoffMsMax, 20 * op.round));
    run->delayed.push_back(index);
    return;
  }
  if (s.ok()) return;
  if (!Retryable(s.code())) return run->Fail(s);
  if (op.attempt >= limits::kWriteAttemptsMax || now >= op.deadline) return run->Fail(s);
  op.attempt++;
  counters_.writeRetries++;
  op.refresh = true;
  op.wakeAt = now + Backoff(std::min(limits::kWriteRetryBackoffMsMax, 10 * op.attempt));
  run->delayed.push_back(index);
}


// ---------------------------------------------------------------- FileClient

FileClient::FileClient(const FileClientOptions& options) : options_(options) {}

Status FileClient::Create(const FileClientOptions& options, std::unique_ptr<FileClient>* out) {
  if (options.chunksInflight < 1 || options.chunksInflight > limits::kFileChunksInflightMax) {
    return Status::InvalidArgument("chunksInflight must be in [1, " + std::to_string(limits::kFileChunksInflightMax) + "]");
  }
  if (options.writeBehindBytes > limits::kFileWriteBehindBytesMax) {
    return Status::InvalidArgument("writeBehindBytes exceeds " + std::to_string(limits::kFileWriteBehindBytesMax));
  }
  if (options.readAheadBytes > limits::kFileReadAheadBytesMax) {
    return Status::InvalidArgument("readAheadBytes exceeds " + std::to_string(limits::kFileReadAheadBytesMax));
  }
  if (options.mgmtd.rpc.endpoints.empty()) return Status::InvalidArgument("no mgmtd endpoints");
  std::unique_ptr<FileClient> c(new FileClient(options));
  c->clientId_ = options.clientId;
  while (c->clientId_ == 0) c->clientId_ = Rng()();
  if (!options.meta.rpc.endpoints.empty()) MP_RETURN_IF_ERROR(MetaClient::Create(options.meta, &c->meta_));
  MP_RETURN_IF_ERROR(MgmtdClient::Create(options.mgmtd, &c->mgmtd_));
  RoutingCacheOptions ro;
  ro.pollMs = options.routingPollMs;
  c->routing_.reset(new RoutingCache(c->mgmtd_.get(), ro));
  ChunkClientOptions chunks = options.chunks;
  if (!options.token.empty() && !chunks.credentials.present()) {
    Token token;
    MP_RETURN_IF_ERROR(ParseToken(options.token, &token));
    chunks.credentials = ClientCredentials::ForToken(token);
  }
  MP_RETURN_IF_ERROR(ChunkClient::Create(chunks, &c->chunks_));
  *out = std::move(c);
  return Status::OK();
}

FileClient::~FileClient() {
  if (chunks_) chunks_->Close();
  if (mgmtd_) mgmtd_->rpc()->Close();  // ends a routing fetch in flight at once
  routing_.reset();
  if (meta_) meta_->rpc()->Close();
}

Status FileClient::Open(const std::string& path, const OpenFlags& flags, uint32_t mode,
                        std::unique_ptr<FileHandle>* out, const MetaUser* as) {
  if (!meta_) return Status::InvalidArgument("this file client has no meta endpoints: it serves Attach only");
  OpenResult r;
  MP_RETURN_IF_ERROR(meta_->Open(path, flags, mode, &r, as));
  MP_RETURN_IF_ERROR(CheckFileLayout(r.inode, path));
  HoldCapability(r, path, /*renewable=*/true, as);
  out->reset(new FileHandle(this, r.inode, r.session, !r.session.empty(), as));
  return Status::OK();
}

Status FileClient::Attach(const OpenResult& r, const std::string& path, bool writable,
                          std::unique_ptr<FileHandle>* out) {
  MP_RETURN_IF_ERROR(CheckFileLayout(r.inode, path));
  HoldCapability(r, path, /*renewable=*/false, nullptr);
  out->reset(new FileHandle(this, r.inode, /*session=*/"", writable, nullptr));
  return Status::OK();
}

void FileClient::InstallCapability(const Capability& cap) {
  MutexLock lock(&capsMu_);
  auto it = caps_.find(cap.inode);
  if (it == caps_.end()) return;  // no handle holds the file any more
  for (HeldCapability::Slot* slot : {&it->second.read, &it->second.write}) {
    const uint32_t right = slot == &it->second.read ? kRightRead : kRightWrite;
    if (!(cap.rights & right) || (slot->present && cap.expiresMs <= slot->cap.expiresMs)) continue;
    slot->present = true;
    slot->cap = cap;
  }
}

namespace {
// When to renew a capability: half way through what is left of its lifetime now.
uint64_t RenewAt(const Capability& c) {
  uint64_t now = WallClockMs();
  return c.expiresMs <= now ? now : now + (c.expiresMs - now) / 2;
}
}  // namespace

void FileClient::HoldCapability(const OpenResult& r, const std::string& path, bool renewable, const MetaUser* as) {
  if (!r.hasCapability) return;
  MutexLock lock(&capsMu_);
  HeldCapability& h = caps_[r.inode.id];
  h.handles++;
  for (HeldCapability::Slot* slot : {&h.read, &h.write}) {
    const uint32_t right = slot == &h.read ? kRightRead : kRightWrite;
    if (!(r.capability.rights & right)) continue;
    if (slot->present && r.capability.expiresMs <= slot->cap.expiresMs) continue;
    slot->present = true;
    slot->cap = r.capability;
    slot->path = path;
    slot->renewAtMs = renewable ? RenewAt(r.capability) : UINT64_MAX;
    slot->hasAs = as != nullptr;
    slot->as = as != nullptr ? *as : MetaUser();
  }
}

void FileClient::ReleaseCapability(uint64_t inode) {
  MutexLock lock(&capsMu_);
  auto it = caps_.find(inode);
  if (it != caps_.end() && --it->second.handles == 0) caps_.erase(it);
}

bool FileClient::CapabilityFor(uint64_t inode, bool write, bool renew, Capability* out) {
  // The slot a request of this right uses: its own, else the other one (the server then
  // answers kAccess, as it should for a right no open granted).
  auto pick = [write](HeldCapability& h) -> HeldCapability::Slot* {
    HeldCapability::Slot* own = write ? &h.write : &h.read;
    HeldCapability::Slot* other = write ? &h.read : &h.write;
    return own->present ? own : other->present ? other : nullptr;
  };
  std::string path;
  bool renewWrite = false, hasAs = false;
  MetaUser as;
  {
    MutexLock lock(&capsMu_);
    auto it = caps_.find(inode);
    if (it == caps_.end()) return false;
    HeldCapability::Slot* slot = pick(it->second);
    if (slot == nullptr) return false;
    *out = slot->cap;
    if (!renew || WallClockMs() < slot->renewAtMs) return true;
    path = slot->path;
    renewWrite = slot == &it->second.write;
    hasAs = slot->hasAs;
    as = slot->as;
  }
  MutexLock one(&renewMu_);
  {  // another thread may have renewed it while this one waited
    MutexLock lock(&capsMu_);
    auto it = caps_.find(inode);
    if (it == caps_.end()) return false;
    HeldCapability::Slot* slot = pick(it->second);
    if (slot == nullptr) return false;
    *out = slot->cap;
    if (WallClockMs() < slot->renewAtMs) return true;
  }
  // Renewed by opening the path again with the slot's right only (meta checks it again).
  OpenFlags flags;
  flags.read = !renewWrite;
  flags.write = renewWrite;
  OpenResult r;
  Status s = meta_->Open(path, flags, 0, &r, hasAs ? &as : nullptr);
  if (s.ok() && !r.session.empty()) {
    Inode ignored;
    (void)meta_->Close(r.inode.id, r.session, 0, &ignored, hasAs ? &as : nullptr);
  }
  MutexLock lock(&capsMu_);
  auto it = caps_.find(inode);
  if (it == caps_.end()) return false;
  HeldCapability::Slot& slot = renewWrite ? it->second.write : it->second.read;
  if (s.ok() && r.hasCapability && r.inode.id == inode) {
    slot.cap = r.capability;
    slot.renewAtMs = RenewAt(r.capability);
  } else {
    // The path names another file now, or meta refused: keep the old one until it expires
    // (the server then answers kAuth); try again a little later.
    slot.renewAtMs = WallClockMs() + limits::kCapabilityRenewRetryMs;
  }
  *out = slot.cap;
  return true;
}

void FileClient::PrefetchChunk(uint32_t chainId, const ChunkId& chunk, uint32_t length, char* dst,
                               std::function<void(bool)> done, ChunkClient::Abandon abandon) {
  ChainRoute route;
  if (!routing_->Route(chainId, &route).ok() || route.serving.empty()) return done(false);
  std::vector<std::string> order = ReadOrder(route);
  hedging_.PreferResponsive(&order, Clock::now());
  const bool tail = order.front() == route.serving.back();  // a hole there is a hole
  frame::ReadArgs args;
  args.chunk = chunk;
  args.length = length;
  Capability cap;
  bool hasCap = CapabilityFor(chunk.inode, /*write=*/false, false, &cap);  // no renewal: may run on a completion thread
  chunks_->Read(order.front(), args, dst,
                [dst, length, tail, done = std::move(done)](const Status& s, const ChunkMeta&, uint32_t n) {
                  if (s.ok()) {
                    std::memset(dst + n, 0, length - n);
                  } else if (s.code() == StatusCode::kNotFound && tail) {
                    std::memset(dst, 0, length);  // a hole
                  } else {
                    return done(false);
                  }
                  done(true);
                }, hasCap ? &cap : nullptr, std::move(abandon));
}

std::shared_ptr<ReadAhead> FileClient::ReadAheadFor(const Inode& inode) {
  const uint32_t chunkBytes = inode.layout.chunkSizeBytes;
  const uint32_t window = static_cast<uint32_t>(
      std::min<size_t>(limits::kFileReadAheadChunksMax, options_.readAheadBytes / chunkBytes));
  if (window == 0) return nullptr;
  MutexLock lock(&readAheadMu_);
  for (auto it = readAheads_.begin(); it != readAheads_.end();) {  // bounded by the open files
    it = it->second.expired() ? readAheads_.erase(it) : std::next(it);
  }
  // A file changed since the state was made (another length or mtime) gets a fresh one, so
  // an open never sees chunks prefetched before it (close-to-open consistency).
  std::weak_ptr<ReadAhead>& slot = readAheads_[{inode.id, inode.mtimeMs, inode.lengthBytes}];
  std::shared_ptr<ReadAhead> shared = slot.lock();
  if (!shared) {
    shared = std::make_shared<ReadAhead>(this, inode.id, chunkBytes, window);
    slot = shared;
  }
  return shared;
}

// ---------------------------------------------------------------- FileHandle

FileHandle::FileHandle(FileClient* client, const Inode& inode, std::string session, bool writable,
                       const MetaUser* as)
    : client_(client),
      inode_(inode),
      session_(std::move(session)),
      writable_(writable),
      hasAs_(as != nullptr),
      as_(as != nullptr ? *as : MetaUser()),
      chunkSizeBytes_(inode.layout.chunkSizeBytes),
      readAhead_(client->ReadAheadFor(inode)),
      lengthBytes_(inode.lengthBytes),
      ackedEndBytes_(inode.lengthBytes) {}

FileHandle::~FileHandle() {
  Close();
  client_->ReleaseCapability(inode_.id);
}

uint64_t FileHandle::lengthBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return lengthBytes_;
}

size_t FileHandle::writeBehindPeakBytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return peakBufferedBytes_;
}

size_t FileHandle::readAheadCachedBytes() { return readAhead_ ? readAhead_->cachedBytes() : 0; }

Status FileHandle::Chains(std::vector<uint32_t>* out) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!chains_.empty()) {
      *out = chains_;
      return Status::OK();
    }
  }
  std::vector<uint32_t> table;
  Status s = client_->routing()->TableChains(inode_.layout.chainTableId, inode_.layout.chainTableVersion, &table);
  if (s.code() == StatusCode::kNotFound || (s.ok() && table.empty())) {
    return Status::IoError("chain table " + std::to_string(inode_.layout.chainTableId) + " version " +
                           std::to_string(inode_.layout.chainTableVersion) + " of inode " + std::to_string(inode_.id) +
                           " does not exist");
  }
  MP_RETURN_IF_ERROR(s);
  std::vector<uint32_t> chains = layout::FileChains(table, inode_.layout.stripeSize, inode_.layout.seed);
  std::lock_guard<std::mutex> lock(mu_);
  chains_ = chains;
  *out = std::move(chains);
  return Status::OK();
}

void FileHandle::Pieces(const std::vector<uint32_t>& chains, uint64_t offset, size_t length,
                        std::vector<ChunkPiece>* out, uint32_t pieceBytesMax) {
  out->clear();
  for (size_t done = 0; done < length;) {
    layout::ChunkPosition at = layout::Locate(offset + done, chunkSizeBytes_);
    ChunkPiece p;
    p.chainId = layout::ChainOfChunk(chains, at.index);
    p.chunk = ChunkId{inode_.id, at.index};
    p.offsetInChunk = at.offsetInChunk;
    p.lengthBytes = static_cast<uint32_t>(std::min<uint64_t>({length - done, chunkSizeBytes_ - at.offsetInChunk, pieceBytesMax}));
    p.chunkSizeBytes = chunkSizeBytes_;
    out->push_back(p);
    done += p.lengthBytes;
  }
}

// ---- reads

Status FileHandle::PrepareRead() {
  bool buffered;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Status::Closed("file handle is closed");
    MP_RETURN_IF_ERROR(writeError_);
    buffered = bufferedBytes_ > 0;
  }
  return buffered ? Flush() : Status::OK();  // reads see this handle's writes
}

Status FileHandle::Read(uint64_t offset, size_t length, char* dst, size_t* bytesRead) {
  *bytesRead = 0;
  MP_RETURN_IF_ERROR(PrepareRead());

  uint64_t fileLength;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fileLength = lengthBytes_;
  }
  if (offset >= fileLength || length == 0) return Status::OK();
  size_t n = static_cast<size_t>(std::min<uint64_t>(length, fileLength - offset));
  std::vector<uint32_t> chains;
  MP_RETURN_IF_ERROR(Chains(&chains));
  // With read-ahead, a read longer than a step of the window goes step by step, each a
  // sequential read that tops the window up. Served whole, its own chunks spent the window's
  // budget (nothing was prefetched past it) and it read them itself: a 64 MiB read with the
  // default 64 MiB window ran at two thirds of the speed of the same bytes read 16 MiB at a time.
  const uint64_t step = readAhead_ ? std::max<uint64_t>(chunkSizeBytes_, client_->options().readAheadBytes /
                                                                              limits::kFileReadAheadStepsPerWindow)
                                   : n;
  for (uint64_t at = offset; at < offset + n;) {
    const size_t len = static_cast<size_t>(std::min<uint64_t>(step, offset + n - at));
    std::vector<ChunkPiece> pieces;
    // Large reads go as several smaller chunk reads in flight at once: the servers' disks and
    // the network then work in parallel instead of one chunk-sized request after another.
    Pieces(chains, at, len, &pieces, limits::kFileReadPieceBytesMax);
    for (ChunkPiece& p : pieces) {
      p.dst = dst + (static_cast<uint64_t>(p.chunk.index) * chunkSizeBytes_ + p.offsetInChunk - offset);
    }
    std::vector<ChunkPiece> misses;
    if (readAhead_) {
      readAhead_->Serve(at, len, fileLength, chains, pieces, &misses);
    } else {
      misses = std::move(pieces);
    }
    MP_RETURN_IF_ERROR(client_->ReadPieces(&misses));
    at += len;
  }
  *bytesRead = n;
  client_->mutable_counters().bytesRead += n;
  return Status::OK();
}

Status FileHandle::ReadBatch(const std::vector<Range>& ranges) {
  MP_RETURN_IF_ERROR(PrepareRead());
  std::vector<uint32_t> chains;
  MP_RETURN_IF_ERROR(Chains(&chains));
  std::map<uint32_t, std::vector<ChunkPiece>> byChain;
  uint64_t total = 0;
  std::vector<ChunkPiece> pieces;
  for (const Range& r : ranges) {
    Pieces(chains, r.offset, r.lengthBytes, &pieces);
    for (ChunkPiece& p : pieces) {
      p.dst = r.dst + (static_cast<uint64_t>(p.chunk.index) * chunkSizeBytes_ + p.offsetInChunk - r.offset);
      byChain[p.chainId].push_back(p);
    }
    total += r.lengthBytes;
  }
  Capability cap;
  const bool hasCap = client_->CapabilityFor(inode_.id, /*write=*/false, /*renew=*/true, &cap);
  const std::vector<Capability> caps = hasCap ? std::vector<Capability>{cap} : std::vector<Capability>{};

  // One batch message per group of a chain's pieces within the entry and byte limits, each to
  // a random serving replica; what it could not serve is read again below, with retries.
  struct Batch {
    std::string address;
    bool tail = false;  // a hole there is a hole (the tail commits first)
    std::vector<ChunkPiece> pieces;
    std::shared_ptr<std::atomic<bool>> abandon = std::make_shared<std::atomic<bool>>(false);
    bool done = false;
    Clock::time_point answeredAt;
    Status status;
    std::vector<BatchReadResult> results;
  };
  std::vector<Batch> batches;
  std::vector<ChunkPiece> misses;
  for (auto& [chainId, group] : byChain) {
    ChainRoute route;
    if (!client_->routing()->Route(chainId, &route).ok() || route.serving.empty()) {
      misses.insert(misses.end(), group.begin(), group.end());
      continue;
    }
    // A random replica, one not seen stalled when there is one.
    std::vector<std::string> order = route.serving;
    std::rotate(order.begin(), order.begin() + RandomBelow(order.size()), order.end());
    client_->hedging().PreferResponsive(&order, Clock::now());
    const bool tail = order.front() == route.serving.back();
    uint64_t bytes = 0;
    for (const ChunkPiece& p : group) {
      if (batches.empty() || batches.back().pieces.empty() || batches.back().pieces[0].chainId != chainId ||
          batches.back().pieces.size() == limits::kBatchReadEntriesMax ||
          bytes + p.lengthBytes > limits::kBatchReadBytesMax) {
        batches.emplace_back();
        batches.back().address = order.front();
        batches.back().tail = tail;
        bytes = 0;
      }
      batches.back().pieces.push_back(p);
      bytes += p.lengthBytes;
    }
  }
  std::mutex doneMu;
  std::condition_variable doneCv;
  size_t pending = batches.size();
  const auto hedgeDelay = client_->BatchReadHedgeDelay();
  const auto sentAt = Clock::now();
  for (Batch& b : batches) {
    std::vector<frame::ReadArgs> reads;
    std::vector<char*> dsts;
    for (const ChunkPiece& p : b.pieces) {
      frame::ReadArgs a;
      a.chunk = p.chunk;
      a.offset = p.offsetInChunk;
      a.length = p.lengthBytes;
      reads.push_back(a);
      dsts.push_back(p.dst);
    }
    client_->chunks()->BatchRead(
        b.address, reads, dsts,
        [&b, &doneMu, &doneCv, &pending](const Status& s, const std::vector<BatchReadResult>& results) {
          std::lock_guard<std::mutex> lock(doneMu);
          b.status = s;
          b.results = results;
          b.done = true;
          b.answeredAt = Clock::now();
          if (--pending == 0) doneCv.notify_all();
        },
        caps.empty() ? nullptr : &caps, b.abandon);
  }
  {
    // A replica that has not answered a batch within the hedge delay (paused, or far behind)
    // is given up on: its pieces are read again below, each hedged on its own. The abandoned
    // request ends within a timer tick; until then it may write the pieces' buffers, so it
    // is waited for.
    std::unique_lock<std::mutex> lock(doneMu);
    if (!doneCv.wait_until(lock, sentAt + hedgeDelay, [&] { return pending == 0; })) {
      for (Batch& b : batches) {
        if (b.done) continue;
        b.abandon->store(true);
        client_->hedging().Stalled(b.address, Clock::now());
        client_->mutable_counters().hedgedReads++;
      }
      doneCv.wait(lock, [&] { return pending == 0; });
    }
  }
  for (Batch& b : batches) {
    if (b.status.ok()) {
      client_->RecordBatchReadLatency(b.answeredAt - sentAt);
      client_->hedging().Answered(b.address);
    }
    for (size_t i = 0; i < b.pieces.size(); i++) {
      ChunkPiece& p = b.pieces[i];
      const BatchReadResult* r = b.status.ok() && i < b.results.size() ? &b.results[i] : nullptr;
      if (r != nullptr && r->code == StatusCode::kOk) {
        std::memset(p.dst + r->bytesRead, 0, p.lengthBytes - std::min(r->bytesRead, p.lengthBytes));
      } else if (r != nullptr && r->code == StatusCode::kNotFound && b.tail) {
        std::memset(p.dst, 0, p.lengthBytes);  // never written
      } else {
        misses.push_back(p);
        client_->mutable_counters().batchMisses++;
      }
    }
  }
  MP_RETURN_IF_ERROR(client_->ReadPieces(&misses));
  client_->mutable_counters().bytesRead += total;
  return Status::OK();
}

// ---- writes

Status FileHandle::CheckSession() {
  // Acknowledge only what close can still publish: kBadHandle once meta ended the session.
  // Attached handles hold no session here: their caller checks its own.
  return session_.empty() ? Status::OK() : client_->meta()->CheckSession(session_);
}

Status FileHandle::WriteThrough(uint64_t offset, const char* data, size_t length) {
  std::vector<uint32_t> chains;
  MP_RETURN_IF_ERROR(Chains(&chains));
  std::vector<ChunkPiece> pieces;
  Pieces(chains, offset, length, &pieces);
  for (ChunkPiece& p : pieces) {
    p.src = data + (static_cast<uint64_t>(p.chunk.index) * chunkSizeBytes_ + p.offsetInChunk - offset);
  }
  Status s = client_->WritePieces(&pieces);
  std::lock_guard<std::mutex> lock(mu_);
  if (s.ok()) {
    ackedEndBytes_ = std::max(ackedEndBytes_, offset + length);
    lengthBytes_ = std::max(lengthBytes_, offset + length);
  }
  return s;
}

Status FileHandle::Write(uint64_t offset, const char* data, size_t length) {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return Status::Closed("file handle is closed");
  if (!writable_) return Status(StatusCode::kBadHandle, "file is not open for write");
  MP_RETURN_IF_ERROR(writeError_);
  if (length == 0) return Status::OK();
  if (offset > limits::kFileLengthBytesMax || length > limits::kFileLengthBytesMax - offset) {
    return Status::InvalidArgument("write beyond " + std::to_string(limits::kFileLengthBytesMax) + " bytes");
  }
  if (readAhead_) readAhead_->Invalidate(offset, length);
  const size_t max = client_->options().writeBehindBytes;
  if (max == 0) {
    lock.unlock();
    MP_RETURN_IF_ERROR(WriteThrough(offset, data, length));
    client_->mutable_counters().bytesWritten += length;
    return CheckSession();
  }
  if (!flusher_.joinable()) flusher_ = std::thread([this] { FlusherLoop(); });
  for (size_t done = 0; done < length;) {
    layout::ChunkPosition at = layout::Locate(offset + done, chunkSizeBytes_);
    size_t n = std::min<size_t>({length - done, size_t{chunkSizeBytes_} - at.offsetInChunk, max});
    while (bufferedBytes_ + n > max && writeError_.ok()) {
      spaceWaiter_ = true;  // lets the flusher take the open piece too
      cv_.notify_all();
      cv_.wait(lock);
    }
    spaceWaiter_ = false;
    MP_RETURN_IF_ERROR(writeError_);
    if (!queued_.empty() && queued_.back().index == at.index &&
        queued_.back().offsetInChunk + queued_.back().data.size() == at.offsetInChunk) {
      queued_.back().data.append(data + done, n);  // a sequential writer fills whole chunks
    } else {
      queued_.push_back(Dirty{at.index, at.offsetInChunk, std::string(data + done, n)});
    }
    bufferedBytes_ += n;
    peakBufferedBytes_ = std::max(peakBufferedBytes_, bufferedBytes_);
    lengthBytes_ = std::max<uint64_t>(lengthBytes_, offset + done + n);
    done += n;
    cv_.notify_all();
  }
  lock.unlock();
  client_->mutable_counters().bytesWritten += length;
  return CheckSession();
}

bool FileHandle::FlushableLocked() const {
  if (queued_.empty()) return false;
  const Dirty& d = queued_.front();
  // The front is sealed when something follows it or it reaches its chunk's end; the open
  // piece a sequential writer still appends to waits, unless someone needs the space or waits.
  return queued_.size() > 1 || d.offsetInChunk + d.data.size() == chunkSizeBytes_ || flushAll_ ||
         spaceWaiter_ || stopping_;
}

void FileHandle::FlusherLoop() {
  const size_t batchMax = client_->options().chunksInflight;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return FlushableLocked() || (stopping_ && queued_.empty()); });
    if (queued_.empty()) break;  // stopping
    // A batch: pieces written at once. Two pieces overlapping in one chunk never share one:
    // their order matters, and batches run one after another.
    std::vector<Dirty> batch;
    while (batch.size() < batchMax && FlushableLocked()) {
      const Dirty& d = queued_.front();
      bool overlaps = std::any_of(batch.begin(), batch.end(), [&](const Dirty& b) {
        return b.index == d.index && b.offsetInChunk < d.offsetInChunk + d.data.size() &&
               d.offsetInChunk < b.offsetInChunk + b.data.size();
      });
      if (overlaps) break;
      batch.push_back(std::move(queued_.front()));
      queued_.pop_front();
    }
    flushing_ = true;
    lock.unlock();

    std::vector<ChunkPiece> pieces;
    std::vector<uint32_t> chains;
    Status s = Chains(&chains);
    if (s.ok()) {
      for (const Dirty& d : batch) {
        ChunkPiece p;
        p.chainId = layout::ChainOfChunk(chains, d.index);
        p.chunk = ChunkId{inode_.id, d.index};
        p.offsetInChunk = d.offsetInChunk;
        p.lengthBytes = static_cast<uint32_t>(d.data.size());
        p.chunkSizeBytes = chunkSizeBytes_;
        p.src = d.data.data();
        pieces.push_back(p);
      }
      s = client_->WritePieces(&pieces);
    }
    client_->mutable_counters().writeBehindBatches++;

    lock.lock();
    flushing_ = false;
    for (const Dirty& d : batch) {
      bufferedBytes_ -= d.data.size();
      if (s.ok()) {
        ackedEndBytes_ = std::max<uint64_t>(ackedEndBytes_, uint64_t{d.index} * chunkSizeBytes_ + d.offsetInChunk + d.data.size());
      }
    }
    if (!s.ok()) {
      if (writeError_.ok()) writeError_ = s;
      for (const Dirty& d : queued_) bufferedBytes_ -= d.data.size();  // never written now
      queued_.clear();
    }
    cv_.notify_all();
  }
}

Status FileHandle::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (closed_) return Status::Closed("file handle is closed");
  if (bufferedBytes_ > 0) {
    flushAll_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return bufferedBytes_ == 0; });
    flushAll_ = false;
  }
  return writeError_;
}

Status FileHandle::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return closeStatus_;
  }
  Status s = Flush();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (flusher_.joinable()) flusher_.join();
  uint64_t length;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Only what every replica acknowledged: after a clean flush that is every write; after a
    // failed one (write-behind or write-through), never a range that may hold nothing.
    length = std::max(inode_.lengthBytes, ackedEndBytes_);
  }
  if (!session_.empty()) {
    Inode after;
    Status m = client_->meta()->Close(inode_.id, session_, length, &after, hasAs_ ? &as_ : nullptr);
    if (s.ok()) s = m;
  }
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  closeStatus_ = s;
  return s;
}

}  // namespace millpond
