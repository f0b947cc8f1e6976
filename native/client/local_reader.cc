#include "client/local_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/limits.h"
#include "common/chunk_format.h"
#include "transport/local_socket.h"

namespace millpond {

namespace fmt = chunk_format;

namespace {

// A second, O_DIRECT open of the same file (through /proc, so a renamed or removed version
// is still this version); invalid when the filesystem or /proc does not allow it. Not an
// fcntl(F_SETFL) on `fd`: that would change the server's descriptor too, as they share one
// open file description.
UniqueFd ReopenDirect(int fd) {
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
}

}  // namespace

LocalReader::LocalReader(uint32_t threads, uint32_t timeoutMs)
    : timeoutMs_(timeoutMs),
      perServerMax_(std::max<uint32_t>(1, threads / 2)),
      staging_(limits::kLocalReadStagingBytesMax),
      workers_(std::make_unique<WorkQueue>(threads, limits::kLocalReadQueuedMax)) {}

LocalReader::~LocalReader() { Close(); }

void LocalReader::Close() { workers_->Stop(); }

LocalReader::Route LocalReader::RouteFor(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = servers_.find(address);
  if (it == servers_.end()) {
    if (servers_.size() >= limits::kClientServersMax) return Route::kRemote;
    it = servers_.emplace(address, Server{}).first;
  }
  Server& s = it->second;
  if (s.route != Route::kProbe) return s.route;
  if (s.probing || std::chrono::steady_clock::now() < s.nextProbe) return Route::kRemote;
  s.probing = true;
  return Route::kProbe;
}

void LocalReader::Learned(const std::string& address, const Status& status, const std::string& name) {
  // The name must connect from here; only a server on this host can be reached under it.
  UniqueFd conn;
  Status reach = status.ok() ? ConnectLocal(name, &conn) : status;
  std::lock_guard<std::mutex> lock(mu_);
  Server& s = servers_[address];
  s.probing = false;
  if (reach.ok()) {
    s.route = Route::kLocal;
    s.name = name;
    s.idle.push_back(std::move(conn));
  } else if ((status.ok() && reach.code() == StatusCode::kConnRefused) || status.code() == StatusCode::kNotSupported) {
    s.route = Route::kRemote;  // another host (no such name here), or a server that offers none
  } else {
    s.nextProbe = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits::kLocalProbeIntervalMs);
  }
}

void LocalReader::Forget(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  Server& s = servers_[address];
  s.route = Route::kProbe;
  s.idle.clear();
  s.nextProbe = std::chrono::steady_clock::now() + std::chrono::milliseconds(limits::kLocalProbeIntervalMs);
}

Status LocalReader::TakeConnection(const std::string& address, UniqueFd* out) {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Server& s = servers_[address];
    if (!s.idle.empty()) {
      *out = std::move(s.idle.back());
      s.idle.pop_back();
      return Status::OK();
    }
    name = s.name;
  }
  return ConnectLocal(name, out);
}

void LocalReader::ReturnConnection(const std::string& address, UniqueFd conn) {
  std::lock_guard<std::mutex> lock(mu_);
  Server& s = servers_[address];
  if (s.route == Route::kLocal && s.idle.size() < limits::kLocalIdleConnectionsMax) s.idle.push_back(std::move(conn));
}

bool LocalReader::Submit(const std::string& address, const frame::ReadArgs& args, const Capability* cap, char* dst,
                         ReadDone done, std::function<void()> fallback,
                         std::shared_ptr<const std::atomic<bool>> abandon) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    Server& s = servers_[address];
    if (s.inflight >= perServerMax_) {
      counters_.shed++;
      return false;
    }
    s.inflight++;
  }
  bool hasCap = cap != nullptr;
  Capability capCopy = hasCap ? *cap : Capability();
  bool queued = workers_->TryPush([this, address, args, hasCap, capCopy, dst, done = std::move(done),
                                   fallback = std::move(fallback), abandon = std::move(abandon)] {
    struct Finished {
      LocalReader* reader;
      const std::string& address;
      ~Finished() { reader->Release(address); }
    } finished{this, address};
    UniqueFd conn;
    ChunkMeta meta;
    uint32_t n = 0;
    bool broken = true;
    if (abandon && abandon->load()) return done(Status::TimedOut("local read of " + address + " abandoned"), meta, 0);
    Status s = TakeConnection(address, &conn);
    if (s.ok()) s = ReadOne(conn.get(), args, hasCap ? &capCopy : nullptr, dst, &meta, &n, &broken, abandon.get());
    if (broken && abandon && abandon->load()) {
      // The server stalled and the caller gave up: no fallback to the same server over the
      // network (a second wait). The connection holds an unanswered request: dropped.
      counters_.abandoned++;
      return done(Status::TimedOut("local read of " + address + " abandoned"), meta, 0);
    }
    if (broken) {
      counters_.fallbacks++;
      Forget(address);
      return fallback();
    }
    ReturnConnection(address, std::move(conn));
    if (s.ok()) {
      counters_.reads++;
      counters_.bytes += n;
    }
    done(s, meta, s.ok() ? n : 0);
  });
  if (!queued) Release(address);
  return queued;
}

