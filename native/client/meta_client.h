// MetaClient: typed calls to the metadata service (src/meta, methods in src/protocol/meta.ts)
// over an RpcClient. Every request carries `token` (design §10; to an unauthenticated server,
// `user: {uid, gid, gids?}` instead): meta checks it as the token's user, or — for a proxy
// user's or the admin's token — as the identity a call names in its trailing `as` argument,
// sent as `actAs` (a mount acts for the local user behind each request; Params() is the one
// place that puts an identity on the wire); mutations also carry this
// client's random 16-byte clientId, so a mutation resent after a timeout (same requestId, maybe
// to another meta server of the same KV) is applied once, as the TS MetaClient does.
// Replies are decoded into the structs below; a reply of the wrong shape is kProtocol.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "client/rpc_client.h"
#include "common/auth.h"
#include "common/status.h"

namespace millpond {

enum class FileType { kFile, kDir, kSymlink };

struct MetaUser {
  uint32_t uid = 0;  // 0 = root: no permission checks
  uint32_t gid = 0;
  std::vector<uint32_t> gids;  // supplementary groups (at most 64)
};

// A file's layout (chunk i on chain chains[(shuffled by seed)][i % stripeSize]); directories
// carry the template for their new files, without a seed.
struct Layout {
  uint32_t chunkSizeBytes = 0;
  uint32_t stripeSize = 0;
  uint32_t chainTableId = 0;
  uint32_t chainTableVersion = 0;
  uint32_t seed = 0;
  bool hasSeed = false;
};

struct Inode {
  uint64_t id = 0;
  FileType type = FileType::kFile;
  uint32_t mode = 0;  // permission bits (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t lengthBytes = 0;
  int64_t ctimeMs = 0;
  int64_t mtimeMs = 0;
  Layout layout;
  uint64_t parent = 0;    // directories: the parent's id; files: 0
  bool unlinked = false;  // files unlinked while open for write
  uint32_t nlink = 1;     // files and symlinks: names of the inode
  std::string target;     // symlinks: what the link points at
};

// The attributes Setattr changes: those with has* set.
struct SetAttrs {
  bool hasMode = false;
  uint32_t mode = 0;
  bool hasUid = false;
  uint32_t uid = 0;
  bool hasGid = false;
  uint32_t gid = 0;
  bool hasMtime = false;
  int64_t mtimeMs = 0;
};

struct DirEntry {
  std::string name;
  uint64_t inode = 0;
  FileType type = FileType::kFile;
  bool hasAttrs = false;  // ReaddirPlus: attrs holds the entry's inode
  Inode attrs;
};

struct ReaddirPage {
  std::vector<DirEntry> entries;
  bool more = false;  // call again with after = entries.back().name
};

struct OpenFlags {
  bool read = false;
  bool write = false;
  bool create = false;
  bool exclusive = false;
  bool truncate = false;
  bool append = false;
};

struct OpenResult {
  Inode inode;
  std::string session;  // set when opened for write: pass it to Close()
  // With a session: how long the service keeps it for a quiet client (0: not said).
  uint32_t sessionTimeoutMs = 0;
  // Set by a meta service with a cluster secret: the data-plane capability for the file's
  // chunks (common/auth.h), to send with each chunk request.
  bool hasCapability = false;
  Capability capability;
};

struct MetaClientOptions {
  RpcClientOptions rpc;  // endpoints of the meta servers (any of them serves any call)
  // The caller's token (design §10; rpc's CURVE keys from ApplyTokenCurve): sent with every
  // request, meta checks permissions as its user. Empty: an unauthenticated server, which
  // trusts `user`.
  std::string token;
  // With a token: send `user` as actAs (a proxy user's or the admin's token only).
  bool actAs = false;
  MetaUser user;
  // The dedup key of this client's mutations; empty: random. Two clients must never share
  // one (their requestIds would collide).
  std::string clientId;
  // While write sessions are open, a heartbeat this often keeps the meta service from ending
  // them (it ends those of clients quiet for its session timeout). 1..3600000.
  uint32_t sessionHeartbeatMs = limits::kMetaSessionHeartbeatMsDefault;
};

class MetaClient {
 public:
  static Status Create(const MetaClientOptions& options, std::unique_ptr<MetaClient>* out);
  ~MetaClient();  // stops the heartbeat; open sessions are left to the service's timeout

