// JS class ChunkClientHandle: a ChunkClient whose callbacks (on transport threads) are
// delivered to the JS thread through a CompletionQueue. Buffers passed in are used in place
// (no copies) and kept alive until their operation settles.
#include "addon/wraps.h"

namespace millpond::addon {

namespace {

// Reads the address argument; false for anything but a non-empty string.
bool GetAddress(const Napi::CallbackInfo& info, std::string* out) {
  if (!info[0].IsString()) return false;
  *out = info[0].As<Napi::String>().Utf8Value();
  return !out->empty();
}

}  // namespace

Napi::Value RejectNow(Napi::Env env, const Status& status) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Reject(MakeError(env, status));
  return d.Promise();
}

Napi::Array ListToJs(Napi::Env env, const std::vector<ChunkListEntry>& entries) {
  Napi::Array a = Napi::Array::New(env, entries.size());
  for (size_t i = 0; i < entries.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("chunk", ChunkIdToJs(env, entries[i].chunk));
    o.Set("meta", ChunkMetaToJs(env, entries[i].meta));
    o.Set("corrupt", Napi::Boolean::New(env, entries[i].corrupt));
    o.Set("chainId", Napi::Number::New(env, entries[i].chainId));
    a.Set(i, o);
  }
  return a;
}

Napi::Function ChunkClientWrap::Init(Napi::Env env) {
  return DefineClass(env, "ChunkClientHandle",
                     {InstanceMethod<&ChunkClientWrap::Read>("read"),
                      InstanceMethod<&ChunkClientWrap::Write>("write"),
                      InstanceMethod<&ChunkClientWrap::BatchRead>("batchRead"),
                      InstanceMethod<&ChunkClientWrap::Stat>("stat"),
                      InstanceMethod<&ChunkClientWrap::Commit>("commit"),
                      InstanceMethod<&ChunkClientWrap::Remove>("remove"),
                      InstanceMethod<&ChunkClientWrap::List>("list"),
                      InstanceMethod<&ChunkClientWrap::Ping>("ping"),
                      InstanceMethod<&ChunkClientWrap::Stats>("stats"),
                      InstanceMethod<&ChunkClientWrap::Abandon>("abandon"),
                      InstanceMethod<&ChunkClientWrap::Close>("close")});
}

// new ChunkClientHandle({ transport, inflightBytesMax, timeoutMs, connectionsPerServer, localReads,
//                         credentials? })
ChunkClientWrap::ChunkClientWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChunkClientWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) {
    ThrowType(env, "new ChunkClientHandle(options)");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  ChunkClientOptions options;
  options.inflightBytesMax = static_cast<size_t>(o.Get("inflightBytesMax").ToNumber().Int64Value());
  options.timeoutMs = GetU32(o, "timeoutMs", limits::kClientTimeoutMsDefault);
  options.connectionsPerServer = GetU32(o, "connectionsPerServer", 1);
  if (o.Has("localReads") && !o.Get("localReads").ToBoolean()) options.localReadThreads = 0;
  if (!GetCredentials(o.Get("credentials"), &options.credentials)) {
    ThrowType(env, "credentials must be { kind: 'node' | 'token', id, tokenId?, key: 32-byte Buffer }");
    return;
  }
  Status s = ParseTransportChoice(o.Get("transport").ToString().Utf8Value(), &options.transport);
  if (s.ok()) s = ChunkClient::Create(options, &client_);
  if (!s.ok()) {
    ThrowStatus(env, s);
    return;
  }
  completions_ = std::make_unique<CompletionQueue>(env);
}

ChunkClientWrap::~ChunkClientWrap() {
  if (client_) client_->Close();  // callbacks after this find no JS to settle: drop them
}

PendingPromise* ChunkClientWrap::Begin(Napi::Env env, Napi::Value* early) {
  if (!client_) {
    *early = RejectNow(env, Status::Closed("chunk client is closed"));
    return nullptr;
  }
  completions_->Begin();
  auto* p = new PendingPromise(env);
  p->Keep(Value());  // this handle outlives every operation it started
  return p;
}

