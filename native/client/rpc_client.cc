#include "client/rpc_client.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace millpond {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr long kPollWaitMsMax = 1000;

Status ServerError(const MsgValue& error) {
  const MsgValue* code = error.Find("code");
  const MsgValue* message = error.Find("message");
  std::string text = message && message->is_str() ? message->str() : "";
  std::string name = code && code->is_str() ? code->str() : "";
  StatusCode c;
  if (!Status::CodeFromName(name, &c)) {
    return Status::Protocol("unknown error code " + name + ": " + text);
  }
  return Status(c, std::move(text));
}

}  // namespace

Status RpcClient::Create(const RpcClientOptions& options, std::unique_ptr<RpcClient>* out) {
  if (options.endpoints.empty() || options.endpoints.size() > limits::kRpcServersMax) {
    return Status::InvalidArgument("rpc client needs 1.." + std::to_string(limits::kRpcServersMax) +
                                   " endpoints");
  }
  if (options.timeoutMs < 1) return Status::InvalidArgument("timeoutMs must be positive");
  if (options.attemptsMax < 1) return Status::InvalidArgument("attemptsMax must be positive");
  if (options.inflightRequestsMax < 1 ||
      options.inflightRequestsMax > limits::kRpcInflightRequestsMax) {
    return Status::InvalidArgument("inflightRequestsMax must be in [1, " +
                                   std::to_string(limits::kRpcInflightRequestsMax) + "]");
  }
  const ZmqApi* api = nullptr;
  MP_RETURN_IF_ERROR(LoadZmqApi(&api));
  std::unique_ptr<RpcClient> client(new RpcClient(api, options));
  MP_RETURN_IF_ERROR(client->Open());
  *out = std::move(client);
  return Status::OK();
}

RpcClient::RpcClient(const ZmqApi* api, const RpcClientOptions& options)
    : api_(api), options_(options) {}

