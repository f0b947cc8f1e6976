// CRC32C: known vectors, the fast path against a bytewise reference over many lengths and
// misalignments, Crc32cCombine, and extending a CRC with a seed.
#include "common/crc32c.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace millpond {
namespace {

// The reference: one bit at a time, reflected Castagnoli polynomial, pre/post inversion.
uint32_t ReferenceCrc32c(const uint8_t* p, size_t n, uint32_t seed = 0) {
  uint32_t crc = ~seed;
  for (size_t i = 0; i < n; i++) {
    crc ^= p[i];
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

TEST(Crc32c, KnownVectors) {
  const char* digits = "123456789";
  EXPECT_EQ(Crc32c(digits, 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0x00), ones(32, 0xFF);
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  // The reference agrees with the published vectors too (so it is a valid oracle).
  EXPECT_EQ(ReferenceCrc32c(reinterpret_cast<const uint8_t*>(digits), 9), 0xE3069283u);
}

TEST(Crc32c, EmptyInputIsTheSeed) {
  EXPECT_EQ(Crc32c(nullptr, 0), 0u);
  EXPECT_EQ(Crc32c("x", 0, 0xDEADBEEFu), 0xDEADBEEFu);
}

// Lengths around every internal boundary (8-byte words, 3x256 and 3x8192 lanes) plus random
// ones up to 100000, each at offsets 0..7 so the unaligned head path is exercised.
TEST(Crc32c, MatchesBytewiseReferenceAtAllLengthsAndAlignments) {
  std::vector<uint8_t> buf = RandomBytes(100000 + 16, 1234);
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 80; n++) lengths.push_back(n);
  for (size_t base : {256u * 3, 8192u * 3, 8192u * 6})
    for (int d = -9; d <= 9; d++) lengths.push_back(base + d);
  lengths.push_back(4096);
  lengths.push_back(100000);
  std::mt19937 rng(99);
  for (int i = 0; i < 60; i++) lengths.push_back(rng() % 100001);
  SCOPED_TRACE(Crc32cIsHardware() ? "hardware path" : "table path");
  for (size_t n : lengths) {
    for (size_t off = 0; off < 8; off++) {
      const uint8_t* p = buf.data() + off;
      ASSERT_EQ(Crc32c(p, n), ReferenceCrc32c(p, n)) << "length " << n << " offset " << off;
    }
  }
}

TEST(Crc32c, ExtendingWithASeedEqualsOneCall) {
  std::vector<uint8_t> buf = RandomBytes(50000, 7);
  std::mt19937 rng(5);
  for (int i = 0; i < 200; i++) {
    size_t split = rng() % (buf.size() + 1);
    uint32_t prefix = Crc32c(buf.data(), split);
    uint32_t whole = Crc32c(buf.data() + split, buf.size() - split, prefix);
    ASSERT_EQ(whole, Crc32c(buf.data(), buf.size())) << "split " << split;
  }
  // A seed also agrees with the reference run from that seed.
  EXPECT_EQ(Crc32c(buf.data(), 1000, 0x12345678u), ReferenceCrc32c(buf.data(), 1000, 0x12345678u));
}

TEST(Crc32c, CombineEqualsCrcOfConcatenation) {
  std::vector<uint8_t> buf = RandomBytes(70000, 11);
  std::vector<std::pair<size_t, size_t>> cases = {{0, 0}, {0, 1}, {1, 0}, {0, 70000}, {70000, 0},
                                                  {4096, 4096}, {1, 69999}, {69999, 1}};
  std::mt19937 rng(3);
  for (int i = 0; i < 200; i++) {
    size_t a = rng() % 35001, b = rng() % 35001;
    cases.push_back({a, b});
  }
  for (auto [a, b] : cases) {
    uint32_t crcA = Crc32c(buf.data(), a);
    uint32_t crcB = Crc32c(buf.data() + a, b);
    ASSERT_EQ(Crc32cCombine(crcA, crcB, b), Crc32c(buf.data(), a + b)) << "A " << a << " B " << b;
  }
}

TEST(Crc32c, CombineOfManyBlocksEqualsWholeChecksum) {
  // The way the chunk store builds a chunk checksum from its 4 KiB block CRCs.
  std::vector<uint8_t> buf = RandomBytes(4096 * 5 + 123, 17);
  uint32_t whole = 0;
  for (size_t at = 0; at < buf.size(); at += 4096) {
    size_t n = std::min<size_t>(4096, buf.size() - at);
    uint32_t c = Crc32c(buf.data() + at, n);
    whole = at == 0 ? c : Crc32cCombine(whole, c, n);
  }
  EXPECT_EQ(whole, Crc32c(buf.data(), buf.size()));
}

TEST(Crc32c, DetectsASingleFlippedBit) {
  std::vector<uint8_t> buf = RandomBytes(4096, 23);
  uint32_t before = Crc32c(buf.data(), buf.size());
  for (size_t bit = 0; bit < buf.size() * 8; bit += 97) {
    buf[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
    ASSERT_NE(Crc32c(buf.data(), buf.size()), before) << "bit " << bit;
    buf[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  }
}

}  // namespace
}  // namespace millpond
