// Thin POSIX wrappers that retry on EINTR and short transfers and report a Status.
// All OS file access of the core goes through here (LevelDB's Env, in small).
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace millpond {

// Reads up to n bytes at offset; *got < n only at end of file.
Status PreadFull(int fd, void* dst, size_t n, uint64_t offset, size_t* got, const char* what);
Status PwriteFull(int fd, const void* src, size_t n, uint64_t offset, const char* what);
// Writes every byte of iov at offset (the iovec array is modified).
Status PwritevFull(int fd, struct iovec* iov, int iovcnt, uint64_t offset, const char* what);

// Consumes n transferred bytes from the front of an iovec array: whole entries are skipped,
// a partly transferred one is trimmed in place.
void AdvanceIov(struct iovec** iov, int* iovcnt, size_t n);

// An owned file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) { Reset(); fd_ = o.fd_; o.fd_ = -1; }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { int f = fd_; fd_ = -1; return f; }
  void Reset();

 private:
  int fd_ = -1;
};

}  // namespace millpond
