// ChunkStore: the chunks of one storage target (one directory on one SSD).
//
// Every write is copy-on-write: the new version goes to a temporary file that is renamed over
// the old one, so a crash at any point leaves the old or the new version, never a torn one.
// Each replica keeps commitVersion, updateVersion, length and a CRC32C (design §2); content
// checksums are verified on every read and a mismatch is kCorrupt, never data.
//
// Versions (CRAQ, design §3): a write with commit=false leaves a pending version beside the
// committed one; Commit() makes it the committed one. A write with commit=true does both.
//
// Thread-safe. Writes to one chunk are serialised; reads never wait for writes.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/buffer_pool.h"
#include "common/chunk_id.h"
#include "common/file_io.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/chunk_format.h"

namespace millpond {

struct ChunkStoreOptions {
  bool directIo = true;         // O_DIRECT for writes and large aligned reads, where supported
  bool syncWrites = true;       // fdatasync each new version and its directory before the rename
  uint64_t capacityBytes = 0;   // 0: bounded by the filesystem only; else kNoSpace beyond it
};

struct ChunkWriteOptions {
  uint64_t updateVersion = 0;   // 0: one above the newest version; else must exceed commitVersion
  bool commit = true;
  bool replace = false;         // the data is the whole new content (offset must be 0)
  uint32_t chunkSizeBytes = 0;  // capacity of the chunk (0: limits::kChunkSizeBytesMax)
  // Resync and scrub repairs: the data is a replica's committed copy at updateVersion; it
  // replaces the copy here (same or older version, or a damaged one) and any pending version
  // in one rename. kStaleVersion when an intact newer version is here. REQUIRES:
  // updateVersion > 0, replace, commit.
  bool install = false;
  // CRAQ (design §3): the update applies to the committed version, never to a pending one.
  // A pending version is only ever a base for nothing: when a chain write arrives, any pending
  // version here belongs to an update nobody acknowledged (the head runs one update per chunk
  // at a time), and the new version replaces it.
  bool baseCommitted = false;
  // The new version's content must have this CRC32C; otherwise kCorrupt and nothing is
  // stored (a chain successor whose base differs from its predecessor's finds out before it
  // stores or commits anything).
  bool expectChecksum = false;
  uint32_t expectedChecksum = 0;
  // The client write this version applies (clientId 0: none). It joins the request table the
  // version inherits from its base (the latest kChunkRequestsRemembered are kept), so any
  // replica holding the version can tell a retry of it (FindRequest).
  uint64_t clientId = 0, requestId = 0;
  // The writer's CRC32C of each kChunkBlockBytes block of `data`, from its start
  // (frame::WriteArgs::blockCrcs), or null. The data is checked against them in the pass that
  // makes the version's block table (blocks that land whole in a content block) or on its own
  // first (a partial block merged with the base); a mismatch is kCorrupt and nothing is stored.
  // Null: the caller checked the data (or trusts it).
  const uint32_t* dataBlockCrcs = nullptr;
  // The chain the chunk belongs to (a chain write's, an install's source tag), recorded in the
  // new version file (chunk_format.h, format 3) and reported by List. 0: the new version keeps
  // its base's tag (the version it applies to; for an install, the committed one here), or
  // none.
  uint32_t chainId = 0;
};

// Where the bytes of a read sit in a version file, for a reader that verifies them itself
// against the stored block CRCs it is given (ChunkStore::LocateBlocks).
struct VersionSpan {
  std::shared_ptr<const void> hold;  // keeps `fd` open
  int fd = -1;                       // the version file (its content never changes)
  uint64_t fileOffset = 0;           // where the bytes start in it
  uint32_t bytes = 0;                // how many (0: the read starts at or past the end)
  std::vector<uint32_t> blockCrcs;   // the stored CRC32C of each block of those bytes
};

struct ChunkStoreUsage {
  uint64_t chunks = 0;
  uint64_t bytes = 0;       // on disk, headers and padding included
  uint64_t capacityBytes = 0;
  bool directIo = false;    // O_DIRECT is in use on this filesystem
};

class ChunkStore {
 public:
  // Opens (creating if needed) the target at `dir`, removing unfinished writes left by a
  // crash. A non-empty directory that is not a millpond target is refused.
  static Status Open(const std::string& dir, const ChunkStoreOptions& options,
                     std::unique_ptr<ChunkStore>* out);
  ~ChunkStore();
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;

