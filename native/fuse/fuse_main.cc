// millpond-fuse: the FUSE mount daemon (design §13), libfuse3's low-level API over the native
// FileClient. The only code that includes fuse headers. `millpond mount` (src/cli) runs it:
//
//   millpond-fuse MOUNTPOINT --meta tcp://h:p[,..] --mgmtd tcp://h:p[,..] [--transport auto|tcp|rdma]
//     [--foreground] [--log FILE] [--allow-other] [--direct-io] [--attr-timeout-ms N]
//     [--entry-timeout-ms N] [--threads N] [--as-user UID:GID] [--write-behind-bytes N]
//     [--read-ahead-bytes N] [--token-file FILE | --token-fd N] [--server-key Z85]
//     [--metrics-listen HOST:PORT --metrics-token-file FILE]
//
// Metrics (design §14): with --metrics-listen the daemon serves Prometheus text at
// http://HOST:PORT/metrics (fuse/metrics_http.h: FUSE requests by operation with latencies,
// bytes through the mount, the file client's counters) to scrapes presenting the admin token of
// --metrics-token-file (a 0600 file) as bearer; it prints "metrics <url>" after its pid.
//
// Credentials (design §10): the token is never an argument (argv is world-readable): it is read
// from a file or from an inherited descriptor until EOF (`millpond mount` writes it to a pipe at
// fd 3); the server key is public. With them the daemon's meta, mgmtd and file clients present
// the token (CURVE keys and every meta request). Before mounting it asks meta who the token is
// (meta.whoami): a proxy user's or the admin's token acts for each caller (actAs = the request's
// uid/gid/groups, or --as-user's); a plain user's token acts only as that user, whoever the
// caller is (no actAs is sent; --as-user is refused). A token meta does not admit ends the
// start at once with EAUTH (the RPC client sees the CURVE handshake refused); a meta that does
// not answer ends it after a short probe (limits::kFuseProbeTimeoutMs x kFuseProbeAttempts).
//
// Without --foreground it forks before any thread starts; the child mounts, checks that meta
// answers, tells the parent (which then exits 0, or 1 with the error), and serves. SIGTERM,
// SIGINT and SIGHUP end the session loop and unmount. A daemon killed without unmounting leaves
// the mount point "not connected": `umount -l MOUNTPOINT` (or `fusermount3 -uz`) clears it, and
// `millpond umount` does so by itself.
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "client/client_auth.h"
#include "client/file_client.h"
#include "client/rpc_client.h"
#include "common/log.h"
#include "fuse/fuse_metrics.h"
#include "fuse/metrics_http.h"
#include "fuse/mount_fs.h"
#include "fuse/token_file.h"
#include "transport/transport.h"

