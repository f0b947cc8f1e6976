// Blocking-socket helpers for the TCP transport (and the local socket's): exact reads and writes with deadlines.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "common/file_io.h"
#include "common/status.h"

namespace millpond {

// Monotonic milliseconds, for deadlines.
int64_t NowMs();
// Asked each time a wait saw the fd quiet for a whole limits::kTimerTickMs; true ends the wait
// with kTimedOut "abandoned mid-frame": a reader that no longer wants a reply stops waiting for
// a stalled peer, yet one still streaming goes on. It may also do the caller's periodic work
// (a receiver expiring its other calls while one reply stalls).
using QuietTick = std::function<bool()>;

// Waits until fd is ready for `events` or the deadline passes (deadlineMs < 0: no deadline):
// kTimedOut "peer stalled mid-frame". `onQuietTick` (optional): as above.
Status WaitReady(int fd, short events, int64_t deadlineMs, const QuietTick& onQuietTick = {});

// Splits "host:port"; the host may be a name or an IPv4/IPv6 literal ("[::1]:9000").
Status ParseAddress(const std::string& address, std::string* host, uint16_t* port);
// Connects with a deadline and sets the data-plane socket options.
Status ConnectTcp(const std::string& address, uint32_t timeoutMs, UniqueFd* out);
Status ListenTcp(const std::string& host, uint16_t port, UniqueFd* out, uint16_t* boundPort);
void SetDataSocketOptions(int fd);

// Reads exactly n bytes. `idleOk`: before the first byte, wait without a deadline (an idle
// connection between frames); once a byte arrived, the rest must come within timeoutMs.
// EOF before the first byte is kConnReset with message "closed".
// `onQuietTick`: as for WaitReady.
Status ReadExact(int fd, void* dst, size_t n, uint32_t timeoutMs, bool idleOk, const QuietTick& onQuietTick = {});
// Reads exactly the bytes the iovecs describe (the array is modified), within timeoutMs.
Status ReadvExact(int fd, struct iovec* iov, int iovcnt, uint32_t timeoutMs, const QuietTick& onQuietTick = {});
// Discards n bytes, within timeoutMs. `onQuietTick`: as for WaitReady.
Status SkipExact(int fd, size_t n, uint32_t timeoutMs, const QuietTick& onQuietTick = {});
// Writes every byte the iovecs describe (the array is modified); MSG_NOSIGNAL semantics.
Status WritevAll(int fd, struct iovec* iov, int iovcnt, uint32_t timeoutMs);
// Sends n bytes of file `fileFd` from `offset` on socket `sock` with sendfile (the kernel moves
// them from the page cache; no copy in this process), within timeoutMs. Makes `sock`
// non-blocking (every other helper here already passes MSG_DONTWAIT). A peer that closed is
// an error, never a SIGPIPE. A file that ends early is kCorrupt.
Status SendfileAll(int sock, int fileFd, uint64_t offset, size_t n, uint32_t timeoutMs);

}  // namespace millpond
