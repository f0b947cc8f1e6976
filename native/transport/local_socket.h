// Unix stream sockets at filesystem paths, for short-circuit local reads: a client on the
// same host asks the data server for a chunk's version file and receives its descriptor
// (SCM_RIGHTS) instead of its bytes.
//
// A path socket (not an abstract name) so that the file system guards it: the server puts it
// in a 0700 directory, so only its own uid (and root) can connect at all, and it checks the
// peer's credentials (SO_PEERCRED) besides. The name carries the server's random instance id,
// so reaching it proves the client talks to the server it learned the path from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/file_io.h"
#include "common/status.h"

namespace millpond {

// Binds `path` (a stale socket file there is replaced).
Status ListenLocal(const std::string& path, UniqueFd* out);
// kConnRefused (or kNotFound, kAccess) when no server of ours listens at `path` on this host.
Status ConnectLocal(const std::string& path, UniqueFd* out);
// The uid of the process at the other end of a Unix socket (SO_PEERCRED).
Status PeerUid(int fd, uint32_t* uid);
// Sends all n bytes; with passFd >= 0 a copy of that descriptor goes with the first byte.
Status SendWithFd(int fd, const void* data, size_t n, int passFd, uint32_t timeoutMs);
// Reads exactly n bytes within timeoutMs; a descriptor that arrives with them is stored in
// *received (others beyond the first are closed). EOF before any byte is kConnReset "closed".
Status RecvWithFd(int fd, void* dst, size_t n, uint32_t timeoutMs, UniqueFd* received);

}  // namespace millpond