namespace millpond {
namespace {

MountFs* g_fs = nullptr;

int Errno(const Status& s) {
  switch (s.code()) {
    case StatusCode::kOk: return 0;
    case StatusCode::kNotFound: return ENOENT;
    case StatusCode::kExists: return EEXIST;
    case StatusCode::kInvalidArgument: return EINVAL;
    case StatusCode::kNoSpace: return ENOSPC;
    case StatusCode::kTimedOut: return ETIMEDOUT;
    case StatusCode::kTooLarge: return EFBIG;
    case StatusCode::kBusy: return EBUSY;
    case StatusCode::kNotSupported: return EOPNOTSUPP;
    case StatusCode::kStaleVersion: return ESTALE;
    case StatusCode::kAccess: return EACCES;
    case StatusCode::kAuth: return EACCES;
    case StatusCode::kNotDir: return ENOTDIR;
    case StatusCode::kIsDir: return EISDIR;
    case StatusCode::kNotEmpty: return ENOTEMPTY;
    case StatusCode::kNameTooLong: return ENAMETOOLONG;
    case StatusCode::kPermission: return EPERM;
    case StatusCode::kTooManyLinks: return EMLINK;
    default: return EIO;  // data or connection failures, corrupt chunks: the call failed
  }
}

// A failure the caller would not expect from a file system is logged once per kind.
void Note(const char* op, const Status& s) {
  if (Errno(s) == EIO || s.code() == StatusCode::kTimedOut) {
    LogWarning(std::string("fuse ") + op + ": " + s.ToString());
  }
}

// Replies `err` (0: success); a failure counts in the mount's metrics (fuse/fuse_metrics.h).
void ReplyErrno(fuse_req_t req, int err) {
  if (err != 0) fuse_metrics::MarkFailed();
  fuse_reply_err(req, err);
}

void ReplyErr(fuse_req_t req, const char* op, const Status& s) {
  Note(op, s);
  ReplyErrno(req, Errno(s));
}

MetaUser CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  RequestCaller c;
  c.uid = ctx->uid;
  c.gid = ctx->gid;
  if (!g_fs->options().fixedUser) {
    gid_t groups[limits::kFuseGroupsMax];
    int n = fuse_req_getgroups(req, limits::kFuseGroupsMax, groups);
    for (int i = 0; i < std::min<int>(n, limits::kFuseGroupsMax); i++) c.groups.push_back(groups[i]);
  }
  return g_fs->Caller(c);
}

double Seconds(uint32_t ms) { return ms / 1000.0; }

void ToStat(const Inode& n, struct stat* st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = n.id;
  mode_t type = n.type == FileType::kDir ? S_IFDIR : n.type == FileType::kSymlink ? S_IFLNK : S_IFREG;
  st->st_mode = type | (n.mode & 07777);
  st->st_nlink = n.type == FileType::kDir ? 2 : n.nlink;
  st->st_uid = n.uid;
  st->st_gid = n.gid;
  uint64_t size = n.lengthBytes;
  if (n.type == FileType::kFile) size = g_fs->Length(n.id, n.lengthBytes);
  if (n.type == FileType::kDir) size = 4096;
  st->st_size = static_cast<off_t>(size);
  st->st_blksize = limits::kFuseRequestBytesMax;  // cp and friends size their I/O by it
  st->st_blocks = static_cast<blkcnt_t>((size + 511) / 512);
  st->st_mtim.tv_sec = n.mtimeMs / 1000;
  st->st_mtim.tv_nsec = (n.mtimeMs % 1000) * 1000000;
  st->st_ctim.tv_sec = n.ctimeMs / 1000;
  st->st_ctim.tv_nsec = (n.ctimeMs % 1000) * 1000000;
  st->st_atim = st->st_mtim;  // no access times
}

void ToEntry(const Inode& n, fuse_entry_param* e) {
  memset(e, 0, sizeof(*e));
  e->ino = n.id;
  e->generation = 1;
  ToStat(n, &e->attr);
  e->attr_timeout = Seconds(g_fs->options().attrTimeoutMs);
  e->entry_timeout = Seconds(g_fs->options().entryTimeoutMs);
}

// Replies to lookup/mkdir/symlink/link/create with `n` as `name` in `parent`.
void ReplyEntry(fuse_req_t req, fuse_ino_t parent, const std::string& name, const Inode& n) {
  fuse_entry_param e;
  ToEntry(n, &e);
  g_fs->Remember(n.id, parent, name);
  if (fuse_reply_entry(req, &e) != 0) g_fs->Forget(n.id, 1);  // the request was interrupted
}

// ---- namespace

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kLookup);
  std::string path;
  Status s = g_fs->ChildPath(parent, name, &path);
  Inode n;
  MetaUser as = CallerOf(req);
  if (s.ok()) s = g_fs->meta()->Stat(path, &n, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "lookup", s);
  ReplyEntry(req, parent, name, n);
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kForget);
  g_fs->Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kForget);
  for (size_t i = 0; i < count; i++) g_fs->Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kGetattr);
  std::string path;
  Status s = g_fs->PathOf(ino, &path);
  Inode n;
  MetaUser as = CallerOf(req);
  if (s.ok()) s = g_fs->meta()->Stat(path, &n, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "getattr", s);
  struct stat st;
  ToStat(n, &st);
  fuse_reply_attr(req, &st, Seconds(g_fs->options().attrTimeoutMs));
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int toSet, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kSetattr);
  std::string path;
  Status s = g_fs->PathOf(ino, &path);
  MetaUser as = CallerOf(req);
  Inode n;
  bool have = false;
  if (s.ok() && (toSet & FUSE_SET_ATTR_SIZE)) {
    OpenFile* f = fi != nullptr ? reinterpret_cast<OpenFile*>(fi->fh) : nullptr;
    // ftruncate on a writer: publish what it wrote first, so its close cannot undo the new
    // length (a close publishes max(length, its end)).
    if (f != nullptr && f->writable) s = g_fs->Flush(f);
    if (s.ok()) s = g_fs->meta()->Truncate(path, static_cast<uint64_t>(attr->st_size), &n, g_fs->As(as));
    if (s.ok()) {
      g_fs->Truncated(ino, static_cast<uint64_t>(attr->st_size));
      have = true;
    }
  }
  SetAttrs a;
  if (toSet & FUSE_SET_ATTR_MODE) a.hasMode = true, a.mode = attr->st_mode & 07777;
  if (toSet & FUSE_SET_ATTR_UID) a.hasUid = true, a.uid = attr->st_uid;
  if (toSet & FUSE_SET_ATTR_GID) a.hasGid = true, a.gid = attr->st_gid;
  if (toSet & FUSE_SET_ATTR_MTIME_NOW) {
    a.hasMtime = true, a.mtimeMs = NowMs();
  } else if (toSet & FUSE_SET_ATTR_MTIME) {
    a.hasMtime = true, a.mtimeMs = static_cast<int64_t>(attr->st_mtim.tv_sec) * 1000 + attr->st_mtim.tv_nsec / 1000000;
  }
  if (s.ok() && (a.hasMode || a.hasUid || a.hasGid || a.hasMtime)) {
    s = g_fs->meta()->Setattr(path, a, &n, g_fs->As(as));
    have = s.ok();
  }
  if (s.ok() && !have) s = g_fs->meta()->Stat(path, &n, g_fs->As(as));  // atime or ctime only: nothing kept
  if (!s.ok()) return ReplyErr(req, "setattr", s);
  struct stat st;
  ToStat(n, &st);
  fuse_reply_attr(req, &st, Seconds(g_fs->options().attrTimeoutMs));
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kReadlink);
  std::string path, target;
  Status s = g_fs->PathOf(ino, &path);
  MetaUser as = CallerOf(req);
  if (s.ok()) s = g_fs->meta()->Readlink(path, &target, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "readlink", s);
  fuse_reply_readlink(req, target.c_str());
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kMkdir);
  std::string path;
  Status s = g_fs->ChildPath(parent, name, &path);
  MetaUser as = CallerOf(req);
  Inode n;
  if (s.ok()) s = g_fs->meta()->Mkdir(path, mode & 07777, /*recursive=*/false, &n, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "mkdir", s);
  ReplyEntry(req, parent, name, n);
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kUnlink);
  std::string path;
  Status s = g_fs->ChildPath(parent, name, &path);
  MetaUser as = CallerOf(req);
  if (s.ok()) s = g_fs->meta()->Unlink(path, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "unlink", s);
  g_fs->Unlinked(parent, name);
  fuse_reply_err(req, 0);
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kRmdir);
  std::string path;
  Status s = g_fs->ChildPath(parent, name, &path);
  MetaUser as = CallerOf(req);
  if (s.ok()) s = g_fs->meta()->Rmdir(path, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "rmdir", s);
  g_fs->Unlinked(parent, name);
  fuse_reply_err(req, 0);
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kSymlink);
  std::string path;
  Status s = g_fs->ChildPath(parent, name, &path);
  MetaUser as = CallerOf(req);
  Inode n;
  if (s.ok()) s = g_fs->meta()->Symlink(link, path, &n, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "symlink", s);
  ReplyEntry(req, parent, name, n);
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kRename);
  if (flags & RENAME_EXCHANGE) return ReplyErrno(req, EINVAL);
  std::string from, to;
  Status s = g_fs->ChildPath(parent, name, &from);
  if (s.ok()) s = g_fs->ChildPath(newparent, newname, &to);
  MetaUser as = CallerOf(req);
  // RENAME_NOREPLACE: meta checks that `to` is free in the transaction that moves (EEXIST).
  if (s.ok()) s = g_fs->meta()->Rename(from, to, g_fs->As(as), (flags & RENAME_NOREPLACE) != 0);
  if (!s.ok()) return ReplyErr(req, "rename", s);
  g_fs->Renamed(parent, name, newparent, newname);
  fuse_reply_err(req, 0);
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kLink);
  std::string from, to;
  Status s = g_fs->PathOf(ino, &from);
  if (s.ok()) s = g_fs->ChildPath(newparent, newname, &to);
  MetaUser as = CallerOf(req);
  Inode n;
  if (s.ok()) s = g_fs->meta()->Link(from, to, &n, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "link", s);
  fuse_entry_param e;
  ToEntry(n, &e);
  g_fs->Remember(n.id, newparent, newname);  // one more kernel reference, known by the new name
  if (fuse_reply_entry(req, &e) != 0) g_fs->Forget(n.id, 1);
}

