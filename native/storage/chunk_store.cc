#include "storage/chunk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace millpond {

namespace fmt = chunk_format;

namespace {

constexpr const char* kMarkerFile = "MILLPOND_TARGET";
constexpr const char* kMarkerText = "millpond chunk store, format 1\n";
constexpr uint32_t kStagingWaitMs = 60000;
constexpr int kShardDirs = 256;

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) == 0 || errno == EEXIST) return Status::OK();
  return Status::FromErrno(errno, "mkdir " + path);
}

Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); i++) {
    if (i == path.size() || path[i] == '/') MP_RETURN_IF_ERROR(MakeDir(path.substr(0, i)));
  }
  return Status::OK();
}

Status SyncDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + path);
  return Status::OK();
}

bool ParseChunkFileName(const char* name, ChunkId* id, bool* pending) {
  // <16 hex inode><8 hex index>.c or .p
  if (std::strlen(name) != 26 || name[24] != '.' || (name[25] != 'c' && name[25] != 'p')) return false;
  uint64_t v[2] = {0, 0};
  for (int i = 0; i < 24; i++) {
    char c = name[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v[i < 16 ? 0 : 1] = (v[i < 16 ? 0 : 1] << 4) | static_cast<uint64_t>(d);
  }
  id->inode = v[0];
  id->index = static_cast<uint32_t>(v[1]);
  *pending = name[25] == 'p';
  return true;
}

}  // namespace

ChunkMeta ChunkStore::Entry::Meta() const {
  ChunkMeta m;
  m.commitVersion = hasCommitted ? commitVersion : 0;
  m.updateVersion = hasPending ? pendingVersion : m.commitVersion;
  m.length = hasCommitted ? committedLength : 0;
  m.checksum = hasCommitted ? committedChecksum : 0;
  return m;
}

ChunkStore::ChunkStore(std::string dir, const ChunkStoreOptions& options)
    : dir_(std::move(dir)), options_(options), directIo_(options.directIo),
      staging_(limits::kChunkStoreStagingBytesMax) {}

ChunkStore::~ChunkStore() = default;

Status ChunkStore::Open(const std::string& dir, const ChunkStoreOptions& options,
                        std::unique_ptr<ChunkStore>* out) {
  if (dir.empty()) return Status::InvalidArgument("chunk store directory is empty");
  MP_RETURN_IF_ERROR(MakeDirs(dir));
  std::string marker = dir + "/" + kMarkerFile;
  if (::access(marker.c_str(), F_OK) != 0) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return Status::FromErrno(errno, "opendir " + dir);
    bool empty = true;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
    }
    ::closedir(d);
    if (!empty) return Status::InvalidArgument(dir + " is not empty and not a millpond target");
    MP_RETURN_IF_ERROR(MakeDir(dir + "/chunks"));  // shard directories appear on first use
    MP_RETURN_IF_ERROR(MakeDir(dir + "/tmp"));
    UniqueFd fd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return Status::FromErrno(errno, "create " + marker);
    MP_RETURN_IF_ERROR(PwriteFull(fd.get(), kMarkerText, std::strlen(kMarkerText), 0, marker.c_str()));
    ::fsync(fd.get());
    MP_RETURN_IF_ERROR(SyncDir(dir));
  }
  std::unique_ptr<ChunkStore> store(new ChunkStore(dir, options));
  MP_RETURN_IF_ERROR(store->Scan());
  *out = std::move(store);
  return Status::OK();
}

