#include "transport/local_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/limits.h"
#include "transport/socket_io.h"

namespace millpond {

namespace {

// A path address (NUL-terminated in sun_path).
Status PathAddress(const std::string& path, struct sockaddr_un* addr, socklen_t* len) {
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (path.empty() || path[0] != '/' || path.size() + 1 > sizeof addr->sun_path)
    return Status::InvalidArgument("local socket path must be absolute and at most " +
                                   std::to_string(sizeof addr->sun_path - 1) + " bytes");
  std::memcpy(addr->sun_path, path.data(), path.size());
  *len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
  return Status::OK();
}

}  // namespace

Status ListenLocal(const std::string& name, UniqueFd* out) {
  struct sockaddr_un addr;
  socklen_t len;
  MP_RETURN_IF_ERROR(PathAddress(name, &addr, &len));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return Status::FromErrno(errno, "socket(AF_UNIX)");
  ::unlink(name.c_str());  // a socket file left by a killed server
  if (::bind(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), len) != 0)
    return Status::FromErrno(errno, "bind local socket " + name);
  if (::listen(fd.get(), limits::kListenBacklog) != 0) return Status::FromErrno(errno, "listen " + name);
  *out = std::move(fd);
  return Status::OK();
}

Status ConnectLocal(const std::string& name, UniqueFd* out) {
  struct sockaddr_un addr;
  socklen_t len;
  MP_RETURN_IF_ERROR(PathAddress(name, &addr, &len));
  // Non-blocking: a local connect then completes at once or fails at once (ECONNREFUSED: no
  // such name here; EAGAIN: the server accepts nothing, its backlog full, as when it is
  // paused), where a blocking one would wait until the server accepts again. The socket stays
  // non-blocking: every read and write on it here passes a deadline.
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) return Status::FromErrno(errno, "socket(AF_UNIX)");
  if (::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), len) != 0) {
    if (errno == EAGAIN) return Status::Busy("local socket " + name + " accepts no connection (its backlog is full)");
    return Status::FromErrno(errno, "connect local socket " + name);
  }
  *out = std::move(fd);
  return Status::OK();
}

Status PeerUid(int fd, uint32_t* uid) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return Status::FromErrno(errno, "SO_PEERCRED");
  *uid = cred.uid;
  return Status::OK();
}

Status SendWithFd(int fd, const void* data, size_t n, int passFd, uint32_t timeoutMs) {
  const char* p = static_cast<const char*>(data);
  int64_t deadline = NowMs() + timeoutMs;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  while (n > 0) {
    struct iovec iov = {const_cast<char*>(p), n};
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (passFd >= 0) {
      std::memset(control, 0, sizeof control);
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      std::memcpy(CMSG_DATA(c), &passFd, sizeof(int));
    }
    ssize_t r = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "send on local socket");
      MP_RETURN_IF_ERROR(WaitReady(fd, POLLOUT, deadline));
      continue;
    }
    passFd = -1;  // it went with the first bytes
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::OK();
}

Status RecvWithFd(int fd, void* dst, size_t n, uint32_t timeoutMs, UniqueFd* received) {
  char* p = static_cast<char*>(dst);
  size_t done = 0;
  int64_t deadline = NowMs() + timeoutMs;
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
  while (done < n) {
    struct iovec iov = {p + done, n - done};
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r == 0) return Status::ConnReset(done == 0 ? "closed" : "peer closed mid-frame");
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "recv on local socket");
      MP_RETURN_IF_ERROR(WaitReady(fd, POLLIN, deadline));
      continue;
    }
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; i++) {
        int got;
        std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (!received->valid()) *received = UniqueFd(got);
        else ::close(got);
      }
    }
    done += static_cast<size_t>(r);
  }
  return Status::OK();
}

}  // namespace millpond
