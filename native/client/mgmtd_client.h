// MgmtdClient: typed calls to the cluster manager (src/cluster, methods in
// src/protocol/mgmtd.ts) over an RpcClient given every mgmtd address. The RpcClient moves on
// to the next address on ENOTPRIMARY (a standby) and on timeouts, as the TS MgmtdClient does.
// Replies are decoded into the structs below (the records of src/protocol/mgmtd-types.ts); a reply of
// the wrong shape is kProtocol.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "client/rpc_client.h"
#include "common/msgpack.h"
#include "common/status.h"

namespace millpond {

// Public state of a target, decided by mgmtd (design §2).
enum class TargetState { kServing, kSyncing, kWaiting, kLastsrv, kOffline };
const char* TargetStateName(TargetState state);

struct TargetInfo {
  uint32_t targetId = 0;
  uint32_t nodeId = 0;
  std::string dataAddress;  // "host:port" of the DataServer serving this target
  TargetState state = TargetState::kOffline;
  uint64_t stateVersion = 0;  // routing version at which the target entered `state`
};

struct ChainInfo {
  uint32_t chainId = 0;
  uint32_t version = 0;            // bumps on every change of membership, order or state
  std::vector<uint32_t> targets;   // serving first (the head is [0]), then syncing, then the rest
};

struct ChainTableInfo {
  uint32_t tableId = 0;
  uint32_t version = 0;
  std::vector<uint32_t> chainIds;  // only grows: version v's chains are a prefix
  // chainCounts[v - 1]: the chains (a prefix of chainIds) the table had at version v. Empty:
  // the table never grew (every version has all of chainIds). See layout::TableChainsAt.
  std::vector<uint32_t> chainCounts;
};

// What the cluster can hold (mgmtd.capacity): the targets' space / the chains' length.
struct ClusterCapacity {
  uint64_t capacityBytes = 0;
  uint64_t freeBytes = 0;
  uint32_t replicas = 0;  // the chains' length
};

// One snapshot of the cluster at `version` (nodes are not decoded: clients need none).
struct Routing {
  uint64_t version = 0;
  std::vector<TargetInfo> targets;
  std::vector<ChainInfo> chains;
  std::vector<ChainTableInfo> chainTables;
};

struct MgmtdClientOptions {
  // Every mgmtd address (tcp://host:port), tried in order. timeoutMs is per attempt; the
  // default here is limits::kMgmtdCallTimeoutMsDefault, set by Create when left at 0.
  RpcClientOptions rpc;
  // The caller's token (rpc's CURVE keys from ApplyTokenCurve); CreateChainTable needs the
  // admin's. Routing needs only an admitted CURVE key.
  std::string token;
};

class MgmtdClient {
 public:
  static Status Create(MgmtdClientOptions options, std::unique_ptr<MgmtdClient>* out);

  // The routing; with hasKnownVersion and an unchanged cluster, *unchanged is set and *out is
  // left alone (mgmtd answers {version, unchanged: true}).
  Status GetRouting(bool hasKnownVersion, uint64_t knownVersion, Routing* out, bool* unchanged);
  // The same, asynchronous: `done` runs once on the RPC I/O thread (see RpcClient::CallAsync).
  using RoutingDone = std::function<void(const Status&, Routing* routing, bool unchanged)>;
  void GetRoutingAsync(bool hasKnownVersion, uint64_t knownVersion, RoutingDone done);

  // Creates chain table `tableId` of chainCount chains of chainLength targets planned by mgmtd
  // (an admin call, used by tests and tools).
  Status CreateChainTable(uint32_t tableId, uint32_t chainCount, uint32_t chainLength,
                          ChainTableInfo* out);

  Status Capacity(ClusterCapacity* out);

  RpcClient* rpc() { return rpc_.get(); }

  // Request encoders and reply decoders, public for tests (test/fixtures/protocol/mgmtd-*).
  static MsgValue RoutingParams(bool hasKnownVersion, uint64_t knownVersion);
  static Status DecodeRouting(const MsgValue& v, Routing* out, bool* unchanged);
  static Status DecodeChainTable(const MsgValue& v, ChainTableInfo* out);
  static Status DecodeCapacity(const MsgValue& v, ClusterCapacity* out);

 private:
  MgmtdClient(std::unique_ptr<RpcClient> rpc, std::string token) : rpc_(std::move(rpc)), token_(std::move(token)) {}

  std::unique_ptr<RpcClient> rpc_;
  const std::string token_;
};

}  // namespace millpond