RpcClient::~RpcClient() {
  Close();
  for (void* s : monitors_) api_->close(s);
  for (void* s : sockets_) api_->close(s);
  if (ctx_ != nullptr) api_->ctxTerm(ctx_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

Status RpcClient::Open() {
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) return Status::FromErrno(errno, "eventfd");
  ctx_ = api_->ctxNew();
  if (ctx_ == nullptr) return api_->Error("zmq_ctx_new");
  for (const std::string& endpoint : options_.endpoints) {
    void* s = api_->socket(ctx_, zmq::kDealer);
    if (s == nullptr) return api_->Error("zmq_socket");
    sockets_.push_back(s);
    const int linger = 0;
    const int hwm = limits::kRpcSocketHighWaterMarkMessages;
    const int immediate = 1;  // no queueing towards a peer not connected: the timer retries
    const int ivl = limits::kRpcReconnectIntervalMs;
    const int ivlMax = limits::kRpcReconnectIntervalMsMax;
    const int64_t msgMax = static_cast<int64_t>(limits::kMsgFrameBytesHardMax);
    if (api_->setsockopt(s, zmq::kLinger, &linger, sizeof linger) != 0 ||
        api_->setsockopt(s, zmq::kSndHwm, &hwm, sizeof hwm) != 0 ||
        api_->setsockopt(s, zmq::kRcvHwm, &hwm, sizeof hwm) != 0 ||
        api_->setsockopt(s, zmq::kImmediate, &immediate, sizeof immediate) != 0 ||
        api_->setsockopt(s, zmq::kReconnectIvl, &ivl, sizeof ivl) != 0 ||
        api_->setsockopt(s, zmq::kReconnectIvlMax, &ivlMax, sizeof ivlMax) != 0 ||
        api_->setsockopt(s, zmq::kMaxMsgSize, &msgMax, sizeof msgMax) != 0) {
      return api_->Error("zmq_setsockopt");
    }
    if (!options_.curveServerKey.empty()) {
      const std::string* keys[] = {&options_.curveServerKey, &options_.curvePublicKey, &options_.curveSecretKey};
      const int names[] = {zmq::kCurveServerKey, zmq::kCurvePublicKey, zmq::kCurveSecretKey};
      for (int i = 0; i < 3; i++) {
        if (keys[i]->size() != zmq::kCurveKeyZ85Chars) return Status::InvalidArgument("a CURVE key is 40 Z85 characters");
        if (api_->setsockopt(s, names[i], keys[i]->c_str(), zmq::kCurveKeyZ85Chars) != 0) {
          return api_->Error("zmq_setsockopt CURVE (is libzmq built with libsodium?)");
        }
      }
    }
    // The handshake's outcome, which the DEALER itself never reports (ZMQ_IMMEDIATE keeps
    // requests off a connection that failed it, so they would only time out).
    std::string monitorAddress = "inproc://millpond-rpc-monitor-" +
                                 std::to_string(reinterpret_cast<uintptr_t>(this)) + "-" +
                                 std::to_string(sockets_.size());
    if (api_->socketMonitor(s, monitorAddress.c_str(),
                            zmq::kEventConnected | zmq::kEventDisconnected |
                                zmq::kEventHandshakeSucceeded | zmq::kEventHandshakeFailedProtocol |
                                zmq::kEventHandshakeFailedAuth) != 0) {
      return api_->Error("zmq_socket_monitor");
    }
    void* monitor = api_->socket(ctx_, zmq::kPair);
    if (monitor == nullptr) return api_->Error("zmq_socket (monitor)");
    monitors_.push_back(monitor);
    refused_.push_back(Status::OK());
    handshaken_.push_back(false);
    handshakeDrops_.push_back(0);
    if (api_->setsockopt(monitor, zmq::kLinger, &linger, sizeof linger) != 0 ||
        api_->connect(monitor, monitorAddress.c_str()) != 0) {
      return api_->Error("zmq_connect (monitor)");
    }
    if (api_->connect(s, endpoint.c_str()) != 0) {
      Status e = api_->Error("zmq_connect " + endpoint);
      return Status::InvalidArgument(e.message());
    }
  }
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void RpcClient::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    closing_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

std::string RpcClient::CurrentEndpoint() const {
  return options_.endpoints[current_.load() % options_.endpoints.size()];
}

void RpcClient::Wake() {
  uint64_t one = 1;
  ssize_t n = ::write(wakeFd_, &one, sizeof one);
  (void)n;  // a full counter means the thread is already due to wake
}

Status RpcClient::Call(const std::string& method, MsgValue params, MsgValue* result, bool retry) {
  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    Status status;
    MsgValue result;
  };
  auto w = std::make_shared<Waiter>();
  CallAsync(method, std::move(params), retry, [w](const Status& s, MsgValue r) {
    std::lock_guard<std::mutex> lock(w->mu);
    w->status = s;
    w->result = std::move(r);
    w->done = true;
    w->cv.notify_one();
  });
  std::unique_lock<std::mutex> lock(w->mu);
  w->cv.wait(lock, [&] { return w->done; });
  if (w->status.ok() && result != nullptr) *result = std::move(w->result);
  return w->status;
}

void RpcClient::CallAsync(const std::string& method, MsgValue params, bool retry, Done done) {
  if (method.empty() || method.size() > limits::kRpcMethodNameBytesMax) {
    done(Status::InvalidArgument("method name must be 1.." +
                                 std::to_string(limits::kRpcMethodNameBytesMax) + " bytes"),
         MsgValue());
    return;
  }
  if (!params.is_map()) {
    done(Status::InvalidArgument(method + ": params must be a map"), MsgValue());
    return;
  }
  auto p = std::make_unique<Pending>();
  p->requestId = nextRequestId_.fetch_add(1);
  p->method = method;
  p->attemptsMax = retry ? options_.attemptsMax : 1;
  p->done = std::move(done);
  MsgValue envelope = MsgValue::Array();
  envelope.Push(MsgValue::Uint(limits::kProtocolVersion))
      .Push(MsgValue::Uint(p->requestId))
      .Push(MsgValue::Str(method))
      .Push(std::move(params));
  MsgEncode(envelope, &p->frame);
  if (p->frame.size() > limits::kMsgBytesMax) {
    p->done(Status::TooLarge(method + ": request of " + std::to_string(p->frame.size()) +
                             " bytes exceeds " + std::to_string(limits::kMsgBytesMax)),
            MsgValue());
    return;
  }
  Status refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closing_) {
      refused = Status::Closed("rpc client is closed");
    } else if (accepted_ >= limits::kRpcQueuedCallsMax) {
      refused = Status::Busy("rpc client has " + std::to_string(accepted_) +
                             " calls unanswered (limit " +
                             std::to_string(limits::kRpcQueuedCallsMax) + ")");
    } else {
      accepted_++;
      submitted_.push_back(std::move(p));
    }
  }
  if (!refused.ok()) {
    p->done(refused, MsgValue());
    return;
  }
  Wake();
}

void RpcClient::StartAttempt(Pending* p) {
  p->attempt++;
  p->server = current_.load();
  p->sent = false;
  p->deadline = Clock::now() + milliseconds(options_.timeoutMs);
  TrySend(p);
}

void RpcClient::TrySend(Pending* p) {
  int rc = api_->send(sockets_[p->server], p->frame.data(), p->frame.size(), zmq::kDontWait);
  if (rc >= 0) {
    p->sent = true;
    counters_.attempts++;
  }
  // EAGAIN: not connected yet (ZMQ_IMMEDIATE) or the queue is full; retried every
  // kRpcSendRetryMs until the attempt's deadline.
}

