#include "common/file_io.h"

#include <unistd.h>

#include <cerrno>

namespace millpond {

Status PreadFull(int fd, void* dst, size_t n, uint64_t offset, size_t* got, const char* what) {
  char* p = static_cast<char*>(dst);
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, std::string("read ") + what);
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  *got = done;
  return Status::OK();
}

Status PwriteFull(int fd, const void* src, size_t n, uint64_t offset, const char* what) {
  struct iovec iov = {const_cast<void*>(src), n};
  return PwritevFull(fd, &iov, 1, offset, what);
}

Status PwritevFull(int fd, struct iovec* iov, int iovcnt, uint64_t offset, const char* what) {
  while (iovcnt > 0) {
    ssize_t w = ::pwritev(fd, iov, iovcnt, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, std::string("write ") + what);
    }
    if (w == 0) return Status::IoError(std::string("write ") + what + ": no progress");
    offset += static_cast<uint64_t>(w);
    AdvanceIov(&iov, &iovcnt, static_cast<size_t>(w));
  }
  return Status::OK();
}

void AdvanceIov(struct iovec** iov, int* iovcnt, size_t n) {
  while (*iovcnt > 0 && n >= (*iov)->iov_len) {
    n -= (*iov)->iov_len;
    (*iov)++;
    (*iovcnt)--;
  }
  if (*iovcnt > 0) {
    (*iov)->iov_base = static_cast<char*>((*iov)->iov_base) + n;
    (*iov)->iov_len -= n;
  }
}

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

}  // namespace millpond
