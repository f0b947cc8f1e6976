// DataServer: serves one ChunkStore on the data plane (design §4). Requests arrive through
// the transports (TCP always; RDMA too when chosen and available), are answered by a pool
// of I/O threads, and never cross into JavaScript.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/buffer_pool.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "client/chunk_client.h"
#include "common/work_queue.h"
#include "storage/chunk_store.h"
#include "storage/local_read_server.h"
#include "transport/rdma/rdma_transport.h"
#include "transport/transport.h"

namespace millpond {

struct DataServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  TransportChoice transport = TransportChoice::kAuto;
  uint32_t ioThreads = limits::kServerIoThreadsDefault;
  uint32_t frameTimeoutMs = limits::kServerFrameTimeoutMsDefault;
  // Offer short-circuit local reads to clients on this host (storage/local_read_server.h).
  bool localReads = true;
  // Where the local-read socket lives: a directory made 0700 (empty: "<store dir>/run", or a
  // fresh /tmp/millpond-XXXXXX when that path is too long for a socket).
  std::string localSocketDir;
  // The cluster secret (design §10). With it, every connection authenticates before its first
  // request; a client's requests must carry capabilities and it may not send chain-internal
  // operations (commit, remove, list, writes other than a chain write at the head). Null:
  // authentication off, everything is served to everyone (tests, a trusted single host).
  std::shared_ptr<const ServerAuth> auth;
  // This server's storage node: forwards to successors authenticate with its key.
  uint32_t nodeId = 0;
};

// Where this server's target sits on one chain (design §3), as the storage daemon learns it
// from mgmtd's routing info.
struct ChainPosition {
  uint32_t chainVersion = 0;
  bool head = false;      // clients' writes enter here
  std::string successor;  // data-plane address of the next target; empty at the tail
  bool successorSyncing = false;  // it is catching up: send it whole chunks, not updates
};

struct DataServerStats {
  uint64_t reads = 0, writes = 0, batchReads = 0, batchReadEntries = 0, others = 0;
  uint64_t bytesRead = 0, bytesWritten = 0;  // chunk content served and stored
  uint64_t errors = 0;                       // requests answered with a failure
  uint64_t busyRejections = 0;               // requests refused because the queue was full
  uint64_t chainWrites = 0, forwards = 0, duplicateWrites = 0;  // CRAQ
  uint64_t wholeResends = 0;  // forwards resent whole because the successor's base differed
  uint64_t rollForwards = 0;  // a successor's newer committed version adopted here (CRAQ)
  uint64_t localOpens = 0;  // version-file descriptors handed to local readers
  uint64_t refusals = 0;    // requests refused for want of a capability or a node's key
  uint64_t authFailures = 0;  // connections that failed the handshake
};

class DataServer : public CallHandler {
 public:
  // REQUIRES: store outlives the server.
  static Status Start(ChunkStore* store, const DataServerOptions& options, std::unique_ptr<DataServer>* out);
  ~DataServer() override;

  // Stops accepting, answers what is queued, and joins every thread.
  void Stop();
  uint16_t port() const { return tcp_->port(); }
  bool rdmaEnabled() const { return rdma_ != nullptr; }
  // The path of the Unix socket local readers connect to; empty when localReads is off.
  std::string localSocketName() const { return local_ ? local_->name() : std::string(); }
  DataServerStats stats() const;
  const TransportCounters& tcpCounters() const { return tcp_->counters(); }
  const TransportCounters* rdmaCounters() const { return rdma_ ? &rdma_->counters() : nullptr; }

  // CRAQ chain writes (frame::kWriteChain). A write from a client enters at the head, which
  // assigns the version and serialises updates per chunk; each target stores a pending
  // version and forwards to its successor; the tail commits first and acknowledgements
  // travel back, each target committing as the ack passes. Checksums are compared between
  // neighbours. (clientId, requestId) make a retried write apply once. A version any replica
  // committed is never rolled back: the next write rolls the chain forward to it.
  void SetChain(uint32_t chainId, const ChainPosition& position);
  void RemoveChain(uint32_t chainId);

  void OnCall(std::unique_ptr<ServerCall> call) override;