// ---- files

OpenFlags FlagsOf(int flags) {
  OpenFlags f;
  int acc = flags & O_ACCMODE;
  f.read = acc == O_RDONLY || acc == O_RDWR;
  f.write = acc == O_WRONLY || acc == O_RDWR;
  f.truncate = f.write && (flags & O_TRUNC) != 0;
  f.append = f.write && (flags & O_APPEND) != 0;
  return f;
}

void SetOpenReply(fuse_file_info* fi, OpenFile* f) {
  fi->fh = reinterpret_cast<uint64_t>(f);
  fi->direct_io = g_fs->options().directIo ? 1 : 0;
  fi->keep_cache = 0;  // close-to-open: pages cached before this open are dropped
}

int OpenErrno(const Status& s) {
  return s.code() == StatusCode::kBusy ? EMFILE : Errno(s);
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kCreate);
  std::string path;
  Status s = g_fs->ChildPath(parent, name, &path);
  MetaUser as = CallerOf(req);
  OpenFlags flags = FlagsOf(fi->flags);
  flags.write = true;  // creat(2) on O_RDONLY still creates: the session publishes the file
  flags.create = true;
  flags.exclusive = (fi->flags & O_EXCL) != 0;
  OpenFile* f = nullptr;
  if (s.ok()) s = g_fs->Open(0, path, flags, mode & 07777, as, &f);
  if (!s.ok()) {
    Note("create", s);
    return ReplyErrno(req, OpenErrno(s));
  }
  fuse_entry_param e;
  ToEntry(f->file->inode(), &e);
  SetOpenReply(fi, f);
  g_fs->Remember(e.ino, parent, name);
  if (fuse_reply_create(req, &e, fi) != 0) {
    g_fs->Forget(e.ino, 1);
    g_fs->Release(f);
  }
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kOpen);
  std::string path;
  Status s = g_fs->PathOf(ino, &path);
  MetaUser as = CallerOf(req);
  OpenFile* f = nullptr;
  if (s.ok()) s = g_fs->Open(ino, path, FlagsOf(fi->flags), 0, as, &f);
  if (!s.ok()) {
    Note("open", s);
    return ReplyErrno(req, OpenErrno(s));
  }
  SetOpenReply(fi, f);
  if (fuse_reply_open(req, fi) != 0) g_fs->Release(f);
}

thread_local std::vector<char> t_readBuffer;

void OpRead(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kRead);
  OpenFile* f = reinterpret_cast<OpenFile*>(fi->fh);
  size = std::min<size_t>(size, limits::kFuseRequestBytesMax);
  if (t_readBuffer.size() < size) t_readBuffer.resize(limits::kFuseRequestBytesMax);
  size_t n = 0;
  Status s = g_fs->Read(f, static_cast<uint64_t>(off), size, t_readBuffer.data(), &n);
  if (!s.ok()) return ReplyErr(req, "read", s);
  fuse_metrics::AddBytesRead(n);
  fuse_reply_buf(req, t_readBuffer.data(), n);
}