ChunkClient::Abandon ChunkClientWrap::TokenFlag(Napi::Value value, uint64_t* token) {
  *token = value.IsNumber() ? static_cast<uint64_t>(value.As<Napi::Number>().Int64Value()) : 0;
  if (*token == 0) return nullptr;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  std::lock_guard<std::mutex> lock(tokensMu_);
  tokens_[*token] = flag;
  return flag;
}

Napi::Value ChunkClientWrap::Abandon(const Napi::CallbackInfo& info) {
  if (!info[0].IsNumber()) return ThrowType(info.Env(), "abandon(token)");
  const uint64_t token = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  std::lock_guard<std::mutex> lock(tokensMu_);
  auto it = tokens_.find(token);
  if (it != tokens_.end()) it->second->store(true);
  return info.Env().Undefined();
}

void ChunkClientWrap::Finish(PendingPromise* p, const Status& s, std::function<Napi::Value(Napi::Env)> value,
                             uint64_t token) {
  if (token != 0) {
    std::lock_guard<std::mutex> lock(tokensMu_);
    tokens_.erase(token);
  }
  CompletionQueue* q = completions_.get();
  q->Post([p, s, value = std::move(value), q](Napi::Env env) {
    p->Settle(env, s, value);
    q->End();
  });
}

// read(address, chunk, offset, target: Buffer, uncommitted, capability?, token?)
//   -> Promise<{ bytesRead, meta }>
Napi::Value ChunkClientWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  ChunkId id;
  Capability cap;
  bool hasCap = false;
  if (!GetAddress(info, &address) || !GetChunkId(info[1], &id) || !info[2].IsNumber() || !info[3].IsBuffer() ||
      !GetCapability(info[5], &cap, &hasCap))
    return ThrowType(env, "read(address, chunk, offset, target, uncommitted, capability?, token?)");
  auto target = info[3].As<Napi::Buffer<char>>();
  if (target.Length() > limits::kFrameDataBytesMax) return ThrowType(env, "read target exceeds one message");
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  p->Keep(target);
  frame::ReadArgs a;
  a.chunk = id;
  a.offset = info[2].As<Napi::Number>().Uint32Value();
  a.length = static_cast<uint32_t>(target.Length());
  a.flags = info[4].ToBoolean() ? frame::kReadUncommitted : 0;
  Napi::Promise promise = p->deferred.Promise();
  uint64_t token;
  ChunkClient::Abandon abandon = TokenFlag(info[6], &token);
  client_->Read(address, a, target.Data(), [this, p, token](const Status& s, const ChunkMeta& meta, uint32_t n) {
    Finish(p, s, [meta, n](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("bytesRead", Napi::Number::New(env, n));
      o.Set("meta", ChunkMetaToJs(env, meta));
      return o;
    }, token);
  }, hasCap ? &cap : nullptr, abandon);
  return promise;
}

// write(address, chunk, offset, data: Buffer,
//       { updateVersion, commit, replace, chunkSizeBytes, capability?, token? })
//   -> Promise<ChunkMeta>
Napi::Value ChunkClientWrap::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  ChunkId id;
  if (!GetAddress(info, &address) || !GetChunkId(info[1], &id) || !info[2].IsNumber() || !info[3].IsBuffer() ||
      !info[4].IsObject())
    return ThrowType(env, "write(address, chunk, offset, data, options)");
  auto data = info[3].As<Napi::Buffer<char>>();
  if (data.Length() > limits::kFrameDataBytesMax) return ThrowType(env, "write data exceeds one message");
  Napi::Object o = info[4].As<Napi::Object>();
  Capability cap;
  bool hasCap = false;
  if (!GetCapability(o.Get("capability"), &cap, &hasCap)) return ThrowType(env, "capability must be a 36-byte Buffer");
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  p->Keep(data);
  frame::WriteArgs a;
  a.chunk = id;
  a.offset = info[2].As<Napi::Number>().Uint32Value();
  a.length = static_cast<uint32_t>(data.Length());
  a.updateVersion = static_cast<uint64_t>(o.Get("updateVersion").ToNumber().Int64Value());
  a.flags = (o.Get("commit").ToBoolean() ? frame::kWriteCommit : 0) |
            (o.Get("replace").ToBoolean() ? frame::kWriteReplace : 0);
  a.chunkSizeBytes = GetU32(o, "chunkSizeBytes", 0);
  Napi::Value chain = o.Get("chain");  // { chainId, chainVersion, clientId, requestId }: a CRAQ write
  if (chain.IsObject()) {
    Napi::Object c = chain.As<Napi::Object>();
    a.flags |= frame::kWriteChain;
    a.chainId = GetU32(c, "chainId", 0);
    a.chainVersion = GetU32(c, "chainVersion", 0);
    a.clientId = static_cast<uint64_t>(c.Get("clientId").ToNumber().Int64Value());
    a.requestId = static_cast<uint64_t>(c.Get("requestId").ToNumber().Int64Value());
  }
  Napi::Promise promise = p->deferred.Promise();
  uint64_t token;
  ChunkClient::Abandon abandon = TokenFlag(o.Get("token"), &token);
  client_->Write(address, a, data.Data(), [this, p, token](const Status& s, const ChunkMeta& meta) {
    Finish(p, s, [meta](Napi::Env env) -> Napi::Value { return ChunkMetaToJs(env, meta); }, token);
  }, hasCap ? &cap : nullptr, abandon);
  return promise;
}

