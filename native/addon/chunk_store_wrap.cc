// JS class ChunkStoreHandle: a ChunkStore, every method a Promise run off the JS thread.
#include "addon/wraps.h"

namespace millpond::addon {

Napi::Function ChunkStoreWrap::Init(Napi::Env env) {
  return DefineClass(env, "ChunkStoreHandle",
                     {InstanceMethod<&ChunkStoreWrap::Write>("write"),
                      InstanceMethod<&ChunkStoreWrap::Read>("read"),
                      InstanceMethod<&ChunkStoreWrap::Commit>("commit"),
                      InstanceMethod<&ChunkStoreWrap::Remove>("remove"),
                      InstanceMethod<&ChunkStoreWrap::Stat>("stat"),
                      InstanceMethod<&ChunkStoreWrap::List>("list"),
                      InstanceMethod<&ChunkStoreWrap::Usage>("usage"),
                      InstanceMethod<&ChunkStoreWrap::Close>("close")});
}

// new ChunkStoreHandle() is only made by openChunkStore().
ChunkStoreWrap::ChunkStoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ChunkStoreWrap>(info) {}

// openChunkStore(dir, { directIo, syncWrites, capacityBytes }) -> Promise<ChunkStoreHandle>
Napi::Value ChunkStoreWrap::Open(const Napi::CallbackInfo& info, Napi::FunctionReference* ctor) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsObject()) return ThrowType(env, "openChunkStore(dir, options)");
  std::string dir = info[0].As<Napi::String>();
  Napi::Object o = info[1].As<Napi::Object>();
  ChunkStoreOptions options;
  options.directIo = o.Get("directIo").ToBoolean();
  options.syncWrites = o.Get("syncWrites").ToBoolean();
  options.capacityBytes = static_cast<uint64_t>(o.Get("capacityBytes").ToNumber().Int64Value());
  auto slot = std::make_shared<std::shared_ptr<ChunkStore>>();
  return RunAsync(
      env,
      [dir, options, slot] {
        std::unique_ptr<ChunkStore> store;
        MP_RETURN_IF_ERROR(ChunkStore::Open(dir, options, &store));
        *slot = std::move(store);
        return Status::OK();
      },
      [slot, ctor](Napi::Env env) -> Napi::Value {
        Napi::Object handle = ctor->New({});
        ChunkStoreWrap::Unwrap(handle)->store_ = *slot;
        return handle;
      });
}

Status ChunkStoreWrap::Get(std::shared_ptr<ChunkStore>* out) {
  if (!store_) return Status::Closed("chunk store is closed");
  *out = store_;
  return Status::OK();
}

// write(chunk, offset, data: Buffer, { updateVersion, commit, replace, chunkSizeBytes, install, chainId })
//   -> Promise<ChunkMeta>
Napi::Value ChunkStoreWrap::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChunkId id;
  if (!GetChunkId(info[0], &id) || !info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsObject())
    return ThrowType(env, "write(chunk, offset, data, options)");
  std::shared_ptr<ChunkStore> store;
  Status s = Get(&store);
  if (!s.ok()) return RejectNow(env, s);
  uint32_t offset = info[1].As<Napi::Number>().Uint32Value();
  auto data = info[2].As<Napi::Buffer<char>>();
  Napi::Object o = info[3].As<Napi::Object>();
  ChunkWriteOptions options;
  options.updateVersion = static_cast<uint64_t>(o.Get("updateVersion").ToNumber().Int64Value());
  options.commit = o.Get("commit").ToBoolean();
  options.replace = o.Get("replace").ToBoolean();
  options.chunkSizeBytes = GetU32(o, "chunkSizeBytes", 0);
  options.install = o.Get("install").ToBoolean();
  options.chainId = GetU32(o, "chainId", 0);
  if (data.Length() > UINT32_MAX) return ThrowType(env, "data is larger than a chunk");
  const char* ptr = data.Data();
  uint32_t length = static_cast<uint32_t>(data.Length());
  auto meta = std::make_shared<ChunkMeta>();
  return RunAsync(
      env, [=] { return store->Write(id, offset, ptr, length, options, meta.get()); },
      [meta](Napi::Env env) -> Napi::Value { return ChunkMetaToJs(env, *meta); }, {data});
}

// read(chunk, offset, target: Buffer, uncommitted) -> Promise<{ bytesRead, meta }>
Napi::Value ChunkStoreWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChunkId id;
  if (!GetChunkId(info[0], &id) || !info[1].IsNumber() || !info[2].IsBuffer())
    return ThrowType(env, "read(chunk, offset, target, uncommitted)");
  std::shared_ptr<ChunkStore> store;
  Status s = Get(&store);
  if (!s.ok()) return RejectNow(env, s);
  uint32_t offset = info[1].As<Napi::Number>().Uint32Value();
  auto target = info[2].As<Napi::Buffer<char>>();
  bool uncommitted = info[3].ToBoolean();
  char* ptr = target.Data();
  uint32_t length = static_cast<uint32_t>(std::min<size_t>(target.Length(), UINT32_MAX));
  struct Result {
    ChunkMeta meta;
    uint32_t bytesRead = 0;
  };
  auto r = std::make_shared<Result>();
  return RunAsync(
      env, [=] { return store->Read(id, offset, length, ptr, uncommitted, &r->bytesRead, &r->meta); },
      [r](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("bytesRead", Napi::Number::New(env, r->bytesRead));
        o.Set("meta", ChunkMetaToJs(env, r->meta));
        return o;
      },
      {target});
}

