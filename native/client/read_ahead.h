// ReadAhead: whole chunks prefetched ahead of sequential reads, one state per file (inode)
// per FileClient, shared by every handle of the file, as the kernel keeps one readahead state
// per file rather than per descriptor. DuckDB reads a Parquet file's row groups from several
// threads, each through its own handle: each handle sees a strided pattern while the file as
// a whole is read in order, and only a shared state sees that.
//
// A read is sequential when it starts where one of the last kReadAheadStreamsMax reads of the
// file ended. It then starts prefetching the window of chunks after its end (at most
// windowChunks, within the client's readAheadBytes), before it waits for its own pieces, so
// the two overlap. Later reads are served from prefetched chunks by copy; chunks before the
// current read are dropped. A failed prefetch is not an error: the read does it itself.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "common/buffer_pool.h"
#include "common/status.h"

namespace millpond {

class FileClient;
struct ChunkPiece;

class ReadAhead {
 public:
  ReadAhead(FileClient* client, uint64_t inodeId, uint32_t chunkSizeBytes, uint32_t windowChunks);
  ~ReadAhead();  // waits for the prefetches in flight: their completions refer to this
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  // For a read of [offset, offset + n) of a file of fileLength bytes over `chains`: starts the
  // window after it when the read is sequential, then fills the pieces that prefetched chunks
  // hold (waiting for ones in flight) and moves the rest to *misses.
  void Serve(uint64_t offset, uint64_t n, uint64_t fileLength, const std::vector<uint32_t>& chains,
             const std::vector<ChunkPiece>& pieces, std::vector<ChunkPiece>* misses);
  // Drops prefetched chunks a write of [offset, offset + length) changes.
  void Invalidate(uint64_t offset, uint64_t length);
  size_t cachedBytes();

 private:
  struct Prefetch {
    enum class State { kPending, kReady, kFailed };
    State state = State::kPending;
    uint32_t index = 0;
    uint32_t lengthBytes = 0;  // requested: the chunk's bytes below the file's length
    AlignedBuffer data;        // aligned: a local read lands in it without staging
    std::chrono::steady_clock::time_point startedAt;
    // Set when a reader stopped waiting for it (slower than the hedge delay: a paused
    // server): the request ends at once instead of at its timeout.
    std::shared_ptr<std::atomic<bool>> abandon = std::make_shared<std::atomic<bool>>(false);
  };
  // REQUIRES: mu_ held. Registers the chunks of the window [first, end) not cached yet.
  void PlanLocked(uint64_t first, uint64_t end, uint64_t keepFrom, uint64_t fileLength,
                  std::vector<std::shared_ptr<Prefetch>>* start);
  void Finish(const std::shared_ptr<Prefetch>& e, bool ok);

  FileClient* const client_;
  const uint64_t inodeId_;
  const uint32_t chunkSizeBytes_;
  const uint32_t windowChunks_;

  std::mutex mu_;
  std::condition_variable cv_;                           // prefetch completions
  std::deque<uint64_t> recentEnds_;                      // GUARDED_BY(mu_): of the last reads
  std::map<uint32_t, std::shared_ptr<Prefetch>> cache_;  // GUARDED_BY(mu_): by chunk index
  size_t cacheBytes_ = 0;                                // GUARDED_BY(mu_)
  uint32_t inflight_ = 0;                                // GUARDED_BY(mu_)
};

}  // namespace millpond