// batchRead(address, reads: Array<{ chunk, offset, length, bufferOffset }>, target: Buffer,
//           capabilities?: Buffer[] (one per inode read))
//   -> Promise<Array<{ bytesRead, code }>>   (code is null for a successful entry)
Napi::Value ChunkClientWrap::BatchRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  if (!GetAddress(info, &address) || !info[1].IsArray() || !info[2].IsBuffer())
    return ThrowType(env, "batchRead(address, reads, target)");
  Napi::Array list = info[1].As<Napi::Array>();
  auto target = info[2].As<Napi::Buffer<char>>();
  uint32_t count = list.Length();
  if (count == 0 || count > limits::kBatchReadEntriesMax)
    return ThrowType(env, "a batch holds 1.." + std::to_string(limits::kBatchReadEntriesMax) + " reads");
  std::vector<frame::ReadArgs> reads(count);
  std::vector<char*> dsts(count);
  for (uint32_t i = 0; i < count; i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsObject()) return ThrowType(env, "reads[" + std::to_string(i) + "] is not an object");
    Napi::Object r = v.As<Napi::Object>();
    if (!GetChunkId(r.Get("chunk"), &reads[i].chunk)) return ThrowType(env, "reads[" + std::to_string(i) + "].chunk");
    reads[i].offset = GetU32(r, "offset", 0);
    reads[i].length = GetU32(r, "length", 0);
    uint64_t at = static_cast<uint64_t>(r.Get("bufferOffset").ToNumber().Int64Value());
    if (at + reads[i].length > target.Length())
      return ThrowType(env, "reads[" + std::to_string(i) + "] does not fit in the target buffer");
    dsts[i] = target.Data() + at;
  }
  std::vector<Capability> caps;
  bool hasCaps = info[3].IsArray();
  if (hasCaps) {
    Napi::Array c = info[3].As<Napi::Array>();
    if (c.Length() > limits::kBatchReadEntriesMax) return ThrowType(env, "too many capabilities");
    for (uint32_t i = 0; i < c.Length(); i++) {
      Capability one;
      bool has = false;
      if (!GetCapability(c.Get(i), &one, &has) || !has) return ThrowType(env, "capabilities[" + std::to_string(i) + "] must be a 36-byte Buffer");
      caps.push_back(one);
    }
  }
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  p->Keep(target);
  Napi::Promise promise = p->deferred.Promise();
  client_->BatchRead(address, reads, dsts, [this, p](const Status& s, const std::vector<BatchReadResult>& results) {
    Finish(p, s, [results](Napi::Env env) -> Napi::Value {
      Napi::Array a = Napi::Array::New(env, results.size());
      for (size_t i = 0; i < results.size(); i++) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("bytesRead", Napi::Number::New(env, results[i].bytesRead));
        o.Set("code", results[i].code == StatusCode::kOk ? env.Null()
                                                          : Napi::String::New(env, Status::CodeName(results[i].code)));
        a.Set(i, o);
      }
      return a;
    });
  }, hasCaps ? &caps : nullptr);
  return promise;
}

