// The addon's entry point: the classes and functions src/native/binding.ts declares.
#include "addon/wraps.h"
#include "common/buffer_pool.h"
#include "common/crc32c.h"
#include "transport/rdma/rdma_transport.h"

namespace millpond::addon {

namespace {

struct Constructors {
  Napi::FunctionReference chunkStore;
  Napi::FunctionReference fileHandle;
};

// setErrorClass(MillpondError): errors made by the addon are instances of it.
Napi::Value SetErrorClassJs(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) return ThrowType(info.Env(), "setErrorClass(ctor)");
  SetErrorClass(info.Env(), info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

// allocAligned(bytes, reused = false): a Buffer on block-aligned memory, so O_DIRECT reads and
// writes need no copy. reused: the caller keeps it for many fills (its page size follows).
Napi::Value AllocAligned(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber()) return ThrowType(env, "allocAligned(bytes, reused = false)");
  const bool reused = info.Length() > 1 && info[1].ToBoolean().Value();
  int64_t bytes = info[0].As<Napi::Number>().Int64Value();
  if (bytes < 0 || bytes > int64_t{limits::kChunkSizeBytesMax} * 16) return ThrowType(env, "allocAligned: bad size");
  auto* buf = new AlignedBuffer(AlignedBuffer::Allocate(
      static_cast<size_t>(bytes), reused ? AlignedBuffer::Use::kReused : AlignedBuffer::Use::kOnce));
  if (buf->empty()) {
    delete buf;
    return ThrowType(env, "allocAligned: out of memory");
  }
  // V8 is told of the memory, so garbage collection keeps pace with large buffers.
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return Napi::Buffer<char>::New(env, buf->data(), static_cast<size_t>(bytes),
                                 [bytes](Napi::Env e, char*, AlignedBuffer* b) {
                                   Napi::MemoryManagement::AdjustExternalMemory(e, -bytes);
                                   delete b;
                                 }, buf);
}

// crc32c(buffer, seed = 0): the checksum millpond uses everywhere, for tests and tools.
Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsBuffer()) return ThrowType(env, "crc32c(buffer, seed)");
  auto b = info[0].As<Napi::Buffer<char>>();
  uint32_t seed = info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : 0;
  return Napi::Number::New(env, Crc32c(b.Data(), b.Length(), seed));
}

// rdmaProbe() -> { available, detail }
Napi::Value RdmaProbeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string detail;
  Status s = RdmaProbe(&detail);
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, s.ok()));
  o.Set("detail", Napi::String::New(env, s.ok() ? detail : s.message()));
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* ctors = new Constructors;
  env.AddCleanupHook([ctors] { delete ctors; });
  Napi::Function store = ChunkStoreWrap::Init(env);
  ctors->chunkStore = Napi::Persistent(store);
  exports.Set("ChunkStoreHandle", store);
  exports.Set("openChunkStore", Napi::Function::New(env, [ctors](const Napi::CallbackInfo& info) {
                return ChunkStoreWrap::Open(info, &ctors->chunkStore);
              }));
  exports.Set("DataServerHandle", DataServerWrap::Init(env));
  exports.Set("ChunkClientHandle", ChunkClientWrap::Init(env));
  ctors->fileHandle = Napi::Persistent(FileHandleWrap::Init(env));
  exports.Set("FileClientHandle", FileClientWrap::Init(env, &ctors->fileHandle));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClassJs));
  exports.Set("allocAligned", Napi::Function::New(env, AllocAligned));
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs));
  exports.Set("rdmaProbe", Napi::Function::New(env, RdmaProbeJs));
  exports.Set("metricsSnapshot", Napi::Function::New(env, MetricsSnapshotJs));
  exports.Set("crc32cHardware", Napi::Boolean::New(env, Crc32cIsHardware()));
  return exports;
}

}  // namespace

}  // namespace millpond::addon

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return millpond::addon::Init(env, exports);
}
NODE_API_MODULE(millpond, InitModule)
