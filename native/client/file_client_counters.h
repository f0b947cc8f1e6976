// FileClientCounters: what one native FileClient did since it started, and the one table that
// names each counter for every interface that shows them: the addon's counters() (camelCase),
// DuckDB's millpond_metrics() columns (snake_case) and the FUSE mount's Prometheus text
// (millpond_client_<snake>_total, with the help text).
#pragma once

#include <atomic>
#include <cstdint>

namespace millpond {

struct FileClientCounters {
  std::atomic<uint64_t> chunkReads{0};
  std::atomic<uint64_t> chunkWrites{0};
  std::atomic<uint64_t> readRetries{0};
  std::atomic<uint64_t> writeRetries{0};
  std::atomic<uint64_t> holes{0};
  std::atomic<uint64_t> prefetches{0};
  std::atomic<uint64_t> prefetchHits{0};
  std::atomic<uint64_t> writeBehindBatches{0};
  std::atomic<uint64_t> hedgedReads{0};
  std::atomic<uint64_t> abandonedRequests{0};
  std::atomic<uint64_t> batchMisses{0};
  std::atomic<uint64_t> bytesRead{0};
  std::atomic<uint64_t> bytesWritten{0};
};

struct FileClientCounterField {
  const char* camelName;
  const char* snakeName;
  const char* help;
  std::atomic<uint64_t> FileClientCounters::*member;
};

inline constexpr FileClientCounterField kFileClientCounterFields[] = {
    {"chunkReads", "chunk_reads", "Chunk reads the file client sent (retries included)", &FileClientCounters::chunkReads},
    {"chunkWrites", "chunk_writes", "Chunk writes the file client sent (retries included)", &FileClientCounters::chunkWrites},
    {"readRetries", "read_retries", "Chunk reads sent again to another replica or round", &FileClientCounters::readRetries},
    {"writeRetries", "write_retries", "Chunk writes sent again with the same ids", &FileClientCounters::writeRetries},
    {"holes", "holes", "Chunk reads answered ENOENT by the tail (holes, read as zeros)", &FileClientCounters::holes},
    {"prefetches", "prefetches", "Whole-chunk reads started ahead of sequential readers", &FileClientCounters::prefetches},
    {"prefetchHits", "prefetch_hits", "Pieces of reads served from prefetched chunks", &FileClientCounters::prefetchHits},
    {"writeBehindBatches", "write_behind_batches", "Batches the background flushers wrote", &FileClientCounters::writeBehindBatches},
    {"hedgedReads", "hedged_reads", "Reads sent to a second replica as the first was slow", &FileClientCounters::hedgedReads},
    {"abandonedRequests", "abandoned_requests", "Requests given up because their target left the route", &FileClientCounters::abandonedRequests},
    {"batchMisses", "batch_misses", "Pieces of batched reads read again one by one", &FileClientCounters::batchMisses},
    {"bytesRead", "read_bytes", "Bytes the file client's reads returned (holes' zeros included)", &FileClientCounters::bytesRead},
    {"bytesWritten", "written_bytes", "Bytes the file client's writes accepted (buffered or written)", &FileClientCounters::bytesWritten},
};

}  // namespace millpond
