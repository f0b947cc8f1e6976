// The native client's CURVE keys from a token equal the TS side's (test/fixtures/auth/
// vectors.json), and bad tokens or server keys are refused with kAuth before anything is sent.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "client/client_auth.h"
#include "client/zmq_api.h"
#include "test_support.h"

namespace millpond {
namespace {

using testing::ReadFile;
using testing::RepoRoot;

std::string Field(const std::string& json, const std::string& name) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(json, m, std::regex("\"" + name + "\": \"([^\"]+)\""))) << name;
  return m[1];
}

std::string Hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) out += {kDigits[c >> 4], kDigits[c & 15]};
  return out;
}

TEST(ClientAuth, CurveSecretOfTokenMatchesTheVectors) {
  std::string vectors = ReadFile(RepoRoot() + "/test/fixtures/auth/vectors.json");
  std::string secret;
  ASSERT_TRUE(TokenCurveSecret(Field(vectors, "token"), &secret).ok());
  EXPECT_EQ(Hex(secret), Field(vectors, "curveClientSecretHex"));
}

TEST(ClientAuth, BadTokensAndServerKeysAreEAUTH) {
  std::string secret;
  for (const char* bad : {"", "mpt1", "mpt2.1.00112233aabbccdd.SnxyG9LHmc2b-l0CYjPiiQ61mdnnxdUF-bTRjNUAPRw",
                          "mpt1.x.00112233aabbccdd.SnxyG9LHmc2b-l0CYjPiiQ61mdnnxdUF-bTRjNUAPRw",
                          "mpt1.1.00112233AABBCCDD.SnxyG9LHmc2b-l0CYjPiiQ61mdnnxdUF-bTRjNUAPRw",
                          "mpt1.1.00112233aabbccdd.short", "mpt1.1.00112233aabbccdd.Snxy*9LHmc2b-l0CYjPiiQ61mdnnxdUF-bTRjNUAPRw"}) {
    Status s = TokenCurveSecret(bad, &secret);
    EXPECT_EQ(s.code(), StatusCode::kAuth) << bad;
    EXPECT_EQ(s.message().find("SnxyG9"), std::string::npos) << "never echoes the secret";
  }
  RpcClientOptions o;
  std::string vectors = ReadFile(RepoRoot() + "/test/fixtures/auth/vectors.json");
  EXPECT_EQ(ApplyTokenCurve(Field(vectors, "token"), "too-short", &o).code(), StatusCode::kAuth);
  EXPECT_TRUE(o.curveSecretKey.empty());
}

TEST(ClientAuth, KeysAreZ85OfTheDerivedPair) {
  const ZmqApi* api = nullptr;
  if (!LoadZmqApi(&api).ok()) GTEST_SKIP() << "no libzmq.so.5";
  std::string vectors = ReadFile(RepoRoot() + "/test/fixtures/auth/vectors.json");
  RpcClientOptions o;
  const std::string serverKey(40, 'a');
  ASSERT_TRUE(ApplyTokenCurve(Field(vectors, "token"), serverKey, &o).ok());
  EXPECT_EQ(o.curveServerKey, serverKey);
  ASSERT_EQ(o.curveSecretKey.size(), 40u);
  ASSERT_EQ(o.curvePublicKey.size(), 40u);
  EXPECT_NE(o.curvePublicKey, o.curveSecretKey);
}

}  // namespace
}  // namespace millpond
