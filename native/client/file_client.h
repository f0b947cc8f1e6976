// FileClient: the native file client (design §1 "client"): meta calls, a routing cache and
// striped parallel chunk I/O over the file's chains, with read-ahead for sequential reads and
// write-behind with bounded memory. No Node dependency: the TS FileSystem (through the addon's
// FileClientHandle, src/fs/file-data.ts), the DuckDB extension and the FUSE mount all sit on it:
// it is the one implementation of a client's chunk I/O (src/cluster/routing-client.ts only
// retries the daemons' own few chunk operations: cutting a shrunk file's last chunk).
//
// Chunk I/O:
//  - a write enters at the chain's head as a CRAQ chain write carrying (clientId, requestId);
//    on ESTALE, connection errors, timeouts, EBUSY, ENOTCOMMITTED or ECHUNK_CORRUPT it is
//    resent with the SAME ids (the head applies it once) after a routing refresh and a short
//    random backoff, for at most writeRetryMs and limits::kWriteAttemptsMax attempts;
//  - a read goes to a serving replica (a random non-tail one first, the tail last), moving to
//    the next on those errors and on ENOENT at a non-tail replica (the tail commits first);
//    after a round over all of them it refreshes routing, for limits::kReadRoundsMax rounds;
//  - chunks never written (ENOENT at the tail) and bytes past a chunk's end read as zeros, up
//    to the file's length;
//  - a read not answered within the hedge delay (limits::kReadHedgeMedianFactor times the
//    median of recent chunk reads, within [kReadHedgeDelayMsMin, kReadHedgeDelayMsMax]) is
//    also sent to the next replica while the hedge budget lasts, and its replica is tried
//    last by new reads for a while (client/hedge_governor.h); the first valid answer wins
//    and the other request is abandoned (a paused server must not stall readers for the
//    whole request timeout); a
//    batched read slower than the same factor times the median of recent batches (within
//    [kReadHedgeDelayMsMin, kBatchReadHedgeDelayMsMax]) is abandoned and its pieces read one
//    by one, each hedged so;
//  - while requests wait, the routing is watched: a request to a target that left the
//    serving replicas (reads) or a head the routing replaced (writes) is abandoned at once,
//    and the write is resent to the new head.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "client/chunk_client.h"
#include "client/file_client_counters.h"
#include "client/hedge_governor.h"
#include "client/latency_window.h"
#include "client/meta_client.h"
#include "client/mgmtd_client.h"
#include "client/read_ahead.h"
#include "client/routing_cache.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "common/status.h"

namespace millpond {

struct FileClientOptions {
  MetaClientOptions meta;           // meta servers, user, clientId
  MgmtdClientOptions mgmtd;         // every mgmtd address
  ChunkClientOptions chunks;        // data plane (transport, in-flight bytes, timeout)
  uint32_t routingPollMs = limits::kRoutingPollMsDefault;
  uint32_t writeRetryMs = limits::kWriteRetryMsDefault;
  // Chunk reads or writes of one call (or one write-behind batch) in flight at once.
  // 1..kFileChunksInflightMax.
  uint32_t chunksInflight = limits::kFileChunksInflightDefault;
  // Per handle: bytes Write() may buffer before it blocks. 0: write-through (Write returns once
  // every replica committed). <= kFileWriteBehindBytesMax.
  size_t writeBehindBytes = limits::kFileWriteBehindBytesDefault;
  // Per file: bytes of whole chunks prefetched ahead of sequential reads (client/read_ahead.h).
  // 0 (or less than a chunk): no read-ahead. <= kFileReadAheadBytesMax.
  size_t readAheadBytes = limits::kFileReadAheadBytesDefault;
  // Identifies this client's chain writes at heads; 0: random.
  uint64_t clientId = 0;
  // The user's token (mpt1...., common/auth.h): the data plane's credentials when
  // chunks.credentials is anonymous. Empty: none (a cluster without a secret).
  std::string token;
};

// One piece of a file operation: a byte range inside one chunk.
struct ChunkPiece {
  uint32_t chainId = 0;
  ChunkId chunk;
  uint32_t offsetInChunk = 0;
  uint32_t lengthBytes = 0;
  uint32_t chunkSizeBytes = 0;
  char* dst = nullptr;          // reads: receives lengthBytes (zeros past the chunk's end)
  const char* src = nullptr;    // writes
};

class FileHandle;

class FileClient {
 public:
  static Status Create(const FileClientOptions& options, std::unique_ptr<FileClient>* out);
  // REQUIRES: every FileHandle of this client was destroyed before.
  ~FileClient();

