#include "fuse/mount_fs.h"

#include <algorithm>
#include <utility>

#include "common/log.h"

namespace millpond {

namespace {
constexpr uint64_t kRootIno = 1;  // FUSE_ROOT_ID and meta's ROOT_INODE
}  // namespace

MountFs::MountFs(FileClient* client, const MountOptions& options)
    : client_(client), options_(options) {
  nodes_[kRootIno].lookups = 1;
}

MetaUser MountFs::Caller(const RequestCaller& caller) const {
  if (options_.fixedUser) return options_.user;
  MetaUser u;
  u.uid = caller.uid;
  u.gid = caller.gid;
  for (uint32_t g : caller.groups) {
    if (u.gids.size() >= limits::kFuseGroupsMax) break;
    if (g != caller.gid) u.gids.push_back(g);
  }
  return u;
}

Status MountFs::PathOf(uint64_t ino, std::string* out) {
  std::vector<const std::string*> names;
  MutexLock lock(&nodesMu_);
  for (uint64_t at = ino; at != kRootIno;) {
    auto it = nodes_.find(at);
    if (it == nodes_.end() || it->second.names.empty()) {
      return Status::StaleVersion("node " + std::to_string(ino) + " has no known name");
    }
    const Name& n = it->second.names.front();
    names.push_back(&n.second);
    at = n.first;
    if (names.size() > limits::kMetaPathBytesMax / 2) return Status::Internal("a cycle of nodes at " + std::to_string(ino));
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) path += "/" + **it;
  *out = path.empty() ? "/" : path;
  return Status::OK();
}

Status MountFs::ChildPath(uint64_t parent, const std::string& name, std::string* out) {
  std::string dir;
  MP_RETURN_IF_ERROR(PathOf(parent, &dir));
  *out = dir == "/" ? "/" + name : dir + "/" + name;
  return Status::OK();
}

void MountFs::AddNameLocked(uint64_t ino, const Name& name) {
  auto old = byName_.find(name);
  if (old != byName_.end() && old->second != ino) DropNameLocked(name);  // now another inode's
  Node& n = nodes_[ino];
  auto at = std::find(n.names.begin(), n.names.end(), name);
  if (at != n.names.end()) n.names.erase(at);
  n.names.insert(n.names.begin(), name);
  byName_[name] = ino;
}

void MountFs::DropNameLocked(const Name& name) {
  auto it = byName_.find(name);
  if (it == byName_.end()) return;
  auto node = nodes_.find(it->second);
  if (node != nodes_.end()) {
    auto& names = node->second.names;
    names.erase(std::remove(names.begin(), names.end(), name), names.end());
  }
  byName_.erase(it);
}

void MountFs::Remember(uint64_t ino, uint64_t parent, const std::string& name) {
  MutexLock lock(&nodesMu_);
  nodes_[ino].lookups++;
  if (ino != kRootIno) AddNameLocked(ino, Name(parent, name));
}

void MountFs::Unlinked(uint64_t parent, const std::string& name) {
  MutexLock lock(&nodesMu_);
  DropNameLocked(Name(parent, name));
}

void MountFs::Renamed(uint64_t parent, const std::string& name, uint64_t newParent, const std::string& newName) {
  MutexLock lock(&nodesMu_);
  const Name from(parent, name), to(newParent, newName);
  if (from == to) return;
  auto it = byName_.find(from);
  const bool known = it != byName_.end();
  const uint64_t ino = known ? it->second : 0;
  DropNameLocked(to);  // a replaced target loses its name
  if (!known) return;
  DropNameLocked(from);
  AddNameLocked(ino, to);
}

void MountFs::Forget(uint64_t ino, uint64_t lookups) {
  MutexLock lock(&nodesMu_);
  auto it = nodes_.find(ino);
  if (it == nodes_.end() || ino == kRootIno) return;
  if (lookups > it->second.lookups) {
    // The kernel forgets only what our replies counted; more means a reply went uncounted
    // here. The inode is dropped as the kernel asks, and the mismatch is not silent.
    LogWarningOnce("fuse-forget-overrun", "kernel forgot " + std::to_string(lookups) + " lookups of inode " +
                                              std::to_string(ino) + ", which has " +
                                              std::to_string(it->second.lookups) + " counted");
    lookups = it->second.lookups;
  }
  it->second.lookups -= lookups;
  if (it->second.lookups > 0) return;
  for (const Name& n : it->second.names) byName_.erase(n);
  nodes_.erase(it);
}

size_t MountFs::nodeCount() {
  MutexLock lock(&nodesMu_);
  return nodes_.size();
}

Status MountFs::Open(uint64_t ino, const std::string& path, const OpenFlags& flags, uint32_t mode,
                     const MetaUser& as, OpenFile** out) {
  {
    MutexLock lock(&filesMu_);
    if (openFiles_ >= limits::kFuseOpenFilesMax) {
      return Status::Busy("the mount has " + std::to_string(limits::kFuseOpenFilesMax) + " files open");
    }
    openFiles_++;
  }
  std::unique_ptr<OpenFile> f(new OpenFile);
  f->path = path;
  f->as = as;
  f->writable = flags.write || flags.append || flags.truncate;
  f->flags.read = flags.read;
  f->flags.write = f->writable;
  Status s = client_->Open(path, flags, mode, &f->file, As(f->as));
  MutexLock lock(&filesMu_);
  if (!s.ok()) {
    openFiles_--;
    return s;
  }
  f->ino = f->file->inode().id;
  if (f->writable) writers_[f->ino].open++;
  *out = f.release();
  return Status::OK();
}

Status MountFs::Ready(OpenFile* f) {
  if (f->file) return Status::OK();
  return client_->Open(f->path, f->flags, 0, &f->file, As(f->as));
}

Status MountFs::Read(OpenFile* f, uint64_t offset, size_t length, char* dst, size_t* bytesRead) {
  std::lock_guard<std::mutex> lock(f->mu);
  MP_RETURN_IF_ERROR(Ready(f));
  return f->file->Read(offset, length, dst, bytesRead);
}

Status MountFs::Write(OpenFile* f, uint64_t offset, const char* data, size_t length) {
  std::lock_guard<std::mutex> lock(f->mu);
  MP_RETURN_IF_ERROR(Ready(f));
  MP_RETURN_IF_ERROR(f->file->Write(offset, data, length));
  NoteWrite(f->ino, offset + length);
  return Status::OK();
}

void MountFs::NoteWrite(uint64_t ino, uint64_t endBytes) {
  MutexLock lock(&filesMu_);
  Writers& w = writers_[ino];
  w.endBytes = std::max(w.endBytes, endBytes);
}

Status MountFs::Flush(OpenFile* f) {
  std::lock_guard<std::mutex> lock(f->mu);
  if (!f->file) return f->flushStatus;
  // A reader has nothing to publish; its handle stays (and keeps its read-ahead). A writer's
  // session ends here even when it wrote nothing (create then close): ending it sets the
  // file's mtime, and the kernel sends RELEASE without waiting for its reply, so a session
  // left for Release() to end could land after a utimens(2) that followed close(2) and undo
  // it (rsync -a of an empty file saw exactly that).
  if (!f->writable) return Status::OK();
  f->flushStatus = f->file->Close();
  f->file.reset();
  return f->flushStatus;
}

Status MountFs::Release(OpenFile* f) {
  Status s;
  {
    std::lock_guard<std::mutex> lock(f->mu);
    if (f->file) s = f->file->Close();
    f->file.reset();
  }
  {
    MutexLock lock(&filesMu_);
    openFiles_--;
    if (f->writable) {
      auto it = writers_.find(f->ino);
      if (it != writers_.end() && --it->second.open == 0) writers_.erase(it);
    }
  }
  delete f;
  return s;
}

uint64_t MountFs::Length(uint64_t ino, uint64_t lengthBytes) {
  MutexLock lock(&filesMu_);
  auto it = writers_.find(ino);
  return it == writers_.end() ? lengthBytes : std::max(lengthBytes, it->second.endBytes);
}

void MountFs::Truncated(uint64_t ino, uint64_t lengthBytes) {
  MutexLock lock(&filesMu_);
  auto it = writers_.find(ino);
  if (it != writers_.end()) it->second.endBytes = lengthBytes;
}

}  // namespace millpond
