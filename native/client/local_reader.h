// LocalReader: the client half of short-circuit local reads (storage/local_read_server.h).
// For each data server it learns, once, whether the server is on this host: the server names
// its local socket (kLocalInfo over the data plane) and the name is reachable only from here.
// Reads for such a server then run on this reader's threads: ask for the version file's
// descriptor, pread it, verify every block's CRC32C, copy. Everything else (a remote server,
// a server offering no socket, a broken local connection, a full queue) goes over the data
// plane as before, so a caller sees the same results either way.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/buffer_pool.h"
#include "common/chunk_id.h"
#include "common/file_io.h"
#include "common/status.h"
#include "common/work_queue.h"
#include "transport/frame.h"

namespace millpond {

struct LocalReadCounters {
  std::atomic<uint64_t> reads{0};      // chunk reads served through descriptors
  std::atomic<uint64_t> bytes{0};      // content bytes they read
  std::atomic<uint64_t> fallbacks{0};  // reads handed back to the data plane (broken connection)
  std::atomic<uint64_t> abandoned{0};  // reads given up while the server did not answer
  std::atomic<uint64_t> shed{0};       // reads sent over the data plane: their server had its share
};

class LocalReader {
 public:
  using ReadDone = std::function<void(const Status&, const ChunkMeta&, uint32_t bytesRead)>;
  enum class Route {
    kLocal,   // Submit() it
    kRemote,  // use the data plane
    kProbe,   // use the data plane, and ask the server for its local socket name (Learned())
  };

  LocalReader(uint32_t threads, uint32_t timeoutMs);
  ~LocalReader();  // Close()

  // Where a read for `address` goes now. kProbe is returned to one caller at a time per
  // server, and again only limits::kLocalProbeIntervalMs after a failed probe.
  Route RouteFor(const std::string& address);
  // The answer to a probe: the server's local socket name, or why there is none. A name that
  // connects from here makes the server local.
  void Learned(const std::string& address, const Status& status, const std::string& name);
  // Queues the read on a local-read thread; `done` runs there. When the local connection
  // breaks, `fallback` runs instead (there) and must send the read over the data plane.
  // False when the reader cannot take it now (queue full, closed, or the server already holds
  // its share of the threads, half of them: a stalled server must not hold every thread and
  // stop the reads of the others behind its own): use the data plane.
  // `cap` (may be null) is copied and sent with the request.
  // `abandon` (may be null), once true, ends a read still waiting for the server with
  // kTimedOut within limits::kTimerTickMs, without the fallback: a stopped server must not
  // hold a reader (nor this reader's thread) for the whole timeout when another replica
  // answered. Until `done` runs, dst may still be written.
  bool Submit(const std::string& address, const frame::ReadArgs& args, const Capability* cap, char* dst,
              ReadDone done, std::function<void()> fallback,
              std::shared_ptr<const std::atomic<bool>> abandon = nullptr);
  // Waits for the reads in flight and joins the threads.
  void Close();

  const LocalReadCounters& counters() const { return counters_; }

 private:
  struct Server {
    Route route = Route::kProbe;
    bool probing = false;
    std::chrono::steady_clock::time_point nextProbe{};
    std::string name;
    std::vector<UniqueFd> idle;  // connections kept for reuse
    uint32_t inflight = 0;       // reads submitted, not finished
  };
  void Release(const std::string& address);  // a submitted read finished
  // One read over `conn`. *broken: the connection failed (not the chunk); fall back.
  Status ReadOne(int conn, const frame::ReadArgs& args, const Capability* cap, char* dst, ChunkMeta* meta,
                 uint32_t* bytesRead, bool* broken, const std::atomic<bool>* abandon);
  Status TakeConnection(const std::string& address, UniqueFd* out);
  void ReturnConnection(const std::string& address, UniqueFd conn);
  void Forget(const std::string& address);  // a broken connection: probe the server again

  const uint32_t timeoutMs_;
  const uint32_t perServerMax_;  // reads of one server in flight at once
  BufferPool staging_;  // aligned buffers for O_DIRECT and for ranges off block boundaries
  std::mutex mu_;
  std::map<std::string, Server> servers_;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> nextRequestId_{1};
  LocalReadCounters counters_;
  std::unique_ptr<WorkQueue> workers_;  // last: its threads stop before the rest goes
};

}  // namespace millpond