  // Writes `length` bytes at `offset`, creating the chunk if needed; the gap before `offset`
  // (if any) reads as zeros. *meta is the chunk's state afterwards.
  Status Write(const ChunkId& chunk, uint32_t offset, const char* data, uint32_t length,
               const ChunkWriteOptions& options, ChunkMeta* meta);
  // Makes pending version `version` the committed one. Committing a version already
  // committed is OK (retries apply once).
  Status Commit(const ChunkId& chunk, uint64_t version, ChunkMeta* meta);
  // Reads up to `length` bytes at `offset` of the committed version (the pending one if
  // `uncommitted` and one exists). *bytesRead < length only past the end of the chunk.
  // kNotCommitted when only a pending version exists and !uncommitted.
  Status Read(const ChunkId& chunk, uint32_t offset, uint32_t length, char* dst, bool uncommitted,
              uint32_t* bytesRead, ChunkMeta* meta);
  // For a reader that verifies the bytes itself (the data plane, frame::kReadBlockCrcs): where
  // the bytes Read() would return sit in the version file, and their stored block CRCs, found
  // without reading or checking the content. *whole is false (and *span empty) when the range
  // does not start on a block boundary or ends inside a block other than the content's last:
  // use Read() for it. Same errors as Read(); kCorrupt if the file is shorter than its header says.
  Status LocateBlocks(const ChunkId& chunk, uint32_t offset, uint32_t length, bool uncommitted,
                      VersionSpan* span, bool* whole, ChunkMeta* meta);
  // Opens the version Read() would read, for a reader that reads it itself (short-circuit
  // local reads, storage/local_read_server.h): *fd is a new read-only descriptor of that
  // version file. Its content never changes (a newer version replaces the file by rename),
  // so a reader holding it sees one consistent version; it verifies blocks with
  // chunk_format::VerifyBlocks. Same errors as Read().
  Status OpenVersionFile(const ChunkId& chunk, bool uncommitted, UniqueFd* fd, ChunkMeta* meta);
  // Removes every version of the chunk, durably (the directory is synced when syncWrites).
  // With `expected`, only if the chunk's metadata is still exactly that (else kStaleVersion and
  // nothing is removed): a caller that decided from an earlier look (resync's check against
  // the sources) never removes a version written since.
  Status Remove(const ChunkId& chunk, const ChunkMeta* expected = nullptr);
  Status Stat(const ChunkId& chunk, ChunkMeta* meta) const;
  // Whether the committed version applied the write (clientId, requestId): it or one of the
  // versions before it did, within the last kChunkRequestsRemembered writes. *meta is the
  // chunk's state. NotFound when the chunk does not exist.
  Status FindRequest(const ChunkId& chunk, uint64_t clientId, uint64_t requestId, bool* found, ChunkMeta* meta);
  // Length and CRC32C of pending version `version` (kStaleVersion if that is not the pending one).
  Status PendingVersion(const ChunkId& chunk, uint64_t version, uint32_t* length, uint32_t* checksum) const;
  // Up to `limit` chunks in id order, strictly after *after (from the start when null). Each
  // entry's chainId is its committed version's tag (its pending one's when only that exists),
  // 0 for untagged (format 1 and 2) or damaged versions.
  Status List(const ChunkId* after, size_t limit, std::vector<ChunkListEntry>* out) const;
  ChunkStoreUsage Usage() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    bool hasCommitted = false, hasPending = false, corrupt = false;
    uint64_t commitVersion = 0, pendingVersion = 0;
    uint32_t committedLength = 0, pendingLength = 0;
    uint32_t committedChecksum = 0, pendingChecksum = 0;
    uint32_t committedChainId = 0, pendingChainId = 0;  // the versions' tags (0: untagged)
    uint64_t generation = 0;  // changes whenever a file of this chunk changes
    // What each version file adds to bytesUsed_ (its size on disk, as counted when it was
    // written or found at open), so that replacing or removing it takes back exactly that.
    uint64_t committedFileBytes = 0, pendingFileBytes = 0;
    ChunkMeta Meta() const;
  };
  struct OpenChunk {  // a validated, open version file (shared with readers in flight)
    UniqueFd fd;
    chunk_format::FixedHeader header;
    uint64_t generation = 0;
  };
  struct CacheKey {
    ChunkId chunk;
    bool pending;
    bool operator==(const CacheKey& o) const { return chunk == o.chunk && pending == o.pending; }
  };
  struct CacheKeyHash {
    size_t operator()(const CacheKey& k) const { return k.chunk.Hash() ^ k.pending; }
  };

