// Reading a token the mount daemon is given (its own credential, or the admin token that
// metrics scrapes present): the first line of a file or descriptor, trimmed.
#pragma once

#include <string>

#include "common/status.h"

namespace millpond {

// Reads the token from `fd` (which it closes); `from` names the source in errors. With
// `ownerOnly`, `fd` must be a regular file that only its owner may read (mode & 077 == 0, as
// ssh asks of keys). kAuth when it cannot be read, is longer than limits::kFuseTokenBytesMax,
// is empty, or (ownerOnly) is readable by others.
Status ReadTokenFrom(int fd, const std::string& from, bool ownerOnly, std::string* out);

}  // namespace millpond
