// The data plane's mutual authentication (transport/auth_handshake.h) over real TCP sockets:
// a server transport with a cluster secret and clients presenting a node's key, a token,
// a wrong key, or nothing; and a server without a secret facing a client with credentials.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/aead.h"
#include "common/auth.h"
#include "common/buffer_pool.h"
#include "transport/socket_io.h"
#include "transport/transport.h"

namespace millpond {
namespace {

// Answers every call with its peer's identity as "<kind>/<id>/<tokenId>".
class EchoPeer : public CallHandler {
 public:
  void OnCall(std::unique_ptr<ServerCall> call) override {
    const PeerIdentity& p = call->peer();
    std::string meta = std::to_string(static_cast<int>(p.kind)) + "/" + std::to_string(p.id) + "/" + TokenIdHex(p.tokenId);
    call->Reply(Status::OK(), meta, nullptr, 0);
  }
};

class AuthHandshake : public ::testing::Test {
 protected:
  void SetUp() override {
    for (size_t i = 0; i < sizeof secret_; i++) secret_[i] = static_cast<uint8_t>(i * 7 + 1);
  }
  void StartServer(bool withSecret, bool encryptData = false) {
    ServerTransportOptions o;
    o.buffers = &buffers_;
    o.frameTimeoutMs = 2000;
    if (withSecret) {
      auto auth = std::make_shared<ServerAuth>(secret_);
      auth->encryptData = encryptData;
      o.auth = std::move(auth);
    }
    server_ = NewTcpServerTransport();
    ASSERT_TRUE(server_->Start(o, &handler_).ok());
    address_ = "127.0.0.1:" + std::to_string(server_->port());
  }
  // One ping with `credentials`; returns the status and the identity the server saw.
  Status Call(const ClientCredentials& credentials, std::string* seen) {
    ClientTransportOptions o;
    o.credentials = credentials;
    auto client = NewTcpClientTransport(o);
    std::promise<void> done;
    ClientCall call;
    call.opcode = 8;  // ping
    call.timeoutMs = 5000;
    call.done = [&](ClientCall*) { done.set_value(); };
    client->Submit(address_, &call);
    EXPECT_EQ(done.get_future().wait_for(std::chrono::seconds(20)), std::future_status::ready);
    client->Close();
    if (seen) *seen = call.replyMeta;
    return call.status;
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  uint8_t secret_[kClusterSecretBytes];
  BufferPool buffers_{64 << 20};
  EchoPeer handler_;
  std::unique_ptr<ServerTransport> server_;
  std::string address_;
};

TEST_F(AuthHandshake, NodeAndTokenAuthenticateAndTheServerSeesWho) {
  StartServer(true);
  std::string seen;
  ASSERT_TRUE(Call(ClientCredentials::ForNode(secret_, 7), &seen).ok());
  EXPECT_EQ(seen, "1/7/0000000000000000");
  Token t;
  t.uid = 1000;
  t.tokenId = 0x00112233aabbccddull;
  t.secret = TokenSecret(secret_, t.uid, t.tokenId);
  ASSERT_TRUE(Call(ClientCredentials::ForToken(t), &seen).ok());
  EXPECT_EQ(seen, "2/1000/00112233aabbccdd");
  EXPECT_EQ(server_->counters().authFailures.load(), 0u);
}

TEST_F(AuthHandshake, WrongKeysAndNoHandshakeAreRefusedAndTheServerKeepsServing) {
  StartServer(true);
  uint8_t other[kClusterSecretBytes] = {9};
  Status s = Call(ClientCredentials::ForNode(other, 7), nullptr);  // a node key from another secret
  EXPECT_EQ(s.code(), StatusCode::kAuth) << s.ToString();
  Token t;  // a token whose secret is not what S derives for it
  t.uid = 0;
  t.tokenId = 1;
  t.secret = TokenSecret(other, 0, 1);
  s = Call(ClientCredentials::ForToken(t), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kAuth) << s.ToString();
  s = Call(ClientCredentials(), nullptr);  // no handshake at all: the first frame gets kAuth
  EXPECT_EQ(s.code(), StatusCode::kAuth) << s.ToString();
  // A refused client may return before the server has seen its connection close, which is
  // when that refusal is counted: wait for the count, within a bound.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server_->counters().authFailures.load() < 3u && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_GE(server_->counters().authFailures.load(), 3u);
  std::string seen;
  ASSERT_TRUE(Call(ClientCredentials::ForNode(secret_, 3), &seen).ok());
  EXPECT_EQ(seen, "1/3/0000000000000000");
}

TEST_F(AuthHandshake, AServerWithoutASecretRefusesCredentialsButServesAnonymousPeers) {
  StartServer(false);
  Status s = Call(ClientCredentials::ForNode(secret_, 7), nullptr);
  EXPECT_EQ(s.code(), StatusCode::kAuth) << s.ToString();
  std::string seen;
  ASSERT_TRUE(Call(ClientCredentials(), &seen).ok());
  EXPECT_EQ(seen, "0/0/0000000000000000");
}

// encryptData: frames sealed both ways (the echo arrives intact through the cipher); a client
// that will not encrypt is refused with kEncryption, and one that will is served after it.
TEST_F(AuthHandshake, AnEncryptingServerSealsFramesAndRefusesAClientThatWillNotEncrypt) {
  const Aead* aead;
  ASSERT_TRUE(Aead::Load(&aead).ok()) << "libsodium23 is needed";
  StartServer(true, true);
  std::string seen;
  for (int i = 0; i < 3; i++) {  // new connections: fresh keys, counters from 0
    ASSERT_TRUE(Call(ClientCredentials::ForNode(secret_, 7), &seen).ok());
    EXPECT_EQ(seen, "1/7/0000000000000000");
  }
  ClientCredentials refusing = ClientCredentials::ForNode(secret_, 7);
  refusing.refuseEncryption = true;
  Status s = Call(refusing, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kEncryption) << s.ToString();
  EXPECT_NE(s.message().find("encrypts data connections"), std::string::npos) << s.ToString();
  ASSERT_TRUE(Call(ClientCredentials::ForNode(secret_, 8), &seen).ok());
  EXPECT_EQ(seen, "1/8/0000000000000000");
}

// The AEAD itself: a sealed record opens under the same key and counter only; a flipped bit,
// the next counter (a replay or reorder) or the other direction's key fail.
TEST(FrameCipherTest, OpensOnlyWhatWasSealedInOrderUnderItsKey) {
  const Aead* aead;
  ASSERT_TRUE(Aead::Load(&aead).ok()) << "libsodium23 is needed";
  for (AeadAlgorithm a : {AeadAlgorithm::kAes256Gcm, AeadAlgorithm::kChaCha20Poly1305}) {
    if (!aead->Supports(a)) continue;
    AuthKey k1, k2;
    for (size_t i = 0; i < kAuthKeyBytes; i++) k1.bytes[i] = static_cast<uint8_t>(i), k2.bytes[i] = static_cast<uint8_t>(i + 1);
    FrameCipher sender(aead, a, k1, k2), receiver(aead, a, k2, k1), wrong(aead, a, k2, k2);
    std::string plain = "millpond frame payload";
    std::vector<uint8_t> rec(plain.begin(), plain.end());
    rec.resize(plain.size() + kAeadTagBytes);
    sender.Seal(rec.data(), plain.size());
    EXPECT_NE(std::string(rec.begin(), rec.begin() + plain.size()), plain) << AeadName(a);
    std::vector<uint8_t> copy = rec;
    ASSERT_TRUE(receiver.Open(copy.data(), plain.size()).ok()) << AeadName(a);
    EXPECT_EQ(std::string(copy.begin(), copy.begin() + plain.size()), plain);
    copy = rec;  // the receiver's counter moved on: the same record again is a replay
    EXPECT_EQ(receiver.Open(copy.data(), plain.size()).code(), StatusCode::kAuth);
    FrameCipher fresh(aead, a, k2, k1);
    copy = rec;
    copy[3] ^= 0x10;
    EXPECT_EQ(fresh.Open(copy.data(), plain.size()).code(), StatusCode::kAuth);  // altered
    copy = rec;
    EXPECT_EQ(wrong.Open(copy.data(), plain.size()).code(), StatusCode::kAuth);  // another key
  }
}

// A server that accepts and then says nothing (paused with SIGSTOP: the kernel still completes
// TCP connects) holds a new connection in its handshake for the whole connect timeout. A call
// queued behind that handshake whose caller abandoned it (a hedge won elsewhere) ends within
// ticks, not when the handshake gives up.
TEST_F(AuthHandshake, AnAbandonedCallEndsWhileTheHandshakeWaitsOnASilentServer) {
  UniqueFd listener;
  uint16_t port = 0;
  ASSERT_TRUE(ListenTcp("127.0.0.1", 0, &listener, &port).ok());
  ClientTransportOptions o;
  o.credentials = ClientCredentials::ForNode(secret_, 7);
  auto client = NewTcpClientTransport(o);
  auto abandon = std::make_shared<std::atomic<bool>>(false);
  std::promise<void> done;
  ClientCall call;
  call.opcode = 8;  // ping
  call.timeoutMs = 5000;
  call.abandon = abandon;
  call.done = [&](ClientCall*) { done.set_value(); };
  client->Submit("127.0.0.1:" + std::to_string(port), &call);
  auto f = done.get_future();
  EXPECT_EQ(f.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout) << "the handshake is still waiting";
  const auto abandonedAt = std::chrono::steady_clock::now();
  abandon->store(true);
  ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_LT(std::chrono::steady_clock::now() - abandonedAt, std::chrono::milliseconds(1000))
      << "the call waited for the handshake's timeout";
  EXPECT_EQ(call.status.code(), StatusCode::kTimedOut) << call.status.ToString();
  client->Close();
}

}  // namespace
}  // namespace millpond