// Rebuilds the index from the version files and drops what a crash left half done:
// temporary files (never renamed, so never visible) and pending versions that were
// already committed.
Status ChunkStore::Scan() {
  std::string tmp = dir_ + "/tmp";
  if (DIR* d = ::opendir(tmp.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ::unlink((tmp + "/" + e->d_name).c_str());
    }
    ::closedir(d);
  }
  // Probe O_DIRECT once; tmpfs and some overlays refuse it.
  if (directIo_) {
    std::string probe = tmp + "/direct-probe";
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
    if (fd < 0) directIo_ = false;
    else ::close(fd);
    ::unlink(probe.c_str());
  }
  std::vector<std::pair<ChunkId, bool>> stalePending;
  for (int i = 0; i < kShardDirs; i++) {
    char sub[16];
    std::snprintf(sub, sizeof sub, "/chunks/%02x", i);
    std::string path = dir_ + sub;
    DIR* d = ::opendir(path.c_str());
    if (!d) {
      if (errno == ENOENT) continue;  // no chunk ever hashed here
      return Status::FromErrno(errno, "opendir " + path);
    }
    while (struct dirent* e = ::readdir(d)) {
      ChunkId id;
      bool pending;
      if (!ParseChunkFileName(e->d_name, &id, &pending)) continue;
      std::string file = path + "/" + e->d_name;
      Entry& entry = index_[id];
      uint8_t raw[fmt::kFixedHeaderBytes];
      fmt::FixedHeader h;
      size_t got = 0;
      struct stat st;
      UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
      Status s = fd.valid() ? PreadFull(fd.get(), raw, sizeof raw, 0, &got, file.c_str())
                            : Status::FromErrno(errno, "open " + file);
      if (s.ok() && got != sizeof raw) s = Status::Corrupt("chunk file is truncated");
      if (s.ok()) s = fmt::FixedHeader::Decode(raw, &h);
      if (s.ok() && !(h.chunk == id)) s = Status::Corrupt("chunk file holds another chunk");
      if (s.ok() && ::fstat(fd.get(), &st) == 0 &&
          static_cast<uint64_t>(st.st_size) < h.headerBytes + fmt::PaddedBytes(h.length) &&
          static_cast<uint64_t>(st.st_size) < uint64_t{h.headerBytes} + h.length)
        s = Status::Corrupt("chunk file is shorter than its header says");
      if (fd.valid() && ::fstat(fd.get(), &st) == 0) bytesUsed_ += static_cast<uint64_t>(st.st_size);
      if (!s.ok()) {
        entry.corrupt = true;
        (pending ? entry.hasPending : entry.hasCommitted) = true;
        continue;
      }
      if (pending) {
        entry.hasPending = true;
        entry.pendingVersion = h.version;
        entry.pendingLength = h.length;
        entry.pendingChecksum = h.checksum;
      } else {
        entry.hasCommitted = true;
        entry.commitVersion = h.version;
        entry.committedLength = h.length;
        entry.committedChecksum = h.checksum;
      }
    }
    ::closedir(d);
  }
  for (auto& [id, e] : index_) {
    e.generation = nextGeneration_++;
    if (e.hasPending && e.hasCommitted && !e.corrupt && e.pendingVersion <= e.commitVersion)
      stalePending.push_back({id, true});
  }
  for (auto& [id, pending] : stalePending) {
    ::unlink(PathOf(id, true).c_str());
    index_[id].hasPending = false;
  }
  return Status::OK();
}

std::string ChunkStore::PathOf(const ChunkId& chunk, bool pending) const {
  char sub[16];
  std::snprintf(sub, sizeof sub, "/chunks/%02x/", static_cast<unsigned>(chunk.Hash() % kShardDirs));
  return dir_ + sub + chunk.ToHex() + (pending ? ".p" : ".c");
}

