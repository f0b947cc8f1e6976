#include "common/aead.h"

#include <dlfcn.h>

#include <cstring>
#include <mutex>

namespace millpond {

namespace {

struct Loaded {
  Aead aead;
  Status status;
};

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* out, Status* why) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    *why = Status::NotSupported(std::string("libsodium.so.23 lacks ") + name);
    return false;
  }
  *out = reinterpret_cast<Fn>(sym);
  return true;
}

void LoadOnce(Loaded* l) {
  void* lib = dlopen("libsodium.so.23", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    l->status = Status::NotSupported(std::string("libsodium (libsodium23) is not loadable: ") +
                                     (err ? err : "unknown error"));
    return;
  }
  int (*init)() = nullptr;
  int (*aesAvailable)() = nullptr;
  Aead& a = l->aead;
  Status& s = l->status;
  if (!(Bind(lib, "sodium_init", &init, &s) && Bind(lib, "crypto_aead_aes256gcm_is_available", &aesAvailable, &s) &&
        Bind(lib, "crypto_aead_aes256gcm_encrypt_detached", &a.aesEncrypt, &s) &&
        Bind(lib, "crypto_aead_aes256gcm_decrypt_detached", &a.aesDecrypt, &s) &&
        Bind(lib, "crypto_aead_chacha20poly1305_ietf_encrypt_detached", &a.chachaEncrypt, &s) &&
        Bind(lib, "crypto_aead_chacha20poly1305_ietf_decrypt_detached", &a.chachaDecrypt, &s)))
    return;
  if (init() < 0) {
    s = Status::NotSupported("libsodium failed to initialise");
    return;
  }
  a.aesAvailable = aesAvailable() == 1;
}

}  // namespace

const char* AeadName(AeadAlgorithm a) {
  switch (a) {
    case AeadAlgorithm::kAes256Gcm: return "AES-256-GCM";
    case AeadAlgorithm::kChaCha20Poly1305: return "ChaCha20-Poly1305-IETF";
    default: return "none";
  }
}

Status Aead::Load(const Aead** out) {
  static Loaded loaded;
  static std::once_flag once;
  std::call_once(once, [] { LoadOnce(&loaded); });
  if (!loaded.status.ok()) return loaded.status;
  *out = &loaded.aead;
  return Status::OK();
}

bool Aead::Supports(AeadAlgorithm a) const {
  return a == AeadAlgorithm::kChaCha20Poly1305 || (a == AeadAlgorithm::kAes256Gcm && aesAvailable);
}

void Aead::Seal(AeadAlgorithm a, const uint8_t* key, const uint8_t* nonce, uint8_t* buf, size_t n,
                uint8_t tag[kAeadTagBytes]) const {
  unsigned long long tagBytes = 0;
  EncryptFn f = a == AeadAlgorithm::kAes256Gcm ? aesEncrypt : chachaEncrypt;
  f(buf, tag, &tagBytes, buf, n, nullptr, 0, nullptr, nonce, key);
}

bool Aead::Open(AeadAlgorithm a, const uint8_t* key, const uint8_t* nonce, uint8_t* buf, size_t n,
                const uint8_t tag[kAeadTagBytes]) const {
  DecryptFn f = a == AeadAlgorithm::kAes256Gcm ? aesDecrypt : chachaDecrypt;
  return f(buf, nullptr, buf, n, tag, nullptr, 0, nonce, key) == 0;
}

namespace {
void Nonce(uint64_t counter, uint8_t out[kAeadNonceBytes]) {
  std::memset(out, 0, kAeadNonceBytes);
  std::memcpy(out, &counter, 8);  // little-endian hosts only (as the frame codecs)
}
}  // namespace

void FrameCipher::Seal(uint8_t* buf, size_t n) {
  uint8_t nonce[kAeadNonceBytes];
  Nonce(sent_++, nonce);
  aead_->Seal(algorithm_, sendKey_.bytes, nonce, buf, n, buf + n);
}

Status FrameCipher::Open(uint8_t* buf, size_t n) { return OpenDetached(buf, n, buf + n); }

Status FrameCipher::OpenDetached(uint8_t* buf, size_t n, const uint8_t tag[kAeadTagBytes]) {
  uint8_t nonce[kAeadNonceBytes];
  Nonce(received_++, nonce);
  if (!aead_->Open(algorithm_, receiveKey_.bytes, nonce, buf, n, tag))
    return Status::Auth("a data frame failed its integrity check (altered, replayed or reordered on the way)");
  return Status::OK();
}

}  // namespace millpond
