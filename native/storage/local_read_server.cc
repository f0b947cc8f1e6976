#include "storage/local_read_server.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "common/limits.h"
#include "common/log.h"
#include "common/metrics.h"
#include "transport/frame.h"
#include "transport/local_socket.h"
#include "transport/socket_io.h"

namespace millpond {

namespace {

constexpr size_t kSocketPathMax = 107;  // sizeof(sockaddr_un::sun_path) - 1
constexpr size_t kSocketFileBytes = 27;  // "/data-<16 hex>.sock"

}  // namespace

Status LocalReadServer::Start(ChunkStore* store, const LocalReadServerOptions& options,
                              std::unique_ptr<LocalReadServer>* out) {
  std::unique_ptr<LocalReadServer> server(new LocalReadServer(store, options));
  std::string dir = options.socketDir;
  if (!dir.empty() && dir.size() + kSocketFileBytes <= kSocketPathMax) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "mkdir " + dir);
    if (::chmod(dir.c_str(), 0700) != 0) return Status::FromErrno(errno, "chmod " + dir);
  } else {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp && std::strlen(tmp) < 60 ? tmp : "/tmp") + "/millpond-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp " + pattern);  // 0700
    dir = pattern;
    server->madeTempDir_ = dir;
  }
  std::random_device random;
  uint64_t id = (uint64_t{random()} << 32) ^ random();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(id));
  server->name_ = dir + "/data-" + hex + ".sock";
  MP_RETURN_IF_ERROR(ListenLocal(server->name_, &server->listener_));
  server->wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!server->wake_.valid()) return Status::FromErrno(errno, "eventfd");
  server->acceptor_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  *out = std::move(server);
  return Status::OK();
}

LocalReadServer::~LocalReadServer() { Stop(); }

void LocalReadServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    // Wakes each connection's thread from its read; the thread then exits.
    for (auto& c : connections_) ::shutdown(c.fd.get(), SHUT_RDWR);
  }
  uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) LogWarningOnce("local-read-wake", "eventfd write failed");
  if (acceptor_.joinable()) acceptor_.join();
  std::list<Connection> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    left.swap(connections_);
  }
  for (auto& c : left) c.thread.join();
  listener_.Reset();
  ::unlink(name_.c_str());
  if (!madeTempDir_.empty()) ::rmdir(madeTempDir_.c_str());
}

void LocalReadServer::AcceptLoop() {
  for (;;) {
    struct pollfd p[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
    if (p[1].revents) return;
    if (!p[0].revents) continue;
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;
    uint32_t uid = 0;
    Status cred = PeerUid(fd.get(), &uid);
    if (!cred.ok() || (uid != ::getuid() && uid != 0)) {  // the directory's 0700 should have stopped it
      refusals_++;
      LogWarning("local read server: refused a connection from uid " + std::to_string(uid) + " (" +
                 (cred.ok() ? "not this daemon's uid" : cred.message()) + ")");
      continue;  // fd closes
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    // Reap the connections whose clients left, then refuse beyond the limit.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (!it->finished) { ++it; continue; }
      it->thread.join();
      it = connections_.erase(it);
    }
    if (connections_.size() >= limits::kLocalReadConnectionsMax) continue;  // fd closes: the client falls back to TCP
    Connection& c = connections_.emplace_back();
    c.fd = std::move(fd);
    c.thread = std::thread([this, &c] { Serve(&c); });
  }
}

void LocalReadServer::Serve(Connection* c) {
  while (ServeOne(c->fd.get())) {
  }
  ::shutdown(c->fd.get(), SHUT_RDWR);  // the descriptor itself closes when the connection is reaped
  c->finished = true;
}

bool LocalReadServer::ServeOne(int fd) {
  uint8_t raw[frame::kHeaderBytes];
  if (!ReadExact(fd, raw, sizeof raw, frameTimeoutMs_, /*idleOk=*/true).ok()) return false;
  const auto start = std::chrono::steady_clock::now();
  frame::Header request;
  Status s = frame::Header::Decode(raw, &request);
  // ReadArgs, then (with a secret) the capability: a request without one is refused, not malformed.
  constexpr size_t kWithCap = frame::ReadArgs::kBytes + kCapabilityBytes;
  if (s.ok() && (request.opcode != frame::kOpenLocal ||
                 (request.metaBytes != frame::ReadArgs::kBytes && request.metaBytes != kWithCap) ||
                 request.dataBytes != 0 || (request.flags & frame::kFlagReply)))
    s = Status::Protocol("the local socket serves only openLocal requests");
  frame::ReadArgs args;
  Capability cap;
  bool hasCap = false;
  if (s.ok()) {
    uint8_t meta[kWithCap];
    if (!ReadExact(fd, meta, request.metaBytes, frameTimeoutMs_, false).ok()) return false;
    frame::Reader r(meta, request.metaBytes);
    if (!r.Get(&args)) s = Status::Protocol("malformed openLocal request");
    hasCap = r.GetCapability(&cap);
  }
  const bool keep = s.ok();  // after a malformed frame the stream is not trusted: answer, close
  if (s.ok() && auth_) {
    s = hasCap ? auth_->capabilities.Check(cap, args.chunk.inode, kRightRead, WallClockMs())
               : Status::Auth("openLocal carries no capability");
    if (!s.ok()) refusals_++;
  }
  UniqueFd file;
  ChunkMeta chunkMeta;
  if (s.ok()) s = store_->OpenVersionFile(args.chunk, args.flags & frame::kReadUncommitted, &file, &chunkMeta);

  std::string body;
  if (s.ok()) {
    frame::Put(&body, chunkMeta);
    opens_++;
    metrics::LocalReadHit();
  } else {
    body = s.message().substr(0, limits::kErrorMessageBytesMax);
    errors_++;
  }
  frame::Header reply;
  reply.opcode = frame::kOpenLocal;
  reply.flags = frame::kFlagReply;
  reply.requestId = request.requestId;
  reply.metaBytes = static_cast<uint32_t>(body.size());
  reply.status = static_cast<int32_t>(s.code());
  std::string out(frame::kHeaderBytes, '\0');
  reply.EncodeTo(reinterpret_cast<uint8_t*>(&out[0]));
  out += body;
  bool sent = SendWithFd(fd, out.data(), out.size(), file.valid() ? file.get() : -1, frameTimeoutMs_).ok();
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  metrics::RecordRequest(metrics::Op::kOpenLocal, metrics::Transport::kLocal, s.ok() && sent, static_cast<uint64_t>(us));
  return sent && keep;
}

}  // namespace millpond
