// Authenticated encryption of data-plane frames (design §10, cluster flag encryptData), with
// libsodium loaded at run time (dlopen, as libibverbs is): the addon needs nothing new to
// build, and a host without libsodium runs everything but encryption (Load() says why).
//
// Algorithms: AES-256-GCM where libsodium finds the CPU's AES-NI and CLMUL (its
// crypto_aead_aes256gcm_is_available), else ChaCha20-Poly1305-IETF. Both take a 32-byte key,
// a 12-byte nonce and give a 16-byte tag. This file holds no cryptography of its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/auth.h"
#include "common/status.h"

namespace millpond {

enum class AeadAlgorithm : uint32_t {
  kNone = 0,
  kAes256Gcm = 1,
  kChaCha20Poly1305 = 2,
};
const char* AeadName(AeadAlgorithm a);

constexpr size_t kAeadTagBytes = 16;
constexpr size_t kAeadNonceBytes = 12;

// libsodium's entry points, loaded once per process. Thread-safe after Load().
class Aead {
 public:
  // OK and *out set when libsodium loads and initialises; kNotSupported saying why otherwise.
  static Status Load(const Aead** out);
  // Whether this host can run `a` (AES-256-GCM needs the CPU's AES instructions).
  bool Supports(AeadAlgorithm a) const;
  // Encrypts n bytes in place (`buf`) under key and the 12-byte nonce; writes the tag.
  // REQUIRES: Supports(a).
  void Seal(AeadAlgorithm a, const uint8_t* key, const uint8_t* nonce, uint8_t* buf, size_t n,
            uint8_t tag[kAeadTagBytes]) const;
  // Checks the tag, then decrypts n bytes in place. False (buf unchanged) when the bytes or
  // the tag were altered, or the key or nonce differ from the sender's.
  bool Open(AeadAlgorithm a, const uint8_t* key, const uint8_t* nonce, uint8_t* buf, size_t n,
            const uint8_t tag[kAeadTagBytes]) const;

  using EncryptFn = int (*)(unsigned char*, unsigned char*, unsigned long long*, const unsigned char*,
                            unsigned long long, const unsigned char*, unsigned long long, const unsigned char*,
                            const unsigned char*, const unsigned char*);
  using DecryptFn = int (*)(unsigned char*, unsigned char*, const unsigned char*, unsigned long long,
                            const unsigned char*, const unsigned char*, unsigned long long, const unsigned char*,
                            const unsigned char*);
  EncryptFn aesEncrypt = nullptr, chachaEncrypt = nullptr;
  DecryptFn aesDecrypt = nullptr, chachaDecrypt = nullptr;
  bool aesAvailable = false;
};

// One connection's keys and nonce counters after the handshake (transport/auth_handshake.h):
// a key per direction, the nonce a per-direction counter (u64 little-endian, then 4 zero
// bytes), so no nonce repeats under a key and a dropped, replayed or reordered record fails
// to open. Seal is used by one sending thread at a time, Open by one receiving thread.
class FrameCipher {
 public:
  FrameCipher(const Aead* aead, AeadAlgorithm algorithm, const AuthKey& sendKey, const AuthKey& receiveKey)
      : aead_(aead), algorithm_(algorithm), sendKey_(sendKey), receiveKey_(receiveKey) {}
  AeadAlgorithm algorithm() const { return algorithm_; }
  // Encrypts buf[0..n) in place and writes its tag to buf[n..n+16). REQUIRES: room for the tag.
  void Seal(uint8_t* buf, size_t n);
  // Opens buf[0..n) whose tag is at buf[n..n+16), in place. kAuth when it fails (tampered).
  Status Open(uint8_t* buf, size_t n);
  // The same with the tag elsewhere.
  Status OpenDetached(uint8_t* buf, size_t n, const uint8_t tag[kAeadTagBytes]);

 private:
  const Aead* aead_;
  const AeadAlgorithm algorithm_;
  const AuthKey sendKey_, receiveKey_;
  uint64_t sent_ = 0, received_ = 0;
};

}  // namespace millpond
