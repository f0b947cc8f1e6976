// DataServer: serves one ChunkStore on the data plane (design §4). Requests arrive through
// the transports (TCP always; RDMA too when chosen and available), are answered by a pool
// of I/O threads, and never cross into JavaScript.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/buffer_pool.h"
#include "common/limits.h"
#include "common/work_queue.h"
#include "storage/chunk_store.h"
#include "transport/rdma/rdma_transport.h"
#include "transport/transport.h"

namespace millpond {

struct DataServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port
  TransportChoice transport = TransportChoice::kAuto;
  uint32_t ioThreads = limits::kServerIoThreadsDefault;
  uint32_t frameTimeoutMs = limits::kServerFrameTimeoutMsDefault;
};

struct DataServerStats {
  uint64_t reads = 0, writes = 0, batchReads = 0, batchReadEntries = 0, others = 0;
  uint64_t bytesRead = 0, bytesWritten = 0;  // chunk content served and stored
  uint64_t errors = 0;                       // requests answered with a failure
  uint64_t busyRejections = 0;               // requests refused because the queue was full
};

class DataServer : public CallHandler {
 public:
  // REQUIRES: store outlives the server.
  static Status Start(ChunkStore* store, const DataServerOptions& options, std::unique_ptr<DataServer>* out);
  ~DataServer() override;

  // Stops accepting, answers what is queued, and joins every thread.
  void Stop();
  uint16_t port() const { return tcp_->port(); }
  bool rdmaEnabled() const { return rdma_ != nullptr; }
  DataServerStats stats() const;
  const TransportCounters& tcpCounters() const { return tcp_->counters(); }
  const TransportCounters* rdmaCounters() const { return rdma_ ? &rdma_->counters() : nullptr; }

  void OnCall(std::unique_ptr<ServerCall> call) override;

 private:
  DataServer(ChunkStore* store, const DataServerOptions& options);
  void Serve(ServerCall* call);
  void ServeRead(ServerCall* call);
  void ServeBatchRead(ServerCall* call);
  void ServeWrite(ServerCall* call);
  void ServeSmall(ServerCall* call);  // stat, remove, commit, list, ping

  ChunkStore* store_;
  const DataServerOptions options_;
  BufferPool buffers_;
  std::unique_ptr<WorkQueue> workers_;
  std::unique_ptr<ServerTransport> tcp_;
  std::unique_ptr<RdmaServerTransport> rdma_;
  std::atomic<bool> stopped_{false};
  struct Counters {
    std::atomic<uint64_t> reads{0}, writes{0}, batchReads{0}, batchReadEntries{0}, others{0};
    std::atomic<uint64_t> bytesRead{0}, bytesWritten{0}, errors{0}, busyRejections{0};
  } counters_;
};

}  // namespace millpond