 private:
  struct ChainWrite;
  // Where this target is on the write's chain now; kStaleVersion if the write's routing is
  // no longer right (another chain version, or, for a client write, not the head).
  Status CheckChainPosition(const frame::WriteArgs& args, bool atHead, ChainPosition* position);
  void ServeChainWrite(std::unique_ptr<ServerCall> call, const frame::WriteArgs& args, AlignedBuffer payload);
  void ApplyChainWrite(std::shared_ptr<ChainWrite> w);
  // Stores the write's pending version on the committed one (at the head under a new version
  // number) and forwards it, or commits it at the tail.
  void StoreChainWrite(std::shared_ptr<ChainWrite> w);
  // Sends the pending version w->version to the successor: the update as it came, or the
  // whole new content when `whole`.
  void ForwardChainWrite(std::shared_ptr<ChainWrite> w, bool whole);
  void AfterForward(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& s, const ChunkMeta& successor);
  // CRAQ roll-forward: a version any replica committed is committed (a reader at the tail may
  // have read it), so it is never rolled back. When the successor refused the forward
  // (`refused`), or acknowledged `version` with other bytes, and it holds a newer committed
  // version than this target, this target fetches that version from it (a whole-chunk read)
  // and installs it, then rebuilds the write on top (refused) or answers with it (acknowledged).
  // Otherwise `otherwise` runs. Once per write and hop.
  void RollForward(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& refused,
                   std::function<void()> otherwise);
  void InstallFromSuccessor(std::shared_ptr<ChainWrite> w, uint64_t version, const Status& refused,
                            const ChunkMeta& successor, std::function<void()> otherwise);
  // Answers a chain write and, at the head, starts the next update queued on its chunk.
  void FinishChainWrite(const std::shared_ptr<ChainWrite>& w, const Status& s, const ChunkMeta& meta);
  void RunOnWorker(std::function<void()> task);
  DataServer(ChunkStore* store, const DataServerOptions& options);
  void Serve(std::unique_ptr<ServerCall> call);
  void ServeRead(ServerCall* call);
  // Answers a kReadBlockCrcs read with the stored block CRCs and the bytes unverified.
  void ReplyBlocks(ServerCall* call, const ChunkMeta& meta, const VersionSpan& span);
  void ServeBatchRead(ServerCall* call);
  void ServeWrite(std::unique_ptr<ServerCall> call);
  void ServeSmall(ServerCall* call);  // stat, remove, commit, list, ping
  // Clients may send only the requests a capability covers; chain-internal ones need a node.
  Status CheckOpcodeAllowed(const ServerCall& call);
  // For a client's request: the capability after its arguments (in r) must grant `right` on
  // `inode` (kAuth: none, forged, expired, another inode; kAccess: lacks the right).
  Status CheckCapability(const ServerCall& call, frame::Reader* r, uint64_t inode, uint32_t right);
  Status Refused(const ServerCall& call, const Status& why);  // counts and logs a refusal

  ChunkStore* store_;
  const DataServerOptions options_;
  BufferPool buffers_;
  std::unique_ptr<WorkQueue> workers_;
  std::unique_ptr<ServerTransport> tcp_;
  std::unique_ptr<RdmaServerTransport> rdma_;
  std::unique_ptr<ChunkClient> forwarder_;  // to successors
  std::unique_ptr<LocalReadServer> local_;   // null when localReads is off
  std::atomic<bool> stopped_{false};

  Mutex chainsMu_;
  std::unordered_map<uint32_t, ChainPosition> chains_ GUARDED_BY(chainsMu_);
  Mutex updatesMu_;
  // Chunks with a chain update in flight at this head, and the writes waiting behind it.
  std::map<ChunkId, std::deque<std::shared_ptr<ChainWrite>>> updating_ GUARDED_BY(updatesMu_);
  Mutex dedupMu_;
  std::map<std::pair<uint64_t, uint64_t>, ChunkMeta> applied_ GUARDED_BY(dedupMu_);
  std::deque<std::pair<uint64_t, uint64_t>> appliedOrder_ GUARDED_BY(dedupMu_);  // oldest first

  struct Counters {
    std::atomic<uint64_t> reads{0}, writes{0}, batchReads{0}, batchReadEntries{0}, others{0};
    std::atomic<uint64_t> bytesRead{0}, bytesWritten{0}, errors{0}, busyRejections{0};
    std::atomic<uint64_t> chainWrites{0}, forwards{0}, duplicateWrites{0}, wholeResends{0}, rollForwards{0};
    std::atomic<uint64_t> refusals{0};
    std::atomic<int64_t> lastRefusalLogMs{0};
  } counters_;
};

}  // namespace millpond
