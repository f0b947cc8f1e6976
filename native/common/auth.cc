#include "common/auth.h"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

namespace millpond {

namespace {

void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// base64url without padding; false on a character outside the alphabet or a bad length.
bool DecodeBase64Url(const std::string& in, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '-') v = 62;
    else if (c == '_') v = 63;
    else return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return bits < 6;
}

}  // namespace

AuthKey Derive(const uint8_t* secret, const std::string& label) {
  std::string message = "millpond/v1/" + label;
  AuthKey k;
  HmacSha256(secret, kClusterSecretBytes, message.data(), message.size(), k.bytes);
  return k;
}

AuthKey NodeKey(const uint8_t* secret, uint32_t nodeId) { return Derive(secret, "node/" + std::to_string(nodeId)); }
AuthKey CapabilityKey(const uint8_t* secret) { return Derive(secret, "capability"); }

std::string TokenIdHex(uint64_t tokenId) {
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(tokenId));
  return hex;
}

AuthKey TokenSecret(const uint8_t* secret, uint32_t uid, uint64_t tokenId) {
  return Derive(secret, "token/" + std::to_string(uid) + "/" + TokenIdHex(tokenId));
}

Status ParseToken(const std::string& text, Token* out) {
  size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
  std::string t = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
  std::string parts[4];
  size_t at = 0;
  for (int i = 0; i < 4; i++) {
    size_t dot = i < 3 ? t.find('.', at) : std::string::npos;
    if (i < 3 && dot == std::string::npos) return Status::Auth("not a millpond token (mpt1.<uid>.<id>.<secret>)");
    parts[i] = t.substr(at, dot == std::string::npos ? std::string::npos : dot - at);
    at = dot + 1;
  }
  if (parts[0] != "mpt1" || parts[3].find('.') != std::string::npos)
    return Status::Auth("not a millpond token (mpt1.<uid>.<id>.<secret>)");
  const std::string& uid = parts[1];
  const std::string& id = parts[2];
  bool ok = !uid.empty() && uid.size() <= 10 && id.size() == 16;
  uint64_t uidValue = 0, idValue = 0;
  for (char c : uid) {
    if (c < '0' || c > '9') ok = false;
    uidValue = uidValue * 10 + static_cast<uint64_t>(c - '0');
  }
  for (char c : id) {
    int v = HexValue(c);
    if (v < 0 || (c >= 'A' && c <= 'F')) ok = false;
    idValue = (idValue << 4) | static_cast<uint64_t>(v < 0 ? 0 : v);
  }
  std::string secret;
  if (!ok || uidValue > 0xffffffffull || !DecodeBase64Url(parts[3], &secret) || secret.size() != kAuthKeyBytes)
    return Status::Auth("malformed millpond token");
  out->uid = static_cast<uint32_t>(uidValue);
  out->tokenId = idValue;
  std::memcpy(out->secret.bytes, secret.data(), kAuthKeyBytes);
  return Status::OK();
}

Status ParseClusterSecret(const std::string& hex, uint8_t out[kClusterSecretBytes]) {
  size_t b = hex.find_first_not_of(" \t\r\n"), e = hex.find_last_not_of(" \t\r\n");
  std::string h = b == std::string::npos ? std::string() : hex.substr(b, e - b + 1);
  if (h.size() != 2 * kClusterSecretBytes) return Status::Auth("a cluster secret is 64 hex digits");
  for (size_t i = 0; i < kClusterSecretBytes; i++) {
    int hi = HexValue(h[2 * i]), lo = HexValue(h[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::Auth("a cluster secret is 64 hex digits");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return Status::OK();
}

Status LoadClusterSecret(const std::string& path, uint8_t out[kClusterSecretBytes]) {
  std::ifstream in(path);
  if (!in) return Status::Auth("cannot read the cluster secret at " + path);
  std::stringstream text;
  text << in.rdbuf();
  Status s = ParseClusterSecret(text.str(), out);
  return s.ok() ? s : Status::Auth(path + ": " + s.message());
}

void Capability::EncodeTo(uint8_t out[kCapabilityBytes]) const {
  PutU64(out, inode);
  for (int i = 0; i < 4; i++) out[8 + i] = static_cast<uint8_t>(rights >> (8 * i));
  PutU64(out + 12, expiresMs);
  std::memcpy(out + kCapabilitySignedBytes, mac, kCapabilityMacBytes);
}

Capability Capability::Decode(const uint8_t in[kCapabilityBytes]) {
  Capability c;
  c.inode = GetU64(in);
  c.rights = uint32_t{in[8]} | uint32_t{in[9]} << 8 | uint32_t{in[10]} << 16 | uint32_t{in[11]} << 24;
  c.expiresMs = GetU64(in + 12);
  std::memcpy(c.mac, in + kCapabilitySignedBytes, kCapabilityMacBytes);
  return c;
}

CapabilitySigner::CapabilitySigner(const uint8_t* secret) {
  AuthKey k = CapabilityKey(secret);
  key_ = HmacKey(k.bytes, sizeof k.bytes);
}

void CapabilitySigner::Sign(Capability* cap) const {
  uint8_t wire[kCapabilityBytes];
  cap->EncodeTo(wire);
  uint8_t mac[kSha256Bytes];
  key_.Mac(wire, kCapabilitySignedBytes, mac);
  std::memcpy(cap->mac, mac, kCapabilityMacBytes);
}

Status CapabilitySigner::Check(const Capability& cap, uint64_t inode, uint32_t right, uint64_t nowMs) const {
  uint8_t wire[kCapabilityBytes];
  cap.EncodeTo(wire);
  uint8_t mac[kSha256Bytes];
  key_.Mac(wire, kCapabilitySignedBytes, mac);
  if (!ConstantTimeEqual(mac, cap.mac, kCapabilityMacBytes)) return Status::Auth("forged capability");
  if (cap.inode != inode)
    return Status::Auth("capability for inode " + std::to_string(cap.inode) + " used on inode " + std::to_string(inode));
  if (cap.expiresMs <= nowMs) return Status::Auth("capability expired");
  if ((cap.rights & right) == 0)
    return Status::Access(std::string("capability does not grant ") + (right == kRightWrite ? "write" : "read"));
  return Status::OK();
}

uint64_t WallClockMs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count());
}

Status RandomBytes(void* out, size_t n) {
  uint8_t* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    ssize_t r = ::getrandom(p, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "getrandom");
    }
    p += r;
    n -= static_cast<size_t>(r);
  }
  return Status::OK();
}

}  // namespace millpond
