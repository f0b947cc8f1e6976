// Helpers shared by the wraps: Status -> MillpondError, argument conversion, Promise work
// off the JS thread, and delivery of completions from native threads to the JS thread.
// The only place besides the wraps that includes napi.h (design §8).
#pragma once

#include <napi.h>

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/chunk_id.h"
#include "common/status.h"
#include "transport/transport.h"

namespace millpond::addon {

// ---- errors: the TS MillpondError class is registered once at load (setErrorClass).
void SetErrorClass(Napi::Env env, Napi::Function ctor);
Napi::Value MakeError(Napi::Env env, const Status& status);
void ThrowStatus(Napi::Env env, const Status& status);
// Throws a TypeError and returns an empty value; for argument checks the TS layer missed.
Napi::Value ThrowType(Napi::Env env, const std::string& message);

// ---- conversion
bool GetChunkId(Napi::Value v, ChunkId* out);  // { inode: bigint | number, index: number }
Napi::Object ChunkIdToJs(Napi::Env env, const ChunkId& id);
Napi::Object ChunkMetaToJs(Napi::Env env, const ChunkMeta& meta);
Napi::Object CountersToJs(Napi::Env env, const TransportCounters& c);
uint32_t GetU32(Napi::Object o, const char* key, uint32_t fallback);
// A capability argument: undefined/null (*has = false) or a 36-byte Buffer (its wire form).
// False for anything else.
bool GetCapability(Napi::Value v, Capability* out, bool* has);
// { kind: 'node' | 'token', id, tokenId (16 hex digits, tokens), key: 32-byte Buffer };
// undefined/null: anonymous. False when malformed.
bool GetCredentials(Napi::Value v, ClientCredentials* out);
// A 32-byte cluster secret Buffer, or undefined/null (*has = false). False for anything else.
bool GetClusterSecret(Napi::Value v, uint8_t out[kClusterSecretBytes], bool* has);

// ---- Promise-returning work on the libuv pool. `execute` runs off the JS thread; `onOk`
// builds the resolution value on it. `keep` holds JS objects (Buffers) alive meanwhile.
Napi::Promise RunAsync(Napi::Env env, std::function<Status()> execute,
                       std::function<Napi::Value(Napi::Env)> onOk,
                       std::vector<Napi::Value> keep = {});

// ---- completions from native threads. Post() may be called from any thread; the
// closures run in order on the JS thread. Begin()/End() (JS thread) bracket each operation
// so an idle queue does not keep the process alive.
class CompletionQueue {
 public:
  explicit CompletionQueue(Napi::Env env);
  ~CompletionQueue();
  void Post(std::function<void(Napi::Env)> fn);
  void Begin();
  void End();

 private:
  static void Drain(Napi::Env env, Napi::Function, CompletionQueue* self, void*);
  using Tsfn = Napi::TypedThreadSafeFunction<CompletionQueue, void, Drain>;
  // Who goes first: the queue (its destructor releases the TSFN) or the environment (which
  // finalizes the TSFN at exit, after which releasing it would abort). JS thread only.
  struct TsfnLife {
    bool finalized = false;
    bool ownerGone = false;
  };
  Napi::Env env_;
  TsfnLife* life_;
  Tsfn tsfn_;
  std::mutex mu_;
  std::vector<std::function<void(Napi::Env)>> queue_;  // GUARDED_BY(mu_)
  bool scheduled_ = false;                             // GUARDED_BY(mu_)
  uint64_t active_ = 0;                                // JS thread only
};

// A JS-thread-only holder for a pending Promise and the objects it keeps alive, passed
// through native threads by pointer and freed by Settle().
struct PendingPromise {
  explicit PendingPromise(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
  void Keep(Napi::Value v) { keep.emplace_back(Napi::Persistent(v.As<Napi::Object>())); }
  // Resolves with value(env) or rejects with the status; deletes this.
  void Settle(Napi::Env env, const Status& s, const std::function<Napi::Value(Napi::Env)>& value);
  Napi::Promise::Deferred deferred;
  std::vector<Napi::ObjectReference> keep;
};

}  // namespace millpond::addon
