// MetricsHttp: a minimal HTTP/1.1 responder for the mount's Prometheus metrics (design §14), the
// C++ twin of src/metrics/server.ts. It answers `GET /metrics` (and HEAD) and nothing else:
//   - one connection at a time on one thread; a request's line and headers must fit in
//     limits::kMetricsHttpRequestBytesMax (else 431) and arrive within kMetricsHttpTimeoutMs;
//     every answer closes its connection (no keep-alive, no request body read);
//   - `Authorization: Bearer <token>` must equal the admin token read from a 0600 file (the
//     token a Prometheus `credentials_file` holds): else 401 and no figures;
//   - another path is 404, another method 405, a malformed request 400.
// The body comes from `render`, called on the server thread once per authorized scrape.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace millpond {

class MetricsHttp {
 public:
  using Render = std::function<std::string()>;

  // Binds `listen` ("HOST:PORT", "[V6]:PORT"; port 0: any free port) and starts serving.
  // `token` is the bearer a scrape must present (non-empty).
  static Status Start(const std::string& listen, std::string token, Render render, std::unique_ptr<MetricsHttp>* out);
  // Reads the admin token from `path`: its first line, trimmed. The file must be a regular file
  // that only its owner may read (mode & 077 == 0, as ssh asks of keys) and hold a uid-0 token
  // (`mpt1.0.<id>.<secret>`): EAUTH otherwise.
  static Status ReadAdminToken(const std::string& path, std::string* out);

  // Stops the thread and closes the socket.
  ~MetricsHttp();
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  // `http://host:port/metrics` as bound (the real port when 0 was asked for).
  const std::string& url() const { return url_; }

 private:
  MetricsHttp(int listenFd, int stopFd, std::string token, Render render, std::string url);
  void Loop();
  void Serve(int fd);

  const int listenFd_;
  const int stopFd_;  // an eventfd: written once by the destructor to end Loop
  const std::string token_;
  const Render render_;
  const std::string url_;
  std::thread thread_;
};

}  // namespace millpond
