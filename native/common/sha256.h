// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written here rather than taken from
// OpenSSL: the core is linked into the N-API addon, the DuckDB extension and the FUSE daemon,
// and a crypto library in each would be one more dependency to ship and keep in step. They
// key the data plane's handshake and capabilities (common/auth.h), which hash a few dozen
// bytes per request, never payloads, so a portable implementation is fast enough.
#pragma once

#include <cstddef>
#include <cstdint>

namespace millpond {

constexpr size_t kSha256Bytes = 32;
constexpr size_t kSha256BlockBytes = 64;

class Sha256 {
 public:
  Sha256() { Reset(); }
  void Reset();
  void Update(const void* data, size_t n);
  // Writes the 32-byte digest; the object must be Reset() before another use.
  void Final(uint8_t out[kSha256Bytes]);

 private:
  void Compress(const uint8_t block[kSha256BlockBytes]);
  uint32_t state_[8];
  uint8_t buffer_[kSha256BlockBytes];
  size_t buffered_ = 0;
  uint64_t totalBytes_ = 0;
};

// An HMAC-SHA256 key with its inner and outer pads already hashed, so each MAC costs two
// compressions fewer. Copyable; immutable after construction.
class HmacKey {
 public:
  HmacKey() = default;
  HmacKey(const void* key, size_t n);
  // MAC of the concatenation of the parts (a null part pointer is skipped).
  void Mac(const void* data, size_t n, uint8_t out[kSha256Bytes]) const;
  void Mac2(const void* a, size_t an, const void* b, size_t bn, uint8_t out[kSha256Bytes]) const;

 private:
  Sha256 inner_, outer_;  // after absorbing key^ipad and key^opad
};

void HmacSha256(const void* key, size_t keyBytes, const void* data, size_t n, uint8_t out[kSha256Bytes]);

// Equality of two byte strings in time independent of where they differ.
bool ConstantTimeEqual(const void* a, const void* b, size_t n);

}  // namespace millpond
