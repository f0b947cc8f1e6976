#include "client/mgmtd_client.h"

#include <functional>

#include "client/reply_fields.h"
#include "common/limits.h"

namespace millpond {

namespace {

const ReplyFields kReply("mgmtd");

Status GetState(const MsgValue& m, TargetState* out) {
  const MsgValue* v = m.Find("state");
  if (v == nullptr || !v->is_str()) return kReply.Bad("state must be a string");
  static const struct { const char* name; TargetState state; } kStates[] = {
      {"serving", TargetState::kServing}, {"syncing", TargetState::kSyncing},
      {"waiting", TargetState::kWaiting}, {"lastsrv", TargetState::kLastsrv},
      {"offline", TargetState::kOffline},
  };
  for (const auto& s : kStates) {
    if (v->str() == s.name) {
      *out = s.state;
      return Status::OK();
    }
  }
  return kReply.Bad("unknown target state " + v->str());
}

}  // namespace

const char* TargetStateName(TargetState state) {
  switch (state) {
    case TargetState::kServing: return "serving";
    case TargetState::kSyncing: return "syncing";
    case TargetState::kWaiting: return "waiting";
    case TargetState::kLastsrv: return "lastsrv";
    case TargetState::kOffline: return "offline";
  }
  return "?";
}

Status MgmtdClient::DecodeChainTable(const MsgValue& v, ChainTableInfo* out) {
  if (!v.is_map()) return kReply.Bad("chain table must be a map");
  ChainTableInfo t;
  MP_RETURN_IF_ERROR(kReply.U32(v, "tableId", &t.tableId));
  MP_RETURN_IF_ERROR(kReply.U32(v, "version", &t.version));
  MP_RETURN_IF_ERROR(kReply.U32List(v, "chainIds", limits::kRoutingChainsMax, &t.chainIds));
  // Absent on tables that never grew (and from an mgmtd older than table growth).
  if (v.Find("chainCounts") != nullptr) {
    MP_RETURN_IF_ERROR(kReply.U32List(v, "chainCounts", limits::kChainTableVersionsMax, &t.chainCounts));
  }
  *out = std::move(t);
  return Status::OK();
}

Status MgmtdClient::DecodeRouting(const MsgValue& v, Routing* out, bool* unchanged) {
  if (!v.is_map()) return kReply.Bad("routing must be a map");
  Routing r;
  MP_RETURN_IF_ERROR(kReply.U64(v, "version", &r.version));
  const MsgValue* same = v.Find("unchanged");
  if (same != nullptr && same->is_bool() && same->bool_value()) {
    *unchanged = true;
    return Status::OK();
  }
  *unchanged = false;

  const std::vector<MsgValue>* items = nullptr;
  MP_RETURN_IF_ERROR(kReply.List(v, "targets", limits::kRoutingTargetsMax, &items));
  r.targets.reserve(items->size());
  for (const MsgValue& item : *items) {
    if (!item.is_map()) return kReply.Bad("target must be a map");
    TargetInfo t;
    MP_RETURN_IF_ERROR(kReply.U32(item, "targetId", &t.targetId));
    MP_RETURN_IF_ERROR(kReply.U32(item, "nodeId", &t.nodeId));
    const MsgValue* address = item.Find("dataAddress");
    if (address == nullptr || !address->is_str()) return kReply.Bad("dataAddress must be a string");
    t.dataAddress = address->str();
    MP_RETURN_IF_ERROR(GetState(item, &t.state));
    MP_RETURN_IF_ERROR(kReply.U64(item, "stateVersion", &t.stateVersion));
    r.targets.push_back(std::move(t));
  }

  MP_RETURN_IF_ERROR(kReply.List(v, "chains", limits::kRoutingChainsMax, &items));
  r.chains.reserve(items->size());
  for (const MsgValue& item : *items) {
    if (!item.is_map()) return kReply.Bad("chain must be a map");
    ChainInfo c;
    MP_RETURN_IF_ERROR(kReply.U32(item, "chainId", &c.chainId));
    MP_RETURN_IF_ERROR(kReply.U32(item, "version", &c.version));
    MP_RETURN_IF_ERROR(kReply.U32List(item, "targets", limits::kRoutingChainLengthMax, &c.targets));
    r.chains.push_back(std::move(c));
  }

  MP_RETURN_IF_ERROR(kReply.List(v, "chainTables", limits::kRoutingChainTablesMax, &items));
  r.chainTables.reserve(items->size());
  for (const MsgValue& item : *items) {
    ChainTableInfo t;
    MP_RETURN_IF_ERROR(DecodeChainTable(item, &t));
    r.chainTables.push_back(std::move(t));
  }
  *out = std::move(r);
  return Status::OK();
}

Status MgmtdClient::Create(MgmtdClientOptions options, std::unique_ptr<MgmtdClient>* out) {
  if (options.rpc.timeoutMs == 0) options.rpc.timeoutMs = limits::kMgmtdCallTimeoutMsDefault;
  std::unique_ptr<RpcClient> rpc;
  MP_RETURN_IF_ERROR(RpcClient::Create(options.rpc, &rpc));
  out->reset(new MgmtdClient(std::move(rpc), options.token));
  return Status::OK();
}

MsgValue MgmtdClient::RoutingParams(bool hasKnownVersion, uint64_t knownVersion) {
  MsgValue p = MsgValue::Map();
  if (hasKnownVersion) p.Add("knownVersion", MsgValue::Uint(knownVersion));
  return p;
}

Status MgmtdClient::GetRouting(bool hasKnownVersion, uint64_t knownVersion, Routing* out,
                               bool* unchanged) {
  MsgValue r;
  // A read: safe to resend under the same requestId, to any address.
  MP_RETURN_IF_ERROR(rpc_->Call("mgmtd.getRouting", RoutingParams(hasKnownVersion, knownVersion), &r,
                                /*retry=*/true));
  return DecodeRouting(r, out, unchanged);
}

void MgmtdClient::GetRoutingAsync(bool hasKnownVersion, uint64_t knownVersion, RoutingDone done) {
  rpc_->CallAsync("mgmtd.getRouting", RoutingParams(hasKnownVersion, knownVersion), /*retry=*/true,
                  [done = std::move(done)](const Status& s, MsgValue result) {
                    Routing routing;
                    bool unchanged = false;
                    Status d = s.ok() ? DecodeRouting(result, &routing, &unchanged) : s;
                    done(d, d.ok() ? &routing : nullptr, unchanged);
                  });
}

Status MgmtdClient::CreateChainTable(uint32_t tableId, uint32_t chainCount, uint32_t chainLength,
                                     ChainTableInfo* out) {
  MsgValue p = MsgValue::Map();
  p.Add("tableId", MsgValue::Uint(tableId))
      .Add("chainCount", MsgValue::Uint(chainCount))
      .Add("chainLength", MsgValue::Uint(chainLength));
  if (!token_.empty()) p.Add("token", MsgValue::Str(token_));
  MsgValue r;
  // Not deduplicated by mgmtd (no clientId): one attempt, the caller decides.
  MP_RETURN_IF_ERROR(rpc_->Call("mgmtd.createChainTable", std::move(p), &r, /*retry=*/false));
  return DecodeChainTable(r, out);
}

Status MgmtdClient::Capacity(ClusterCapacity* out) {
  MsgValue r;
  MP_RETURN_IF_ERROR(rpc_->Call("mgmtd.capacity", MsgValue::Map(), &r, /*retry=*/true));
  return DecodeCapacity(r, out);
}

Status MgmtdClient::DecodeCapacity(const MsgValue& v, ClusterCapacity* out) {
  ClusterCapacity c;
  MP_RETURN_IF_ERROR(kReply.U64(v, "capacityBytes", &c.capacityBytes));
  MP_RETURN_IF_ERROR(kReply.U64(v, "freeBytes", &c.freeBytes));
  MP_RETURN_IF_ERROR(kReply.U32(v, "replicas", &c.replicas));
  *out = c;
  return Status::OK();
}

}  // namespace millpond
