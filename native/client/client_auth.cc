#include "client/client_auth.h"

#include <cstring>

#include "client/zmq_api.h"
#include "common/sha256.h"

namespace millpond {

namespace {

constexpr const char* kCurveClientLabel = "millpond/v1/curve/client";
constexpr size_t kTokenSecretBytes = 32;

int Base64UrlDigit(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// base64url without padding; false on a character outside the alphabet.
bool DecodeBase64Url(const std::string& text, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int d = Base64UrlDigit(c);
    if (d < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return true;
}

bool AllOf(const std::string& s, const char* alphabet) {
  return !s.empty() && s.find_first_not_of(alphabet) == std::string::npos;
}

}  // namespace

Status TokenCurveSecret(const std::string& token, std::string* secret32) {
  // mpt1.<uid>.<16 hex>.<base64url>
  std::string parts[4];
  size_t at = 0;
  for (int i = 0; i < 4; i++) {
    size_t dot = i < 3 ? token.find('.', at) : std::string::npos;
    if (i < 3 && dot == std::string::npos) return Status::Auth("not a millpond token (mpt1.<uid>.<id>.<secret>)");
    parts[i] = token.substr(at, dot == std::string::npos ? std::string::npos : dot - at);
    at = dot + 1;
  }
  std::string secret;
  if (parts[0] != "mpt1" || !AllOf(parts[1], "0123456789") || parts[1].size() > 10 || parts[2].size() != 16 ||
      !AllOf(parts[2], "0123456789abcdef") || !DecodeBase64Url(parts[3], &secret) || secret.size() != kTokenSecretBytes) {
    return Status::Auth("malformed millpond token");
  }
  uint8_t out[kSha256Bytes];
  HmacSha256(secret.data(), secret.size(), kCurveClientLabel, std::strlen(kCurveClientLabel), out);
  secret32->assign(reinterpret_cast<const char*>(out), sizeof out);
  return Status::OK();
}

Status ApplyTokenCurve(const std::string& token, const std::string& serverKey, RpcClientOptions* rpc) {
  if (serverKey.size() != zmq::kCurveKeyZ85Chars) {
    return Status::Auth("the server key is the cluster's CURVE public key, 40 Z85 characters (cluster.json \"serverKey\")");
  }
  const ZmqApi* api = nullptr;
  MP_RETURN_IF_ERROR(LoadZmqApi(&api));
  std::string secret;
  MP_RETURN_IF_ERROR(TokenCurveSecret(token, &secret));
  char secretZ85[zmq::kCurveKeyZ85Chars + 1] = {0};
  char publicZ85[zmq::kCurveKeyZ85Chars + 1] = {0};
  if (api->z85Encode(secretZ85, reinterpret_cast<const uint8_t*>(secret.data()), secret.size()) == nullptr ||
      api->curvePublic(publicZ85, secretZ85) != 0) {
    return api->Error("zmq_curve_public (is libzmq built with libsodium?)");
  }
  rpc->curveServerKey = serverKey;
  rpc->curvePublicKey = publicZ85;
  rpc->curveSecretKey = secretZ85;
  return Status::OK();
}

}  // namespace millpond
