// The read path of ChunkStore: cached open versions, per-block CRC verification.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/chunk_store.h"
#include "storage/chunk_store_internal.h"

namespace millpond {

namespace fmt = chunk_format;
using chunk_store_internal::kStagingWaitMs;

void ChunkStore::Invalidate(const ChunkId& chunk) {
  MutexLock lock(&cacheMu_);
  for (bool pending : {false, true}) {
    auto it = cache_.find({chunk, pending});
    if (it != cache_.end()) {
      lru_.erase(it->second.second);
      cache_.erase(it);
    }
  }
}

Status ChunkStore::OpenVersion(const ChunkId& chunk, bool pending, uint64_t generation,
                               std::shared_ptr<OpenChunk>* out) {
  CacheKey key{chunk, pending};
  {
    MutexLock lock(&cacheMu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.first->generation == generation) {
      lru_.splice(lru_.begin(), lru_, it->second.second);
      *out = it->second.first;
      return Status::OK();
    }
  }
  std::string path = PathOf(chunk, pending);
  auto file = std::make_shared<OpenChunk>();
  file->fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file->fd.valid()) {
    if (errno == ENOENT) return Status::NotFound("chunk " + chunk.ToHex() + " changed while being read");
    return Status::FromErrno(errno, "open " + path);
  }
  uint8_t raw[fmt::kHeadBytes];
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(file->fd.get(), raw, sizeof raw, 0, &got, path.c_str()));
  if (got != sizeof raw) return Status::Corrupt("chunk " + chunk.ToHex() + ": file is truncated");
  Status s = fmt::FixedHeader::Decode(raw, &file->header);
  if (!s.ok()) return Status::Corrupt("chunk " + chunk.ToHex() + ": " + s.message());
  if (!(file->header.chunk == chunk)) return Status::Corrupt("chunk " + chunk.ToHex() + ": file holds another chunk");
  file->generation = generation;
  {
    MutexLock lock(&cacheMu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      lru_.erase(it->second.second);
      cache_.erase(it);
    }
    lru_.push_front(key);
    cache_[key] = {file, lru_.begin()};
    while (cache_.size() > limits::kChunkStoreOpenFilesMax) {
      cache_.erase(lru_.back());
      lru_.pop_back();
    }
  }
  *out = std::move(file);
  return Status::OK();
}

Status ChunkStore::ReadRequests(const OpenChunk& file, std::vector<RequestKey>* out) {
  out->clear();
  const fmt::FixedHeader& h = file.header;
  if (h.requests == 0) return Status::OK();
  std::string where = "chunk " + h.chunk.ToHex();
  const size_t bytes = size_t{h.requests} * fmt::kRequestEntryBytes;
  uint8_t table[fmt::kRequestEntryBytes * limits::kChunkRequestsRemembered];
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(file.fd.get(), table, bytes, h.RequestTableOffset(), &got, where.c_str()));
  if (got != bytes || Crc32c(reinterpret_cast<const char*>(table), bytes) != h.requestsCrc)
    return Status::Corrupt(where + ": request table checksum mismatch");
  for (uint32_t i = 0; i < h.requests; i++) {
    RequestKey k;
    std::memcpy(&k.first, table + i * fmt::kRequestEntryBytes, 8);
    std::memcpy(&k.second, table + i * fmt::kRequestEntryBytes + 8, 8);
    out->push_back(k);
  }
  return Status::OK();
}

Status ChunkStore::FindRequest(const ChunkId& chunk, uint64_t clientId, uint64_t requestId, bool* found,
                               ChunkMeta* meta) {
  *found = false;
  std::shared_ptr<OpenChunk> file;
  Status s = Resolve(chunk, false, &file, meta);
  if (s.code() == StatusCode::kNotCommitted) return Status::OK();  // only a pending version: nothing applied
  MP_RETURN_IF_ERROR(s);
  std::vector<RequestKey> requests;
  MP_RETURN_IF_ERROR(ReadRequests(*file, &requests));
  for (const auto& k : requests) *found |= k.first == clientId && k.second == requestId;
  return Status::OK();
}

