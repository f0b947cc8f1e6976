#include "addon/js_bridge.h"

#include <cstring>

namespace millpond::addon {

namespace {
struct InstanceData {
  Napi::FunctionReference errorClass;
};
InstanceData* Data(Napi::Env env) {
  InstanceData* d = env.GetInstanceData<InstanceData>();
  if (!d) {
    d = new InstanceData;
    env.SetInstanceData(d);
  }
  return d;
}
}  // namespace

void SetErrorClass(Napi::Env env, Napi::Function ctor) { Data(env)->errorClass = Napi::Persistent(ctor); }

Napi::Value MakeError(Napi::Env env, const Status& status) {
  Napi::String code = Napi::String::New(env, status.CodeName());
  Napi::String message = Napi::String::New(env, status.message());
  InstanceData* d = Data(env);
  if (!d->errorClass.IsEmpty()) return d->errorClass.New({code, message});
  Napi::Error e = Napi::Error::New(env, status.message());
  e.Set("code", code);
  return e.Value();
}

void ThrowStatus(Napi::Env env, const Status& status) {
  Napi::Error(env, MakeError(env, status)).ThrowAsJavaScriptException();
}

Napi::Value ThrowType(Napi::Env env, const std::string& message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

bool GetChunkId(Napi::Value v, ChunkId* out) {
  if (!v.IsObject()) return false;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value inode = o.Get("inode"), index = o.Get("index");
  if (inode.IsBigInt()) {
    bool lossless = true;
    out->inode = inode.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) return false;
  } else if (inode.IsNumber()) {
    double d = inode.As<Napi::Number>().DoubleValue();
    if (d < 0 || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) return false;
    out->inode = static_cast<uint64_t>(d);
  } else {
    return false;
  }
  if (!index.IsNumber()) return false;
  double i = index.As<Napi::Number>().DoubleValue();
  if (i < 0 || i > 4294967295.0 || i != static_cast<double>(static_cast<uint32_t>(i))) return false;
  out->index = static_cast<uint32_t>(i);
  return true;
}

Napi::Object ChunkIdToJs(Napi::Env env, const ChunkId& id) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("inode", Napi::BigInt::New(env, id.inode));
  o.Set("index", Napi::Number::New(env, id.index));
  return o;
}

Napi::Object ChunkMetaToJs(Napi::Env env, const ChunkMeta& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("commitVersion", Napi::Number::New(env, static_cast<double>(m.commitVersion)));
  o.Set("updateVersion", Napi::Number::New(env, static_cast<double>(m.updateVersion)));
  o.Set("length", Napi::Number::New(env, m.length));
  o.Set("checksum", Napi::Number::New(env, m.checksum));
  return o;
}

Napi::Object CountersToJs(Napi::Env env, const TransportCounters& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytesSent", Napi::Number::New(env, static_cast<double>(c.bytesSent.load())));
  o.Set("bytesReceived", Napi::Number::New(env, static_cast<double>(c.bytesReceived.load())));
  o.Set("messagesSent", Napi::Number::New(env, static_cast<double>(c.messagesSent.load())));
  o.Set("messagesReceived", Napi::Number::New(env, static_cast<double>(c.messagesReceived.load())));
  o.Set("connectionsOpened", Napi::Number::New(env, static_cast<double>(c.connectionsOpened.load())));
  o.Set("protocolErrors", Napi::Number::New(env, static_cast<double>(c.protocolErrors.load())));
  return o;
}

bool GetCapability(Napi::Value v, Capability* out, bool* has) {
  *has = false;
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsBuffer()) return false;
  auto b = v.As<Napi::Buffer<uint8_t>>();
  if (b.Length() != kCapabilityBytes) return false;
  *out = Capability::Decode(b.Data());
  *has = true;
  return true;
}

