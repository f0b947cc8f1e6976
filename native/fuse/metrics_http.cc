#include "fuse/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/limits.h"
#include "fuse/token_file.h"

namespace millpond {

namespace {

bool SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;  // the peer left, or the send timeout passed
    off += static_cast<size_t>(n);
  }
  return true;
}

void Answer(int fd, int code, const char* reason, const std::string& body, const std::string& extraHeaders = "",
            const char* type = "text/plain; charset=utf-8", bool head = false) {
  std::string out = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
                    "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nCache-Control: no-store\r\nConnection: close\r\n" +
                    extraHeaders + "\r\n";
  if (!head) out += body;
  SendAll(fd, out);
}

// Compares without leaking where the first difference is (the length is not secret).
bool SameSecret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); i++) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

Status ParseListen(const std::string& listen, std::string* host, std::string* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size()) {
    return Status::InvalidArgument("--metrics-listen wants HOST:PORT (port 0: any free port), not " + listen);
  }
  *host = listen.substr(0, colon);
  *port = listen.substr(colon + 1);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']') *host = host->substr(1, host->size() - 2);
  if (host->empty() || port->find_first_not_of("0123456789") != std::string::npos || port->size() > 5 || std::stoi(*port) > 65535) {
    return Status::InvalidArgument("--metrics-listen wants HOST:PORT (port 0: any free port), not " + listen);
  }
  return Status::OK();
}

// After an early answer (the request not read to its end): stops sending and reads what the
// client still sends, up to a bound, so closing does not reset the connection before the client
// read the answer.
void DrainAfterAnswer(int fd) {
  ::shutdown(fd, SHUT_WR);
  char buf[4096];
  size_t total = 0;
  for (ssize_t n; total < limits::kMetricsHttpDrainBytesMax && (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) total += static_cast<size_t>(n);
}

}  // namespace

Status MetricsHttp::ReadAdminToken(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Auth("cannot read the metrics token file " + path + ": " + std::strerror(errno));
  MP_RETURN_IF_ERROR(ReadTokenFrom(fd, path, /*ownerOnly=*/true, out));
  if (out->rfind("mpt1.0.", 0) != 0) return Status::Auth("the metrics token file " + path + " holds no admin token (mpt1.0....)");
  return Status::OK();
}

Status MetricsHttp::Start(const std::string& listen, std::string token, Render render, std::unique_ptr<MetricsHttp>* out) {
  if (token.empty()) return Status::InvalidArgument("metrics: a bearer token is required");
  std::string host, port;
  MP_RETURN_IF_ERROR(ParseListen(listen, &host, &port));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0) return Status::InvalidArgument("--metrics-listen " + listen + ": " + ::gai_strerror(rc));
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, limits::kMetricsHttpBacklog) != 0) {
    const int err = errno;
    ::freeaddrinfo(res);
    if (fd >= 0) ::close(fd);
    return Status::IoError("--metrics-listen " + listen + ": " + std::strerror(err));
  }
  ::freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  char addr[INET6_ADDRSTRLEN] = {};
  int boundPort = 0;
  std::string shown;
  if (bound.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&bound);
    ::inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
    boundPort = ntohs(a->sin6_port);
    shown = std::string("[") + addr + "]";
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&bound);
    ::inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
    boundPort = ntohs(a->sin_port);
    shown = addr;
  }
  int stopFd = ::eventfd(0, EFD_CLOEXEC);
  if (stopFd < 0) {
    ::close(fd);
    return Status::IoError(std::string("metrics: eventfd: ") + std::strerror(errno));
  }
  out->reset(new MetricsHttp(fd, stopFd, std::move(token), std::move(render),
                             "http://" + shown + ":" + std::to_string(boundPort) + "/metrics"));
  return Status::OK();
}

MetricsHttp::MetricsHttp(int listenFd, int stopFd, std::string token, Render render, std::string url)
    : listenFd_(listenFd), stopFd_(stopFd), token_(std::move(token)), render_(std::move(render)), url_(std::move(url)) {
  thread_ = std::thread([this] { Loop(); });
}

MetricsHttp::~MetricsHttp() {
  uint64_t one = 1;
  ssize_t ignored = ::write(stopFd_, &one, sizeof one);
  (void)ignored;
  thread_.join();
  ::close(listenFd_);
  ::close(stopFd_);
}

void MetricsHttp::Loop() {
  for (;;) {
    pollfd fds[2] = {{listenFd_, POLLIN, 0}, {stopFd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;  // the peer left before it was accepted, or a transient shortage
    timeval tv{static_cast<time_t>(limits::kMetricsHttpTimeoutMs / 1000), static_cast<suseconds_t>((limits::kMetricsHttpTimeoutMs % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    Serve(fd);
    ::close(fd);
  }
}

void MetricsHttp::Serve(int fd) {
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos) {
    if (req.size() > limits::kMetricsHttpRequestBytesMax) {
      Answer(fd, 431, "Request Header Fields Too Large", "headers too large\n");
      return DrainAfterAnswer(fd);
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;  // closed, or the timeout passed: no answer owed
    req.append(buf, static_cast<size_t>(n));
  }
  const size_t headEnd = req.find("\r\n\r\n");
  if (headEnd > limits::kMetricsHttpRequestBytesMax) return Answer(fd, 431, "Request Header Fields Too Large", "headers too large\n");
  const size_t lineEnd = req.find("\r\n");
  const std::string line = req.substr(0, lineEnd);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string::npos ? std::string::npos : line.find(' ', sp1 + 1);
  if (sp2 == std::string::npos || line.compare(sp2 + 1, 5, "HTTP/") != 0) return Answer(fd, 400, "Bad Request", "bad request line\n");
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") return Answer(fd, 404, "Not Found", "not found: metrics are at /metrics\n");
  const bool head = method == "HEAD";
  if (method != "GET" && !head) return Answer(fd, 405, "Method Not Allowed", "GET /metrics\n", "Allow: GET, HEAD\r\n");
  std::string bearer;
  for (size_t at = lineEnd + 2; at < headEnd;) {
    size_t next = req.find("\r\n", at);
    const std::string h = req.substr(at, next - at);
    at = next + 2;
    size_t colon = h.find(':');
    if (colon == std::string::npos || strncasecmp(h.c_str(), "authorization", colon) != 0 || colon != 13) continue;
    const std::string value = Trim(h.substr(colon + 1));
    if (value.size() > 7 && strncasecmp(value.c_str(), "bearer ", 7) == 0) bearer = Trim(value.substr(7));
  }
  if (!SameSecret(bearer, token_)) {
    return Answer(fd, 401, "Unauthorized", "EAUTH: /metrics needs Authorization: Bearer <admin token>\n", "WWW-Authenticate: Bearer realm=\"millpond\"\r\n");
  }
  Answer(fd, 200, "OK", render_(), "", "text/plain; version=0.0.4; charset=utf-8", head);
}

}  // namespace millpond