  FileClient(const FileClient&) = delete;
  FileClient& operator=(const FileClient&) = delete;

  // Opens (and with flags.create, creates) a regular file. Opened for write, the handle holds
  // a meta session that its Close() ends by publishing the file's length. With `as`, the open
  // and that close act as that identity (MetaClient); the handle keeps a copy.
  Status Open(const std::string& path, const OpenFlags& flags, uint32_t mode,
              std::unique_ptr<FileHandle>* out, const MetaUser* as = nullptr);
  // A handle on a file the caller opened through its own meta client (the TS FileSystem keeps
  // meta, write sessions and capability renewal; this client moves the bytes). `r` is what
  // meta's open returned; `writable`: opened for write. The handle's Close() flushes and ends
  // no meta session; Write() does not check one. Its capability is never renewed here: the
  // caller installs fresh ones with InstallCapability. A client made without meta endpoints
  // serves only such handles.
  Status Attach(const OpenResult& r, const std::string& path, bool writable, std::unique_ptr<FileHandle>* out);
  // Installs a capability the caller renewed for a file with attached handles (kept when it
  // outlives the one held).
  void InstallCapability(const Capability& cap);

  // Runs chunk reads (holes and short chunks fill with zeros) or chain writes with the retry
  // rules above, at most chunksInflight at once; blocks until all finished. Returns the first
  // failure; on failure pieces not yet started are not started. Thread-safe.
  // REQUIRES: the pieces' buffers stay valid until the call returns.
  Status ReadPieces(std::vector<ChunkPiece>* pieces);
  Status WritePieces(std::vector<ChunkPiece>* pieces);
  // One attempt at a whole-chunk read for read-ahead, at a read's first choice of replica (a
  // random non-tail one, or the tail alone). `done(true)` when dst holds the chunk's `length`
  // bytes (zeros past its end or for a hole); `done(false)` otherwise, and the reader reads
  // it itself with the retry rules. Thread-safe.
  void PrefetchChunk(uint32_t chainId, const ChunkId& chunk, uint32_t length, char* dst,
                     std::function<void(bool)> done, ChunkClient::Abandon abandon = nullptr);
  // How long a chunk read may take before a second replica is asked too (see above).
  std::chrono::milliseconds ReadHedgeDelay();
  // How long a batched read may take before it is given up on (see above).
  std::chrono::milliseconds BatchReadHedgeDelay();
  void RecordBatchReadLatency(std::chrono::steady_clock::duration d) { batchReadLatency_.Record(d); }
  // The hedge budget and the replicas seen stalled (client/hedge_governor.h).
  HedgeGovernor& hedging() { return hedging_; }
  // The read-ahead state shared by every handle of `inode` (null without read-ahead).
  std::shared_ptr<ReadAhead> ReadAheadFor(const Inode& inode);
  // Buffers of prefetched chunks, reused across files: fresh ones would cost page faults.
  BufferPool& readAheadBuffers() { return readAheadBuffers_; }

  MetaClient* meta() { return meta_.get(); }
  MgmtdClient* mgmtd() { return mgmtd_.get(); }
  RoutingCache* routing() { return routing_.get(); }
  ChunkClient* chunks() { return chunks_.get(); }
  const FileClientOptions& options() const { return options_; }
  const FileClientCounters& counters() const { return counters_; }
  // The capability held for `inode` by its open handles; when past half its lifetime and
  // `renew`, first renewed by opening the handle's path again (meta checks access again).
  // False when none is held (meta gave none: authentication is off).
  // `write`: for a write (else a read); the other right's capability when none grants it.
  bool CapabilityFor(uint64_t inode, bool write, bool renew, Capability* out);
  FileClientCounters& mutable_counters() { return counters_; }
  uint64_t clientId() const { return clientId_; }

