#include "transport/auth_handshake.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "common/limits.h"
#include "transport/socket_io.h"

namespace millpond {

namespace {

constexpr size_t kHelloBytes = 52;
constexpr size_t kChallengeBytes = 8 + kAuthNonceBytes + kSha256Bytes + 4;
constexpr size_t kCipherAt = 8 + kAuthNonceBytes + kSha256Bytes;
constexpr uint8_t kHandshakeVersion = 1;
const char kServerLabel[] = "millpond/v1/hs/server";
const char kClientLabel[] = "millpond/v1/hs/client";
const char kC2sLabel[] = "millpond/v1/hs/key/c2s";
const char kS2cLabel[] = "millpond/v1/hs/key/s2c";

// HMAC(key, label || hello || serverNonce || cipher u32): the proofs and the session keys.
void Proof(const AuthKey& key, const char* label, const uint8_t* hello, const uint8_t* serverNonce,
           uint32_t cipher, uint8_t out[kSha256Bytes]) {
  std::string message(label);
  message.append(reinterpret_cast<const char*>(hello), kHelloBytes);
  message.append(reinterpret_cast<const char*>(serverNonce), kAuthNonceBytes);
  message.append(reinterpret_cast<const char*>(&cipher), 4);
  HmacSha256(key.bytes, sizeof key.bytes, reinterpret_cast<const uint8_t*>(message.data()), message.size(), out);
}

std::unique_ptr<FrameCipher> SessionCipher(const Aead* aead, AeadAlgorithm a, const AuthKey& key, const uint8_t* hello,
                                           const uint8_t* serverNonce, bool client) {
  AuthKey c2s, s2c;
  Proof(key, kC2sLabel, hello, serverNonce, static_cast<uint32_t>(a), c2s.bytes);
  Proof(key, kS2cLabel, hello, serverNonce, static_cast<uint32_t>(a), s2c.bytes);
  return std::make_unique<FrameCipher>(aead, a, client ? c2s : s2c, client ? s2c : c2s);
}

Status SendAll(int fd, const void* p, size_t n, uint32_t timeoutMs) {
  struct iovec iov = {const_cast<void*>(p), n};
  return WritevAll(fd, &iov, 1, timeoutMs);
}

void SendVerdict(int fd, const Status& s, uint32_t timeoutMs) {
  std::string message = s.ok() ? std::string() : s.message().substr(0, limits::kErrorMessageBytesMax);
  uint8_t head[8];
  int32_t code = static_cast<int32_t>(s.code());
  uint32_t n = static_cast<uint32_t>(message.size());
  std::memcpy(head, &code, 4);
  std::memcpy(head + 4, &n, 4);
  std::string out(reinterpret_cast<char*>(head), sizeof head);
  out += message;
  (void)SendAll(fd, out.data(), out.size(), timeoutMs);
}

}  // namespace

std::string PeerIdentity::ToString() const {
  switch (kind) {
    case PeerKind::kNode: return "node " + std::to_string(id);
    case PeerKind::kClient: return "uid " + std::to_string(id) + " token " + TokenIdHex(tokenId);
    default: return "anonymous peer";
  }
}

ClientCredentials ClientCredentials::ForNode(const uint8_t* clusterSecret, uint32_t nodeId) {
  ClientCredentials c;
  c.kind = PeerKind::kNode;
  c.id = nodeId;
  c.key = NodeKey(clusterSecret, nodeId);
  return c;
}

ClientCredentials ClientCredentials::ForToken(const Token& token) {
  ClientCredentials c;
  c.kind = PeerKind::kClient;
  c.id = token.uid;
  c.tokenId = token.tokenId;
  c.key = token.secret;
  return c;
}

ServerAuth::ServerAuth(const uint8_t* clusterSecret) : capabilities(clusterSecret) {
  std::memcpy(secret, clusterSecret, sizeof secret);
}

Status AuthenticateToServer(int fd, const ClientCredentials& c, uint32_t timeoutMs, bool rdma,
                            std::unique_ptr<FrameCipher>* cipher) {
  cipher->reset();
  const Aead* aead = nullptr;
  const bool canEncrypt = !c.refuseEncryption && Aead::Load(&aead).ok();
  uint16_t flags = (rdma ? kHelloRdma : 0) | (canEncrypt ? 0 : kHelloNoEncrypt) |
                   (canEncrypt && aead->Supports(AeadAlgorithm::kAes256Gcm) ? kHelloAesGcm : 0);
  uint8_t hello[kHelloBytes] = {0};
  std::memcpy(hello, &kAuthHelloMagic, 4);
  hello[4] = kHandshakeVersion;
  hello[5] = static_cast<uint8_t>(c.kind);
  std::memcpy(hello + 6, &flags, 2);
  std::memcpy(hello + 8, &c.id, 4);
  std::memcpy(hello + 12, &c.tokenId, 8);
  MP_RETURN_IF_ERROR(RandomBytes(hello + 20, kAuthNonceBytes));
  MP_RETURN_IF_ERROR(SendAll(fd, hello, sizeof hello, timeoutMs));

  uint8_t challenge[kChallengeBytes];
  Status s = ReadExact(fd, challenge, sizeof challenge, timeoutMs, false);
  // The server went away (killed, restarted): retryable like any dropped connection, not a refusal.
  if (!s.ok()) return Status::ConnReset("the data server closed the connection during authentication (" + s.message() + ")");
  uint32_t magic;
  int32_t status;
  std::memcpy(&magic, challenge, 4);
  std::memcpy(&status, challenge + 4, 4);
  if (magic != kAuthHelloMagic) return Status::Auth("the data server does not speak the authentication handshake");
  if (status != 0) {
    uint32_t n = 0;
    std::memcpy(&n, challenge + 8, 4);
    std::string message(n <= limits::kErrorMessageBytesMax ? n : 0, '\0');
    if (!message.empty()) (void)ReadExact(fd, message.data(), message.size(), timeoutMs, false);
    if (status == static_cast<int32_t>(StatusCode::kEncryption))
      return Status::Encryption("data server refused the connection: " + message);
    return Status(Status::CodeFromWire(status), "data server refused authentication: " + message);
  }
  const uint8_t* serverNonce = challenge + 8;
  uint32_t chosen;
  std::memcpy(&chosen, challenge + kCipherAt, 4);
  uint8_t expected[kSha256Bytes];
  Proof(c.key, kServerLabel, hello, serverNonce, chosen, expected);
  if (!ConstantTimeEqual(expected, challenge + 8 + kAuthNonceBytes, kSha256Bytes))
    return Status::Auth("the data server failed to prove it holds the cluster secret");
  const AeadAlgorithm algorithm = static_cast<AeadAlgorithm>(chosen);
  if (algorithm != AeadAlgorithm::kNone &&
      (rdma || !canEncrypt || !aead->Supports(algorithm)))  // a proven server never asks this
    return Status::Protocol("the data server chose cipher " + std::to_string(chosen) + ", which this client did not offer");
  uint8_t proof[kSha256Bytes];
  Proof(c.key, kClientLabel, hello, serverNonce, chosen, proof);
  MP_RETURN_IF_ERROR(SendAll(fd, proof, sizeof proof, timeoutMs));

  uint8_t verdict[8];
  s = ReadExact(fd, verdict, sizeof verdict, timeoutMs, false);
  // The server went away (killed, restarted): retryable like any dropped connection, not a refusal.
  if (!s.ok()) return Status::ConnReset("the data server closed the connection during authentication (" + s.message() + ")");
  uint32_t n;
  std::memcpy(&status, verdict, 4);
  std::memcpy(&n, verdict + 4, 4);
  if (status == 0 && n == 0) {
    if (algorithm != AeadAlgorithm::kNone) *cipher = SessionCipher(aead, algorithm, c.key, hello, serverNonce, true);
    return Status::OK();
  }
  std::string message(n <= limits::kErrorMessageBytesMax ? n : 0, '\0');
  if (!message.empty()) (void)ReadExact(fd, message.data(), message.size(), timeoutMs, false);
  return Status(status == 0 ? StatusCode::kProtocol : Status::CodeFromWire(status),
                "data server refused authentication: " + message);
}

Status AuthenticateClient(int fd, const ServerAuth& auth, uint32_t timeoutMs, PeerIdentity* peer, bool* rdma,
                          std::unique_ptr<FrameCipher>* cipher) {
  cipher->reset();
  uint8_t hello[kHelloBytes];
  std::memcpy(hello, &kAuthHelloMagic, 4);
  MP_RETURN_IF_ERROR(ReadExact(fd, hello + 4, sizeof hello - 4, timeoutMs, false));
  PeerIdentity who;
  who.kind = static_cast<PeerKind>(hello[5]);
  std::memcpy(&who.id, hello + 8, 4);
  std::memcpy(&who.tokenId, hello + 12, 8);

  uint8_t challenge[kChallengeBytes] = {0};
  std::memcpy(challenge, &kAuthHelloMagic, 4);
  auto refuse = [&](const Status& why) {
    int32_t code = static_cast<int32_t>(why.code());
    std::string message = why.message().substr(0, limits::kErrorMessageBytesMax);
    uint32_t n = static_cast<uint32_t>(message.size());
    std::memcpy(challenge + 4, &code, 4);
    std::memcpy(challenge + 8, &n, 4);
    std::string out(reinterpret_cast<char*>(challenge), sizeof challenge);  // fixed size, then the message
    out += message;
    (void)SendAll(fd, out.data(), out.size(), timeoutMs);
    return why;
  };
  if (hello[4] != kHandshakeVersion) return refuse(Status::Auth("unknown handshake version " + std::to_string(hello[4])));
  AuthKey key;
  if (who.kind == PeerKind::kNode) key = NodeKey(auth.secret, who.id);
  else if (who.kind == PeerKind::kClient) key = TokenSecret(auth.secret, who.id, who.tokenId);
  else return refuse(Status::Auth("unknown peer kind " + std::to_string(hello[5])));
  uint16_t flags;
  std::memcpy(&flags, hello + 6, 2);
  *rdma = (flags & kHelloRdma) != 0;
  // The cipher: none for an RDMA set-up (RDMA is not encrypted) or without encryptData; else
  // AES-256-GCM when both ends run it fast, ChaCha20-Poly1305 otherwise.
  AeadAlgorithm algorithm = AeadAlgorithm::kNone;
  const Aead* aead = nullptr;
  if (auth.encryptData && !*rdma) {
    if (flags & kHelloNoEncrypt)
      return refuse(Status::Encryption("this cluster encrypts data connections (encryptData) and " + who.ToString() +
                                       " will not encrypt"));
    Status loaded = Aead::Load(&aead);
    if (!loaded.ok()) return refuse(Status::Encryption("this data server cannot encrypt: " + loaded.message()));
    algorithm = (flags & kHelloAesGcm) && aead->Supports(AeadAlgorithm::kAes256Gcm) ? AeadAlgorithm::kAes256Gcm
                                                                                    : AeadAlgorithm::kChaCha20Poly1305;
  }
  const uint32_t chosen = static_cast<uint32_t>(algorithm);
  std::memcpy(challenge + kCipherAt, &chosen, 4);

  MP_RETURN_IF_ERROR(RandomBytes(challenge + 8, kAuthNonceBytes));
  Proof(key, kServerLabel, hello, challenge + 8, chosen, challenge + 8 + kAuthNonceBytes);
  MP_RETURN_IF_ERROR(SendAll(fd, challenge, sizeof challenge, timeoutMs));

  uint8_t proof[kSha256Bytes];
  Status s = ReadExact(fd, proof, sizeof proof, timeoutMs, false);
  if (!s.ok()) return Status::Auth(who.ToString() + " left during authentication: " + s.message());
  uint8_t expected[kSha256Bytes];
  Proof(key, kClientLabel, hello, challenge + 8, chosen, expected);
  if (!ConstantTimeEqual(expected, proof, kSha256Bytes)) {
    Status why = Status::Auth("wrong key for " + who.ToString());
    SendVerdict(fd, why, timeoutMs);
    return why;
  }
  SendVerdict(fd, Status::OK(), timeoutMs);
  *peer = who;
  if (algorithm != AeadAlgorithm::kNone) *cipher = SessionCipher(aead, algorithm, key, hello, challenge + 8, false);
  return Status::OK();
}

void RefuseHandshake(int fd, const Status& why, uint32_t timeoutMs) {
  uint8_t rest[kHelloBytes - 4];
  if (!ReadExact(fd, rest, sizeof rest, timeoutMs, false).ok()) return;
  uint8_t challenge[kChallengeBytes] = {0};
  std::memcpy(challenge, &kAuthHelloMagic, 4);
  int32_t code = static_cast<int32_t>(why.code());
  std::string message = why.message().substr(0, limits::kErrorMessageBytesMax);
  uint32_t n = static_cast<uint32_t>(message.size());
  std::memcpy(challenge + 4, &code, 4);
  std::memcpy(challenge + 8, &n, 4);
  std::string out(reinterpret_cast<char*>(challenge), sizeof challenge);
  out += message;
  (void)SendAll(fd, out.data(), out.size(), timeoutMs);
}

std::string PeerAddress(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return "?";
  char host[INET6_ADDRSTRLEN] = "?";
  uint16_t port = 0;
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<struct sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<struct sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  return std::string(host) + ":" + std::to_string(port);
}

}  // namespace millpond
