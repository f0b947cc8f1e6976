#include "transport/socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/limits.h"

namespace millpond {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

Status WaitReady(int fd, short events, int64_t deadlineMs, const QuietTick& onQuietTick) {
  for (;;) {
    int timeout = -1;
    if (deadlineMs >= 0) {
      int64_t left = deadlineMs - NowMs();
      if (left <= 0) return Status::TimedOut("peer stalled mid-frame");
      timeout = static_cast<int>(left);
    }
    if (onQuietTick && (timeout < 0 || timeout > static_cast<int>(limits::kTimerTickMs)))
      timeout = static_cast<int>(limits::kTimerTickMs);
    struct pollfd p = {fd, events, 0};
    int r = ::poll(&p, 1, timeout);
    if (r > 0) return Status::OK();
    if (r == 0) {  // a quiet tick (the deadline is checked above)
      if (onQuietTick && onQuietTick()) return Status::TimedOut("abandoned mid-frame");
      continue;
    }
    if (errno != EINTR) return Status::FromErrno(errno, "poll");
  }
}

namespace {

Status Resolve(const std::string& host, uint16_t port, int flags, struct addrinfo** out) {
  struct addrinfo hints;
  std::memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, out);
  if (rc != 0) return Status::InvalidArgument("cannot resolve '" + host + "': " + gai_strerror(rc));
  return Status::OK();
}

}  // namespace

Status ParseAddress(const std::string& address, std::string* host, uint16_t* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    return Status::InvalidArgument("address '" + address + "' is not host:port");
  std::string h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  char* end = nullptr;
  unsigned long p = std::strtoul(address.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p == 0 || p > 65535)
    return Status::InvalidArgument("address '" + address + "' has no valid port");
  *host = h;
  *port = static_cast<uint16_t>(p);
  return Status::OK();
}

void SetDataSocketOptions(int fd) {
  int one = 1, buf = limits::kSocketBufferBytes;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

Status ConnectTcp(const std::string& address, uint32_t timeoutMs, UniqueFd* out) {
  std::string host;
  uint16_t port;
  MP_RETURN_IF_ERROR(ParseAddress(address, &host, &port));
  struct addrinfo* ai = nullptr;
  MP_RETURN_IF_ERROR(Resolve(host, port, 0, &ai));
  Status last = Status::IoError("no address for " + address);
  for (struct addrinfo* a = ai; a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) {
      last = Status::FromErrno(errno, "socket");
      continue;
    }
    SetDataSocketOptions(fd.get());
    int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
      last = Status::FromErrno(errno, "connect " + address);
      continue;
    }
    if (rc != 0) {
      Status s = WaitReady(fd.get(), POLLOUT, NowMs() + timeoutMs);
      if (!s.ok()) {
        last = Status::TimedOut("connect " + address + " timed out after " + std::to_string(timeoutMs) + " ms");
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        last = Status::FromErrno(err, "connect " + address);
        continue;
      }
    }
    int flags = ::fcntl(fd.get(), F_GETFL);
    ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    *out = std::move(fd);
    ::freeaddrinfo(ai);
    return Status::OK();
  }
  ::freeaddrinfo(ai);
  return last;
}

Status ListenTcp(const std::string& host, uint16_t port, UniqueFd* out, uint16_t* boundPort) {
  struct addrinfo* ai = nullptr;
  MP_RETURN_IF_ERROR(Resolve(host, port, AI_PASSIVE, &ai));
  Status last = Status::IoError("no address to listen on");
  for (struct addrinfo* a = ai; a; a = a->ai_next) {
    UniqueFd fd(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) continue;
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd.get(), a->ai_addr, a->ai_addrlen) != 0 ||
        ::listen(fd.get(), limits::kListenBacklog) != 0) {
      last = Status::FromErrno(errno, "listen on " + host + ":" + std::to_string(port));
      continue;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ::getsockname(fd.get(), reinterpret_cast<struct sockaddr*>(&ss), &len);
    *boundPort = ntohs(ss.ss_family == AF_INET6
                           ? reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port
                           : reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
    *out = std::move(fd);
    ::freeaddrinfo(ai);
    return Status::OK();
  }
  ::freeaddrinfo(ai);
  return last;
}

