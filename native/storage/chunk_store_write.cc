// The write path of ChunkStore: copy-on-write version files, pending versions and commits.
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "storage/chunk_store.h"
#include "common/assert.h"
#include "storage/chunk_store_internal.h"

namespace millpond {

namespace fmt = chunk_format;
using chunk_store_internal::kStagingWaitMs;
using chunk_store_internal::kTempPrefix;
using chunk_store_internal::MakeDir;
using chunk_store_internal::SyncDir;

namespace {
// Puts the version file `tmp` in place as `final` atomically: `final` names the old version or
// the new one at every instant. Over an old version the two are exchanged and the old one then
// unlinked under the temporary name, rather than renamed over: ext4 (auto_da_alloc) starts
// writing back a file renamed over another at once, so an unsynced store wrote every version to
// the disk and each overwrite's close waited for the last one's writeback (4.2 ms per close in
// `dataplane`'s writes). A synced store has its bytes on the disk before this either way. A
// crash before the unlink leaves the old version under a temporary name, which Open() removes.
Status Publish(const std::string& tmp, const std::string& final) {
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final.c_str(), RENAME_EXCHANGE) == 0) {
    ::unlink(tmp.c_str());
    return Status::OK();
  }
  // ENOENT: no old version; EINVAL: a filesystem without exchanges.
  if ((errno != ENOENT && errno != EINVAL) || ::rename(tmp.c_str(), final.c_str()) != 0)
    return Status::FromErrno(errno, "rename to " + final);
  return Status::OK();
}
}  // namespace

