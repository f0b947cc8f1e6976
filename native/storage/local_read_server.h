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
#include "common/status.h"
#include "storage/chunk_store.h"

namespace millpond {

class LocalReadServer {
 public:
  // Listens under a fresh name ("millpond-data-" + a random 64-bit id in hex).
  // REQUIRES: store outlives the server.
  static Status Start(ChunkStore* store, uint32_t frameTimeoutMs, std::unique_ptr<LocalReadServer>* out);
  ~LocalReadServer();
  // Closes the listener and every connection; returns when no thread of the server runs.
  void Stop();

  const std::string& name() const { return name_; }
  uint64_t opens() const { return opens_; }    // descriptors handed out
  uint64_t errors() const { return errors_; }  // requests answered with a failure

 private:
  struct Connection {
    UniqueFd fd;
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  LocalReadServer(ChunkStore* store, uint32_t frameTimeoutMs) : store_(store), frameTimeoutMs_(frameTimeoutMs) {}
  void AcceptLoop();
  void Serve(Connection* c);
  // Answers one request; false when the connection must close (malformed or broken).
  bool ServeOne(int fd);

  ChunkStore* const store_;
  const uint32_t frameTimeoutMs_;
  std::string name_;
  UniqueFd listener_;
  UniqueFd wake_;  // eventfd: Stop() wakes the accept loop
  std::thread acceptor_;
  std::mutex mu_;
  bool stopping_ = false;                 // GUARDED_BY(mu_)
  std::list<Connection> connections_;     // GUARDED_BY(mu_)
  std::atomic<uint64_t> opens_{0}, errors_{0};
};

}  // namespace millpond
