// JS classes FileClientHandle and FileHandleHandle: the native FileClient (client/file_client.h)
// under the TS FileSystem. TS keeps meta, sessions and capability renewal and attaches each
// file it opened; the bytes move here. Calls block in the FileClient, so they run on the
// wrap's own threads (never the libuv pool: an embedded cluster's chunk store works there,
// and a read waiting on it must not hold the thread it needs). Buffers are used in place and
// kept alive until their call settles.
#include "addon/wraps.h"
#include "common/work_queue.h"

namespace millpond::addon {

namespace {

// { id: bigint, length, mtimeMs, layout: { chunkSizeBytes, stripeSize, chainTableId,
//   chainTableVersion, seed } } -> an Inode of a regular file. False when malformed.
bool GetFileInode(Napi::Value v, Inode* out) {
  if (!v.IsObject()) return false;
  Napi::Object o = v.As<Napi::Object>();
  Napi::Value id = o.Get("id");
  Napi::Value layout = o.Get("layout");
  if (!id.IsBigInt() || !layout.IsObject() || !o.Get("length").IsNumber()) return false;
  bool lossless = false;
  out->id = id.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) return false;
  out->type = FileType::kFile;
  double length = o.Get("length").As<Napi::Number>().DoubleValue();
  if (length < 0 || length > static_cast<double>(limits::kFileLengthBytesMax)) return false;
  out->lengthBytes = static_cast<uint64_t>(length);
  out->mtimeMs = o.Get("mtimeMs").IsNumber() ? o.Get("mtimeMs").As<Napi::Number>().Int64Value() : 0;
  Napi::Object l = layout.As<Napi::Object>();
  out->layout.chunkSizeBytes = GetU32(l, "chunkSizeBytes", 0);
  out->layout.stripeSize = GetU32(l, "stripeSize", 0);
  out->layout.chainTableId = GetU32(l, "chainTableId", 0);
  out->layout.chainTableVersion = GetU32(l, "chainTableVersion", 0);
  out->layout.hasSeed = l.Get("seed").IsNumber();
  out->layout.seed = GetU32(l, "seed", 0);
  return true;
}

// A byte position: an integer in [0, kFileLengthBytesMax].
bool GetPosition(double d, uint64_t* out) {
  if (d < 0 || d > static_cast<double>(limits::kFileLengthBytesMax) || d != static_cast<double>(static_cast<uint64_t>(d))) {
    return false;
  }
  *out = static_cast<uint64_t>(d);
  return true;
}

bool GetPosition(Napi::Value v, uint64_t* out) { return v.IsNumber() && GetPosition(v.As<Napi::Number>().DoubleValue(), out); }

Napi::Value ResolvedNow(Napi::Env env) {
  auto d = Napi::Promise::Deferred::New(env);
  d.Resolve(env.Undefined());
  return d.Promise();
}

}  // namespace

Napi::Function FileClientWrap::Init(Napi::Env env, Napi::FunctionReference* handleCtor) {
  return DefineClass(env, "FileClientHandle",
                     {InstanceMethod<&FileClientWrap::Attach>("attach"),
                      InstanceMethod<&FileClientWrap::InstallCapability>("installCapability"),
                      InstanceMethod<&FileClientWrap::Counters>("counters"),
                      InstanceMethod<&FileClientWrap::Close>("close")},
                     handleCtor);
}