// commit(chunk, version) -> Promise<ChunkMeta>
Napi::Value ChunkStoreWrap::Commit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChunkId id;
  if (!GetChunkId(info[0], &id) || !info[1].IsNumber()) return ThrowType(env, "commit(chunk, version)");
  std::shared_ptr<ChunkStore> store;
  Status s = Get(&store);
  if (!s.ok()) return RejectNow(env, s);
  uint64_t version = static_cast<uint64_t>(info[1].As<Napi::Number>().Int64Value());
  auto meta = std::make_shared<ChunkMeta>();
  return RunAsync(
      env, [=] { return store->Commit(id, version, meta.get()); },
      [meta](Napi::Env env) -> Napi::Value { return ChunkMetaToJs(env, *meta); });
}

Napi::Value ChunkStoreWrap::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChunkId id;
  if (!GetChunkId(info[0], &id)) return ThrowType(env, "remove(chunk, expected?)");
  // expected: { commitVersion, updateVersion, length, checksum } or null/undefined.
  bool conditional = info.Length() > 1 && info[1].IsObject();
  ChunkMeta expected;
  if (conditional) {
    Napi::Object o = info[1].As<Napi::Object>();
    for (const char* key : {"commitVersion", "updateVersion", "length", "checksum"})
      if (!o.Get(key).IsNumber()) return ThrowType(env, std::string("remove: expected.") + key + " must be a number");
    expected.commitVersion = static_cast<uint64_t>(o.Get("commitVersion").As<Napi::Number>().Int64Value());
    expected.updateVersion = static_cast<uint64_t>(o.Get("updateVersion").As<Napi::Number>().Int64Value());
    expected.length = o.Get("length").As<Napi::Number>().Uint32Value();
    expected.checksum = o.Get("checksum").As<Napi::Number>().Uint32Value();
  }
  std::shared_ptr<ChunkStore> store;
  Status s = Get(&store);
  if (!s.ok()) return RejectNow(env, s);
  return RunAsync(env, [=] { return store->Remove(id, conditional ? &expected : nullptr); }, nullptr);
}

Napi::Value ChunkStoreWrap::Stat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChunkId id;
  if (!GetChunkId(info[0], &id)) return ThrowType(env, "stat(chunk)");
  std::shared_ptr<ChunkStore> store;
  Status s = Get(&store);
  if (!s.ok()) return RejectNow(env, s);
  auto meta = std::make_shared<ChunkMeta>();
  return RunAsync(
      env, [=] { return store->Stat(id, meta.get()); },
      [meta](Napi::Env env) -> Napi::Value { return ChunkMetaToJs(env, *meta); });
}

// list(after: ChunkId | null, limit) -> Promise<Array<{ chunk, meta, corrupt }>>
Napi::Value ChunkStoreWrap::List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  ChunkId after;
  bool hasAfter = !info[0].IsNull() && !info[0].IsUndefined();
  if ((hasAfter && !GetChunkId(info[0], &after)) || !info[1].IsNumber()) return ThrowType(env, "list(after, limit)");
  std::shared_ptr<ChunkStore> store;
  Status s = Get(&store);
  if (!s.ok()) return RejectNow(env, s);
  size_t limit = info[1].As<Napi::Number>().Uint32Value();
  auto entries = std::make_shared<std::vector<ChunkListEntry>>();
  return RunAsync(
      env, [=] { return store->List(hasAfter ? &after : nullptr, limit, entries.get()); },
      [entries](Napi::Env env) -> Napi::Value { return ListToJs(env, *entries); });
}

Napi::Value ChunkStoreWrap::Usage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!store_) return RejectNow(env, Status::Closed("chunk store is closed"));
  ChunkStoreUsage u = store_->Usage();
  Napi::Object o = Napi::Object::New(env);
  o.Set("chunks", Napi::Number::New(env, static_cast<double>(u.chunks)));
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(u.bytes)));
  o.Set("capacityBytes", Napi::Number::New(env, static_cast<double>(u.capacityBytes)));
  o.Set("directIo", Napi::Boolean::New(env, u.directIo));
  return o;
}

// Drops this handle's reference; the store closes when the last operation and data server
// using it finish.
Napi::Value ChunkStoreWrap::Close(const Napi::CallbackInfo& info) {
  store_.reset();
  return info.Env().Undefined();
}

}  // namespace millpond::addon