  // Every call below acts as `as` when given (it must outlive the call), else as
  // options.user.
  Status Stat(const std::string& path, Inode* out, const MetaUser* as = nullptr);
  // `after`: the last name of the previous page ("" for the first); limit 1..1024 (0: the
  // server's default).
  Status Readdir(const std::string& path, const std::string& after, uint32_t limit,
                 ReaddirPage* out, const MetaUser* as = nullptr);
  // Readdir with each entry's inode in attrs (hasAttrs), when the caller may search `path`.
  Status ReaddirPlus(const std::string& path, const std::string& after, uint32_t limit,
                     ReaddirPage* out, const MetaUser* as = nullptr);
  Status Mkdir(const std::string& path, uint32_t mode, bool recursive, Inode* out,
               const MetaUser* as = nullptr);
  // mode applies when the file is created (07777).
  Status Open(const std::string& path, const OpenFlags& flags, uint32_t mode, OpenResult* out,
              const MetaUser* as = nullptr);
  // Ends a write session; the file's length becomes max(its length, lengthBytes). kBadHandle
  // when the service already ended it (this client was quiet past the session timeout).
  Status Close(uint64_t inode, const std::string& session, uint64_t lengthBytes, Inode* out,
               const MetaUser* as = nullptr);
  // OK when `session` (opened by this client) is known to live: a heartbeat sent within half
  // the service's session timeout confirmed it, or one sent now does. kBadHandle when the
  // service ended it (this client was quiet: paused, or cut off from meta): a writer calls
  // this before acknowledging a write, since bytes written under an ended session are never
  // published. Another error when meta cannot be asked. Thread-safe.
  Status CheckSession(const std::string& session);
  Status Unlink(const std::string& path, const MetaUser* as = nullptr);
  Status Rmdir(const std::string& path, const MetaUser* as = nullptr);
  // Moves `from` to `to`, replacing a file or empty directory there. With `noReplace`
  // (RENAME_NOREPLACE) an existing `to` is kExists, checked by meta inside the transaction
  // that moves: of two racing renames onto one name exactly one wins.
  Status Rename(const std::string& from, const std::string& to, const MetaUser* as = nullptr,
                bool noReplace = false);
  // A second name `to` for the file at `existing` (link(2)).
  Status Link(const std::string& existing, const std::string& to, Inode* out,
              const MetaUser* as = nullptr);
  // A symbolic link at `path` to `target` (stored as given, never followed by meta).
  Status Symlink(const std::string& target, const std::string& path, Inode* out,
                 const MetaUser* as = nullptr);
  Status Readlink(const std::string& path, std::string* target, const MetaUser* as = nullptr);
  Status Truncate(const std::string& path, uint64_t lengthBytes, Inode* out,
                  const MetaUser* as = nullptr);
  // chmod, chown, utimes (mtime) in one call; fields without has* set are kept.
  Status Setattr(const std::string& path, const SetAttrs& attrs, Inode* out,
                 const MetaUser* as = nullptr);
  // Sets the layout template of directory `path` for files created in it later (owner or
  // root). Fields left 0 keep their value; seed and hasSeed are ignored.
  Status SetLayout(const std::string& path, const Layout& layout, Inode* out,
                   const MetaUser* as = nullptr);

  const std::string& clientId() const { return clientId_; }
  RpcClient* rpc() { return rpc_.get(); }

  // Reply decoders, public for tests (fixtures) and for other callers of the same records.
  static Status DecodeInode(const MsgValue& v, Inode* out);
  static Status DecodeReaddir(const MsgValue& v, ReaddirPage* out);
  static Status DecodeOpen(const MsgValue& v, OpenResult* out);

 private:
  MetaClient(std::unique_ptr<RpcClient> rpc, MetaUser user, std::string token, bool actAs, std::string clientId,
             uint32_t heartbeatMs);
  // The params every call starts from: the token and identity (`as`, else user_ when actAs_ or
  // without a token) and, for mutations, the clientId.
  MsgValue Params(bool mutation, const MetaUser* as = nullptr) const;
  Status Read(const char* method, MsgValue params, MsgValue* result);
  Status ReaddirImpl(const std::string& path, const std::string& after, uint32_t limit, bool plus,
                     ReaddirPage* out, const MetaUser* as);
  Status Mutate(const char* method, MsgValue params, MsgValue* result);
  // A write session opened (request sent at `sentAt`): heartbeats name it; starts the
  // heartbeat thread at the first.
  void AddSession(uint64_t inode, const std::string& session, std::chrono::steady_clock::time_point sentAt,
                  uint32_t sessionTimeoutMs);
  void RemoveSession(const std::string& session);
  void HeartbeatLoop();
  // The params of a heartbeat naming the open sessions not known to be ended (at most
  // limits::kMetaHeartbeatSessionsMax of them), and whether it names all of them.
  MsgValue HeartbeatParams(bool* all);
  // Records a heartbeat's reply: sessions ended, and the lease when it named all of them.
  void ApplyHeartbeat(std::chrono::steady_clock::time_point sentAt, bool all, const MsgValue& reply);

  std::unique_ptr<RpcClient> rpc_;
  const MetaUser user_;
  const std::string token_;
  const bool actAs_;
  const std::string clientId_;  // limits::kRpcClientIdBytes random bytes
  const uint32_t heartbeatMs_;

  std::mutex heartbeatMu_;
  std::condition_variable heartbeatCv_;
  std::map<std::string, uint64_t> sessions_;  // GUARDED_BY(heartbeatMu_): open ones, to inode
  std::set<std::string> ended_;               // GUARDED_BY(heartbeatMu_): ended by the service
  // GUARDED_BY(heartbeatMu_): until then the open sessions not in ended_ are known to live
  // (send time of the last confirming heartbeat or open + half the service's timeout).
  std::chrono::steady_clock::time_point leaseUntil_{};
  bool stopping_ = false;      // GUARDED_BY(heartbeatMu_)
  std::thread heartbeat_;      // started at the first session
};

}  // namespace millpond