// new FileClientHandle({ mgmtd: string[], mgmtdCurve?: { serverKey, publicKey, secretKey },
//                        credentials?, transport, timeoutMs?, mgmtdTimeoutMs?, routingPollMs?,
//                        writeRetryMs?, readAheadBytes?, chunksInflight?, connectionsPerServer? })
// Out-of-range tuning is EINVAL from FileClient::Create / ChunkClient::Create.
// mgmtdCurve: the CURVE keys (Z85) of the mgmtd connections; credentials: the data plane's.
FileClientWrap::FileClientWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<FileClientWrap>(info), handleCtor_(static_cast<Napi::FunctionReference*>(info.Data())) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject() || !info[0].As<Napi::Object>().Get("mgmtd").IsArray()) {
    ThrowType(env, "new FileClientHandle({ mgmtd: string[], token?, serverKey?, transport })");
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  FileClientOptions options;
  Napi::Array mgmtd = o.Get("mgmtd").As<Napi::Array>();
  for (uint32_t i = 0; i < mgmtd.Length(); i++) options.mgmtd.rpc.endpoints.push_back(mgmtd.Get(i).ToString().Utf8Value());
  options.writeBehindBytes = 0;  // a TS write resolves once every replica committed
  options.chunks.timeoutMs = GetU32(o, "timeoutMs", options.chunks.timeoutMs);
  options.mgmtd.rpc.timeoutMs = GetU32(o, "mgmtdTimeoutMs", options.mgmtd.rpc.timeoutMs);
  options.routingPollMs = GetU32(o, "routingPollMs", options.routingPollMs);
  options.writeRetryMs = GetU32(o, "writeRetryMs", options.writeRetryMs);
  options.chunksInflight = GetU32(o, "chunksInflight", options.chunksInflight);
  options.chunks.connectionsPerServer = GetU32(o, "connectionsPerServer", options.chunks.connectionsPerServer);
  if (!GetCredentials(o.Get("credentials"), &options.chunks.credentials)) {
    ThrowType(env, "credentials must be { kind: 'node' | 'token', id, tokenId?, key: 32-byte Buffer }");
    return;
  }
  if (o.Get("readAheadBytes").IsNumber()) {
    options.readAheadBytes = static_cast<size_t>(o.Get("readAheadBytes").As<Napi::Number>().Int64Value());
  }
  if (o.Get("mgmtdCurve").IsObject()) {
    Napi::Object curve = o.Get("mgmtdCurve").As<Napi::Object>();
    options.mgmtd.rpc.curveServerKey = curve.Get("serverKey").ToString().Utf8Value();
    options.mgmtd.rpc.curvePublicKey = curve.Get("publicKey").ToString().Utf8Value();
    options.mgmtd.rpc.curveSecretKey = curve.Get("secretKey").ToString().Utf8Value();
  }
  Status s = ParseTransportChoice(o.Get("transport").ToString().Utf8Value(), &options.chunks.transport);
  std::unique_ptr<FileClient> client;
  if (s.ok()) s = FileClient::Create(options, &client);
  if (!s.ok()) {
    ThrowStatus(env, s);
    return;
  }
  client_ = std::move(client);
  workers_ = std::make_unique<WorkQueue>(limits::kFileClientCallThreads, limits::kFileClientQueuedCallsMax);
  completions_ = std::make_unique<CompletionQueue>(env);
}

FileClientWrap::~FileClientWrap() {
  if (workers_) workers_->Stop();  // no call is in flight: each keeps this object alive
}

// attach(inode, path, writable, capability?) -> FileHandleHandle
Napi::Value FileClientWrap::Attach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpenResult r;
  if (!GetFileInode(info[0], &r.inode) || !info[1].IsString() || !info[2].IsBoolean() ||
      !GetCapability(info[3], &r.capability, &r.hasCapability)) {
    return ThrowType(env, "attach(inode, path, writable, capability?)");
  }
  std::unique_ptr<FileHandle> handle;
  Status s = client_ ? client_->Attach(r, info[1].As<Napi::String>().Utf8Value(), info[2].As<Napi::Boolean>().Value(), &handle)
                     : Status::Closed("the file client is closed");
  if (!s.ok()) {
    ThrowStatus(env, s);
    return env.Undefined();
  }
  Napi::Object js = handleCtor_->New({});
  FileHandleWrap* wrap = FileHandleWrap::Unwrap(js);
  wrap->owner_ = Napi::Persistent(Value());
  wrap->client_ = client_;
  wrap->handle_ = std::move(handle);
  return js;
}

// installCapability(capability): a renewed capability of a file with attached handles.
Napi::Value FileClientWrap::InstallCapability(const Napi::CallbackInfo& info) {
  Capability cap;
  bool has = false;
  if (!GetCapability(info[0], &cap, &has) || !has) return ThrowType(info.Env(), "installCapability(capability)");
  if (client_) client_->InstallCapability(cap);
  return info.Env().Undefined();
}

// counters() -> { chunkReads, ..., bytesWritten }: FileClientCounters since the client started,
// named as kFileClientCounterFields does (all zero once closed).
Napi::Value FileClientWrap::Counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  FileClientCounters zero;
  const FileClientCounters& c = client_ ? client_->counters() : zero;
  for (const FileClientCounterField& f : kFileClientCounterFields)
    out.Set(f.camelName, Napi::Number::New(env, static_cast<double>((c.*f.member).load(std::memory_order_relaxed))));
  return out;
}

// close(): lets the client go once no attached handle holds it (FileHandleHandle.close).
Napi::Value FileClientWrap::Close(const Napi::CallbackInfo& info) {
  client_.reset();
  return info.Env().Undefined();
}

Napi::Value FileClientWrap::Run(Napi::Env env, Napi::Object self, std::vector<Napi::Value> keep,
                                std::function<Status()> work, std::function<Napi::Value(Napi::Env)> value) {
  auto* p = new PendingPromise(env);
  Napi::Promise promise = p->deferred.Promise();
  p->Keep(self);  // the handle, which keeps this client wrap and its workers alive
  for (Napi::Value& v : keep) p->Keep(v);
  completions_->Begin();
  CompletionQueue* completions = completions_.get();
  bool queued = workers_->TryPush([p, completions, work = std::move(work), value = std::move(value)]() {
    Status s = work();
    completions->Post([p, completions, s, value](Napi::Env env) {
      completions->End();
      p->Settle(env, s, value);
    });
  });
  if (!queued) {
    completions_->End();
    p->Settle(env, Status::Busy("too many file calls queued (" + std::to_string(limits::kFileClientQueuedCallsMax) + ")"),
              nullptr);
  }
  return promise;
}

