// mgmtd's replies as the native client decodes them, from the byte fixtures the TS codec writes
// (test/fixtures/protocol/mgmtd-*, made by test/meta/protocol.test.ts from src/protocol/mgmtd-types.ts):
// a field renamed or retyped on either side fails here, not in a cluster.
#include <gtest/gtest.h>

#include <string>

#include "client/mgmtd_client.h"
#include "common/msgpack.h"
#include "tests/test_support.h"

namespace millpond {
namespace {

// The fixture's envelope [version, requestId, ok, body]; returns body.
MsgValue Body(const std::string& name, bool* ok) {
  std::string bytes = testing::ReadFile(testing::RepoRoot() + "/test/fixtures/protocol/" + name + ".bin");
  MsgValue envelope;
  Status s = MsgDecode(bytes, &envelope);
  EXPECT_TRUE(s.ok()) << name << ": " << s.ToString();
  EXPECT_TRUE(envelope.is_array() && envelope.array().size() == 4) << name;
  if (!envelope.is_array() || envelope.array().size() != 4) return MsgValue();
  *ok = envelope.array()[2].bool_value();
  return envelope.array()[3];
}

TEST(MgmtdWire, RoutingReplyDecodesEveryTargetChainAndTable) {
  bool ok = false;
  MsgValue body = Body("mgmtd-routing-reply", &ok);
  ASSERT_TRUE(ok);
  Routing routing;
  bool unchanged = true;
  ASSERT_TRUE(MgmtdClient::DecodeRouting(body, &routing, &unchanged).ok());
  EXPECT_FALSE(unchanged);
  EXPECT_EQ(routing.version, 42u);
  ASSERT_EQ(routing.targets.size(), 2u);
  EXPECT_EQ(routing.targets[0].targetId, 101u);
  EXPECT_EQ(routing.targets[0].nodeId, 7u);
  EXPECT_EQ(routing.targets[0].dataAddress, "10.1.0.3:7100");
  EXPECT_EQ(routing.targets[0].state, TargetState::kServing);
  EXPECT_EQ(routing.targets[0].stateVersion, 3u);
  EXPECT_EQ(routing.targets[1].state, TargetState::kSyncing);
  EXPECT_EQ(routing.targets[1].stateVersion, 41u);
  ASSERT_EQ(routing.chains.size(), 1u);
  EXPECT_EQ(routing.chains[0].chainId, 1u);
  EXPECT_EQ(routing.chains[0].version, 5u);
  EXPECT_EQ(routing.chains[0].targets, (std::vector<uint32_t>{101, 201}));
  ASSERT_EQ(routing.chainTables.size(), 2u);
  EXPECT_EQ(routing.chainTables[0].tableId, 1u);
  EXPECT_EQ(routing.chainTables[0].version, 2u);
  EXPECT_EQ(routing.chainTables[0].chainIds, (std::vector<uint32_t>{1}));
  EXPECT_TRUE(routing.chainTables[0].chainCounts.empty());  // never grew
  EXPECT_EQ(routing.chainTables[1].tableId, 2u);
  EXPECT_EQ(routing.chainTables[1].chainIds, (std::vector<uint32_t>{1, 3, 4}));
  EXPECT_EQ(routing.chainTables[1].chainCounts, (std::vector<uint32_t>{1, 3}));
}

TEST(MgmtdWire, UnchangedReplyKeepsTheCallersRouting) {
  bool ok = false;
  MsgValue body = Body("mgmtd-routing-unchanged-reply", &ok);
  ASSERT_TRUE(ok);
  Routing routing;
  bool unchanged = false;
  ASSERT_TRUE(MgmtdClient::DecodeRouting(body, &routing, &unchanged).ok());
  EXPECT_TRUE(unchanged);
}

TEST(MgmtdWire, CapacityAbove4GiBDecodesExactly) {
  bool ok = false;
  MsgValue body = Body("mgmtd-capacity-reply", &ok);
  ASSERT_TRUE(ok);
  ClusterCapacity capacity;
  ASSERT_TRUE(MgmtdClient::DecodeCapacity(body, &capacity).ok());
  EXPECT_EQ(capacity.capacityBytes, 8589934592000u);
  EXPECT_EQ(capacity.freeBytes, 4294967296000u);
  EXPECT_EQ(capacity.replicas, 3u);
}

TEST(MgmtdWire, RoutingParamsEncodeAsTheTsRequestDoes) {
  std::string bytes = testing::ReadFile(testing::RepoRoot() + "/test/fixtures/protocol/mgmtd-get-routing-request.bin");
  MsgValue envelope;
  ASSERT_TRUE(MsgDecode(bytes, &envelope).ok());
  ASSERT_EQ(envelope.array().size(), 4u);
  EXPECT_EQ(envelope.array()[2].str(), "mgmtd.getRouting");
  EXPECT_EQ(MsgEncode(MgmtdClient::RoutingParams(true, 41)), MsgEncode(envelope.array()[3]));
}

TEST(MgmtdWire, AStandbysReplyIsNotPrimary) {
  bool ok = true;
  MsgValue body = Body("mgmtd-not-primary-reply", &ok);
  EXPECT_FALSE(ok);
  const MsgValue* code = body.Find("code");
  ASSERT_NE(code, nullptr);
  StatusCode parsed;
  ASSERT_TRUE(Status::CodeFromName(code->str(), &parsed));
  EXPECT_EQ(parsed, StatusCode::kNotPrimary);
}

}  // namespace
}  // namespace millpond
