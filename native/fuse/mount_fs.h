// MountFs: the state of a FUSE mount that does not depend on libfuse (fuse_ops.cc adapts the
// kernel's requests to it): the table of inodes the kernel knows, the paths meta is asked by,
// the open files and their writers' lengths, and the identity each call acts as.
//
// Contracts:
//  - Kernel node ids are meta inode ids (the root is 1 in both). A node keeps every name the
//    kernel found it by (a file may have several: hard links) and is reached by the latest
//    one still linked; a path is found by walking parents, so renaming a directory updates
//    one name.
//  - Every namespace call acts as an explicit identity (Caller(), passed down as `as` to the
//    native client), never as global state: each kernel request's uid/gid/groups (a mount of
//    a proxy user's or the admin's token, sent as actAs), or one fixed user (--as-user; or a
//    mount of a plain user's token, where no `as` is sent and meta acts as the token's user).
//  - Close-to-open: an open file publishes its length to meta at the close(2) of each of its
//    descriptors (FUSE flush) and at fsync; a later write or read through the same open file
//    opens it again. Until then getattr reports the larger of meta's length and how far this
//    mount's writers wrote.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "client/file_client.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "common/status.h"

namespace millpond {

struct MountOptions {
  uint32_t attrTimeoutMs = limits::kFuseAttrTimeoutMsDefault;
  uint32_t entryTimeoutMs = limits::kFuseEntryTimeoutMsDefault;
  bool directIo = false;  // reads and writes bypass the kernel's page cache
  // A mount of a plain user credential acts as this user for every caller; otherwise each
  // request's caller (root's mount: a proxy for local users).
  bool fixedUser = false;
  MetaUser user;
  // Whether calls name their identity (`as`, sent as actAs with a token): a proxy user's or
  // the admin's token, or no token (an unauthenticated cluster). False for a plain user's
  // token: meta acts as the token's user, which `user` (fixedUser) then mirrors.
  bool sendAs = true;
};

// The caller of one kernel request, as the kernel reports it.
struct RequestCaller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary, at most limits::kFuseGroupsMax
};

class MountFs;

// One open(2)/creat(2): a FileHandle, closed at flush and opened again when used after it.
struct OpenFile {
  std::mutex mu;                    // one kernel request at a time on the handle
  uint64_t ino = 0;
  std::string path;                 // at open; an open again after flush uses it
  OpenFlags flags;                  // of an open again: access mode only
  MetaUser as;                      // the identity it was opened as
  bool writable = false;
  std::unique_ptr<FileHandle> file; // GUARDED_BY(mu); null or closed: open again before use
  Status flushStatus;               // GUARDED_BY(mu): the last Close(); sticky for release
};

class MountFs {
 public:
  MountFs(FileClient* client, const MountOptions& options);

  FileClient* client() { return client_; }
  MetaClient* meta() { return client_->meta(); }
  const MountOptions& options() const { return options_; }

  // The identity a request acts as in meta.
  MetaUser Caller(const RequestCaller& caller) const;
  // What to pass as a call's `as` for identity `u`: &u, or nullptr when the token's own
  // identity applies (options().sendAs false; meta refuses actAs from a plain user).
  const MetaUser* As(const MetaUser& u) const { return options_.sendAs ? &u : nullptr; }

  // ---- nodes
  // The path of node `ino`; kStaleVersion when the kernel asks about a node it forgot.
  Status PathOf(uint64_t ino, std::string* out);
  Status ChildPath(uint64_t parent, const std::string& name, std::string* out);
  // The kernel now holds one more reference (lookup, create, mkdir, ...) on `ino`, found as
  // `name` in `parent`.
  void Remember(uint64_t ino, uint64_t parent, const std::string& name);
  // `name` in `parent` was unlinked (unlink, rmdir, or replaced by a rename).
  void Unlinked(uint64_t parent, const std::string& name);
  // `name` in `parent` moved to `newName` in `newParent` (rename).
  void Renamed(uint64_t parent, const std::string& name, uint64_t newParent, const std::string& newName);
  void Forget(uint64_t ino, uint64_t lookups);
  size_t nodeCount();

  // ---- open files
  // Opens `path` (flags.create: creates) as `as`; *out owns the OpenFile until Release().
  Status Open(uint64_t ino, const std::string& path, const OpenFlags& flags, uint32_t mode,
              const MetaUser& as, OpenFile** out);
  // REQUIRES: f->mu held. Opens again after a flush.
  Status Ready(OpenFile* f);
  Status Read(OpenFile* f, uint64_t offset, size_t length, char* dst, size_t* bytesRead);
  Status Write(OpenFile* f, uint64_t offset, const char* data, size_t length);
  // Publishes what was written (close-to-open); the next use opens again.
  Status Flush(OpenFile* f);
  Status Release(OpenFile* f);
  // The larger of meta's `lengthBytes` and the furthest write of this mount's open writers.
  uint64_t Length(uint64_t ino, uint64_t lengthBytes);
  // The file was truncated to lengthBytes: writes before no longer extend it.
  void Truncated(uint64_t ino, uint64_t lengthBytes);

 private:
  using Name = std::pair<uint64_t, std::string>;  // (parent, name)
  struct Node {
    std::vector<Name> names;  // latest first
    uint64_t lookups = 0;
  };
  void AddNameLocked(uint64_t ino, const Name& name) REQUIRES(nodesMu_);
  void DropNameLocked(const Name& name) REQUIRES(nodesMu_);
  struct Writers {
    uint32_t open = 0;
    uint64_t endBytes = 0;
  };
  void NoteWrite(uint64_t ino, uint64_t endBytes);

  FileClient* const client_;
  const MountOptions options_;

  Mutex nodesMu_;
  std::unordered_map<uint64_t, Node> nodes_ GUARDED_BY(nodesMu_);
  std::map<Name, uint64_t> byName_ GUARDED_BY(nodesMu_);  // every name of nodes_

  Mutex filesMu_;
  uint32_t openFiles_ GUARDED_BY(filesMu_) = 0;
  std::unordered_map<uint64_t, Writers> writers_ GUARDED_BY(filesMu_);
};

}  // namespace millpond
