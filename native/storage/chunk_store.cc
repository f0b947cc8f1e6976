#include "storage/chunk_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/assert.h"
#include "storage/chunk_store_internal.h"

namespace millpond {

namespace chunk_store_internal {

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return Status::OK();
  return Status::FromErrno(errno, "mkdir " + path);
}

Status SyncDir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + path);
  return Status::OK();
}

}  // namespace chunk_store_internal

namespace fmt = chunk_format;
using chunk_store_internal::kShardDirs;
using chunk_store_internal::kTempPrefix;
using chunk_store_internal::MakeDir;
using chunk_store_internal::SyncDir;

namespace {

constexpr const char* kMarkerFile = "MILLPOND_TARGET";
constexpr const char* kMarkerText = "millpond chunk store, format 1\n";

Status MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); i++) {
    if (i == path.size() || path[i] == '/') MP_RETURN_IF_ERROR(MakeDir(path.substr(0, i)));
  }
  return Status::OK();
}

// Asks the filesystem to spread the subdirectories of `path` (the shard directories) over its
// allocation groups, as it spreads top-level directories (ext4's FS_TOPDIR_FL; a filesystem
// without it refuses or ignores the flag, which changes nothing else). Why: a new file's inode
// comes from its directory's group, and every write makes a version file and frees the one it
// replaces. On ext4 without a journal the allocator passes over inodes freed in the last minute
// one by one, so with every shard in one group each create scanned thousands of them (0.5 ms
// of kernel time; bench/results/README.md). Spread over 256 groups the scan is short.
void SpreadSubdirectories(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int flags = 0;
  if (!fd.valid() || ::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0 || (flags & FS_TOPDIR_FL)) return;
  flags |= FS_TOPDIR_FL;
  (void)::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags);
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
  // Chunks are users' data: only the daemon's uid may reach them (files 0600 in 0700 dirs).
  if (::chmod(dir.c_str(), 0700) != 0) return Status::FromErrno(errno, "chmod " + dir);
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
    UniqueFd fd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return Status::FromErrno(errno, "create " + marker);
    MP_RETURN_IF_ERROR(PwriteFull(fd.get(), kMarkerText, std::strlen(kMarkerText), 0, marker.c_str()));
    if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + marker);
    MP_RETURN_IF_ERROR(SyncDir(dir));
  }
  SpreadSubdirectories(dir + "/chunks");  // also for targets made before the hint
  std::unique_ptr<ChunkStore> store(new ChunkStore(dir, options));
  {
    WriterLock lock(&store->indexMu_);  // no other thread has the store yet; for the analysis
    MP_RETURN_IF_ERROR(store->Scan());
  }
  *out = std::move(store);
  return Status::OK();
}