Napi::Value ChunkClientWrap::Stat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  ChunkId id;
  Capability cap;
  bool hasCap = false;
  if (!GetAddress(info, &address) || !GetChunkId(info[1], &id) || !GetCapability(info[2], &cap, &hasCap))
    return ThrowType(env, "stat(address, chunk, capability?)");
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  Napi::Promise promise = p->deferred.Promise();
  client_->Stat(address, id, [this, p](const Status& s, const ChunkMeta& meta) {
    Finish(p, s, [meta](Napi::Env env) -> Napi::Value { return ChunkMetaToJs(env, meta); });
  }, hasCap ? &cap : nullptr);
  return promise;
}

Napi::Value ChunkClientWrap::Commit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  frame::CommitArgs a;
  if (!GetAddress(info, &address) || !GetChunkId(info[1], &a.chunk) || !info[2].IsNumber())
    return ThrowType(env, "commit(address, chunk, version)");
  a.version = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  Napi::Promise promise = p->deferred.Promise();
  client_->Commit(address, a, [this, p](const Status& s, const ChunkMeta& meta) {
    Finish(p, s, [meta](Napi::Env env) -> Napi::Value { return ChunkMetaToJs(env, meta); });
  });
  return promise;
}

Napi::Value ChunkClientWrap::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  ChunkId id;
  if (!GetAddress(info, &address) || !GetChunkId(info[1], &id)) return ThrowType(env, "remove(address, chunk)");
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  Napi::Promise promise = p->deferred.Promise();
  client_->Remove(address, id, [this, p](const Status& s) { Finish(p, s, nullptr); });
  return promise;
}

// list(address, after: ChunkId | null, limit) -> Promise<Array<{ chunk, meta, corrupt }>>
Napi::Value ChunkClientWrap::List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  frame::ListArgs a;
  a.hasAfter = !info[1].IsNull() && !info[1].IsUndefined();
  if (!GetAddress(info, &address) || (a.hasAfter && !GetChunkId(info[1], &a.after)) || !info[2].IsNumber())
    return ThrowType(env, "list(address, after, limit)");
  a.limit = info[2].As<Napi::Number>().Uint32Value();
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  Napi::Promise promise = p->deferred.Promise();
  client_->List(address, a, [this, p](const Status& s, const std::vector<ChunkListEntry>& entries) {
    Finish(p, s, [entries](Napi::Env env) -> Napi::Value { return ListToJs(env, entries); });
  });
  return promise;
}

Napi::Value ChunkClientWrap::Ping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string address;
  if (!GetAddress(info, &address)) return ThrowType(env, "ping(address)");
  Napi::Value early;
  PendingPromise* p = Begin(env, &early);
  if (!p) return early;
  Napi::Promise promise = p->deferred.Promise();
  client_->Ping(address, [this, p](const Status& s) { Finish(p, s, nullptr); });
  return promise;
}

Napi::Value ChunkClientWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Object transports = Napi::Object::New(env);
  if (client_) {
    transports.Set("tcp", CountersToJs(env, client_->tcpCounters()));
    if (const TransportCounters* r = client_->rdmaCounters()) transports.Set("rdma", CountersToJs(env, *r));
    if (const LocalReadCounters* l = client_->localCounters()) {
      Napi::Object local = Napi::Object::New(env);
      local.Set("reads", Napi::Number::New(env, static_cast<double>(l->reads.load())));
      local.Set("bytes", Napi::Number::New(env, static_cast<double>(l->bytes.load())));
      local.Set("fallbacks", Napi::Number::New(env, static_cast<double>(l->fallbacks.load())));
      o.Set("localReads", local);
    }
  }
  o.Set("transports", transports);
  return o;
}

// close(): fails what is in flight with ECLOSED (their promises settle) and stops threads.
Napi::Value ChunkClientWrap::Close(const Napi::CallbackInfo& info) {
  if (client_) client_->Close();
  client_.reset();
  return info.Env().Undefined();
}

}  // namespace millpond::addon