void OpWrite(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kWrite);
  OpenFile* f = reinterpret_cast<OpenFile*>(fi->fh);
  Status s = g_fs->Write(f, static_cast<uint64_t>(off), buf, size);
  if (!s.ok()) return ReplyErr(req, "write", s);
  fuse_metrics::AddBytesWritten(size);
  fuse_reply_write(req, size);
}

void OpFlush(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kFlush);
  Status s = g_fs->Flush(reinterpret_cast<OpenFile*>(fi->fh));
  if (!s.ok()) return ReplyErr(req, "flush", s);
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kFsync);
  Status s = g_fs->Flush(reinterpret_cast<OpenFile*>(fi->fh));
  if (!s.ok()) return ReplyErr(req, "fsync", s);
  fuse_reply_err(req, 0);
}

void OpRelease(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kRelease);
  Status s = g_fs->Release(reinterpret_cast<OpenFile*>(fi->fh));
  if (!s.ok()) Note("release", s);  // close(2) returned already; its flush reported errors
  fuse_reply_err(req, 0);
}

// ---- directories: one page of meta's listing at a time; offsets are entry indexes + 3
// (1 and 2 are "." and "..").

struct DirHandle {
  std::mutex mu;
  std::string path;
  MetaUser as;
  std::vector<DirEntry> page;  // GUARDED_BY(mu)
  uint64_t pageStart = 0;      // GUARDED_BY(mu): index of page[0]
  bool loaded = false;         // GUARDED_BY(mu)
  bool more = false;           // GUARDED_BY(mu)
};

// REQUIRES: d->mu held. Loads the page holding entry `index` (or the last page).
Status LoadPage(DirHandle* d, uint64_t index, bool plus) {
  auto fetch = [&](const std::string& after) {
    ReaddirPage p;
    Status s = plus ? g_fs->meta()->ReaddirPlus(d->path, after, limits::kMetaReaddirEntriesMax, &p, g_fs->As(d->as))
                    : g_fs->meta()->Readdir(d->path, after, limits::kMetaReaddirEntriesMax, &p, g_fs->As(d->as));
    if (!s.ok()) return s;
    d->page = std::move(p.entries);
    d->more = p.more;
    return Status::OK();
  };
  if (!d->loaded || index < d->pageStart) {
    MP_RETURN_IF_ERROR(fetch(""));
    d->pageStart = 0;
    d->loaded = true;
  }
  while (index >= d->pageStart + d->page.size() && d->more && !d->page.empty()) {
    uint64_t next = d->pageStart + d->page.size();
    MP_RETURN_IF_ERROR(fetch(d->page.back().name));
    d->pageStart = next;
  }
  return Status::OK();
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kOpendir);
  std::unique_ptr<DirHandle> d(new DirHandle);
  Status s = g_fs->PathOf(ino, &d->path);
  d->as = CallerOf(req);
  if (!s.ok()) return ReplyErr(req, "opendir", s);
  fi->fh = reinterpret_cast<uint64_t>(d.get());
  fi->cache_readdir = 0;
  if (fuse_reply_open(req, fi) == 0) d.release();
}

// Fills buf with entries from offset `off`; *used: bytes filled. REQUIRES: d->mu held.
Status FillDir(fuse_req_t req, fuse_ino_t ino, off_t off, bool plus, DirHandle* d, std::vector<char>& buf, size_t* usedOut);

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  DirHandle* d = reinterpret_cast<DirHandle*>(fi->fh);
  std::vector<char> buf(std::min<size_t>(size, limits::kFuseRequestBytesMax));
  size_t used = 0;
  Status s;
  {
    std::lock_guard<std::mutex> lock(d->mu);
    s = FillDir(req, ino, off, plus, d, buf, &used);
  }
  // Replied with d->mu released: once the reply is out, the kernel may release (free) d.
  if (!s.ok()) return ReplyErr(req, "readdir", s);
  fuse_reply_buf(req, buf.data(), used);
}

Status FillDir(fuse_req_t req, fuse_ino_t ino, off_t off, bool plus, DirHandle* d, std::vector<char>& buf, size_t* usedOut) {
  size_t used = 0;
  auto add = [&](const char* name, const struct stat& st, off_t next, const fuse_entry_param* e) {
    size_t need = plus ? fuse_add_direntry_plus(req, buf.data() + used, buf.size() - used, name, e, next)
                       : fuse_add_direntry(req, buf.data() + used, buf.size() - used, name, &st, next);
    if (need > buf.size() - used) return false;
    used += need;
    return true;
  };
  for (uint64_t at = static_cast<uint64_t>(off);; at++) {
    fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    if (at < 2) {  // "." and "..": never looked up by the kernel (ino 0 in e)
      e.attr.st_ino = ino;
      e.attr.st_mode = S_IFDIR;
      if (!add(at == 0 ? "." : "..", e.attr, static_cast<off_t>(at + 1), &e)) break;
      continue;
    }
    uint64_t index = at - 2;
    Status s = LoadPage(d, index, plus);
    if (!s.ok()) {
      if (used > 0) break;  // what fits is returned; the next call reports the error
      return s;
    }
    if (index < d->pageStart || index >= d->pageStart + d->page.size()) break;  // the end
    const DirEntry& de = d->page[index - d->pageStart];
    bool counted = false;
    if (plus && de.hasAttrs) {
      ToEntry(de.attrs, &e);
      g_fs->Remember(de.inode, ino, de.name);  // the kernel takes a reference per entry it keeps
      counted = true;
    } else {
      e.attr.st_ino = de.inode;
      e.attr.st_mode = de.type == FileType::kDir ? S_IFDIR : de.type == FileType::kSymlink ? S_IFLNK : S_IFREG;
    }
    if (!add(de.name.c_str(), e.attr, static_cast<off_t>(at + 1), &e)) {
      if (counted) g_fs->Forget(de.inode, 1);  // did not fit: not sent
      break;
    }
  }
  *usedOut = used;
  return Status::OK();
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kReaddir);
  ReadDir(req, ino, size, off, fi, /*plus=*/false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kReaddir);
  ReadDir(req, ino, size, off, fi, /*plus=*/true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kReleasedir);
  delete reinterpret_cast<DirHandle*>(fi->fh);
  fuse_reply_err(req, 0);
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kFsyncdir);
  fuse_reply_err(req, 0);  // every namespace change is durable in meta when it returns
}

