// The data-plane Transport interface (design §4). Two implementations chosen at run time:
// TCP (tcp_server.*, tcp_client.*) and RDMA (rdma/*, libibverbs loaded with dlopen).
// The DataServer and ChunkClient are written against these classes only.
//
// Messages are frame.h's: header + meta (control fields) + data (payload). How the data moves
// is the transport's business: TCP sends it inline after the meta; RDMA has the server move
// it (RDMA WRITE into the client's buffer for reads, RDMA READ from it for writes), as 3FS does.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/buffer_pool.h"
#include "common/file_io.h"
#include "common/status.h"
#include "transport/auth_handshake.h"
#include "transport/frame.h"

namespace millpond {

enum class TransportKind : int { kTcp = 0, kRdma = 1 };
const char* TransportKindName(TransportKind kind);

// What the user asked for: `auto` picks RDMA when a device is up, else TCP.
enum class TransportChoice : int { kAuto = 0, kTcp = 1, kRdma = 2 };
Status ParseTransportChoice(const std::string& text, TransportChoice* out);

// Counters of one transport instance; all monotonic.
struct TransportCounters {
  std::atomic<uint64_t> bytesSent{0};      // header + meta + data bytes put on the wire
  std::atomic<uint64_t> bytesReceived{0};
  std::atomic<uint64_t> messagesSent{0};
  std::atomic<uint64_t> messagesReceived{0};
  std::atomic<uint64_t> connectionsOpened{0};
  std::atomic<uint64_t> protocolErrors{0}; // malformed frames received
  std::atomic<uint64_t> authFailures{0};   // connections refused by the handshake (servers)
};

// ------------------------------------------------------------------ server side

// One request received by a server transport. The handler must answer it exactly once with
// Reply(), from any thread. Destroying an unanswered call answers it with kInternal.
class ServerCall {
 public:
  virtual ~ServerCall() = default;
  virtual const frame::Header& header() const = 0;
  virtual const uint8_t* meta() const = 0;  // header().metaBytes bytes
  // Hands over the request payload (header().dataBytes bytes) in an aligned buffer.
  // TCP: the buffer it was received into. RDMA: RDMA READ from the client's buffer.
  // REQUIRES: called at most once.
  virtual Status TakePayload(AlignedBuffer* out) = 0;
  // Sends the reply. `data` (total <= limits::kFrameDataBytesMax) is only read until Reply
  // returns, so the caller may free it then. A failed status sends status + message only.
  virtual void Reply(const Status& status, const std::string& meta, const struct iovec* data,
                     int dataCount) = 0;
  // Whether ReplyFromFile can send file bytes without copying them through this process
  // (TCP in the clear: sendfile). Otherwise the caller reads the bytes and calls Reply.
  virtual bool CanSendFile() const { return false; }
  // Sends an OK reply whose data is `bytes` bytes of `fd` from `offset`, moved by the kernel.
  // REQUIRES: CanSendFile(); the file holds those bytes and fd stays open until this returns.
  virtual void ReplyFromFile(const std::string& meta, int fd, uint64_t offset, uint32_t bytes) {
    (void)meta, (void)fd, (void)offset, (void)bytes;
    Reply(Status::Internal("this transport cannot send from a file"), {}, nullptr, 0);
  }
  virtual TransportKind kind() const = 0;
  // Who sent it: the identity its connection proved (kAnonymous when the server has no secret).
  virtual const PeerIdentity& peer() const = 0;
};

class CallHandler {
 public:
  virtual ~CallHandler() = default;
  // Runs on a transport receive thread: do not block on I/O here, queue the call instead.
  virtual void OnCall(std::unique_ptr<ServerCall> call) = 0;
};

struct ServerTransportOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;                   // 0: pick a free port
  BufferPool* buffers = nullptr;       // request payloads are received into these
  uint32_t frameTimeoutMs = limits::kServerFrameTimeoutMsDefault;
  uint32_t connectionsMax = limits::kServerConnectionsMax;
  // With it, every connection must authenticate (auth_handshake.h) before anything else;
  // without it, none may (a client presenting credentials is refused).
  std::shared_ptr<const ServerAuth> auth;
  // Called with the socket of a new connection whose first 4 bytes (after authentication)
  // were kRdmaHandshakeMagic (consumed), and the peer it authenticated as; empty means such
  // connections are refused. See rdma/rdma_transport.h.
  std::function<void(UniqueFd, const PeerIdentity&)> upgrade;
};

class ServerTransport {
 public:
  virtual ~ServerTransport() = default;
  virtual Status Start(const ServerTransportOptions& options, CallHandler* handler) = 0;
  virtual uint16_t port() const = 0;
  // Closes the listener and every connection; returns when no transport thread runs.
  virtual void Stop() = 0;
  virtual TransportKind kind() const = 0;
  virtual const TransportCounters& counters() const = 0;
};

// ------------------------------------------------------------------ client side

// One request sent by a client. The caller fills the request part and keeps `payload` and
// the reply buffers alive until `done` runs; the transport fills the reply part and calls
// `done` exactly once, on one of its threads.
struct ClientCall {
  // request
  uint8_t opcode = 0;
  std::string meta;
  const char* payload = nullptr;  // write data
  uint32_t payloadBytes = 0;
  std::vector<struct iovec> replyData;  // where reply data lands, in order
  uint32_t timeoutMs = limits::kClientTimeoutMsDefault;
  // Set to true (by anyone, at any time) to give up on the call before its timeout: unless
  // its reply is already arriving, the transport completes it with kTimedOut within about
  // limits::kTimerTickMs and discards a late reply, as after a timeout. A call whose request
  // is still being written to a stalled peer ends with that connection. Null: never.
  // Callers abandon a read answered by another replica (hedged reads) and requests to a
  // target the routing took out of the chain.
  std::shared_ptr<const std::atomic<bool>> abandon;
  bool abandoned() const { return abandon && abandon->load(std::memory_order_relaxed); }
  // reply
  Status status;                  // transport failure, or the server's status and message
  std::string replyMeta;
  uint32_t replyDataBytes = 0;    // bytes placed into replyData
  TransportKind carriedBy = TransportKind::kTcp;
  std::function<void(ClientCall*)> done;

  uint64_t bytesInFlight() const;  // what this call counts against the in-flight budget
};

struct ClientTransportOptions {
  size_t inflightBytesMax = limits::kClientInflightBytesDefault;
  uint32_t connectTimeoutMs = limits::kClientConnectTimeoutMs;
  uint32_t connectionsPerServer = 1;
  // Presented on every new connection (auth_handshake.h); kAnonymous: none (servers without a secret).
  ClientCredentials credentials;
};

class ClientTransport {
 public:
  virtual ~ClientTransport() = default;
  // Sends `call` to `address` ("host:port"), connecting on first use. Never blocks on the
  // network: a full queue completes the call with kBusy, a dead peer with kConnReset.
  virtual void Submit(const std::string& address, ClientCall* call) = 0;
  // Fails every call in flight with kClosed and joins the transport's threads.
  virtual void Close() = 0;
  virtual TransportKind kind() const = 0;
  virtual const TransportCounters& counters() const = 0;
};

std::unique_ptr<ServerTransport> NewTcpServerTransport();
std::unique_ptr<ClientTransport> NewTcpClientTransport(const ClientTransportOptions& options);

}  // namespace millpond