Status ChunkStore::WriteVersionFile(const ChunkId& chunk, uint64_t version, const char* content,
                                    uint32_t length, bool pending, const uint32_t* expected,
                                    const std::vector<RequestKey>& requests, const uint32_t* given,
                                    uint32_t givenFirst, uint32_t givenCount, uint32_t chainId,
                                    uint32_t* checksum) {
  const uint32_t B = fmt::kBlockBytes;
  fmt::FixedHeader h;
  h.chunk = chunk;
  h.version = version;
  h.length = length;
  h.headerBytes = fmt::HeaderBytes(length);
  h.chainId = chainId;
  AlignedBuffer header = AlignedBuffer::Allocate(h.headerBytes);
  if (header.empty()) return Status::NoSpace("out of memory for a chunk header");
  std::memset(header.data(), 0, h.headerBytes);
  uint32_t whole = 0;
  uint32_t* crcs = reinterpret_cast<uint32_t*>(header.data() + h.BlockTableOffset());
  for (uint32_t i = 0, blocks = fmt::BlockCount(length); i < blocks; i++) {
    uint32_t n = std::min<uint32_t>(B, length - i * B);
    crcs[i] = Crc32c(content + uint64_t{i} * B, n);
    if (given && i >= givenFirst && i - givenFirst < givenCount && crcs[i] != given[i - givenFirst])
      return Status::Corrupt("chunk " + chunk.ToHex() + ": write data checksum mismatch in block " + std::to_string(i) +
                             ": the data was damaged in transit");
    whole = i == 0 ? crcs[i] : Crc32cCombine(whole, crcs[i], n);
  }
  if (expected && *expected != whole)
    return Status::Corrupt("chunk " + chunk.ToHex() + " version " + std::to_string(version) + " would have checksum " +
                           std::to_string(whole) + " here, " + std::to_string(*expected) +
                           " at the predecessor: the replicas' bases differ");
  h.checksum = whole;
  // The request table, after the block CRCs (chunk_format.h).
  const size_t keep = std::min<size_t>(requests.size(), limits::kChunkRequestsRemembered);
  uint8_t* table = reinterpret_cast<uint8_t*>(header.data()) + h.RequestTableOffset();
  for (size_t i = 0; i < keep; i++) {
    const RequestKey& k = requests[requests.size() - keep + i];
    std::memcpy(table + i * fmt::kRequestEntryBytes, &k.first, 8);
    std::memcpy(table + i * fmt::kRequestEntryBytes + 8, &k.second, 8);
  }
  h.requests = static_cast<uint32_t>(keep);
  h.requestsCrc = Crc32c(reinterpret_cast<const char*>(table), keep * fmt::kRequestEntryBytes);
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

  // The new version is written beside the chunk's file (under kTempPrefix),
  // so its inode comes from the shard directory's allocation group and the rename stays in one
  // directory.
  const std::string final = PathOf(chunk, pending);
  const std::string shard = final.substr(0, final.rfind('/'));
  char name[96];
  std::snprintf(name, sizeof name, "/%s%s.%llu.%llu", kTempPrefix, chunk.ToHex().c_str(),
                static_cast<unsigned long long>(version),
                static_cast<unsigned long long>(nextTmp_.fetch_add(1)));
  const std::string tmp = shard + name;
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (directIo_ ? O_DIRECT : 0);
  UniqueFd fd(::open(tmp.c_str(), flags, 0600));
  if (!fd.valid() && errno == ENOENT) {  // the chunk's shard directory does not exist yet
    MP_RETURN_IF_ERROR(MakeDir(shard));
    if (options_.syncWrites) MP_RETURN_IF_ERROR(SyncDir(dir_ + "/chunks"));
    fd = UniqueFd(::open(tmp.c_str(), flags, 0600));
  }
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  Status s = PwritevFull(fd.get(), iov.data(), static_cast<int>(iov.size()), 0, tmp.c_str());
  if (s.ok() && options_.syncWrites && ::fdatasync(fd.get()) != 0)
    s = Status::FromErrno(errno, "fdatasync " + tmp);
  fd.Reset();
  if (s.ok()) s = Publish(tmp, final);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (options_.syncWrites) MP_RETURN_IF_ERROR(SyncDir(shard));
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
  if (options.install && (options.updateVersion == 0 || !options.replace || !options.commit))
    return Status::InvalidArgument("an install names its version and replaces and commits the chunk");

  std::lock_guard<std::mutex> writeLock(LockFor(chunk));
  Entry entry;
  {
    ReaderLock lock(&indexMu_);
    auto it = index_.find(chunk);
    if (it != index_.end()) entry = it->second;
  }
  const uint64_t newest = std::max(entry.hasCommitted ? entry.commitVersion : 0,
                                   entry.hasPending ? entry.pendingVersion : 0);
  const uint64_t version = options.updateVersion ? options.updateVersion : newest + 1;
  if (options.install && entry.hasCommitted && !entry.corrupt && version < entry.commitVersion)
    return Status::StaleVersion("chunk " + chunk.ToHex() + " has the newer version " +
                                std::to_string(entry.commitVersion) + " here");
  if (!options.install && entry.hasCommitted && version <= entry.commitVersion)
    return Status::StaleVersion("chunk " + chunk.ToHex() + " already has version " +
                                std::to_string(entry.commitVersion) + " committed");
  if (options.baseCommitted && entry.hasPending && !entry.corrupt && version < entry.pendingVersion)
    return Status::StaleVersion("chunk " + chunk.ToHex() + " has the newer pending version " +
                                std::to_string(entry.pendingVersion));
  // The base the write applies to: the pending version it follows (unless baseCommitted),
  // else the committed one. A retried update (same version as the pending one) re-applies
  // to the committed base.
  bool basePending = !options.baseCommitted && entry.hasPending && entry.pendingVersion < version;
  bool baseExists = basePending || entry.hasCommitted;
  if (entry.corrupt && !options.replace)
    return Status::Corrupt("chunk " + chunk.ToHex() + " has a damaged header; only a replacing write repairs it");
  uint32_t baseLength = !baseExists ? 0 : basePending ? entry.pendingLength : entry.committedLength;
  uint32_t newLength = options.replace ? length : std::max<uint32_t>(baseLength, offset + length);

  // The writer's block CRCs: those of payload blocks that are whole content blocks of the new
  // version are checked as its block table is made (one pass); any other block (an unaligned
  // write, a partial last block merged with the base) is checked on its own now.
  const uint32_t B = fmt::kBlockBytes;
  const uint32_t* given = nullptr;
  uint32_t givenFirst = 0, givenCount = 0;
  if (options.dataBlockCrcs && length > 0) {
    const uint32_t blocks = fmt::BlockCount(length);
    if (offset % B == 0) {
      given = options.dataBlockCrcs;
      givenFirst = offset / B;
      givenCount = length / B + (length % B != 0 && offset + length == newLength ? 1 : 0);
    }
    for (uint32_t i = givenCount; i < blocks; i++) {
      const uint32_t n = std::min<uint32_t>(B, length - i * B);
      if (Crc32c(data + uint64_t{i} * B, n) != options.dataBlockCrcs[i])
        return Status::Corrupt("chunk " + chunk.ToHex() + ": write data checksum mismatch in block " +
                               std::to_string(i) + " of the payload: the data was damaged in transit");
    }
  }
  const char* content = data;
  AlignedBuffer merged;
  std::shared_ptr<OpenChunk> base;
  std::vector<RequestKey> requests;  // the base's table, then this write
  if (baseExists && !entry.corrupt && !options.install) {
    Status s = OpenVersion(chunk, basePending, entry.generation, &base);
    if (s.ok()) s = ReadRequests(*base, &requests);
    if (!s.ok() && !options.replace) return s;  // a replacing write repairs: it needs no base
    if (!s.ok()) requests.clear();
  }
  if (options.clientId != 0) requests.emplace_back(options.clientId, options.requestId);
  if (!options.replace && !(offset == 0 && length >= baseLength)) {
    // A partial update: read the verified base, overlay the new bytes.
    MP_RETURN_IF_ERROR(staging_.Acquire(newLength, kStagingWaitMs, &merged));
    std::memset(merged.data(), 0, newLength);
    if (baseLength > 0) MP_RETURN_IF_ERROR(ReadVerified(*base, 0, base->header.length, merged.data()));
    std::memcpy(merged.data() + offset, data, length);
    content = merged.data();
  }

  uint64_t newFileBytes = fmt::FileBytes(newLength);
  uint64_t replacedBytes = 0;  // what this write frees: the version file it supersedes
  if (options.commit) {
    replacedBytes += entry.committedFileBytes;
    if (entry.hasPending && (options.install || entry.pendingVersion <= version)) replacedBytes += entry.pendingFileBytes;
  } else {
    replacedBytes = entry.pendingFileBytes;
  }
  if (options_.capacityBytes) {
    ReaderLock lock(&indexMu_);
    if (bytesUsed_ + newFileBytes > options_.capacityBytes + replacedBytes)
      return Status::NoSpace("target " + dir_ + " is full (" + std::to_string(bytesUsed_) + " of " +
                             std::to_string(options_.capacityBytes) + " bytes used)");
  }
  // The tag: the write's chain, else the base's (an install's base is the committed version).
  uint32_t chainId = options.chainId;
  if (chainId == 0 && !entry.corrupt) {
    if (options.install) chainId = entry.hasCommitted ? entry.committedChainId : 0;
    else if (baseExists) chainId = basePending ? entry.pendingChainId : entry.committedChainId;
  }
  uint32_t checksum = 0;
  MP_RETURN_IF_ERROR(WriteVersionFile(chunk, version, content, newLength, !options.commit,
                                      options.expectChecksum ? &options.expectedChecksum : nullptr, requests,
                                      given, givenFirst, givenCount, chainId, &checksum));

  bool dropPending = options.commit && entry.hasPending && (options.install || entry.pendingVersion <= version);
  if (dropPending) ::unlink(PathOf(chunk, true).c_str());
  {
    WriterLock lock(&indexMu_);
    Entry& e = index_[chunk];
    if (options.commit) {
      Uncount(e.committedFileBytes);
      e.committedFileBytes = newFileBytes;
      e.hasCommitted = true;
      e.commitVersion = version;
      e.committedLength = newLength;
      e.committedChecksum = checksum;
      e.committedChainId = chainId;
      if (dropPending) {
        Uncount(e.pendingFileBytes);
        e.pendingFileBytes = 0;
        e.hasPending = false;
      }
    } else {
      Uncount(e.pendingFileBytes);
      e.pendingFileBytes = newFileBytes;
      e.hasPending = true;
      e.pendingVersion = version;
      e.pendingLength = newLength;
      e.pendingChecksum = checksum;
      e.pendingChainId = chainId;
    }
    e.corrupt = false;
    Count(newFileBytes);
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
    ReaderLock lock(&indexMu_);
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
    WriterLock lock(&indexMu_);
    Entry& e = index_[chunk];
    // The chunk's write lock has been held since the pending version was checked: the index
    // cannot have moved, and the file just renamed is the one it describes.
    MP_ASSERT(e.hasPending && e.pendingVersion == version,
              "chunk " + chunk.ToHex() + " lost pending version " + std::to_string(version) + " while its write lock was held");
    Uncount(e.committedFileBytes);
    e.committedFileBytes = e.pendingFileBytes;
    e.pendingFileBytes = 0;
    e.hasCommitted = true;
    e.commitVersion = e.pendingVersion;
    e.committedLength = e.pendingLength;
    e.committedChecksum = e.pendingChecksum;
    e.committedChainId = e.pendingChainId;
    e.hasPending = false;
    e.generation = nextGeneration_++;
    *meta = e.Meta();
  }
  Invalidate(chunk);
  return Status::OK();
}

}  // namespace millpond