// ---- statfs and access

// Capacity of the cluster's targets from mgmtd (MgmtdClient::Capacity); unknown: a large
// nominal size, so df and cp's space checks do not refuse.
void OpStatfs(fuse_req_t req, fuse_ino_t) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kStatfs);
  struct statvfs st;
  memset(&st, 0, sizeof(st));
  const uint64_t block = limits::kFuseRequestBytesMax;
  uint64_t total = uint64_t{1} << 50, free = total;
  ClusterCapacity c;
  if (g_fs->client()->mgmtd()->Capacity(&c).ok() && c.capacityBytes > 0) {
    total = c.capacityBytes;
    free = std::min(c.freeBytes, c.capacityBytes);
  }
  st.f_bsize = block;
  st.f_frsize = block;
  st.f_blocks = total / block;
  st.f_bfree = free / block;
  st.f_bavail = free / block;
  st.f_files = uint64_t{1} << 40;
  st.f_ffree = st.f_files;
  st.f_favail = st.f_files;
  st.f_namemax = 255;
  fuse_reply_statfs(req, &st);
}

bool Permits(const MetaUser& u, const Inode& n, int want) {
  if (u.uid == 0) return (want & 1) == 0 || n.type == FileType::kDir || (n.mode & 0111) != 0;
  uint32_t bits;
  if (u.uid == n.uid) bits = n.mode >> 6;
  else if (u.gid == n.gid || std::find(u.gids.begin(), u.gids.end(), n.gid) != u.gids.end()) bits = n.mode >> 3;
  else bits = n.mode;
  return ((bits & 7) & want) == static_cast<uint32_t>(want);
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  fuse_metrics::OpScope scope(fuse_metrics::Op::kAccess);
  std::string path;
  Status s = g_fs->PathOf(ino, &path);
  MetaUser as = CallerOf(req);
  Inode n;
  if (s.ok()) s = g_fs->meta()->Stat(path, &n, g_fs->As(as));
  if (!s.ok()) return ReplyErr(req, "access", s);
  int want = (mask & R_OK ? 4 : 0) | (mask & W_OK ? 2 : 0) | (mask & X_OK ? 1 : 0);
  ReplyErrno(req, Permits(as, n, want) ? 0 : EACCES);
}

void OpInit(void*, fuse_conn_info* conn) {
  conn->max_write = limits::kFuseRequestBytesMax;
  conn->max_read = limits::kFuseRequestBytesMax;
  conn->max_background = limits::kFuseBackgroundMax;
  conn->congestion_threshold = limits::kFuseBackgroundMax * 3 / 4;
  if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_READDIRPLUS) conn->want |= FUSE_CAP_READDIRPLUS;
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;  // always plus: one meta call per page, not per entry
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;   // writes reach the client at once (close-to-open)
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops;
  memset(&ops, 0, sizeof(ops));
  ops.init = OpInit;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mkdir = OpMkdir;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.symlink = OpSymlink;
  ops.rename = OpRename;
  ops.link = OpLink;
  ops.open = OpOpen;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.statfs = OpStatfs;
  ops.access = OpAccess;
  ops.create = OpCreate;
  return ops;
}

// ---- the process

