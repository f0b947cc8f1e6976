// Mutual authentication of a data-plane connection (design §10), before its first request.
// Every TCP connection to a data server that has a cluster secret runs it, including the ones
// that go on to set up an RDMA queue pair, so RDMA connections are authenticated too.
//
// The peer proves it holds a key derived from the cluster secret S; the server derives the
// same key from S, so it needs no table of keys:
//   a storage node (or another cluster daemon):  K = NodeKey(S, nodeId)
//   a client with a token (uid, tokenId):        K = TokenSecret(S, uid, tokenId)
// and the server proves it knows S too, so a client never sends requests (or, over RDMA,
// registers memory) to an impostor.
//
//   client -> server  hello      magic "MPA1" u32, version u8, kind u8, 0 u16, id u32 (nodeId
//                                or uid), tokenId u64, clientNonce[32]              52 bytes
//   server -> client  challenge  magic u32, status i32, serverNonce[32],
//                                serverProof[32] = HMAC(K, "millpond/v1/hs/server" || hello || serverNonce)
//                                (refused: status kAuth, messageBytes u32 at 8, zeros, then the message)
//   client -> server  proof      clientProof[32] = HMAC(K, "millpond/v1/hs/client" || hello || serverNonce)
//   server -> client  verdict    status i32, messageBytes u32, message
// A refused challenge carries status kAuth and no nonce or proof that mean anything; the
// server then closes. Both nonces are fresh per connection, so a recorded handshake replays
// nowhere; the two labels keep either proof from serving as the other.
//
// After it the connection is bound to the authenticated peer (frames carry no MAC): see
// README "Security" for why.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/auth.h"
#include "common/status.h"

namespace millpond {

constexpr uint32_t kAuthHelloMagic = 0x3141504Du;  // "MPA1"
constexpr size_t kAuthNonceBytes = 32;

enum class PeerKind : uint8_t {
  kAnonymous = 0,  // no handshake ran: the server has no secret (authentication off)
  kNode = 1,       // a storage node or another cluster daemon: chain-internal operations
  kClient = 2,     // a user's client: only requests with a capability
};

struct PeerIdentity {
  PeerKind kind = PeerKind::kAnonymous;
  uint32_t id = 0;       // nodeId or uid
  uint64_t tokenId = 0;  // kClient
  std::string ToString() const;
};

// What the connecting side presents. kAnonymous sends no hello (for servers without a secret).
struct ClientCredentials {
  PeerKind kind = PeerKind::kAnonymous;
  uint32_t id = 0;
  uint64_t tokenId = 0;
  AuthKey key;
  static ClientCredentials ForNode(const uint8_t* clusterSecret, uint32_t nodeId);
  static ClientCredentials ForToken(const Token& token);
  bool present() const { return kind != PeerKind::kAnonymous; }
};

// A server's half: the cluster secret. Shared, immutable once made.
struct ServerAuth {
  uint8_t secret[kClusterSecretBytes] = {0};
  CapabilitySigner capabilities;
  explicit ServerAuth(const uint8_t* clusterSecret);
};

// Client side, on a connected blocking socket: runs the handshake; OK when both sides proved
// their keys. kAuth when the server refused us or failed to prove it knows S.
Status AuthenticateToServer(int fd, const ClientCredentials& credentials, uint32_t timeoutMs);

// Server side, after the first 4 bytes (kAuthHelloMagic) were read: runs the rest and, when
// the peer proves its key, fills *peer. On failure the peer has been told (verdict kAuth) and
// the caller closes the socket.
Status AuthenticateClient(int fd, const ServerAuth& auth, uint32_t timeoutMs, PeerIdentity* peer);

// A server without a secret, after reading kAuthHelloMagic: reads the rest of the hello and
// answers with a refused challenge carrying `why`.
void RefuseHandshake(int fd, const Status& why, uint32_t timeoutMs);

// "host:port" of the socket's peer, for logs ("?" when unknown).
std::string PeerAddress(int fd);

}  // namespace millpond
