// The cluster's key material (design §10), the same derivations as src/auth/keys.ts and
// checked against the same vectors (test/fixtures/auth/vectors.json):
//
//   Derive(S, label) = HMAC-SHA256(S, "millpond/v1/" + label)
//   NodeKey(S, id)           = Derive(S, "node/<id>")            a storage node's key
//   CapabilityKey(S)         = Derive(S, "capability")           MACs capabilities
//   TokenSecret(S, uid, id)  = Derive(S, "token/<uid>/<id hex>") a user token's secret
//
// A capability (after HDFS block tokens) lets its holder read and/or write one file's chunks
// until it expires. Meta signs it when it opens a file; storage verifies it on every client
// request. Wire form, 36 bytes little-endian:
//   0 inode u64   8 rights u32 (kRightRead | kRightWrite)   12 expiresMs u64 (Unix ms)
//   20 mac[16] = first 16 bytes of HMAC-SHA256(CapabilityKey(S), bytes 0..19)
#pragma once

#include <cstdint>
#include <string>

#include "common/sha256.h"
#include "common/status.h"

namespace millpond {

constexpr size_t kClusterSecretBytes = 32;
constexpr size_t kAuthKeyBytes = 32;

struct AuthKey {
  uint8_t bytes[kAuthKeyBytes] = {0};
};

// REQUIRES: secret holds kClusterSecretBytes bytes.
AuthKey Derive(const uint8_t* secret, const std::string& label);
AuthKey NodeKey(const uint8_t* secret, uint32_t nodeId);
AuthKey CapabilityKey(const uint8_t* secret);
// tokenId is the 64-bit id the token spells as 16 lowercase hex digits.
AuthKey TokenSecret(const uint8_t* secret, uint32_t uid, uint64_t tokenId);
std::string TokenIdHex(uint64_t tokenId);

// A token string `mpt1.<uid>.<tokenId hex>.<secret base64url>` (src/auth/keys.ts). kAuth when
// it is not one; the message never echoes the secret.
struct Token {
  uint32_t uid = 0;
  uint64_t tokenId = 0;
  AuthKey secret;
};
Status ParseToken(const std::string& text, Token* out);

// Reads a cluster secret file (64 hex digits, as src/auth/keys.ts writes it).
Status LoadClusterSecret(const std::string& path, uint8_t out[kClusterSecretBytes]);
// Parses 64 hex digits (surrounding whitespace ignored) into a cluster secret.
Status ParseClusterSecret(const std::string& hex, uint8_t out[kClusterSecretBytes]);

constexpr uint32_t kRightRead = 1;
constexpr uint32_t kRightWrite = 2;
constexpr size_t kCapabilityBytes = 36;
constexpr size_t kCapabilitySignedBytes = 20;
constexpr size_t kCapabilityMacBytes = 16;

struct Capability {
  uint64_t inode = 0;
  uint32_t rights = 0;
  uint64_t expiresMs = 0;
  uint8_t mac[kCapabilityMacBytes] = {0};

  void EncodeTo(uint8_t out[kCapabilityBytes]) const;
  static Capability Decode(const uint8_t in[kCapabilityBytes]);
};

// Signs and checks capabilities; holds CapabilityKey(S) with its pads hashed.
class CapabilitySigner {
 public:
  explicit CapabilitySigner(const uint8_t* secret);
  void Sign(Capability* cap) const;  // fills cap->mac
  // OK when `cap` is genuine, unexpired at nowMs, for `inode`, and grants `right`:
  // kAuth when forged, expired or for another inode; kAccess when it lacks the right.
  Status Check(const Capability& cap, uint64_t inode, uint32_t right, uint64_t nowMs) const;

 private:
  HmacKey key_;
};

// Milliseconds since the Unix epoch (the clock capabilities expire by).
uint64_t WallClockMs();
// Fills n bytes from the kernel's random source (getrandom).
Status RandomBytes(void* out, size_t n);

}  // namespace millpond