void RpcClient::Failover(size_t from) {
  size_t n = sockets_.size();
  if (n > 1 && current_.load() == from) {
    current_.store((from + 1) % n);
    counters_.failovers++;
  }
}

void RpcClient::Finish(uint64_t requestId, const Status& s, MsgValue result) {
  auto it = inflight_.find(requestId);
  if (it == inflight_.end()) return;
  std::unique_ptr<Pending> p = std::move(it->second);
  inflight_.erase(it);
  p->done(s, std::move(result));
  std::lock_guard<std::mutex> lock(mu_);
  accepted_--;
}

void RpcClient::HandleReply(const char* data, size_t size) {
  MsgValue reply;
  Status s = MsgDecode(data, size, &reply);
  uint64_t requestId = 0;
  if (!s.ok() || !reply.is_array() || reply.array().size() != 4 ||
      reply.array()[0] != MsgValue::Uint(limits::kProtocolVersion) ||
      !reply.array()[1].GetUint64(&requestId) || !reply.array()[2].is_bool()) {
    counters_.malformed++;  // can't be matched to a request: its caller times out
    return;
  }
  auto it = inflight_.find(requestId);
  if (it == inflight_.end()) {
    counters_.lateReplies++;  // a reply to an earlier attempt of a settled request
    return;
  }
  Pending* p = it->second.get();
  MsgValue& body = reply.array()[3];
  if (reply.array()[2].bool_value()) {
    Finish(requestId, Status::OK(), std::move(body));
    return;
  }
  if (!body.is_map()) {
    Finish(requestId, Status::Protocol(p->method + ": error reply is not a map"), MsgValue());
    return;
  }
  Status error = ServerError(body);
  if (error.code() == StatusCode::kNotPrimary && p->attempt < p->attemptsMax) {
    Failover(p->server);
    StartAttempt(p);
    return;
  }
  Finish(requestId, error, MsgValue());
}

void RpcClient::Receive(void* socket) {
  for (;;) {
    zmq::Msg msg;
    api_->msgInit(&msg);
    if (api_->msgRecv(&msg, socket, zmq::kDontWait) < 0) {
      api_->msgClose(&msg);
      return;
    }
    bool more = api_->msgMore(&msg) != 0;
    if (!more) {
      HandleReply(static_cast<const char*>(api_->msgData(&msg)), api_->msgSize(&msg));
      api_->msgClose(&msg);
      continue;
    }
    // A multi-frame reply is not ours: drop all its frames.
    counters_.malformed++;
    while (more) {
      api_->msgClose(&msg);
      api_->msgInit(&msg);
      if (api_->msgRecv(&msg, socket, zmq::kDontWait) < 0) break;
      more = api_->msgMore(&msg) != 0;
    }
    api_->msgClose(&msg);
  }
}