// ---------------------------------------------------------------- FileHandleHandle

Napi::Function FileHandleWrap::Init(Napi::Env env) {
  return DefineClass(env, "FileHandleHandle",
                     {InstanceMethod<&FileHandleWrap::Read>("read"),
                      InstanceMethod<&FileHandleWrap::ReadBatch>("readBatch"),
                      InstanceMethod<&FileHandleWrap::Write>("write"),
                      InstanceMethod<&FileHandleWrap::Close>("close")});
}

FileHandleWrap::FileHandleWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FileHandleWrap>(info) {}

FileHandleWrap::~FileHandleWrap() {
  handle_.reset();  // before the client it belongs to
  client_.reset();
}

Status FileHandleWrap::Check(std::shared_ptr<FileHandle>* handle) {
  if (!handle_) return Status::Closed("file handle is closed");
  *handle = handle_;
  return Status::OK();
}

FileClientWrap* FileHandleWrap::owner() { return FileClientWrap::Unwrap(owner_.Value()); }

// read(position, target) -> bytes read (clipped to the file's length as this handle knows it)
Napi::Value FileHandleWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t position = 0;
  if (!GetPosition(info[0], &position) || !info[1].IsBuffer()) return ThrowType(env, "read(position, target)");
  std::shared_ptr<FileHandle> handle;
  Status s = Check(&handle);
  if (!s.ok()) return RejectNow(env, s);
  auto target = info[1].As<Napi::Buffer<char>>();
  char* dst = target.Data();
  size_t length = target.Length();
  auto bytesRead = std::make_shared<size_t>(0);
  return owner()->Run(env, Value(), {target}, [=] { return handle->Read(position, length, dst, bytesRead.get()); },
                      [bytesRead](Napi::Env env) { return Napi::Number::New(env, static_cast<double>(*bytesRead)); });
}

// readBatch(positions: Float64Array, lengths: Uint32Array, target): read i lands at the sum of
// the lengths before it. REQUIRES (TS bounds them): every read lies within the file.
Napi::Value FileHandleWrap::ReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray() || !info[2].IsBuffer() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
    return ThrowType(env, "readBatch(positions: Float64Array, lengths: Uint32Array, target)");
  }
  auto positions = info[0].As<Napi::Float64Array>();
  auto lengths = info[1].As<Napi::Uint32Array>();
  auto target = info[2].As<Napi::Buffer<char>>();
  if (positions.ElementLength() != lengths.ElementLength()) return ThrowType(env, "readBatch: one length per position");
  std::vector<FileHandle::Range> ranges(positions.ElementLength());
  uint64_t at = 0;
  for (size_t i = 0; i < ranges.size(); i++) {
    if (!GetPosition(positions[i], &ranges[i].offset)) return ThrowType(env, "readBatch: bad position");
    ranges[i].lengthBytes = lengths[i];
    ranges[i].dst = target.Data() + at;
    at += lengths[i];
  }
  if (at > target.Length()) return ThrowType(env, "readBatch: the target is shorter than the reads");
  std::shared_ptr<FileHandle> handle;
  Status s = Check(&handle);
  if (!s.ok()) return RejectNow(env, s);
  return owner()->Run(env, Value(), {target}, [handle, ranges = std::move(ranges)] { return handle->ReadBatch(ranges); },
                      nullptr);
}

// write(position, data): resolves once every replica of every touched chunk committed.
Napi::Value FileHandleWrap::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t position = 0;
  if (!GetPosition(info[0], &position) || !info[1].IsBuffer()) return ThrowType(env, "write(position, data)");
  std::shared_ptr<FileHandle> handle;
  Status s = Check(&handle);
  if (!s.ok()) return RejectNow(env, s);
  auto data = info[1].As<Napi::Buffer<char>>();
  const char* src = data.Data();
  size_t length = data.Length();
  return owner()->Run(env, Value(), {data}, [=] { return handle->Write(position, src, length); }, nullptr);
}

// close(): flushes and lets the native handle go (TS ends the meta session itself).
Napi::Value FileHandleWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::shared_ptr<FileHandle> handle = std::move(handle_);
  if (!handle) return ResolvedNow(env);
  std::shared_ptr<FileClient> client = std::move(client_);
  // The last reference to the handle (and perhaps the client) goes on the worker thread,
  // whose destructors may wait for prefetches and transports; never on the JS thread.
  return owner()->Run(env, Value(), {}, [handle = std::move(handle), client = std::move(client)]() mutable {
    Status s = handle->Close();
    handle.reset();
    client.reset();
    return s;
  }, nullptr);
}

}  // namespace millpond::addon
