#include "fuse/token_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/limits.h"

namespace millpond {

Status ReadTokenFrom(int fd, const std::string& from, bool ownerOnly, std::string* out) {
  out->clear();
  struct stat st;
  if (ownerOnly && (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077) != 0)) {
    ::close(fd);
    return Status::Auth("the token file " + from + " must be a regular file readable by its owner only (chmod 600)");
  }
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && text.size() <= limits::kFuseTokenBytesMax) text.append(buf, static_cast<size_t>(n));
  const int readErrno = errno;
  ::close(fd);
  if (n < 0) return Status::Auth("cannot read the token from " + from + ": " + std::strerror(readErrno));
  if (text.size() > limits::kFuseTokenBytesMax) {
    return Status::Auth("the token from " + from + " is longer than " + std::to_string(limits::kFuseTokenBytesMax) + " bytes");
  }
  const size_t end = text.find('\n');
  if (end != std::string::npos) text.resize(end);
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) text.pop_back();
  const size_t start = text.find_first_not_of(" \t");
  if (start == std::string::npos) return Status::Auth("no token in " + from);
  *out = text.substr(start);
  return Status::OK();
}

}  // namespace millpond
