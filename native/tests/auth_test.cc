// SHA-256, HMAC-SHA256 (RFC 4231 test cases), the cluster's key derivations against the
// vectors the TS side checks too (test/fixtures/auth/vectors.json), tokens and capabilities.
#include <gtest/gtest.h>

#include <regex>

#include "common/auth.h"
#include "common/sha256.h"
#include "test_support.h"

namespace millpond {
namespace {

std::string Hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) s += d[p[i] >> 4], s += d[p[i] & 15];
  return s;
}

std::string Unhex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::string Sha(const std::string& m) {
  Sha256 h;
  h.Update(m.data(), m.size());
  uint8_t out[32];
  h.Final(out);
  return Hex(out, 32);
}

std::string Hmac(const std::string& key, const std::string& data) {
  uint8_t out[32];
  HmacSha256(key.data(), key.size(), data.data(), data.size(), out);
  return Hex(out, 32);
}

TEST(Sha256, Fips180Examples) {
  EXPECT_EQ(Sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, PiecewiseEqualsWhole) {
  std::string m = testing::Pattern(1000, 7);
  for (size_t split : {0, 1, 55, 56, 63, 64, 65, 128, 999}) {
    Sha256 h;
    h.Update(m.data(), split);
    h.Update(m.data() + split, m.size() - split);
    uint8_t out[32];
    h.Final(out);
    EXPECT_EQ(Hex(out, 32), Sha(m)) << split;
  }
}

TEST(HmacSha256, Rfc4231) {
  EXPECT_EQ(Hmac(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(Hmac("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(Hmac(std::string(20, '\xaa'), std::string(50, '\xdd')),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  EXPECT_EQ(Hmac(Unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"), std::string(50, '\xcd')),
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  // Test case 5 truncates to 128 bits.
  EXPECT_EQ(Hmac(std::string(20, '\x0c'), "Test With Truncation").substr(0, 32), "a3b6167473100ee06e0c796c2955552b");
  EXPECT_EQ(Hmac(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(Hmac(std::string(131, '\xaa'),
                 "This is a test using a larger than block-size key and a larger than block-size data. "
                 "The key needs to be hashed before being used by the HMAC algorithm."),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(HmacSha256, PrecomputedKeyMatches) {
  std::string key = "k", a = "millpond/", b = "v1";
  HmacKey k(key.data(), key.size());
  uint8_t out[32];
  k.Mac2(a.data(), a.size(), b.data(), b.size(), out);
  EXPECT_EQ(Hex(out, 32), Hmac(key, a + b));
  k.Mac(a.data(), a.size(), out);  // the key is reusable
  EXPECT_EQ(Hex(out, 32), Hmac(key, a));
}

class Vectors : public ::testing::Test {
 protected:
  void SetUp() override {
    json_ = testing::ReadFile(testing::RepoRoot() + "/test/fixtures/auth/vectors.json");
    ASSERT_FALSE(json_.empty());
    ASSERT_TRUE(ParseClusterSecret(Field("secretHex"), secret_).ok());
  }
  std::string Field(const std::string& name) {
    std::smatch m;
    std::regex re("\"" + name + "\"\\s*:\\s*\"([^\"]*)\"");
    if (!std::regex_search(json_, m, re)) ADD_FAILURE() << "no " << name << " in vectors.json";
    return m.size() > 1 ? m[1].str() : "";
  }
  std::string json_;
  uint8_t secret_[kClusterSecretBytes];
};

TEST_F(Vectors, DerivationsMatchTheTsSide) {
  for (const char* label : {"node/101", "capability", "token/1000/00112233aabbccdd", "curve/server", "curve/member"}) {
    AuthKey k = Derive(secret_, label);
    EXPECT_EQ(Hex(k.bytes, 32), Field(label)) << label;
  }
  EXPECT_EQ(Hex(NodeKey(secret_, 101).bytes, 32), Field("node/101"));
  EXPECT_EQ(Hex(CapabilityKey(secret_).bytes, 32), Field("capability"));
  EXPECT_EQ(Hex(TokenSecret(secret_, 1000, 0x00112233aabbccddull).bytes, 32), Field("token/1000/00112233aabbccdd"));
}

TEST_F(Vectors, TokenParses) {
  Token t;
  ASSERT_TRUE(ParseToken(Field("token"), &t).ok());
  EXPECT_EQ(t.uid, 1000u);
  EXPECT_EQ(t.tokenId, 0x00112233aabbccddull);
  EXPECT_EQ(Hex(t.secret.bytes, 32), Field("token/1000/00112233aabbccdd"));
  for (const char* bad : {"", "mpt1", "mpt2.1000.00112233aabbccdd.AAAA", "mpt1.x.00112233aabbccdd.AAAA",
                          "mpt1.1000.00112233AABBCCDD.SnxyG9LHmc2b-l0CYjPiiQ61mdnnxdUF-bTRjNUAPRw",
                          "mpt1.1000.0011.SnxyG9LHmc2b-l0CYjPiiQ61mdnnxdUF-bTRjNUAPRw",
                          "mpt1.1000.00112233aabbccdd.short"}) {
    Status s = ParseToken(bad, &t);
    EXPECT_EQ(s.code(), StatusCode::kAuth) << bad;
  }
}

TEST_F(Vectors, CapabilitySignAndCheck) {
  CapabilitySigner signer(secret_);
  Capability c;
  c.inode = 77;
  c.rights = kRightRead;
  c.expiresMs = 2000;
  signer.Sign(&c);
  EXPECT_TRUE(signer.Check(c, 77, kRightRead, 1000).ok());
  EXPECT_EQ(signer.Check(c, 77, kRightWrite, 1000).code(), StatusCode::kAccess);
  EXPECT_EQ(signer.Check(c, 78, kRightRead, 1000).code(), StatusCode::kAuth);
  EXPECT_EQ(signer.Check(c, 77, kRightRead, 2000).code(), StatusCode::kAuth);  // expired
  uint8_t wire[kCapabilityBytes];
  c.EncodeTo(wire);
  Capability back = Capability::Decode(wire);
  EXPECT_TRUE(signer.Check(back, 77, kRightRead, 1000).ok());
  back.rights = kRightRead | kRightWrite;  // widening the rights breaks the MAC
  EXPECT_EQ(signer.Check(back, 77, kRightWrite, 1000).code(), StatusCode::kAuth);
  // The TS side signs the same bytes: HMAC(capabilityKey, first 20 bytes)[0..16).
  AuthKey ck = CapabilityKey(secret_);
  uint8_t mac[32];
  HmacSha256(ck.bytes, 32, wire, kCapabilitySignedBytes, mac);
  EXPECT_EQ(Hex(mac, 16), Hex(c.mac, 16));
}

}  // namespace
}  // namespace millpond