// Rebuilds the index from the version files and drops what a crash left half done:
// temporary files (never renamed, so never visible) and pending versions that were
// already committed.
Status ChunkStore::Scan() {
  std::string tmp = dir_ + "/tmp";  // the O_DIRECT probe's; earlier formats wrote versions here
  if (DIR* d = ::opendir(tmp.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ::unlink((tmp + "/" + e->d_name).c_str());
    }
    ::closedir(d);
  }
  // Probe O_DIRECT once; tmpfs and some overlays refuse it.
  if (directIo_) {
    std::string probe = tmp + "/direct-probe";
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
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
      if (std::strncmp(e->d_name, kTempPrefix, std::strlen(kTempPrefix)) == 0) {
        ::unlink((path + "/" + e->d_name).c_str());
        continue;
      }
      ChunkId id;
      bool pending;
      if (!ParseChunkFileName(e->d_name, &id, &pending)) continue;
      std::string file = path + "/" + e->d_name;
      Entry& entry = index_[id];
      uint8_t raw[fmt::kHeadBytes];
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
      uint64_t fileBytes = fd.valid() && ::fstat(fd.get(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
      (pending ? entry.pendingFileBytes : entry.committedFileBytes) = fileBytes;
      Count(fileBytes);
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
        entry.pendingChainId = h.chainId;
      } else {
        entry.hasCommitted = true;
        entry.commitVersion = h.version;
        entry.committedLength = h.length;
        entry.committedChecksum = h.checksum;
        entry.committedChainId = h.chainId;
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
    Entry& e = index_[id];
    e.hasPending = false;
    Uncount(e.pendingFileBytes);
    e.pendingFileBytes = 0;
  }
  return Status::OK();
}

void ChunkStore::Uncount(uint64_t bytes) {
  MP_ASSERT(bytes <= bytesUsed_, "chunk store " + dir_ + " would uncount " + std::to_string(bytes) +
                                     " bytes of the " + std::to_string(bytesUsed_) + " it counted");
  bytesUsed_ -= bytes;
}

std::string ChunkStore::PathOf(const ChunkId& chunk, bool pending) const {
  char sub[16];
  std::snprintf(sub, sizeof sub, "/chunks/%02x/", static_cast<unsigned>(chunk.Hash() % kShardDirs));
  return dir_ + sub + chunk.ToHex() + (pending ? ".p" : ".c");
}

Status ChunkStore::Stat(const ChunkId& chunk, ChunkMeta* meta) const {
  ReaderLock lock(&indexMu_);
  auto it = index_.find(chunk);
  if (it == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
  if (it->second.corrupt) return Status::Corrupt("chunk " + chunk.ToHex() + " has a damaged header");
  *meta = it->second.Meta();
  return Status::OK();
}

Status ChunkStore::PendingVersion(const ChunkId& chunk, uint64_t version, uint32_t* length,
                                  uint32_t* checksum) const {
  ReaderLock lock(&indexMu_);
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
  ReaderLock lock(&indexMu_);
  auto it = after ? index_.upper_bound(*after) : index_.begin();
  for (; it != index_.end() && out->size() < limit; ++it) {
    ChunkListEntry e;
    e.chunk = it->first;
    e.meta = it->second.Meta();
    e.corrupt = it->second.corrupt;
    if (!e.corrupt) e.chainId = it->second.hasCommitted ? it->second.committedChainId : it->second.pendingChainId;
    out->push_back(e);
  }
  return Status::OK();
}

ChunkStoreUsage ChunkStore::Usage() const {
  ReaderLock lock(&indexMu_);
  ChunkStoreUsage u;
  u.chunks = index_.size();
  u.bytes = bytesUsed_;
  u.capacityBytes = options_.capacityBytes;
  u.directIo = directIo_;
  return u;
}

Status ChunkStore::Remove(const ChunkId& chunk, const ChunkMeta* expected) {
  std::lock_guard<std::mutex> writeLock(LockFor(chunk));
  {
    ReaderLock lock(&indexMu_);
    auto it = index_.find(chunk);
    if (it == index_.end()) return Status::NotFound("chunk " + chunk.ToHex() + " does not exist");
    if (expected) {
      ChunkMeta now = it->second.Meta();
      if (now.commitVersion != expected->commitVersion || now.updateVersion != expected->updateVersion ||
          now.length != expected->length || now.checksum != expected->checksum)
        return Status::StaleVersion("chunk " + chunk.ToHex() + " changed (now version " +
                                    std::to_string(now.commitVersion) + "/" + std::to_string(now.updateVersion) +
                                    ", expected " + std::to_string(expected->commitVersion) + "/" +
                                    std::to_string(expected->updateVersion) + "): not removed");
    }
  }
  Status s;
  for (bool pending : {false, true}) {
    std::string path = PathOf(chunk, pending);
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;
    if (::unlink(path.c_str()) != 0) {
      s = Status::FromErrno(errno, "unlink " + path);
      break;
    }
  }
  if (!s.ok()) return s;  // the index still describes the files left
  {
    WriterLock lock(&indexMu_);
    auto it = index_.find(chunk);
    if (it != index_.end()) {
      Uncount(it->second.committedFileBytes + it->second.pendingFileBytes);
      index_.erase(it);
    }
  }
  Invalidate(chunk);
  // Without this sync a crash can bring the removed chunk back: the unlinks are not durable
  // until the directory is. A failure is reported (the chunk is gone from the namespace).
  if (options_.syncWrites) {
    std::string path = PathOf(chunk, false);
    return SyncDir(path.substr(0, path.rfind('/')));
  }
  return Status::OK();
}

}  // namespace millpond
