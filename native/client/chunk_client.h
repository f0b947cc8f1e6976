// ChunkClient: chunk I/O against many data servers at once, over the transport chosen per
// client (design §4). Every operation is asynchronous: it returns at once and its callback
// runs exactly once on a transport thread. In-flight bytes are bounded by the transport.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/chunk_id.h"
#include "common/limits.h"
#include "common/mutex.h"
#include "client/local_reader.h"
#include "common/status.h"
#include "transport/frame.h"
#include "transport/transport.h"

namespace millpond {

struct ChunkClientOptions {
  TransportChoice transport = TransportChoice::kAuto;
  size_t inflightBytesMax = limits::kClientInflightBytesDefault;
  uint32_t timeoutMs = limits::kClientTimeoutMsDefault;
  uint32_t connectionsPerServer = 1;
  // Short-circuit local reads (client/local_reader.h), with transport kAuto only: reads for
  // servers on this host go through descriptors of their version files, on this many threads.
  // 0 (or an explicit tcp/rdma transport): always the data plane.
  uint32_t localReadThreads = limits::kLocalReadThreadsDefault;
  // Presented on every connection (transport/auth_handshake.h): a user's token, or a node's
  // key for the cluster's own daemons. Anonymous: for servers without a cluster secret.
  ClientCredentials credentials;
};

struct BatchReadResult {
  StatusCode code = StatusCode::kOk;
  uint32_t bytesRead = 0;
};

class ChunkClient {
 public:
  using MetaDone = std::function<void(const Status&, const ChunkMeta&)>;
  using ReadDone = std::function<void(const Status&, const ChunkMeta&, uint32_t bytesRead)>;
  using BatchDone = std::function<void(const Status&, const std::vector<BatchReadResult>&)>;
  using ListDone = std::function<void(const Status&, const std::vector<ChunkListEntry>&)>;
  using Done = std::function<void(const Status&)>;

  // kNoDevice when options.transport is kRdma and no RDMA device is usable.
  static Status Create(const ChunkClientOptions& options, std::unique_ptr<ChunkClient>* out);
  ~ChunkClient();

  // REQUIRES for all: buffers stay valid until the callback runs.
  // `abandon` (may be null): once true, the request ends with kTimedOut within about
  // limits::kTimerTickMs unless its answer is already arriving (ClientCall::abandon). The
  // callback still runs exactly once, and buffers may be written until it runs.
  using Abandon = std::shared_ptr<const std::atomic<bool>>;
  // `cap`: the capability meta gave for the chunk's file (common/auth.h), copied into the
  // request; required by servers with a cluster secret when this client authenticates with
  // a token, else null. A server refuses with kAuth (none, forged, expired: re-open the file
  // to renew) or kAccess (a read capability used to write).
  // A read for a server on this host goes through a local descriptor when it can (above).
  void Read(const std::string& address, const frame::ReadArgs& args, char* dst, ReadDone done,
            const Capability* cap = nullptr, Abandon abandon = nullptr);
  // args.payloadChecksum and args.length are filled here from data.
  void Write(const std::string& address, frame::WriteArgs args, const char* data, MetaDone done,
             const Capability* cap = nullptr, Abandon abandon = nullptr);
  // dsts[i] receives reads[i].length bytes (zero-padded past a short read). `caps`: one per
  // inode the reads touch (may be null).
  void BatchRead(const std::string& address, const std::vector<frame::ReadArgs>& reads,
                 const std::vector<char*>& dsts, BatchDone done, const std::vector<Capability>* caps = nullptr,
                 Abandon abandon = nullptr);
  void Stat(const std::string& address, const ChunkId& chunk, MetaDone done, const Capability* cap = nullptr);
  void Commit(const std::string& address, const frame::CommitArgs& args, MetaDone done);
  void Remove(const std::string& address, const ChunkId& chunk, Done done);
  void List(const std::string& address, const frame::ListArgs& args, ListDone done);
  void Ping(const std::string& address, Done done);

  // Fails what is in flight with kClosed and joins the transport threads.
  void Close();
  const TransportCounters& tcpCounters() const { return tcp_->counters(); }
  const TransportCounters* rdmaCounters() const { return rdma_ ? &rdma_->counters() : nullptr; }
  const LocalReadCounters* localCounters() const { return local_ ? &local_->counters() : nullptr; }

 private:
  struct Op;
  explicit ChunkClient(const ChunkClientOptions& options) : options_(options) {}
  void Submit(const std::string& address, Op* op);
  void ReadRemote(const std::string& address, const frame::ReadArgs& args, const Capability* cap, char* dst,
                  ReadDone done, Abandon abandon);
  void ProbeLocal(const std::string& address);
  void OnDone(ClientCall* call);

  const ChunkClientOptions options_;
  std::unique_ptr<ClientTransport> tcp_, rdma_;
  std::unique_ptr<LocalReader> local_;
  Mutex mu_;
  std::set<std::string> tcpOnly_ GUARDED_BY(mu_);  // servers that refused RDMA (auto mode)
};

}  // namespace millpond