bool GetCredentials(Napi::Value v, ClientCredentials* out) {
  *out = ClientCredentials();
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsObject()) return false;
  Napi::Object o = v.As<Napi::Object>();
  std::string kind = o.Get("kind").ToString().Utf8Value();
  Napi::Value key = o.Get("key");
  if (!key.IsBuffer() || key.As<Napi::Buffer<uint8_t>>().Length() != kAuthKeyBytes || !o.Get("id").IsNumber()) return false;
  std::memcpy(out->key.bytes, key.As<Napi::Buffer<uint8_t>>().Data(), kAuthKeyBytes);
  out->id = o.Get("id").As<Napi::Number>().Uint32Value();
  out->refuseEncryption = o.Get("refuseEncryption").ToBoolean();
  if (kind == "node") {
    out->kind = PeerKind::kNode;
    return true;
  }
  if (kind != "token") return false;
  out->kind = PeerKind::kClient;
  std::string hex = o.Get("tokenId").ToString().Utf8Value();
  if (hex.size() != 16) return false;
  uint64_t id = 0;
  for (char c : hex) {
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    id = id << 4 | static_cast<uint64_t>(d);
  }
  out->tokenId = id;
  return true;
}

bool GetClusterSecret(Napi::Value v, uint8_t out[kClusterSecretBytes], bool* has) {
  *has = false;
  if (v.IsUndefined() || v.IsNull()) return true;
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != kClusterSecretBytes) return false;
  std::memcpy(out, v.As<Napi::Buffer<uint8_t>>().Data(), kClusterSecretBytes);
  *has = true;
  return true;
}

uint32_t GetU32(Napi::Object o, const char* key, uint32_t fallback) {
  Napi::Value v = o.Get(key);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : fallback;
}

namespace {
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<Status()> execute,
                std::function<Napi::Value(Napi::Env)> onOk, std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env, "millpond"), deferred_(Napi::Promise::Deferred::New(env)),
        execute_(std::move(execute)), onOk_(std::move(onOk)) {
    for (auto& v : keep) keep_.emplace_back(Napi::Persistent(v.As<Napi::Object>()));
  }
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { status_ = execute_(); }
  void OnOK() override {
    Napi::Env env = Env();
    if (status_.ok()) deferred_.Resolve(onOk_ ? onOk_(env) : env.Undefined());
    else deferred_.Reject(MakeError(env, status_));
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<Status()> execute_;
  std::function<Napi::Value(Napi::Env)> onOk_;
  std::vector<Napi::ObjectReference> keep_;
  Status status_;
};
}  // namespace

Napi::Promise RunAsync(Napi::Env env, std::function<Status()> execute,
                       std::function<Napi::Value(Napi::Env)> onOk, std::vector<Napi::Value> keep) {
  auto* w = new PromiseWorker(env, std::move(execute), std::move(onOk), std::move(keep));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

CompletionQueue::CompletionQueue(Napi::Env env) : env_(env), life_(new TsfnLife) {
  tsfn_ = Tsfn::New(env, "millpond completions", 0, 1, this,
                    [](Napi::Env, TsfnLife* life, CompletionQueue*) {
                      if (life->ownerGone) delete life;
                      else life->finalized = true;
                    },
                    life_);
  tsfn_.Unref(env);
}

CompletionQueue::~CompletionQueue() {
  if (life_->finalized) {  // the environment is shutting down and already closed it
    delete life_;
    return;
  }
  life_->ownerGone = true;
  tsfn_.Release();
}

void CompletionQueue::Post(std::function<void(Napi::Env)> fn) {
  bool schedule = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(fn));
    if (!scheduled_) schedule = scheduled_ = true;
  }
  if (schedule) tsfn_.NonBlockingCall();
}

void CompletionQueue::Drain(Napi::Env env, Napi::Function, CompletionQueue* self, void*) {
  if (env == nullptr) return;  // the environment is going away
  std::vector<std::function<void(Napi::Env)>> batch;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    batch.swap(self->queue_);
    self->scheduled_ = false;
  }
  Napi::HandleScope scope(env);
  for (auto& fn : batch) fn(env);
}

void CompletionQueue::Begin() {
  if (active_++ == 0) tsfn_.Ref(env_);
}

void CompletionQueue::End() {
  if (--active_ == 0) tsfn_.Unref(env_);
}

void PendingPromise::Settle(Napi::Env env, const Status& s, const std::function<Napi::Value(Napi::Env)>& value) {
  if (s.ok()) deferred.Resolve(value ? value(env) : env.Undefined());
  else deferred.Reject(MakeError(env, s));
  delete this;
}

}  // namespace millpond::addon
