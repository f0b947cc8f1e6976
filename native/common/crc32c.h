// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of chunks, blocks and
// frame headers. Uses the SSE4.2 crc32 instruction over three interleaved lanes when the CPU
// has it, a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace millpond {

// Extends `crc` (the CRC32C of some prefix, 0 for none) over `n` bytes at `data`.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);

// The CRC32C of A||B given crc(A), crc(B) and the length of B.
uint32_t Crc32cCombine(uint32_t crcA, uint32_t crcB, uint64_t lengthB);

// True when the hardware instruction is used (for logs and benchmarks).
bool Crc32cIsHardware();

}  // namespace millpond