 private:
  struct Op;
  struct Run;
  explicit FileClient(const FileClientOptions& options);
  Status RunPieces(bool write, std::vector<ChunkPiece>* pieces);
  void Issue(Run* run, size_t index);
  // To the next replica of the piece's round; false (nothing sent) when a second attempt
  // finds no memory for its buffer: the first one goes on alone.
  bool IssueRead(Run* run, size_t index);
  // Decides what a finished request (slot -1: none was sent) means: done, next replica,
  // later, or failed.
  void Handle(Run* run, size_t index, int slot, const Status& s, uint32_t bytesRead);
  void FinishRead(Run* run, size_t index);  // REQUIRES: answered, no request in flight
  // Abandons requests to targets the current routing does not send them to.
  void Watch(Run* run);
  // Sends reads slower than the hedge delay to a second replica; *wake: the next such moment.
  void Hedge(Run* run, std::chrono::steady_clock::time_point now, std::chrono::steady_clock::time_point* wake);
  // Capabilities of open files, one per inode (the widest rights any handle was given).
  // Two slots: the freshest capability granting read, and the one granting write (one
  // capability granting both fills both). Handles of one inode may hold different rights (a
  // write-only open beside a read-only one): each request takes the slot of its right.
  struct HeldCapability {
    struct Slot {
      bool present = false;
      Capability cap;
      std::string path;
      uint64_t renewAtMs = 0;
      bool hasAs = false;  // renewals open as this identity (FileClient::Open's `as`)
      MetaUser as;
    };
    Slot read, write;
    uint32_t handles = 0;
  };
  // `renewable`: renewed here by opening `path` again (Open); else only by InstallCapability.
  void HoldCapability(const OpenResult& r, const std::string& path, bool renewable, const MetaUser* as);
  void ReleaseCapability(uint64_t inode);
  friend class FileHandle;

  const FileClientOptions options_;
  FileClientCounters counters_;
  uint64_t clientId_ = 0;
  std::atomic<uint64_t> nextRequestId_{1};
  std::unique_ptr<MetaClient> meta_;  // null without meta endpoints (Attach only)
  std::unique_ptr<MgmtdClient> mgmtd_;
  std::unique_ptr<RoutingCache> routing_;  // after mgmtd_: destroyed before it
  std::unique_ptr<ChunkClient> chunks_;
  BufferPool readAheadBuffers_{limits::kFileReadAheadPoolBytesMax};
  BufferPool hedgeBuffers_{limits::kFileHedgePoolBytesMax};  // second attempts of hedged reads
  LatencyWindow chunkReadLatency_;  // chunk reads' answers: their hedge delay
  LatencyWindow batchReadLatency_;  // batched reads' answers: theirs
  HedgeGovernor hedging_;
  Mutex readAheadMu_;
  // By (inode, mtimeMs, lengthBytes) at open.
  std::map<std::tuple<uint64_t, int64_t, uint64_t>, std::weak_ptr<ReadAhead>> readAheads_ GUARDED_BY(readAheadMu_);
  Mutex capsMu_;
  std::map<uint64_t, HeldCapability> caps_ GUARDED_BY(capsMu_);
  Mutex renewMu_ ACQUIRED_BEFORE(capsMu_);  // one renewal at a time
};

// An open file. Reads see this handle's own writes (buffered writes are flushed first). Its
// background flusher and the completions of its prefetches are internal. Read, ReadBatch and
// write-through Write (writeBehindBytes 0) may run on several threads at once; with
// write-behind, one thread at a time (like a FILE*).
class FileHandle {
 public:
  ~FileHandle();  // Close() when still open; its error is dropped

  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;

