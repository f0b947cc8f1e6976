// RpcClient: the native side of the control plane (src/protocol/rpc-client.ts). A ZeroMQ DEALER
// per server address, one msgpack frame per message, no delimiter frame:
//   request: [1, requestId, method, params]      reply: [1, requestId, ok, result | {code, message}]
// Replies are matched by requestId. Each attempt waits timeoutMs; a timed-out request is resent
// under the SAME requestId (servers apply a retried mutation once, keyed by the caller's clientId
// in params and this requestId), to the next address when there are several. An ENOTPRIMARY
// reply also moves on to the next address. A server's error reply becomes a Status with the
// server's code ("ENOENT" → kNotFound, ...).
//
// Thread-safe: any thread may call. One I/O thread per client owns the sockets; callbacks run
// on it. At most inflightRequestsMax requests are on the wire; more wait in a queue bounded by
// limits::kRpcQueuedCallsMax (beyond it, kBusy).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "client/zmq_api.h"
#include "common/limits.h"
#include "common/msgpack.h"
#include "common/status.h"

namespace millpond {

struct RpcClientOptions {
  // tcp://host:port of each server of one service, tried in order. 1..kRpcServersMax.
  std::vector<std::string> endpoints;
  uint32_t timeoutMs = limits::kRpcTimeoutMsDefault;  // per attempt
  uint32_t attemptsMax = limits::kRpcAttemptsMax;     // per call when it may be retried
  uint32_t inflightRequestsMax = limits::kRpcInflightRequestsMax;
  // CURVE (design §10): all three set (Z85, 40 characters each), or all empty for a server
  // without authentication. A server that refuses the key (its ZAP handler says no) or speaks
  // another mechanism (CURVE vs none) gives no reply; the socket monitor sees the failed
  // handshake, and calls waiting for that address end at once with kAuth (not kTimedOut).
  std::string curveServerKey;
  std::string curvePublicKey;
  std::string curveSecretKey;
};

struct RpcClientCounters {
  std::atomic<uint64_t> attempts{0};     // requests handed to a socket
  std::atomic<uint64_t> timeouts{0};     // attempts that got no reply in time
  std::atomic<uint64_t> failovers{0};    // moves to the next address
  std::atomic<uint64_t> lateReplies{0};  // replies matching no request in flight
  std::atomic<uint64_t> malformed{0};    // replies that could not be decoded
};

class RpcClient {
 public:
  using Done = std::function<void(const Status&, MsgValue result)>;

  // kNotSupported without libzmq.so.5; kInvalidArgument for bad options or endpoints.
  static Status Create(const RpcClientOptions& options, std::unique_ptr<RpcClient>* out);
  ~RpcClient();  // Close()

  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends method(params) and waits for its reply (at most attemptsMax x timeoutMs once on the
  // wire). `retry` false: one attempt only.
  // REQUIRES: params is a map; `retry` only for calls that are idempotent or deduplicated by
  // the server (mutations carrying a clientId).
  Status Call(const std::string& method, MsgValue params, MsgValue* result, bool retry = true);

  // The same, asynchronous: `done` runs exactly once, on the I/O thread (or on this thread
  // when the call is refused at once). REQUIRES: `done` neither blocks long nor calls Close().
  void CallAsync(const std::string& method, MsgValue params, bool retry, Done done);

  // Fails every call not yet answered with kClosed and stops the I/O thread. Idempotent.
  // REQUIRES: not called from a callback.
  void Close();

  // The address new requests go to now (moves on timeouts and ENOTPRIMARY).
  std::string CurrentEndpoint() const;
  const RpcClientCounters& counters() const { return counters_; }

 private:
  struct Pending {
    uint64_t requestId = 0;
    std::string method;
    std::string frame;
    uint32_t attemptsMax = 1;
    uint32_t attempt = 0;
    size_t server = 0;
    bool sent = false;
    std::chrono::steady_clock::time_point deadline;
    Done done;
  };

  RpcClient(const ZmqApi* api, const RpcClientOptions& options);
  Status Open();
  void Loop();
  void StartAttempt(Pending* p);
  void TrySend(Pending* p);
  void Receive(void* socket);
  void ReceiveEvents(size_t server);
  void HandleReply(const char* data, size_t size);
  void Failover(size_t from);
  void Finish(uint64_t requestId, const Status& s, MsgValue result);
  void Wake();

  const ZmqApi* api_;
  const RpcClientOptions options_;
  RpcClientCounters counters_;
  void* ctx_ = nullptr;
  std::vector<void*> sockets_;  // one DEALER per endpoint; touched by the I/O thread only
  std::vector<void*> monitors_;  // one PAIR per DEALER: its handshake events
  // I/O thread only: per endpoint, the last handshake's refusal (ok once one succeeds).
  std::vector<Status> refused_;
  // I/O thread only: per endpoint, whether the current connection's handshake succeeded, and
  // how many connections in a row dropped before theirs did.
  std::vector<bool> handshaken_;
  std::vector<uint32_t> handshakeDrops_;
  int wakeFd_ = -1;
  std::thread thread_;
  std::atomic<uint64_t> nextRequestId_{1};
  std::atomic<size_t> current_{0};  // index into endpoints; written by the I/O thread only

  std::mutex mu_;
  std::deque<std::unique_ptr<Pending>> submitted_;  // GUARDED_BY(mu_)
  size_t accepted_ = 0;                             // GUARDED_BY(mu_): submitted, unanswered
  bool closing_ = false;                            // GUARDED_BY(mu_)
  bool closed_ = false;                             // GUARDED_BY(mu_)

  // I/O thread only.
  std::deque<std::unique_ptr<Pending>> waiting_;  // accepted, no in-flight slot yet
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> inflight_;
};

}  // namespace millpond
