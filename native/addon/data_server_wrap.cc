// JS class DataServerHandle: a DataServer over a ChunkStoreHandle. Requests are served on
// native threads; JS only starts, inspects and stops it.
#include "addon/wraps.h"
#include "common/aead.h"

namespace millpond::addon {

Napi::Function DataServerWrap::Init(Napi::Env env) {
  return DefineClass(env, "DataServerHandle",
                     {InstanceMethod<&DataServerWrap::Port>("port"),
                      InstanceMethod<&DataServerWrap::Stats>("stats"),
                      InstanceMethod<&DataServerWrap::SetChain>("setChain"),
                      InstanceMethod<&DataServerWrap::RemoveChain>("removeChain"),
                      InstanceMethod<&DataServerWrap::Stop>("stop")});
}

// new DataServerHandle(store, { host, port, transport, ioThreads, frameTimeoutMs, clusterSecret?, nodeId?,
//                               localSocketDir?, encryptData? })
// encryptData (needs clusterSecret): every TCP data connection is encrypted (common/aead.h).
DataServerWrap::DataServerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DataServerWrap>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[1].IsObject()) {
    ThrowType(env, "new DataServerHandle(store, options)");
    return;
  }
  store_ = ChunkStoreWrap::Unwrap(info[0].As<Napi::Object>())->store();
  if (!store_) {
    ThrowStatus(env, Status::Closed("chunk store is closed"));
    return;
  }
  Napi::Object o = info[1].As<Napi::Object>();
  DataServerOptions options;
  options.host = o.Get("host").ToString().Utf8Value();
  options.port = static_cast<uint16_t>(GetU32(o, "port", 0));
  options.ioThreads = GetU32(o, "ioThreads", limits::kServerIoThreadsDefault);
  options.frameTimeoutMs = GetU32(o, "frameTimeoutMs", limits::kServerFrameTimeoutMsDefault);
  options.nodeId = GetU32(o, "nodeId", 0);
  if (o.Get("localSocketDir").IsString()) options.localSocketDir = o.Get("localSocketDir").ToString().Utf8Value();
  uint8_t secret[kClusterSecretBytes];
  bool hasSecret = false;
  if (!GetClusterSecret(o.Get("clusterSecret"), secret, &hasSecret)) {
    ThrowType(env, "clusterSecret must be a 32-byte Buffer");
    return;
  }
  const bool encrypt = o.Get("encryptData").ToBoolean();
  if (encrypt && !hasSecret) {
    ThrowStatus(env, Status::InvalidArgument("encryptData needs clusterSecret (the handshake derives the keys)"));
    return;
  }
  if (encrypt) {
    const Aead* aead;
    Status loaded = Aead::Load(&aead);
    if (!loaded.ok()) {
      ThrowStatus(env, Status::Encryption("encryptData: " + loaded.message()));
      return;
    }
  }
  if (hasSecret) {
    auto auth = std::make_shared<ServerAuth>(secret);
    auth->encryptData = encrypt;
    options.auth = std::move(auth);
  }
  Status s = ParseTransportChoice(o.Get("transport").ToString().Utf8Value(), &options.transport);
  std::unique_ptr<DataServer> server;
  if (s.ok()) s = DataServer::Start(store_.get(), options, &server);
  if (!s.ok()) {
    ThrowStatus(env, s);
    return;
  }
  server_ = std::move(server);
}

Napi::Value DataServerWrap::Port(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), server_ ? server_->port() : 0);
}

Napi::Value DataServerWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (!server_) return o;
  DataServerStats s = server_->stats();
  auto n = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
  o.Set("reads", n(s.reads));
  o.Set("writes", n(s.writes));
  o.Set("batchReads", n(s.batchReads));
  o.Set("batchReadEntries", n(s.batchReadEntries));
  o.Set("otherRequests", n(s.others));
  o.Set("bytesRead", n(s.bytesRead));
  o.Set("bytesWritten", n(s.bytesWritten));
  o.Set("errors", n(s.errors));
  o.Set("busyRejections", n(s.busyRejections));
  o.Set("chainWrites", n(s.chainWrites));
  o.Set("forwards", n(s.forwards));
  o.Set("duplicateWrites", n(s.duplicateWrites));
  o.Set("localOpens", n(s.localOpens));
  o.Set("refusals", n(s.refusals));
  o.Set("authFailures", n(s.authFailures));
  o.Set("localSocket", Napi::String::New(env, server_->localSocketName()));
  Napi::Object transports = Napi::Object::New(env);
  transports.Set("tcp", CountersToJs(env, server_->tcpCounters()));
  if (const TransportCounters* r = server_->rdmaCounters()) transports.Set("rdma", CountersToJs(env, *r));
  o.Set("transports", transports);
  o.Set("rdmaEnabled", Napi::Boolean::New(env, server_->rdmaEnabled()));
  return o;
}

// setChain(chainId, { chainVersion, head, successor, successorSyncing })
Napi::Value DataServerWrap::SetChain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsObject()) return ThrowType(env, "setChain(chainId, position)");
  Napi::Object o = info[1].As<Napi::Object>();
  ChainPosition p;
  p.chainVersion = GetU32(o, "chainVersion", 0);
  p.head = o.Get("head").ToBoolean();
  p.successorSyncing = o.Get("successorSyncing").ToBoolean();
  Napi::Value successor = o.Get("successor");
  if (successor.IsString()) p.successor = successor.As<Napi::String>().Utf8Value();
  if (server_) server_->SetChain(info[0].As<Napi::Number>().Uint32Value(), p);
  return env.Undefined();
}

Napi::Value DataServerWrap::RemoveChain(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return ThrowType(env, "removeChain(chainId)");
  if (server_) server_->RemoveChain(info[0].As<Napi::Number>().Uint32Value());
  return env.Undefined();
}

// stop() -> Promise<void>: joins the server's threads off the JS thread.
Napi::Value DataServerWrap::Stop(const Napi::CallbackInfo& info) {
  std::shared_ptr<DataServer> server = std::move(server_);
  std::shared_ptr<ChunkStore> store = std::move(store_);
  return RunAsync(info.Env(), [server, store] {
    if (server) server->Stop();
    return Status::OK();
  }, nullptr);
}

}  // namespace millpond::addon
