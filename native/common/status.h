// Status: the result of every fallible operation in the native core. No exceptions cross
// a core function; a Status carries a stable code (the same string the TS MillpondError
// exposes as `code`) and a human message.
#pragma once

#include <string>
#include <utility>

namespace millpond {

// Stable numeric codes. The numbers travel on the wire (frame status field); never reuse
// or renumber one. kCodeNames in status.cc maps each to its string code.
enum class StatusCode : int {
  kOk = 0,
  kNotFound = 1,        // ENOENT
  kExists = 2,          // EEXIST
  kInvalidArgument = 3, // EINVAL
  kIoError = 4,         // EIO
  kNoSpace = 5,         // ENOSPC
  kCorrupt = 6,         // ECHUNK_CORRUPT: a checksum did not match; the data is never returned
  kTimedOut = 7,        // ETIMEDOUT
  kProtocol = 8,        // EPROTO: a malformed frame or message
  kTooLarge = 9,        // EMSGSIZE: a message or chunk above its limit
  kConnRefused = 10,    // ECONNREFUSED
  kConnReset = 11,      // ECONNRESET: the peer went away with requests in flight
  kClosed = 12,         // ECLOSED: the object was closed
  kBusy = 13,           // EBUSY: a bounded queue is full
  kNotSupported = 14,   // ENOTSUP
  kNoDevice = 15,       // ENODEV: no usable RDMA device
  kStaleVersion = 16,   // ESTALE: a version precondition failed
  kNotCommitted = 17,   // ENOTCOMMITTED: only a pending version exists
  kAccess = 18,         // EACCES
  kInternal = 19,       // EINTERNAL: a bug; the message says where
  // Namespace (meta service); POSIX meanings.
  kNotDir = 20,         // ENOTDIR
  kIsDir = 21,          // EISDIR
  kNotEmpty = 22,       // ENOTEMPTY
  kNameTooLong = 23,    // ENAMETOOLONG
  kPermission = 24,     // EPERM
  kBadHandle = 25,      // EBADF: not an open session
  // Cluster (mgmtd).
  kNotPrimary = 26,     // ENOTPRIMARY: a standby answered; the caller tries the next address
  kTooManyLinks = 27,   // EMLINK: a file has as many names as it may (namespace)
  // Security (design §10).
  kAuth = 28,           // EAUTH: the caller is not authenticated (no, wrong or expired key,
                        //   token or capability)
  kEncryption = 29,     // EENCRYPT: the data server encrypts its connections (cluster flag
                        //   encryptData) and this client does not (refused, or no libsodium)
};

class Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status OK() { return Status(); }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status Exists(std::string m) { return {StatusCode::kExists, std::move(m)}; }
  static Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
  static Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
  static Status NoSpace(std::string m) { return {StatusCode::kNoSpace, std::move(m)}; }
  static Status Corrupt(std::string m) { return {StatusCode::kCorrupt, std::move(m)}; }
  static Status TimedOut(std::string m) { return {StatusCode::kTimedOut, std::move(m)}; }
  static Status Protocol(std::string m) { return {StatusCode::kProtocol, std::move(m)}; }
  static Status TooLarge(std::string m) { return {StatusCode::kTooLarge, std::move(m)}; }
  static Status ConnReset(std::string m) { return {StatusCode::kConnReset, std::move(m)}; }
  static Status Closed(std::string m) { return {StatusCode::kClosed, std::move(m)}; }
  static Status Busy(std::string m) { return {StatusCode::kBusy, std::move(m)}; }
  static Status NotSupported(std::string m) { return {StatusCode::kNotSupported, std::move(m)}; }
  static Status NoDevice(std::string m) { return {StatusCode::kNoDevice, std::move(m)}; }
  static Status StaleVersion(std::string m) { return {StatusCode::kStaleVersion, std::move(m)}; }
  static Status NotCommitted(std::string m) { return {StatusCode::kNotCommitted, std::move(m)}; }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
  static Status Auth(std::string m) { return {StatusCode::kAuth, std::move(m)}; }
  static Status Encryption(std::string m) { return {StatusCode::kEncryption, std::move(m)}; }
  static Status Access(std::string m) { return {StatusCode::kAccess, std::move(m)}; }
  // From an errno value set by a failed system call; `what` names the call and its object.
  static Status FromErrno(int err, const std::string& what);

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The stable string code, e.g. "ECHUNK_CORRUPT".
  const char* CodeName() const { return CodeName(code_); }
  static const char* CodeName(StatusCode code);
  // A code received from the wire; unknown numbers map to kProtocol.
  static StatusCode CodeFromWire(int value);
  // A string code received from the control plane ("ENOENT"); false when unknown.
  static bool CodeFromName(const std::string& name, StatusCode* code);
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Returns from the enclosing function when `expr` yields a non-OK Status.
#define MP_RETURN_IF_ERROR(expr)           \
  do {                                     \
    ::millpond::Status _mp_s = (expr);     \
    if (!_mp_s.ok()) return _mp_s;         \
  } while (0)

}  // namespace millpond