  // Reads [offset, offset + length) clipped to the file's length into dst; *bytesRead tells
  // how much (0 at or past the end). Sequential reads start read-ahead of the next chunks.
  Status Read(uint64_t offset, size_t length, char* dst, size_t* bytesRead);
  // Many small reads at once (3FS's batched reads): the pieces are grouped by chain and each
  // group goes to one serving replica in batch messages of at most kBatchReadEntriesMax
  // entries and kBatchReadBytesMax bytes; a piece the replica could not serve is read again
  // with Read's retry rules. Holes and bytes past a chunk's end read as zeros.
  // REQUIRES: each range lies within the file; dst of each holds its length.
  struct Range {
    uint64_t offset = 0;
    uint32_t lengthBytes = 0;
    char* dst = nullptr;
  };
  Status ReadBatch(const std::vector<Range>& ranges);
  // With write-behind, returns once data was copied into the handle's buffer (blocking while
  // it is full); a background flusher writes it. A flush failure is returned by the next
  // Write/Read/Flush/Close call and by every call after it. Without write-behind, returns when
  // every replica committed.
  Status Write(uint64_t offset, const char* data, size_t length);
  // Waits until everything written before was committed by every replica.
  Status Flush();
  // Flush(), stop the flusher, and (opened for write) end the meta
  // session publishing the length: the end of the furthest write every replica acknowledged
  // (of every write, when none failed). Idempotent; the first result is returned again.
  Status Close();

  const Inode& inode() const { return inode_; }
  uint64_t lengthBytes();
  // The most bytes the write-behind buffer held at once (never above writeBehindBytes).
  size_t writeBehindPeakBytes();
  size_t readAheadCachedBytes();

 private:
  friend class FileClient;
  struct Dirty {  // buffered bytes of one chunk, contiguous
    uint32_t index = 0;
    uint32_t offsetInChunk = 0;
    std::string data;
  };
  FileHandle(FileClient* client, const Inode& inode, std::string session, bool writable,
             const MetaUser* as);
  // The file's chains, computed once from its layout and the chain table in routing.
  Status Chains(std::vector<uint32_t>* out);
  // The chunk pieces of [offset, offset + length) over the file's `chains`, none longer than
  // pieceBytesMax.
  void Pieces(const std::vector<uint32_t>& chains, uint64_t offset, size_t length, std::vector<ChunkPiece>* out,
              uint32_t pieceBytesMax = UINT32_MAX);
  // Before a read: kClosed, a sticky flush failure, or this handle's buffered writes flushed.
  Status PrepareRead();
  Status WriteThrough(uint64_t offset, const char* data, size_t length);
  Status CheckSession();
  void FlusherLoop();
  // REQUIRES: mu_ held. Whether the front buffered piece may be written now.
  bool FlushableLocked() const;

  FileClient* const client_;
  const Inode inode_;
  const std::string session_;
  const bool writable_;
  const bool hasAs_;     // Close() acts as as_ (the identity the handle was opened as)
  const MetaUser as_;
  const uint32_t chunkSizeBytes_;
  const std::shared_ptr<ReadAhead> readAhead_;  // shared with the file's other handles; null: none

  std::mutex mu_;
  std::condition_variable cv_;  // buffer space, flush progress
  bool closed_ = false;                       // GUARDED_BY(mu_)
  Status closeStatus_;                        // GUARDED_BY(mu_)
  std::vector<uint32_t> chains_;              // GUARDED_BY(mu_): empty until computed
  uint64_t lengthBytes_ = 0;                  // GUARDED_BY(mu_): open length, grown by writes
  uint64_t ackedEndBytes_ = 0;                // GUARDED_BY(mu_): furthest committed write end
  Status writeError_;                         // GUARDED_BY(mu_): sticky flush failure

  // Write-behind.
  std::deque<Dirty> queued_;                  // GUARDED_BY(mu_): not yet taken by the flusher
  size_t bufferedBytes_ = 0;                  // GUARDED_BY(mu_): queued + being flushed
  size_t peakBufferedBytes_ = 0;              // GUARDED_BY(mu_)
  bool flushing_ = false;                     // GUARDED_BY(mu_): a batch is being written
  bool flushAll_ = false;                     // GUARDED_BY(mu_): Flush() waits for everything
  bool spaceWaiter_ = false;                  // GUARDED_BY(mu_): Write() waits for space
  bool stopping_ = false;                     // GUARDED_BY(mu_)
  std::thread flusher_;                       // started at the first buffered write
};

}  // namespace millpond
