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
//   client -> server  hello      magic "MPA1" u32, version u8, kind u8, flags u16, id u32 (nodeId
//                                or uid), tokenId u64, clientNonce[32]              52 bytes
//   server -> client  challenge  magic u32, status i32, serverNonce[32], serverProof[32], cipher u32
//                                serverProof = HMAC(K, "millpond/v1/hs/server" || hello || serverNonce || cipher)
//                                (refused: status kAuth or kEncryption, messageBytes u32 at 8, zeros,
//                                then the message)                                  76 bytes
//   client -> server  proof      clientProof[32] = HMAC(K, "millpond/v1/hs/client" || hello || serverNonce || cipher)
//   server -> client  verdict    status i32, messageBytes u32, message
// hello flags: kHelloRdma (an RDMA set-up follows: the socket carries no frames), kHelloNoEncrypt
// (the client will not encrypt: refused by a server with encryptData), kHelloAesGcm (the
// client's CPU runs AES-256-GCM). cipher: the server's choice (AeadAlgorithm; kNone = frames in
// the clear), inside both proofs so nobody on the path can downgrade it. With a cipher, every
// frame after the verdict, both ways, is sealed (common/aead.h) under
//   c2s key = HMAC(K, "millpond/v1/hs/key/c2s" || hello || serverNonce || cipher), s2c likewise,
// header, meta and payload each as one record: ciphertext then a 16-byte tag.
// A refused challenge carries status kAuth and no nonce or proof that mean anything; the
// server then closes. Both nonces are fresh per connection, so a recorded handshake replays
// nowhere; the two labels keep either proof from serving as the other.
//
// Without a cipher, the connection is bound to the authenticated peer (frames carry no MAC): see
// README "Security" for why and for when to turn encryptData on.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/aead.h"
#include "common/auth.h"
#include "common/status.h"

namespace millpond {

constexpr uint32_t kAuthHelloMagic = 0x3141504Du;  // "MPA1"
constexpr size_t kAuthNonceBytes = 32;
constexpr uint16_t kHelloRdma = 1;
constexpr uint16_t kHelloNoEncrypt = 2;
constexpr uint16_t kHelloAesGcm = 4;

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
  // True: never encrypt (a server with encryptData then refuses with kEncryption).
  bool refuseEncryption = false;
  static ClientCredentials ForNode(const uint8_t* clusterSecret, uint32_t nodeId);
  static ClientCredentials ForToken(const Token& token);
  bool present() const { return kind != PeerKind::kAnonymous; }
};

// A server's half: the cluster secret. Shared, immutable once made.
struct ServerAuth {
  uint8_t secret[kClusterSecretBytes] = {0};
  CapabilitySigner capabilities;
  // The cluster's encryptData flag: every TCP connection that carries frames is encrypted;
  // a client that will not is refused (kEncryption). RDMA set-ups are not (README Security).
  bool encryptData = false;
  explicit ServerAuth(const uint8_t* clusterSecret);
};

// Client side, on a connected blocking socket: runs the handshake; OK when both sides proved
// their keys. kAuth when the server refused us or failed to prove it knows S; kEncryption when
// the server encrypts and we will not (or cannot). `rdma`: an RDMA set-up follows (the socket
// carries no frames). *cipher: set when the server chose to encrypt this connection's frames.
Status AuthenticateToServer(int fd, const ClientCredentials& credentials, uint32_t timeoutMs, bool rdma,
                            std::unique_ptr<FrameCipher>* cipher);

// Server side, after the first 4 bytes (kAuthHelloMagic) were read: runs the rest and, when
// the peer proves its key, fills *peer, *rdma (the peer announced an RDMA set-up) and *cipher
// (set when the frames are encrypted). On failure the peer has been told (kAuth or
// kEncryption) and the caller closes the socket.
Status AuthenticateClient(int fd, const ServerAuth& auth, uint32_t timeoutMs, PeerIdentity* peer, bool* rdma,
                          std::unique_ptr<FrameCipher>* cipher);

// A server without a secret, after reading kAuthHelloMagic: reads the rest of the hello and
// answers with a refused challenge carrying `why`.
void RefuseHandshake(int fd, const Status& why, uint32_t timeoutMs);

// "host:port" of the socket's peer, for logs ("?" when unknown).
std::string PeerAddress(int fd);

}  // namespace millpond