void RpcClient::ReceiveEvents(size_t server) {
  for (;;) {
    zmq::Msg msg;
    api_->msgInit(&msg);
    if (api_->msgRecv(&msg, monitors_[server], zmq::kDontWait) < 0) {
      api_->msgClose(&msg);
      return;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (api_->msgSize(&msg) == 6) {
      const char* d = static_cast<const char*>(api_->msgData(&msg));
      std::memcpy(&event, d, sizeof event);
      std::memcpy(&value, d + 2, sizeof value);
    }
    bool more = api_->msgMore(&msg) != 0;
    while (more) {  // the peer's address
      api_->msgClose(&msg);
      api_->msgInit(&msg);
      if (api_->msgRecv(&msg, monitors_[server], zmq::kDontWait) < 0) break;
      more = api_->msgMore(&msg) != 0;
    }
    api_->msgClose(&msg);
    const std::string& endpoint = options_.endpoints[server];
    // Why a handshake can fail for this client, whatever the event that told us.
    const std::string cause = options_.curveServerKey.empty()
                                  ? "it requires a token and this client has none"
                                  : "wrong server key, or the server has no authentication";
    if (event == zmq::kEventConnected) {
      handshaken_[server] = false;
    } else if (event == zmq::kEventHandshakeSucceeded) {
      handshaken_[server] = true;
      handshakeDrops_[server] = 0;
      refused_[server] = Status::OK();
    } else if (event == zmq::kEventDisconnected) {
      if (!handshaken_[server] && ++handshakeDrops_[server] >= limits::kRpcHandshakeDropsMax &&
          refused_[server].ok()) {
        refused_[server] = Status::Auth(endpoint + " failed the security handshake (" + cause +
                                        "; it closed " + std::to_string(handshakeDrops_[server]) +
                                        " connections in a row before the handshake ended)");
      }
      handshaken_[server] = false;
    } else if (event == zmq::kEventHandshakeFailedAuth) {
      refused_[server] = Status::Auth(endpoint + " refused this client's credentials (ZAP status " +
                                      std::to_string(value) + "): a token of another cluster, " +
                                      "a revoked one, or none");
    } else if (event == zmq::kEventHandshakeFailedProtocol) {
      refused_[server] = Status::Auth(endpoint + " failed the security handshake (" + cause +
                                      "; zmq protocol error " + std::to_string(value) + ")");
    }
  }
}

void RpcClient::Loop() {
  const size_t n = sockets_.size();
  std::vector<zmq::PollItem> items(2 * n + 1);
  for (size_t i = 0; i < n; i++) items[i] = {sockets_[i], 0, zmq::kPollIn, 0};
  for (size_t i = 0; i < n; i++) items[n + i] = {monitors_[i], 0, zmq::kPollIn, 0};
  items.back() = {nullptr, wakeFd_, zmq::kPollIn, 0};
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closing_) break;
      while (!submitted_.empty()) {
        waiting_.push_back(std::move(submitted_.front()));
        submitted_.pop_front();
      }
    }
    while (!waiting_.empty() && inflight_.size() < options_.inflightRequestsMax) {
      std::unique_ptr<Pending> p = std::move(waiting_.front());
      waiting_.pop_front();
      Pending* raw = p.get();
      inflight_.emplace(raw->requestId, std::move(p));
      StartAttempt(raw);
    }

    // Timeouts, unsent retries, and how long to wait.
    auto now = Clock::now();
    long waitMs = kPollWaitMsMax;
    std::vector<uint64_t> expired;
    std::vector<uint64_t> refused;  // unsent to an address whose handshake refused us
    for (auto& [id, p] : inflight_) {
      if (p->deadline <= now) {
        expired.push_back(id);
        continue;
      }
      if (!p->sent && !refused_[p->server].ok()) {
        refused.push_back(id);
        continue;
      }
      if (!p->sent) TrySend(p.get());
      long left = static_cast<long>(
          std::chrono::duration_cast<milliseconds>(p->deadline - now).count()) + 1;
      if (!p->sent) left = std::min<long>(left, limits::kRpcSendRetryMs);
      waitMs = std::min(waitMs, left);
    }
    for (uint64_t id : expired) {
      Pending* p = inflight_[id].get();
      counters_.timeouts++;
      if (p->attempt < p->attemptsMax) {
        Failover(p->server);
        StartAttempt(p);
        waitMs = std::min<long>(waitMs, p->sent ? options_.timeoutMs : limits::kRpcSendRetryMs);
        continue;
      }
      Finish(id,
             Status::TimedOut(p->method + " to " + options_.endpoints[p->server] +
                              ": no reply after " + std::to_string(p->attempt) +
                              " attempt(s) of " + std::to_string(options_.timeoutMs) + " ms"),
             MsgValue());
    }
    for (uint64_t id : refused) {
      Pending* p = inflight_[id].get();
      // Another address that has not refused us may still take it; else the refusal is final.
      bool other = false;
      for (size_t i = 0; i < n; i++) other = other || (i != p->server && refused_[i].ok());
      if (other && p->attempt < p->attemptsMax) {
        Failover(p->server);
        StartAttempt(p);
        continue;
      }
      Finish(id, Status::Auth(p->method + ": " + refused_[p->server].message()), MsgValue());
    }
    if (!expired.empty() || !refused.empty()) continue;  // recompute the wait

    for (auto& item : items) item.revents = 0;
    int rc = api_->poll(items.data(), static_cast<int>(items.size()), waitMs);
    if (rc < 0) {
      if (api_->errnum() == zmq::kETerm) break;
      continue;  // EINTR
    }
    if (items.back().revents & zmq::kPollIn) {
      uint64_t count;
      while (::read(wakeFd_, &count, sizeof count) > 0) {
      }
    }
    for (size_t i = 0; i < n; i++) {
      if (items[i].revents & zmq::kPollIn) Receive(sockets_[i]);
      if (items[n + i].revents & zmq::kPollIn) ReceiveEvents(i);
    }
  }

  // Closing: every call not yet answered learns it.
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (!submitted_.empty()) {
      waiting_.push_back(std::move(submitted_.front()));
      submitted_.pop_front();
    }
  }
  Status closed = Status::Closed("rpc client closed");
  for (auto& p : waiting_) p->done(closed, MsgValue());
  for (auto& [id, p] : inflight_) p->done(closed, MsgValue());
  waiting_.clear();
  inflight_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  accepted_ = 0;
}

}  // namespace millpond