void LocalReader::Release(const std::string& address) {
  std::lock_guard<std::mutex> lock(mu_);
  servers_[address].inflight--;
}

Status LocalReader::ReadOne(int conn, const frame::ReadArgs& args, const Capability* cap, char* dst, ChunkMeta* meta,
                            uint32_t* bytesRead, bool* broken, const std::atomic<bool>* abandon) {
  *broken = true;
  frame::Header request;
  request.opcode = frame::kOpenLocal;
  request.requestId = nextRequestId_++;
  request.metaBytes = static_cast<uint32_t>(frame::ReadArgs::kBytes + (cap ? kCapabilityBytes : 0));
  std::string out(frame::kHeaderBytes, '\0');
  request.EncodeTo(reinterpret_cast<uint8_t*>(&out[0]));
  frame::Put(&out, args);
  if (cap) frame::PutCapability(&out, *cap);
  MP_RETURN_IF_ERROR(SendWithFd(conn, out.data(), out.size(), -1, timeoutMs_));

  // Wait for the reply in ticks, so an abandoned read lets go of a stalled server at once.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs_);
  for (;;) {
    struct pollfd p = {conn, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(limits::kTimerTickMs));
    if (r > 0) break;
    if (r < 0 && errno != EINTR) return Status::IoError(std::string("poll: ") + std::strerror(errno));
    if (abandon != nullptr && abandon->load()) return Status::TimedOut("local read abandoned");
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::TimedOut("no reply on the local socket within " + std::to_string(timeoutMs_) + " ms");
  }
  UniqueFd file;
  uint8_t raw[frame::kHeaderBytes];
  MP_RETURN_IF_ERROR(RecvWithFd(conn, raw, sizeof raw, timeoutMs_, &file));
  frame::Header reply;
  MP_RETURN_IF_ERROR(frame::Header::Decode(raw, &reply));
  if (!(reply.flags & frame::kFlagReply) || reply.requestId != request.requestId || reply.dataBytes != 0 ||
      reply.metaBytes > limits::kErrorMessageBytesMax)
    return Status::Protocol("unexpected reply on the local socket");
  std::string body(reply.metaBytes, '\0');
  if (reply.metaBytes > 0) MP_RETURN_IF_ERROR(RecvWithFd(conn, &body[0], body.size(), timeoutMs_, &file));
  *broken = false;  // from here on, failures are the chunk's

  StatusCode code = Status::CodeFromWire(reply.status);
  if (code != StatusCode::kOk) return Status(code, body);
  frame::Reader r(reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (!file.valid() || !r.Get(meta)) {
    *broken = true;
    return Status::Protocol("openLocal reply without a descriptor or metadata");
  }

  // The file is the version the server would have read: check it is, then read and verify.
  const std::string where = "chunk " + args.chunk.ToHex();
  uint8_t head[fmt::kHeadBytes];
  size_t got = 0;
  MP_RETURN_IF_ERROR(PreadFull(file.get(), head, sizeof head, 0, &got, where.c_str()));
  fmt::FixedHeader h;
  Status s = got == sizeof head ? fmt::FixedHeader::Decode(head, &h) : Status::Corrupt("file is truncated");
  if (s.ok() && (!(h.chunk == args.chunk) || h.length != meta->length))
    s = Status::Corrupt("the descriptor holds another chunk or version");
  if (!s.ok()) return Status::Corrupt(where + ": " + s.message());
  *bytesRead = 0;
  if (args.offset >= h.length || args.length == 0) return Status::OK();
  const uint32_t n = std::min<uint32_t>(args.length, h.length - args.offset);
  const fmt::BlockSpan span = fmt::SpanOf(h, args.offset, n);
  // Large reads bypass the page cache as the server's do: one device request per read,
  // and no copy by the kernel. The file is padded to whole blocks, so the read may be too.
  const uint32_t readBytes = static_cast<uint32_t>(fmt::PaddedBytes(span.bytes));
  UniqueFd direct;
  if (span.bytes >= limits::kDirectReadBytesMin) direct = ReopenDirect(file.get());
  char* into = dst;
  AlignedBuffer staging;
  const bool aligned = reinterpret_cast<uintptr_t>(dst) % fmt::kBlockBytes == 0 && readBytes == n;
  if (!span.Covers(args.offset, n) || (direct.valid() && !aligned)) {
    MP_RETURN_IF_ERROR(staging_.Acquire(readBytes, timeoutMs_, &staging));
    into = staging.data();
  }
  if (into == dst) PrefaultForWrite(dst, readBytes);
  const int from = direct.valid() ? direct.get() : file.get();
  const uint64_t at = uint64_t{h.headerBytes} + span.start;
  MP_RETURN_IF_ERROR(PreadFull(from, into, direct.valid() ? readBytes : span.bytes, at, &got, where.c_str()));
  if (got < span.bytes) return Status::Corrupt(where + ": content is truncated");
  MP_RETURN_IF_ERROR(fmt::VerifyBlocks(file.get(), h, span.start, into, span.bytes));
  if (into != dst) std::memcpy(dst, into + (args.offset - span.start), n);
  *bytesRead = n;
  return Status::OK();
}

}  // namespace millpond
