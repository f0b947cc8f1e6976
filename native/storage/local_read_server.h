// LocalReadServer: short-circuit local reads of one ChunkStore (what HDFS calls short-circuit
// local reads). A client on the same host sends kOpenLocal requests over a Unix socket and
// gets, per request, the chunk's metadata and a descriptor of the version file a read would
// read; it reads that file and verifies its blocks itself (chunk_format::VerifyBlocks).
//
// Why: on a host that runs compute beside storage, a loopback TCP read costs two copies and
// the TCP stack on the same cores the query needs. A version file never changes after its
// rename (a newer version replaces it), so a descriptor is a consistent snapshot: reading
// through it gives what a data-plane read at that moment would have given.
//
// Security (design §10): the socket is a path in a 0700 directory; a connection from any uid
// but the server's own (or root) is refused (SO_PEERCRED, logged); and with a cluster secret
// each request must carry a read capability for the chunk's inode, as on the data plane.
//
// One thread per connection (clients keep a few, limits::kLocalReadConnectionsMax in all);
// a malformed frame closes its connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/file_io.h"
#include "common/limits.h"
#include "common/status.h"
#include "storage/chunk_store.h"
#include "transport/auth_handshake.h"

namespace millpond {

struct LocalReadServerOptions {
  uint32_t frameTimeoutMs = limits::kServerFrameTimeoutMsDefault;
  // Made (or tightened to) 0700. Empty, or too long for a socket path: a fresh mkdtemp
  // directory under $TMPDIR (or /tmp), removed by Stop().
  std::string socketDir;
  std::shared_ptr<const ServerAuth> auth;  // null: no capabilities asked
};

class LocalReadServer {
 public:
  // Listens at "<socketDir>/data-<random 64-bit id in hex>.sock".
  // REQUIRES: store outlives the server.
  static Status Start(ChunkStore* store, const LocalReadServerOptions& options, std::unique_ptr<LocalReadServer>* out);
  ~LocalReadServer();
  // Closes the listener and every connection; returns when no thread of the server runs.
  void Stop();

  const std::string& name() const { return name_; }
  uint64_t opens() const { return opens_; }    // descriptors handed out
  uint64_t errors() const { return errors_; }  // requests answered with a failure
  uint64_t refusals() const { return refusals_; }  // other uids, missing or bad capabilities

 private:
  struct Connection {
    UniqueFd fd;
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  LocalReadServer(ChunkStore* store, const LocalReadServerOptions& options)
      : store_(store), frameTimeoutMs_(options.frameTimeoutMs), auth_(options.auth) {}
  void AcceptLoop();
  void Serve(Connection* c);
  // Answers one request; false when the connection must close (malformed or broken).
  bool ServeOne(int fd);

  ChunkStore* const store_;
  const uint32_t frameTimeoutMs_;
  const std::shared_ptr<const ServerAuth> auth_;
  std::string name_;          // the socket's path
  std::string madeTempDir_;   // removed at Stop() when we made it
  UniqueFd listener_;
  UniqueFd wake_;  // eventfd: Stop() wakes the accept loop
  std::thread acceptor_;
  std::mutex mu_;
  bool stopping_ = false;                 // GUARDED_BY(mu_)
  std::list<Connection> connections_;     // GUARDED_BY(mu_)
  std::atomic<uint64_t> opens_{0}, errors_{0}, refusals_{0};
};

}  // namespace millpond
