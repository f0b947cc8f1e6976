#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace millpond {

namespace {
constexpr const char* kCodeNames[] = {
    "OK",        "ENOENT",      "EEXIST",   "EINVAL",       "EIO",
    "ENOSPC",    "ECHUNK_CORRUPT", "ETIMEDOUT", "EPROTO",   "EMSGSIZE",
    "ECONNREFUSED", "ECONNRESET", "ECLOSED", "EBUSY",       "ENOTSUP",
    "ENODEV",    "ESTALE",      "ENOTCOMMITTED", "EACCES",  "EINTERNAL",
    "ENOTDIR",   "EISDIR",      "ENOTEMPTY", "ENAMETOOLONG", "EPERM",
    "EBADF",     "ENOTPRIMARY", "EMLINK",      "EAUTH",        "EENCRYPT",
};
constexpr int kCodeCount = sizeof(kCodeNames) / sizeof(kCodeNames[0]);
static_assert(kCodeCount == static_cast<int>(StatusCode::kEncryption) + 1,
              "every StatusCode needs a name");
}  // namespace

const char* Status::CodeName(StatusCode code) {
  int i = static_cast<int>(code);
  return (i >= 0 && i < kCodeCount) ? kCodeNames[i] : "EINTERNAL";
}

StatusCode Status::CodeFromWire(int value) {
  return (value >= 0 && value < kCodeCount) ? static_cast<StatusCode>(value)
                                            : StatusCode::kProtocol;
}

bool Status::CodeFromName(const std::string& name, StatusCode* code) {
  for (int i = 1; i < kCodeCount; i++) {
    if (name == kCodeNames[i]) {
      *code = static_cast<StatusCode>(i);
      return true;
    }
  }
  return false;
}

Status Status::FromErrno(int err, const std::string& what) {
  std::string m = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT: return NotFound(m);
    case EEXIST: return Exists(m);
    case ENOSPC:
    case EDQUOT: return NoSpace(m);
    case EINVAL: return InvalidArgument(m);
    case ETIMEDOUT:
    case EAGAIN: return TimedOut(m);
    case ECONNREFUSED: return {StatusCode::kConnRefused, m};
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN: return ConnReset(m);
    case EACCES:
    case EPERM: return {StatusCode::kAccess, m};
    case ENODEV: return NoDevice(m);
    case EMSGSIZE: return TooLarge(m);
    default: return IoError(m);
  }
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName()) + ": " + message_;
}

}  // namespace millpond