struct Args {
  std::string mountpoint;
  std::vector<std::string> meta, mgmtd;
  std::string transport = "auto";
  bool foreground = false;
  std::string log;
  bool allowOther = false;
  uint32_t threads = limits::kFuseThreadsDefault;
  size_t writeBehindBytes = limits::kFuseWriteBehindBytesDefault;
  size_t readAheadBytes = limits::kFileReadAheadBytesDefault;
  MountOptions mount;
  std::string tokenFile;
  int tokenFd = -1;
  std::string serverKey;
  std::string metricsListen;     // HOST:PORT of /metrics (fuse/metrics_http.h); empty: none
  std::string metricsTokenFile;  // the 0600 admin token file scrapes must present
};

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Status ParseU32(const std::string& flag, const std::string& v, uint32_t lo, uint32_t hi, uint32_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long long x = strtoull(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || x < lo || x > hi) {
    return Status::InvalidArgument(flag + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
  }
  *out = static_cast<uint32_t>(x);
  return Status::OK();
}

Status ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return Status::InvalidArgument(arg + " needs a value");
      *out = argv[++i];
      return Status::OK();
    };
    std::string v;
    if (arg == "--meta") { MP_RETURN_IF_ERROR(value(&v)); a->meta = SplitList(v); }
    else if (arg == "--mgmtd") { MP_RETURN_IF_ERROR(value(&v)); a->mgmtd = SplitList(v); }
    else if (arg == "--transport") { MP_RETURN_IF_ERROR(value(&a->transport)); }
    else if (arg == "--foreground" || arg == "-f") { a->foreground = true; }
    else if (arg == "--log") { MP_RETURN_IF_ERROR(value(&a->log)); }
    else if (arg == "--allow-other") { a->allowOther = true; }
    else if (arg == "--direct-io") { a->mount.directIo = true; }
    else if (arg == "--attr-timeout-ms") { MP_RETURN_IF_ERROR(value(&v)); MP_RETURN_IF_ERROR(ParseU32(arg, v, 0, limits::kFuseTimeoutMsMax, &a->mount.attrTimeoutMs)); }
    else if (arg == "--entry-timeout-ms") { MP_RETURN_IF_ERROR(value(&v)); MP_RETURN_IF_ERROR(ParseU32(arg, v, 0, limits::kFuseTimeoutMsMax, &a->mount.entryTimeoutMs)); }
    else if (arg == "--threads") { MP_RETURN_IF_ERROR(value(&v)); MP_RETURN_IF_ERROR(ParseU32(arg, v, 1, limits::kFuseThreadsMax, &a->threads)); }
    else if (arg == "--write-behind-bytes") {
      uint32_t n = 0;
      MP_RETURN_IF_ERROR(value(&v));
      MP_RETURN_IF_ERROR(ParseU32(arg, v, 0, static_cast<uint32_t>(limits::kFileWriteBehindBytesMax), &n));
      a->writeBehindBytes = n;
    } else if (arg == "--read-ahead-bytes") {
      uint32_t n = 0;
      MP_RETURN_IF_ERROR(value(&v));
      MP_RETURN_IF_ERROR(ParseU32(arg, v, 0, static_cast<uint32_t>(limits::kFileReadAheadBytesMax), &n));
      a->readAheadBytes = n;
    } else if (arg == "--token-file") {
      MP_RETURN_IF_ERROR(value(&a->tokenFile));
    } else if (arg == "--token-fd") {
      uint32_t fd = 0;
      MP_RETURN_IF_ERROR(value(&v));
      MP_RETURN_IF_ERROR(ParseU32(arg, v, 3, 1023, &fd));
      a->tokenFd = static_cast<int>(fd);
    } else if (arg == "--metrics-listen") {
      MP_RETURN_IF_ERROR(value(&a->metricsListen));
    } else if (arg == "--metrics-token-file") {
      MP_RETURN_IF_ERROR(value(&a->metricsTokenFile));
    } else if (arg == "--server-key") {
      MP_RETURN_IF_ERROR(value(&a->serverKey));
    } else if (arg == "--token") {
      return Status::InvalidArgument("--token: a token is never an argument (others can read argv); use --token-file FILE or --token-fd N");
    } else if (arg == "--as-user") {
      MP_RETURN_IF_ERROR(value(&v));
      size_t colon = v.find(':');
      if (colon == std::string::npos) return Status::InvalidArgument("--as-user must be UID:GID");
      MP_RETURN_IF_ERROR(ParseU32(arg, v.substr(0, colon), 0, UINT32_MAX - 1, &a->mount.user.uid));
      MP_RETURN_IF_ERROR(ParseU32(arg, v.substr(colon + 1), 0, UINT32_MAX - 1, &a->mount.user.gid));
      a->mount.fixedUser = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::InvalidArgument("unknown option " + arg);
    } else if (a->mountpoint.empty()) {
      a->mountpoint = arg;
    } else {
      return Status::InvalidArgument("one mount point only, got " + a->mountpoint + " and " + arg);
    }
  }
  if (a->mountpoint.empty()) return Status::InvalidArgument("a mount point is required");
  if (a->meta.empty() || a->mgmtd.empty()) return Status::InvalidArgument("--meta and --mgmtd are required");
  if (!a->tokenFile.empty() && a->tokenFd >= 0) return Status::InvalidArgument("--token-file and --token-fd exclude each other");
  if (a->metricsListen.empty() != a->metricsTokenFile.empty()) {
    return Status::InvalidArgument("--metrics-listen and --metrics-token-file (the admin token scrapes present) go together");
  }
  if ((!a->tokenFile.empty() || a->tokenFd >= 0) != !a->serverKey.empty()) {
    return Status::InvalidArgument("a token (--token-file or --token-fd) and --server-key go together");
  }
  return Status::OK();
}

// Reads the token (its first line, trimmed) from a.tokenFile or a.tokenFd; "" without either.
Status ReadToken(const Args& a, std::string* out) {
  out->clear();
  if (a.tokenFile.empty() && a.tokenFd < 0) return Status::OK();
  int fd = a.tokenFd >= 0 ? a.tokenFd : open(a.tokenFile.c_str(), O_RDONLY | O_CLOEXEC);
  const std::string from = a.tokenFd >= 0 ? "descriptor " + std::to_string(a.tokenFd) : a.tokenFile;
  if (fd < 0) return Status::Auth("cannot read token file " + from + ": " + strerror(errno));
  return ReadTokenFrom(fd, from, /*ownerOnly=*/false, out);
}