Status ChunkStore::ReadVerified(const OpenChunk& file, uint32_t offset, uint32_t length, char* dst) {
  const fmt::FixedHeader& h = file.header;
  const uint32_t B = fmt::kBlockBytes;
  std::string where = "chunk " + h.chunk.ToHex();
  // Block-aligned ranges land straight in dst; others go through a staging buffer.
  const fmt::BlockSpan sp = fmt::SpanOf(h, offset, length);
  const uint32_t spanStart = sp.start, spanBytes = sp.bytes;
  AlignedBuffer staging;
  char* span = dst;
  if (!sp.Covers(offset, length)) {
    MP_RETURN_IF_ERROR(staging_.Acquire(spanBytes, kStagingWaitMs, &staging));
    span = staging.data();
  }
  const uint64_t fileOffset = uint64_t{h.headerBytes} + spanStart;
  size_t got = 0;
  bool direct = directIo_ && spanBytes >= limits::kDirectReadBytesMin && spanBytes % B == 0 &&
                (reinterpret_cast<uintptr_t>(span) % B) == 0;
  if (direct) {
    UniqueFd dfd(::open(PathOf(h.chunk, false).c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    // The path may now name a newer version; only the cached descriptor is this version.
    struct stat a, b;
    direct = dfd.valid() && ::fstat(dfd.get(), &a) == 0 && ::fstat(file.fd.get(), &b) == 0 &&
             a.st_ino == b.st_ino && a.st_dev == b.st_dev;
    if (direct) MP_RETURN_IF_ERROR(PreadFull(dfd.get(), span, spanBytes, fileOffset, &got, where.c_str()));
  }
  if (!direct) MP_RETURN_IF_ERROR(PreadFull(file.fd.get(), span, spanBytes, fileOffset, &got, where.c_str()));
  if (got != spanBytes) return Status::Corrupt(where + ": content is truncated");

  MP_RETURN_IF_ERROR(fmt::VerifyBlocks(file.fd.get(), h, spanStart, span, spanBytes));
  if (span != dst) std::memcpy(dst, span + (offset - spanStart), length);
  return Status::OK();
}

Status ChunkStore::Resolve(const ChunkId& chunk, bool uncommitted, std::shared_ptr<OpenChunk>* file,
                           ChunkMeta* meta) {
  Entry entry;
  bool pending = false;
  // A commit or write may rename the version file away between the index lookup and the
  // open; the index then already names its successor, so look again (bounded).
  for (int attempt = 0;; attempt++) {
    {
      ReaderLock lock(&indexMu_);
      auto it = index_.find(chunk);
      if (it == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
      entry = it->second;
    }
    if (entry.corrupt) return Status::Corrupt("chunk " + chunk.ToHex() + " has a damaged header");
    pending = uncommitted && entry.hasPending;
    if (!pending && !entry.hasCommitted)
      return Status::NotCommitted("chunk " + chunk.ToHex() + " has only a pending version " +
                                  std::to_string(entry.pendingVersion));
    Status s = OpenVersion(chunk, pending, entry.generation, file);
    if (s.code() == StatusCode::kNotFound && pending) {
      // The pending file was just committed (renamed to .c) or superseded by a committed
      // write: the committed file now holds that version or a newer one.
      Invalidate(chunk);
      pending = false;
      s = OpenVersion(chunk, false, entry.generation, file);
    }
    if (s.ok()) break;
    if (s.code() != StatusCode::kNotFound || attempt + 1 >= limits::kChunkStoreReadRetriesMax) return s;
  }
  *meta = entry.Meta();
  // The file read is authoritative: a write may have landed after the index lookup.
  const fmt::FixedHeader& h = (*file)->header;
  meta->length = h.length;
  meta->checksum = h.checksum;
  (pending ? meta->updateVersion : meta->commitVersion) = h.version;
  return Status::OK();
}

Status ChunkStore::Read(const ChunkId& chunk, uint32_t offset, uint32_t length, char* dst,
                        bool uncommitted, uint32_t* bytesRead, ChunkMeta* meta) {
  *bytesRead = 0;
  std::shared_ptr<OpenChunk> file;
  MP_RETURN_IF_ERROR(Resolve(chunk, uncommitted, &file, meta));
  if (offset >= file->header.length || length == 0) return Status::OK();
  uint32_t n = std::min<uint32_t>(length, file->header.length - offset);
  MP_RETURN_IF_ERROR(ReadVerified(*file, offset, n, dst));
  *bytesRead = n;
  return Status::OK();
}

Status ChunkStore::LocateBlocks(const ChunkId& chunk, uint32_t offset, uint32_t length, bool uncommitted,
                                VersionSpan* span, bool* whole, ChunkMeta* meta) {
  *span = VersionSpan();
  *whole = false;
  std::shared_ptr<OpenChunk> file;
  MP_RETURN_IF_ERROR(Resolve(chunk, uncommitted, &file, meta));
  const fmt::FixedHeader& h = file->header;
  const uint32_t B = fmt::kBlockBytes;
  if (offset >= h.length || length == 0) {
    *whole = true;  // nothing to send
    return Status::OK();
  }
  const uint32_t n = std::min<uint32_t>(length, h.length - offset);
  if (offset % B != 0 || (n % B != 0 && offset + n != h.length)) return Status::OK();
  const std::string where = "chunk " + h.chunk.ToHex();
  const uint32_t first = offset / B, blocks = fmt::BlockCount(n);
  span->blockCrcs.resize(blocks);
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(file->fd.get(), span->blockCrcs.data(), 4ull * blocks,
                               h.BlockTableOffset() + 4ull * first, &got, where.c_str()));
  if (got != 4ull * blocks) return Status::Corrupt(where + ": checksum table is truncated");
  span->fileOffset = uint64_t{h.headerBytes} + offset;
  // The bytes go out as they are (sendfile): a file shorter than its header says must be
  // found here, before a reply promises them.
  struct stat st;
  if (::fstat(file->fd.get(), &st) != 0) return Status::FromErrno(errno, "fstat of " + where);
  if (static_cast<uint64_t>(st.st_size) < span->fileOffset + n) return Status::Corrupt(where + ": content is truncated");
  span->fd = file->fd.get();
  span->bytes = n;
  span->hold = file;
  *whole = true;
  return Status::OK();
}

Status ChunkStore::OpenVersionFile(const ChunkId& chunk, bool uncommitted, UniqueFd* fd, ChunkMeta* meta) {
  std::shared_ptr<OpenChunk> file;
  MP_RETURN_IF_ERROR(Resolve(chunk, uncommitted, &file, meta));
  UniqueFd dup(::fcntl(file->fd.get(), F_DUPFD_CLOEXEC, 0));
  if (!dup.valid()) return Status::FromErrno(errno, "dup of chunk " + chunk.ToHex());
  *fd = std::move(dup);
  return Status::OK();
}

// Writes a complete version file to tmp/ and renames it into place. The rename is the
// commit point: before it the old version is intact, after it the new one is complete.

}  // namespace millpond
