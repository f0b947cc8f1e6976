// The JS classes the addon exports. TS (src/native/binding.ts) declares their shapes and
// validates arguments before calling them; these re-check only what memory safety needs.
#pragma once

#include <mutex>
#include <unordered_map>
#include <memory>

#include "addon/js_bridge.h"
#include "client/chunk_client.h"
#include "client/file_client.h"
#include "common/work_queue.h"
#include "storage/chunk_store.h"
#include "storage/data_server.h"

namespace millpond::addon {

Napi::Value RejectNow(Napi::Env env, const Status& status);  // an already-rejected Promise
Napi::Array ListToJs(Napi::Env env, const std::vector<ChunkListEntry>& entries);

class ChunkStoreWrap : public Napi::ObjectWrap<ChunkStoreWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::Value Open(const Napi::CallbackInfo& info, Napi::FunctionReference* ctor);
  explicit ChunkStoreWrap(const Napi::CallbackInfo& info);
  std::shared_ptr<ChunkStore> store() const { return store_; }

 private:
  Status Get(std::shared_ptr<ChunkStore>* out);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Commit(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Stat(const Napi::CallbackInfo& info);
  Napi::Value List(const Napi::CallbackInfo& info);
  Napi::Value Usage(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  std::shared_ptr<ChunkStore> store_;
};

class DataServerWrap : public Napi::ObjectWrap<DataServerWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit DataServerWrap(const Napi::CallbackInfo& info);  // (storeHandle, options)

 private:
  Napi::Value Port(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value SetChain(const Napi::CallbackInfo& info);
  Napi::Value RemoveChain(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  std::shared_ptr<ChunkStore> store_;
  std::shared_ptr<DataServer> server_;
};

class ChunkClientWrap : public Napi::ObjectWrap<ChunkClientWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit ChunkClientWrap(const Napi::CallbackInfo& info);  // (options)
  ~ChunkClientWrap() override;

 private:
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value BatchRead(const Napi::CallbackInfo& info);
  Napi::Value Stat(const Napi::CallbackInfo& info);
  Napi::Value Commit(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value List(const Napi::CallbackInfo& info);
  Napi::Value Ping(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  // abandon(token): gives up on the read or write started with that token (ChunkClient's
  // `abandon`): it settles with ETIMEDOUT within a timer tick unless its answer is arriving.
  // Unknown (settled) tokens are ignored.
  Napi::Value Abandon(const Napi::CallbackInfo& info);
  // Starts a JS operation: returns its PendingPromise, or null (and a rejected promise in
  // *early) when the client is closed.
  PendingPromise* Begin(Napi::Env env, Napi::Value* early);
  // From a native thread: settle `p` on the JS thread with `value`; forgets `token` (0: none).
  void Finish(PendingPromise* p, const Status& s, std::function<Napi::Value(Napi::Env)> value, uint64_t token = 0);
  // The abandon flag of a new operation with JS token `value` (null without a token).
  ChunkClient::Abandon TokenFlag(Napi::Value value, uint64_t* token);

  std::unique_ptr<ChunkClient> client_;
  std::unique_ptr<CompletionQueue> completions_;
  std::mutex tokensMu_;
  // GUARDED_BY(tokensMu_): operations in flight that JS may abandon (bounded by the client's
  // queued calls, limits::kClientQueuedCallsMax).
  std::unordered_map<uint64_t, std::shared_ptr<std::atomic<bool>>> tokens_;
};

// The native FileClient under the TS FileSystem (file_client_wrap.cc): attach() hands out a
// FileHandleHandle per file TS opened; calls run on the client's own threads.
class FileClientWrap : public Napi::ObjectWrap<FileClientWrap> {
 public:
  // `handleCtor`: FileHandleHandle's constructor, which attach() instantiates.
  static Napi::Function Init(Napi::Env env, Napi::FunctionReference* handleCtor);
  explicit FileClientWrap(const Napi::CallbackInfo& info);  // (options)
  ~FileClientWrap() override;
  // Runs `work` on the client's threads; settles with value(env) (undefined when null).
  // `self` (a handle) and `keep` (Buffers) stay alive until then.
  Napi::Value Run(Napi::Env env, Napi::Object self, std::vector<Napi::Value> keep, std::function<Status()> work,
                  std::function<Napi::Value(Napi::Env)> value);

 private:
  Napi::Value Attach(const Napi::CallbackInfo& info);
  Napi::Value InstallCapability(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  Napi::FunctionReference* const handleCtor_;
  std::shared_ptr<FileClient> client_;  // null once closed; attached handles share it
  std::unique_ptr<CompletionQueue> completions_;
  std::unique_ptr<WorkQueue> workers_;  // last: its threads stop before the rest goes
};

class FileHandleWrap : public Napi::ObjectWrap<FileHandleWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit FileHandleWrap(const Napi::CallbackInfo& info);  // made by FileClientHandle.attach
  ~FileHandleWrap() override;

 private:
  friend class FileClientWrap;
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadBatch(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Status Check(std::shared_ptr<FileHandle>* handle);  // kClosed after close()
  FileClientWrap* owner();

  Napi::ObjectReference owner_;  // the FileClientHandle: its threads run this handle's calls
  std::shared_ptr<FileClient> client_;  // null once closed
  std::shared_ptr<FileHandle> handle_;  // null once closed
};

// metricsSnapshot() -> the process's data-plane metrics (metrics_wrap.cc).
Napi::Value MetricsSnapshotJs(const Napi::CallbackInfo& info);

}  // namespace millpond::addon