// Who the mount's token is, from meta.whoami.
struct Whoami {
  MetaUser user;
  bool mayActAs = false;  // a proxy user or the admin
};

// Asks meta, with a short timeout, whether it answers this mount's credentials: with a token,
// who it is (meta.whoami); without one, a stat of "/" as root (an unauthenticated cluster).
// A refused handshake (wrong, revoked or missing token) is kAuth at once, from the RPC
// client's socket monitor; kTimedOut means meta did not answer at all.
Status Probe(const RpcClientOptions& metaRpc, const std::string& token, Whoami* who) {
  RpcClientOptions o = metaRpc;
  o.timeoutMs = limits::kFuseProbeTimeoutMs;
  o.attemptsMax = limits::kFuseProbeAttempts;
  std::unique_ptr<RpcClient> rpc;
  MP_RETURN_IF_ERROR(RpcClient::Create(o, &rpc));
  MsgValue params = MsgValue::Map();
  MsgValue r;
  Status s;
  if (token.empty()) {
    MsgValue root = MsgValue::Map();
    root.Add("uid", MsgValue::Uint(0)).Add("gid", MsgValue::Uint(0));
    params.Add("user", std::move(root)).Add("path", MsgValue::Str("/"));
    s = rpc->Call("meta.stat", std::move(params), &r);
  } else {
    params.Add("token", MsgValue::Str(token));
    s = rpc->Call("meta.whoami", std::move(params), &r);
  }
  rpc->Close();
  if (s.code() == StatusCode::kAuth) {
    // The RPC client saw the handshake fail (its socket monitor): a refusal, not a dead server.
    return Status::Auth(s.message() + (token.empty() ? " (pass --token-file or MILLPOND_TOKEN_FILE, with the cluster's server key)" : ""));
  }
  if (s.code() == StatusCode::kTimedOut) {
    const std::string waited = std::to_string(limits::kFuseProbeTimeoutMs * limits::kFuseProbeAttempts / 1000) + " s";
    return Status::TimedOut("meta gave no reply in " + waited + ": is it running at " + o.endpoints[0] + "?");
  }
  MP_RETURN_IF_ERROR(s);
  if (token.empty()) {
    who->mayActAs = true;  // an unauthenticated cluster trusts the identity each call names
    return Status::OK();
  }
  auto num = [&](const char* key, uint32_t* out) {
    const MsgValue* v = r.Find(key);
    uint64_t x = 0;
    if (v == nullptr || !v->GetUint64(&x) || x > UINT32_MAX) return false;
    *out = static_cast<uint32_t>(x);
    return true;
  };
  if (!num("uid", &who->user.uid) || !num("gid", &who->user.gid)) return Status::Internal("meta.whoami replied without uid/gid");
  if (const MsgValue* gids = r.Find("gids"); gids != nullptr && gids->is_array()) {
    for (const MsgValue& g : gids->array()) {
      uint64_t x = 0;
      if (g.GetUint64(&x) && x <= UINT32_MAX && who->user.gids.size() < limits::kFuseGroupsMax) who->user.gids.push_back(static_cast<uint32_t>(x));
    }
  }
  auto flag = [&](const char* key) {
    const MsgValue* v = r.Find(key);
    return v != nullptr && v->is_bool() && v->bool_value();
  };
  who->mayActAs = flag("proxy") || flag("admin");
  return Status::OK();
}

// The kernel's read-ahead for this mount (bdi of its anonymous device): larger windows keep
// more reads in flight for sequential readers. Best effort (root only).
void RaiseReadAhead(const std::string& mountpoint) {
  char real[PATH_MAX];
  if (realpath(mountpoint.c_str(), real) == nullptr) return;
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line, dev;
  while (std::getline(mountinfo, line)) {
    std::istringstream f(line);
    std::string id, parent, majmin, root, point;
    f >> id >> parent >> majmin >> root >> point;
    if (point == real && line.find(" - fuse") != std::string::npos) dev = majmin;  // the last one
  }
  if (dev.empty()) return;
  std::ofstream ra("/sys/class/bdi/" + dev + "/read_ahead_kb");
  ra << limits::kFuseReadAheadKbDefault;
}

