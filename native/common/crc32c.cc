#include "common/crc32c.h"

#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace millpond {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli

// Polynomial arithmetic modulo kPoly, in the reflected bit order (x^0 is bit 31).
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kPoly : b >> 1;
  }
  return p;
}

struct Tables {
  uint32_t bytewise[256];
  uint32_t x2n[64];  // x^(2^k) mod P
  Tables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
      bytewise[i] = c;
    }
    uint32_t p = 1u << 30;  // x^1
    for (int k = 0; k < 64; k++) {
      x2n[k] = p;
      p = MultModP(p, p);
    }
  }
};
const Tables& T() {
  static const Tables tables;
  return tables;
}

// x^(8n) mod P: the operator that appends n zero bytes.
uint32_t ZerosOperator(uint64_t nBytes) {
  uint32_t p = 1u << 31;  // x^0
  unsigned k = 3;         // 8n = n * 2^3
  for (; nBytes; nBytes >>= 1, k++)
    if (nBytes & 1) p = MultModP(T().x2n[k & 63], p);
  return p;
}

uint32_t SoftwareCrc(const uint8_t* p, size_t n, uint32_t crc) {
  const uint32_t* t = T().bytewise;
  while (n--) crc = t[(crc ^ *p++) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// Shifting a lane's CRC past `laneBytes` more bytes is a linear map; tabulate it per byte.
struct ShiftTable {
  uint32_t t[4][256];
  explicit ShiftTable(uint64_t laneBytes) {
    uint32_t op = ZerosOperator(laneBytes);
    for (int b = 0; b < 4; b++)
      for (uint32_t v = 0; v < 256; v++) t[b][v] = MultModP(op, v << (8 * b));
  }
  uint32_t Shift(uint32_t crc) const {
    return t[0][crc & 0xff] ^ t[1][(crc >> 8) & 0xff] ^ t[2][(crc >> 16) & 0xff] ^ t[3][crc >> 24];
  }
};

constexpr size_t kLongLaneBytes = 8192;
constexpr size_t kShortLaneBytes = 256;

__attribute__((target("sse4.2"))) uint64_t Lanes(const uint8_t*& p, size_t lane, uint64_t c0,
                                                   const ShiftTable& shift) {
  uint64_t c1 = 0, c2 = 0;
  const uint8_t* end = p + lane;
  for (; p < end; p += 8) {
    uint64_t a, b, c;
    std::memcpy(&a, p, 8);
    std::memcpy(&b, p + lane, 8);
    std::memcpy(&c, p + 2 * lane, 8);
    c0 = _mm_crc32_u64(c0, a);
    c1 = _mm_crc32_u64(c1, b);
    c2 = _mm_crc32_u64(c2, c);
  }
  p += 2 * lane;
  c0 = shift.Shift(static_cast<uint32_t>(c0)) ^ c1;
  return shift.Shift(static_cast<uint32_t>(c0)) ^ c2;
}

__attribute__((target("sse4.2"))) uint32_t HardwareCrc(const uint8_t* p, size_t n, uint32_t crc) {
  static const ShiftTable kLong(kLongLaneBytes), kShort(kShortLaneBytes);
  uint64_t c = crc;
  while (n && (reinterpret_cast<uintptr_t>(p) & 7)) {
    c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
    n--;
  }
  while (n >= 3 * kLongLaneBytes) {
    c = Lanes(p, kLongLaneBytes, c, kLong);
    n -= 3 * kLongLaneBytes;
  }
  while (n >= 3 * kShortLaneBytes) {
    c = Lanes(p, kShortLaneBytes, c, kShort);
    n -= 3 * kShortLaneBytes;
  }
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
  }
  while (n--) c = _mm_crc32_u8(static_cast<uint32_t>(c), *p++);
  return static_cast<uint32_t>(c);
}

bool DetectSse42() {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
}
#endif

}  // namespace

bool Crc32cIsHardware() {
#if defined(__x86_64__)
  static const bool has = DetectSse42();
  return has;
#else
  return false;
#endif
}

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (Crc32cIsHardware()) return ~HardwareCrc(p, n, crc);
#endif
  return ~SoftwareCrc(p, n, crc);
}

uint32_t Crc32cCombine(uint32_t crcA, uint32_t crcB, uint64_t lengthB) {
  return MultModP(ZerosOperator(lengthB), crcA) ^ crcB;
}

}  // namespace millpond