Status ChunkStore::Stat(const ChunkId& chunk, ChunkMeta* meta) const {
  std::shared_lock<std::shared_mutex> lock(indexMu_);
  auto it = index_.find(chunk);
  if (it == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
  if (it->second.corrupt) return Status::Corrupt("chunk " + chunk.ToHex() + " has a damaged header");
  *meta = it->second.Meta();
  return Status::OK();
}

Status ChunkStore::PendingVersion(const ChunkId& chunk, uint64_t version, uint32_t* length,
                                  uint32_t* checksum) const {
  std::shared_lock<std::shared_mutex> lock(indexMu_);
  auto it = index_.find(chunk);
  if (it == index_.end() || !it->second.hasPending || it->second.pendingVersion != version)
    return Status::StaleVersion("chunk " + chunk.ToHex() + " has no pending version " + std::to_string(version));
  *length = it->second.pendingLength;
  *checksum = it->second.pendingChecksum;
  return Status::OK();
}

Status ChunkStore::List(const ChunkId* after, size_t limit, std::vector<ChunkListEntry>* out) const {
  if (limit > limits::kChunkStoreListEntriesMax) limit = limits::kChunkStoreListEntriesMax;
  out->clear();
  std::shared_lock<std::shared_mutex> lock(indexMu_);
  auto it = after ? index_.upper_bound(*after) : index_.begin();
  for (; it != index_.end() && out->size() < limit; ++it) {
    ChunkListEntry e;
    e.chunk = it->first;
    e.meta = it->second.Meta();
    e.corrupt = it->second.corrupt;
    out->push_back(e);
  }
  return Status::OK();
}

ChunkStoreUsage ChunkStore::Usage() const {
  std::shared_lock<std::shared_mutex> lock(indexMu_);
  ChunkStoreUsage u;
  u.chunks = index_.size();
  u.bytes = bytesUsed_;
  u.capacityBytes = options_.capacityBytes;
  u.directIo = directIo_;
  return u;
}

void ChunkStore::Invalidate(const ChunkId& chunk) {
  std::lock_guard<std::mutex> lock(cacheMu_);
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
    std::lock_guard<std::mutex> lock(cacheMu_);
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
  uint8_t raw[fmt::kFixedHeaderBytes];
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(file->fd.get(), raw, sizeof raw, 0, &got, path.c_str()));
  if (got != sizeof raw) return Status::Corrupt("chunk " + chunk.ToHex() + ": file is truncated");
  Status s = fmt::FixedHeader::Decode(raw, &file->header);
  if (!s.ok()) return Status::Corrupt("chunk " + chunk.ToHex() + ": " + s.message());
  if (!(file->header.chunk == chunk)) return Status::Corrupt("chunk " + chunk.ToHex() + ": file holds another chunk");
  file->generation = generation;
  {
    std::lock_guard<std::mutex> lock(cacheMu_);
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

Status ChunkStore::ReadVerified(const OpenChunk& file, uint32_t offset, uint32_t length, char* dst) {
  const fmt::FixedHeader& h = file.header;
  const uint32_t B = fmt::kBlockBytes;
  const uint32_t end = offset + length;  // REQUIRES: end <= h.length, length > 0
  const uint32_t b0 = offset / B, b1 = (end - 1) / B, nBlocks = b1 - b0 + 1;
  std::string where = "chunk " + h.chunk.ToHex();

  std::vector<uint32_t> crcs(nBlocks);
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(file.fd.get(), crcs.data(), 4 * nBlocks,
                               fmt::kFixedHeaderBytes + 4ull * b0, &got, where.c_str()));
  if (got != 4 * nBlocks) return Status::Corrupt(where + ": checksum table is truncated");

  // Block-aligned ranges land straight in dst; others go through a staging buffer.
  const uint32_t spanStart = b0 * B;
  const uint32_t spanEnd = std::min<uint32_t>((b1 + 1) * B, h.length);
  const uint32_t spanBytes = spanEnd - spanStart;
  AlignedBuffer staging;
  char* span = dst;
  if (spanStart != offset || spanEnd != end) {
    MP_RETURN_IF_ERROR(staging_.Acquire(spanBytes, kStagingWaitMs, &staging));
    span = staging.data();
  }
  const uint64_t fileOffset = uint64_t{h.headerBytes} + spanStart;
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

  for (uint32_t i = 0; i < nBlocks; i++) {
    uint32_t blockStart = i * B;
    uint32_t blockBytes = std::min<uint32_t>(B, spanBytes - blockStart);
    if (Crc32c(span + blockStart, blockBytes) != crcs[i])
      return Status::Corrupt(where + ": checksum mismatch in block " + std::to_string(b0 + i) +
                             " (version " + std::to_string(h.version) + ")");
  }
  if (span != dst) std::memcpy(dst, span + (offset - spanStart), length);
  return Status::OK();
}

Status ChunkStore::Read(const ChunkId& chunk, uint32_t offset, uint32_t length, char* dst,
                        bool uncommitted, uint32_t* bytesRead, ChunkMeta* meta) {
  *bytesRead = 0;
  Entry entry;
  bool pending = false;
  std::shared_ptr<OpenChunk> file;
  // A commit or write may rename the version file away between the index lookup and the
  // open; the index then already names its successor, so look again (bounded).
  for (int attempt = 0;; attempt++) {
    {
      std::shared_lock<std::shared_mutex> lock(indexMu_);
      auto it = index_.find(chunk);
      if (it == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
      entry = it->second;
    }
    if (entry.corrupt) return Status::Corrupt("chunk " + chunk.ToHex() + " has a damaged header");
    pending = uncommitted && entry.hasPending;
    if (!pending && !entry.hasCommitted)
      return Status::NotCommitted("chunk " + chunk.ToHex() + " has only a pending version " +
                                  std::to_string(entry.pendingVersion));
    Status s = OpenVersion(chunk, pending, entry.generation, &file);
    if (s.code() == StatusCode::kNotFound && pending) {
      // The pending file was just committed (renamed to .c) or superseded by a committed
      // write: the committed file now holds that version or a newer one.
      Invalidate(chunk);
      pending = false;
      s = OpenVersion(chunk, false, entry.generation, &file);
    }
    if (s.ok()) break;
    if (s.code() != StatusCode::kNotFound || attempt + 1 >= limits::kChunkStoreReadRetriesMax) return s;
  }
  *meta = entry.Meta();
  // The file read is authoritative: a write may have landed after the index lookup.
  meta->length = file->header.length;
  meta->checksum = file->header.checksum;
  (pending ? meta->updateVersion : meta->commitVersion) = file->header.version;
  if (offset >= file->header.length || length == 0) return Status::OK();
  uint32_t n = std::min<uint32_t>(length, file->header.length - offset);
  MP_RETURN_IF_ERROR(ReadVerified(*file, offset, n, dst));
  *bytesRead = n;
  return Status::OK();
}

// Writes a complete version file to tmp/ and renames it into place. The rename is the
// commit point: before it the old version is intact, after it the new one is complete.
Status ChunkStore::WriteVersionFile(const ChunkId& chunk, uint64_t version, const char* content,
                                    uint32_t length, bool pending, uint32_t* checksum) {
  const uint32_t B = fmt::kBlockBytes;
  fmt::FixedHeader h;
  h.chunk = chunk;
  h.version = version;
  h.length = length;
  h.headerBytes = fmt::HeaderBytes(length);
  AlignedBuffer header = AlignedBuffer::Allocate(h.headerBytes);
  if (header.empty()) return Status::NoSpace("out of memory for a chunk header");
  std::memset(header.data(), 0, h.headerBytes);
  uint32_t whole = 0;
  uint32_t* crcs = reinterpret_cast<uint32_t*>(header.data() + fmt::kFixedHeaderBytes);
  for (uint32_t i = 0, blocks = fmt::BlockCount(length); i < blocks; i++) {
    uint32_t n = std::min<uint32_t>(B, length - i * B);
    crcs[i] = Crc32c(content + uint64_t{i} * B, n);
    whole = i == 0 ? crcs[i] : Crc32cCombine(whole, crcs[i], n);
  }
  h.checksum = whole;
  h.EncodeTo(reinterpret_cast<uint8_t*>(header.data()));

  // O_DIRECT wants aligned memory and whole blocks: the aligned body goes as is, a partial
  // last block is copied into a zero-padded block.
  const uint32_t bodyBytes = length / B * B, tailBytes = length - bodyBytes;
  bool aligned = (reinterpret_cast<uintptr_t>(content) % B) == 0;
  AlignedBuffer tail, copy;
  std::vector<struct iovec> iov;
  iov.push_back({header.data(), h.headerBytes});
  if (aligned) {
    if (bodyBytes) iov.push_back({const_cast<char*>(content), bodyBytes});
    if (tailBytes) {
      tail = AlignedBuffer::Allocate(B);
      std::memset(tail.data(), 0, B);
      std::memcpy(tail.data(), content + bodyBytes, tailBytes);
      iov.push_back({tail.data(), B});
    }
  } else if (length) {
    MP_RETURN_IF_ERROR(staging_.Acquire(length, kStagingWaitMs, &copy));
    std::memcpy(copy.data(), content, length);
    std::memset(copy.data() + length, 0, fmt::PaddedBytes(length) - length);
    iov.push_back({copy.data(), static_cast<size_t>(fmt::PaddedBytes(length))});
  }

  char name[64];
  std::snprintf(name, sizeof name, "/tmp/%s.%llu.%llu", chunk.ToHex().c_str(),
                static_cast<unsigned long long>(version),
                static_cast<unsigned long long>(nextTmp_.fetch_add(1)));
  std::string tmp = dir_ + name;
  int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (directIo_ ? O_DIRECT : 0);
  UniqueFd fd(::open(tmp.c_str(), flags, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  Status s = PwritevFull(fd.get(), iov.data(), static_cast<int>(iov.size()), 0, tmp.c_str());
  if (s.ok() && options_.syncWrites && ::fdatasync(fd.get()) != 0)
    s = Status::FromErrno(errno, "fdatasync " + tmp);
  fd.Reset();
  std::string final = PathOf(chunk, pending);
  if (s.ok() && ::rename(tmp.c_str(), final.c_str()) != 0) {
    if (errno == ENOENT) {  // the chunk's shard directory does not exist yet
      s = MakeDir(final.substr(0, final.rfind('/')));
      if (s.ok() && options_.syncWrites) s = SyncDir(dir_ + "/chunks");
      if (s.ok() && ::rename(tmp.c_str(), final.c_str()) != 0) s = Status::FromErrno(errno, "rename to " + final);
    } else {
      s = Status::FromErrno(errno, "rename to " + final);
    }
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (options_.syncWrites) MP_RETURN_IF_ERROR(SyncDir(final.substr(0, final.rfind('/'))));
  *checksum = whole;
  return Status::OK();
}

Status ChunkStore::Write(const ChunkId& chunk, uint32_t offset, const char* data, uint32_t length,
                         const ChunkWriteOptions& options, ChunkMeta* meta) {
  const uint32_t capacity = options.chunkSizeBytes ? options.chunkSizeBytes : limits::kChunkSizeBytesMax;
  if (capacity > limits::kChunkSizeBytesMax)
    return Status::TooLarge("chunk size " + std::to_string(capacity) + " exceeds " +
                            std::to_string(limits::kChunkSizeBytesMax));
  if (uint64_t{offset} + length > capacity)
    return Status::TooLarge("write of " + std::to_string(length) + " bytes at " + std::to_string(offset) +
                            " exceeds the chunk size " + std::to_string(capacity));
  if (options.replace && offset != 0) return Status::InvalidArgument("a replacing write starts at offset 0");

  std::lock_guard<std::mutex> writeLock(LockFor(chunk));
  Entry entry;
  {
    std::shared_lock<std::shared_mutex> lock(indexMu_);
    auto it = index_.find(chunk);
    if (it != index_.end()) entry = it->second;
  }
  const uint64_t newest = std::max(entry.hasCommitted ? entry.commitVersion : 0,
                                   entry.hasPending ? entry.pendingVersion : 0);
  const uint64_t version = options.updateVersion ? options.updateVersion : newest + 1;
  if (entry.hasCommitted && version <= entry.commitVersion)
    return Status::StaleVersion("chunk " + chunk.ToHex() + " already has version " +
                                std::to_string(entry.commitVersion) + " committed");
  // The base the write applies to: the pending version it follows, else the committed one.
  // A retried update (same version as the pending one) re-applies to the committed base.
  bool basePending = entry.hasPending && entry.pendingVersion < version;
  bool baseExists = basePending || entry.hasCommitted;
  if (entry.corrupt && !options.replace)
    return Status::Corrupt("chunk " + chunk.ToHex() + " has a damaged header; only a replacing write repairs it");
  uint32_t baseLength = !baseExists ? 0 : basePending ? entry.pendingLength : entry.committedLength;
  uint32_t newLength = options.replace ? length : std::max<uint32_t>(baseLength, offset + length);

  const char* content = data;
  AlignedBuffer merged;
  if (!options.replace && !(offset == 0 && length >= baseLength)) {
    // A partial update: read the verified base, overlay the new bytes.
    MP_RETURN_IF_ERROR(staging_.Acquire(newLength, kStagingWaitMs, &merged));
    std::memset(merged.data(), 0, newLength);
    if (baseLength > 0) {
      std::shared_ptr<OpenChunk> base;
      MP_RETURN_IF_ERROR(OpenVersion(chunk, basePending, entry.generation, &base));
      MP_RETURN_IF_ERROR(ReadVerified(*base, 0, base->header.length, merged.data()));
    }
    std::memcpy(merged.data() + offset, data, length);
    content = merged.data();
  }

  uint64_t newFileBytes = fmt::FileBytes(newLength);
  uint64_t replacedBytes = 0;  // what this write frees: the version file it supersedes
  if (options.commit) {
    if (entry.hasCommitted && !entry.corrupt) replacedBytes += fmt::FileBytes(entry.committedLength);
    if (entry.hasPending && !entry.corrupt && entry.pendingVersion <= version) replacedBytes += fmt::FileBytes(entry.pendingLength);
  } else if (entry.hasPending && !entry.corrupt) {
    replacedBytes = fmt::FileBytes(entry.pendingLength);
  }
  if (options_.capacityBytes) {
    std::shared_lock<std::shared_mutex> lock(indexMu_);
    if (bytesUsed_ + newFileBytes > options_.capacityBytes + replacedBytes)
      return Status::NoSpace("target " + dir_ + " is full (" + std::to_string(bytesUsed_) + " of " +
                             std::to_string(options_.capacityBytes) + " bytes used)");
  }
  uint32_t checksum = 0;
  MP_RETURN_IF_ERROR(WriteVersionFile(chunk, version, content, newLength, !options.commit, &checksum));

  bool dropPending = options.commit && entry.hasPending && entry.pendingVersion <= version;
  if (dropPending) ::unlink(PathOf(chunk, true).c_str());
  {
    std::unique_lock<std::shared_mutex> lock(indexMu_);
    Entry& e = index_[chunk];
    if (options.commit) {
      if (e.hasCommitted) bytesUsed_ -= fmt::FileBytes(e.committedLength);
      e.hasCommitted = true;
      e.commitVersion = version;
      e.committedLength = newLength;
      e.committedChecksum = checksum;
      if (dropPending) {
        bytesUsed_ -= fmt::FileBytes(e.pendingLength);
        e.hasPending = false;
      }
    } else {
      if (e.hasPending) bytesUsed_ -= fmt::FileBytes(e.pendingLength);
      e.hasPending = true;
      e.pendingVersion = version;
      e.pendingLength = newLength;
      e.pendingChecksum = checksum;
    }
    e.corrupt = false;
    bytesUsed_ += newFileBytes;
    e.generation = nextGeneration_++;
    *meta = e.Meta();
  }
  Invalidate(chunk);
  return Status::OK();
}

Status ChunkStore::Commit(const ChunkId& chunk, uint64_t version, ChunkMeta* meta) {
  std::lock_guard<std::mutex> writeLock(LockFor(chunk));
  Entry entry;
  {
    std::shared_lock<std::shared_mutex> lock(indexMu_);
    auto it = index_.find(chunk);
    if (it == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
    entry = it->second;
  }
  if (entry.hasCommitted && entry.commitVersion >= version) {  // a retried commit
    *meta = entry.Meta();
    return Status::OK();
  }
  if (!entry.hasPending || entry.pendingVersion != version)
    return Status::StaleVersion("chunk " + chunk.ToHex() + " has no pending version " + std::to_string(version));
  std::string from = PathOf(chunk, true), to = PathOf(chunk, false);
  if (::rename(from.c_str(), to.c_str()) != 0) return Status::FromErrno(errno, "rename to " + to);
  if (options_.syncWrites) MP_RETURN_IF_ERROR(SyncDir(to.substr(0, to.rfind('/'))));
  {
    std::unique_lock<std::shared_mutex> lock(indexMu_);
    Entry& e = index_[chunk];
    if (e.hasCommitted) bytesUsed_ -= fmt::FileBytes(e.committedLength);
    e.hasCommitted = true;
    e.commitVersion = e.pendingVersion;
    e.committedLength = e.pendingLength;
    e.committedChecksum = e.pendingChecksum;
    e.hasPending = false;
    e.generation = nextGeneration_++;
    *meta = e.Meta();
  }
  Invalidate(chunk);
  return Status::OK();
}

Status ChunkStore::Remove(const ChunkId& chunk) {
  std::lock_guard<std::mutex> writeLock(LockFor(chunk));
  {
    std::shared_lock<std::shared_mutex> lock(indexMu_);
    if (index_.find(chunk) == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
  }
  uint64_t freed = 0;
  for (bool pending : {false, true}) {
    std::string path = PathOf(chunk, pending);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    if (::unlink(path.c_str()) != 0) return Status::FromErrno(errno, "unlink " + path);
    freed += static_cast<uint64_t>(st.st_size);
  }
  {
    std::unique_lock<std::shared_mutex> lock(indexMu_);
    index_.erase(chunk);
    bytesUsed_ -= std::min(freed, bytesUsed_);
  }
  Invalidate(chunk);
  return Status::OK();
}

}  // namespace millpond