int Serve(const Args& a, int readyFd) {
  const bool foreground = readyFd < 0;  // no parent waits for the word
  auto tell = [&](const std::string& message) {
    if (readyFd >= 0) {
      ssize_t ignored = write(readyFd, message.data(), message.size());
      (void)ignored;
      close(readyFd);
      readyFd = -1;
    } else if (message.rfind("ok", 0) != 0) {
      Log(LogLevel::kError, message);
    }
  };

  std::vector<std::string> opts = {"millpond-fuse", "-o", "fsname=millpond,subtype=millpond,max_read=" + std::to_string(limits::kFuseRequestBytesMax)};
  if (a.allowOther) opts.back() += ",allow_other";
  std::vector<char*> argvFuse;
  for (auto& o : opts) argvFuse.push_back(const_cast<char*>(o.c_str()));
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argvFuse.size()), argvFuse.data());

  FileClientOptions fo;
  fo.meta.rpc.endpoints = a.meta;
  fo.mgmtd.rpc.endpoints = a.mgmtd;
  fo.writeBehindBytes = a.writeBehindBytes;
  fo.readAheadBytes = a.readAheadBytes;
  std::string token;
  Status s = ReadToken(a, &token);
  if (s.ok() && !token.empty()) {
    s = ApplyTokenCurve(token, a.serverKey, &fo.meta.rpc);
    if (s.ok()) s = ApplyTokenCurve(token, a.serverKey, &fo.mgmtd.rpc);
    fo.meta.token = token;
    fo.mgmtd.token = token;
    fo.token = token;  // the data plane: storage serves it with meta's capabilities only
  }
  if (!s.ok()) {
    tell("bad credentials: " + s.ToString());
    return 1;
  }
  // Meta answers (and says who the token is) before the mount appears.
  Whoami who;
  s = Probe(fo.meta.rpc, token, &who);
  if (!s.ok()) {
    tell("cannot reach the cluster: " + s.ToString());
    return 1;
  }
  MountOptions mo = a.mount;
  if (!who.mayActAs) {
    if (mo.fixedUser) {
      tell("bad credentials: " + Status::Auth("--as-user needs a proxy user's or the admin's token; this token is uid " +
                                              std::to_string(who.user.uid) + "'s, a plain user").ToString());
      return 1;
    }
    // A plain user's token: every request acts as it (meta refuses actAs from it).
    mo.fixedUser = true;
    mo.user = who.user;
    mo.sendAs = false;
  }
  s = ParseTransportChoice(a.transport, &fo.chunks.transport);
  std::unique_ptr<FileClient> client;
  if (s.ok()) s = FileClient::Create(fo, &client);
  if (!s.ok()) {
    tell("cannot reach the cluster: " + s.ToString());
    return 1;
  }
  // /metrics, before the mount appears (a bad address or token file fails the start).
  std::unique_ptr<MetricsHttp> http;
  if (!a.metricsListen.empty()) {
    std::string adminToken;
    s = MetricsHttp::ReadAdminToken(a.metricsTokenFile, &adminToken);
    const FileClient* c = client.get();
    if (s.ok()) s = MetricsHttp::Start(a.metricsListen, adminToken, [c] { return fuse_metrics::RenderPrometheus(c->counters()); }, &http);
    if (!s.ok()) {
      tell("metrics: " + s.ToString());
      return 1;
    }
  }
  MountFs fs(client.get(), mo);
  g_fs = &fs;
  fuse_lowlevel_ops ops = MakeOps();
  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), nullptr);
  if (se == nullptr) {
    tell("fuse_session_new failed (bad mount options?)");
    return 1;
  }
  if (fuse_set_signal_handlers(se) != 0) {
    tell("cannot set signal handlers");
    fuse_session_destroy(se);
    return 1;
  }
  if (fuse_session_mount(se, a.mountpoint.c_str()) != 0) {
    tell("cannot mount at " + a.mountpoint + " (is it a directory? is /dev/fuse usable?)");
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return 1;
  }
  RaiseReadAhead(a.mountpoint);
  // "ok", then the metrics URL when there is one: the parent prints it after the daemon's pid.
  tell(http ? "ok metrics " + http->url() : "ok");
  if (http && foreground) {
    printf("metrics %s\n", http->url().c_str());
    fflush(stdout);
  }
  Log(LogLevel::kInfo, "mounted at " + a.mountpoint + " (meta " + a.meta[0] + ")");
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, a.threads);
  fuse_loop_cfg_set_idle_threads(cfg, a.threads);  // threads are kept: no create/destroy per burst
  int rc = fuse_session_loop_mt(se, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_session_unmount(se);
  fuse_remove_signal_handlers(se);
  fuse_session_destroy(se);
  g_fs = nullptr;
  http.reset();
  return rc == 0 ? 0 : 1;
}

int Main(int argc, char** argv) {
  SetLogComponent("fuse");
  Args a;
  Status s = ParseArgs(argc, argv, &a);
  if (!s.ok()) {
    Log(LogLevel::kError, s.ToString());
    return 2;
  }
  if (a.foreground) return Serve(a, -1);
  // Fork before any thread exists; the parent waits for the child's word.
  int pipefd[2];
  if (pipe(pipefd) != 0) {
    Log(LogLevel::kError, std::string("pipe: ") + strerror(errno));
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    Log(LogLevel::kError, std::string("fork: ") + strerror(errno));
    return 1;
  }
  if (pid > 0) {
    close(pipefd[1]);
    std::string word;
    char buf[512];
    for (ssize_t n; (n = read(pipefd[0], buf, sizeof(buf))) > 0;) word.append(buf, static_cast<size_t>(n));
    if (word == "ok" || word.rfind("ok ", 0) == 0) {
      printf("%d\n", pid);  // the daemon's pid
      if (word.size() > 3) printf("%s\n", word.c_str() + 3);  // "metrics <url>"
      return 0;
    }
    Log(LogLevel::kError, word.empty() ? "the daemon exited before mounting" : word);
    return 1;
  }
  close(pipefd[0]);
  setsid();
  if (chdir("/") != 0) return 1;
  int nul = open("/dev/null", O_RDWR);
  int out = a.log.empty() ? nul : open(a.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (out < 0) out = nul;
  dup2(nul, 0);
  dup2(out, 1);
  dup2(out, 2);
  return Serve(a, pipefd[1]);
}

}  // namespace
}  // namespace millpond

int main(int argc, char** argv) { return millpond::Main(argc, argv); }