  ChunkStore(std::string dir, const ChunkStoreOptions& options);
  Status Scan() REQUIRES(indexMu_);
  std::string PathOf(const ChunkId& chunk, bool pending) const;
  Status OpenVersion(const ChunkId& chunk, bool pending, uint64_t generation,
                     std::shared_ptr<OpenChunk>* out);
  // The open version Read() reads, and the chunk's metadata as of that file.
  Status Resolve(const ChunkId& chunk, bool uncommitted, std::shared_ptr<OpenChunk>* file, ChunkMeta* meta);
  // Reads and verifies [offset, offset+length) of an open version into dst.
  Status ReadVerified(const OpenChunk& file, uint32_t offset, uint32_t length, char* dst);
  // Writes a version file; *checksum is the content's CRC32C. With `expected`, a content
  // whose CRC differs is kCorrupt before anything is written.
  using RequestKey = std::pair<uint64_t, uint64_t>;  // (clientId, requestId)
  // `given`: CRCs the blocks [givenFirst, givenFirst + givenCount) of the content must have
  // (the writer's, checked while the block table is made; a mismatch is kCorrupt), or null.
  Status WriteVersionFile(const ChunkId& chunk, uint64_t version, const char* content,
                          uint32_t length, bool pending, const uint32_t* expected,
                          const std::vector<RequestKey>& requests, const uint32_t* given,
                          uint32_t givenFirst, uint32_t givenCount, uint32_t chainId, uint32_t* checksum);
  // The request table of an open version (empty for format 1).
  Status ReadRequests(const OpenChunk& file, std::vector<RequestKey>* out);
  void Invalidate(const ChunkId& chunk);
  // bytesUsed_ is the sum of the index's file bytes (Entry::*FileBytes); these keep it so.
  // Uncount asserts the invariant (MP_ASSERT): taking back more than was counted is a bug
  // in this file, never a state of the disk.
  void Count(uint64_t bytes) REQUIRES(indexMu_) { bytesUsed_ += bytes; }
  void Uncount(uint64_t bytes) REQUIRES(indexMu_);
  std::mutex& LockFor(const ChunkId& chunk) {
    return writeLocks_[chunk.Hash() % limits::kChunkStoreLockStripes];
  }

  const std::string dir_;
  const ChunkStoreOptions options_;
  bool directIo_;  // cleared at open when the filesystem refuses O_DIRECT
  BufferPool staging_;
  std::atomic<uint64_t> nextTmp_{0};
  std::mutex writeLocks_[limits::kChunkStoreLockStripes];

  mutable SharedMutex indexMu_;
  std::map<ChunkId, Entry> index_ GUARDED_BY(indexMu_);
  uint64_t bytesUsed_ GUARDED_BY(indexMu_) = 0;
  uint64_t nextGeneration_ GUARDED_BY(indexMu_) = 1;

  Mutex cacheMu_;
  std::list<CacheKey> lru_ GUARDED_BY(cacheMu_);  // most recent first
  std::unordered_map<CacheKey, std::pair<std::shared_ptr<OpenChunk>, std::list<CacheKey>::iterator>,
                     CacheKeyHash> cache_ GUARDED_BY(cacheMu_);
};

}  // namespace millpond
