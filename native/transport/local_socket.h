// Unix stream sockets in the abstract namespace, for short-circuit local reads: a client on
// the same host (the same network namespace) asks the data server for a chunk's version
// file and receives its descriptor (SCM_RIGHTS) instead of its bytes.
//
// Abstract names need no file on disk and vanish with the listener. A name carries the
// server's random instance id, so reaching it proves the client talks to the server it
// learned the name from.
#pragma once

#include <cstddef>
#include <string>

#include "common/file_io.h"
#include "common/status.h"

namespace millpond {

Status ListenLocal(const std::string& name, UniqueFd* out);
// kConnRefused (or kNotFound) when no server listens on this host under `name`.
Status ConnectLocal(const std::string& name, UniqueFd* out);
// Sends all n bytes; with passFd >= 0 a copy of that descriptor goes with the first byte.
Status SendWithFd(int fd, const void* data, size_t n, int passFd, uint32_t timeoutMs);
// Reads exactly n bytes within timeoutMs; a descriptor that arrives with them is stored in
// *received (others beyond the first are closed). EOF before any byte is kConnReset "closed".
Status RecvWithFd(int fd, void* dst, size_t n, uint32_t timeoutMs, UniqueFd* received);

}  // namespace millpond