Status ReadExact(int fd, void* dst, size_t n, uint32_t timeoutMs, bool idleOk, const QuietTick& onQuietTick) {
  char* p = static_cast<char*>(dst);
  size_t done = 0;
  int64_t deadline = idleOk ? -1 : NowMs() + timeoutMs;
  while (done < n) {
    ssize_t r = ::recv(fd, p + done, n - done, MSG_DONTWAIT);
    if (r > 0) {
      if (done == 0 && deadline < 0) deadline = NowMs() + timeoutMs;
      done += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return Status::ConnReset(done == 0 ? "closed" : "peer closed mid-frame");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "recv");
    MP_RETURN_IF_ERROR(WaitReady(fd, POLLIN, deadline, onQuietTick));
  }
  return Status::OK();
}

namespace {

// Sends or receives every byte the iovecs describe, within timeoutMs.
Status TransferIov(int fd, struct iovec* iov, int iovcnt, uint32_t timeoutMs, bool sending,
                   const QuietTick& onQuietTick) {
  int64_t deadline = NowMs() + timeoutMs;
  AdvanceIov(&iov, &iovcnt, 0);  // skips leading empty entries
  while (iovcnt > 0) {
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(iovcnt < IOV_MAX ? iovcnt : IOV_MAX);
    ssize_t n = sending ? ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) : ::recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n == 0 && !sending) return Status::ConnReset("peer closed mid-frame");
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, sending ? "send" : "recv");
      MP_RETURN_IF_ERROR(WaitReady(fd, sending ? POLLOUT : POLLIN, deadline, onQuietTick));
      continue;
    }
    AdvanceIov(&iov, &iovcnt, static_cast<size_t>(n));
  }
  return Status::OK();
}

}  // namespace

Status ReadvExact(int fd, struct iovec* iov, int iovcnt, uint32_t timeoutMs, const QuietTick& onQuietTick) {
  return TransferIov(fd, iov, iovcnt, timeoutMs, false, onQuietTick);
}

Status SkipExact(int fd, size_t n, uint32_t timeoutMs, const QuietTick& onQuietTick) {
  char scratch[64 * 1024];
  while (n > 0) {
    size_t step = n < sizeof scratch ? n : sizeof scratch;
    MP_RETURN_IF_ERROR(ReadExact(fd, scratch, step, timeoutMs, false, onQuietTick));
    n -= step;
  }
  return Status::OK();
}

Status WritevAll(int fd, struct iovec* iov, int iovcnt, uint32_t timeoutMs) {
  return TransferIov(fd, iov, iovcnt, timeoutMs, true, {});
}

Status SendfileAll(int sock, int fileFd, uint64_t offset, size_t n, uint32_t timeoutMs) {
  int flags = ::fcntl(sock, F_GETFL);
  if (flags < 0 || (!(flags & O_NONBLOCK) && ::fcntl(sock, F_SETFL, flags | O_NONBLOCK) != 0))
    return Status::FromErrno(errno, "fcntl O_NONBLOCK");
  // sendfile has no MSG_NOSIGNAL: hold SIGPIPE back on this thread and swallow the one a
  // closed peer raises (unless one was pending already).
  sigset_t pipeSet, old, pending;
  sigemptyset(&pipeSet);
  sigaddset(&pipeSet, SIGPIPE);
  sigpending(&pending);
  const bool wasPending = sigismember(&pending, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipeSet, &old);
  Status s;
  int64_t deadline = NowMs() + timeoutMs;
  off_t at = static_cast<off_t>(offset);
  while (n > 0) {
    ssize_t r = ::sendfile(sock, fileFd, &at, n);
    if (r > 0) {
      n -= static_cast<size_t>(r);
      continue;
    }
    if (r == 0) {
      s = Status::Corrupt("file ended before the bytes to send");
      break;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      s = Status::FromErrno(errno, "sendfile");
      break;
    }
    s = WaitReady(sock, POLLOUT, deadline);
    if (!s.ok()) break;
  }
  if (!s.ok() && !wasPending) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&pipeSet, nullptr, &zero) == SIGPIPE) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return s;
}

}  // namespace millpond
