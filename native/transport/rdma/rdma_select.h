// Run-time choice between the TCP and RDMA data planes (design §4): `tcp` is TCP, `rdma`
// demands a usable device (kNoDevice otherwise), `auto` takes RDMA when RdmaProbe() passes
// and TCP otherwise, saying so once per process on stderr.
#pragma once

#include <functional>
#include <string>

#include "common/status.h"
#include "transport/transport.h"

namespace millpond {

using RdmaProbeFn = std::function<Status(std::string* detail)>;

// RdmaProbe() run once per process and remembered (devices do not come and go under us
// often enough to pay for probing per connection).
Status RdmaProbeCached(std::string* detail);

// Resolves `choice` to the transport to use. *note, if given, receives a human sentence on
// why (the probe's detail). A null `probe` means RdmaProbeCached.
Status ResolveTransport(TransportChoice choice, TransportKind* out, std::string* note = nullptr,
                        const RdmaProbeFn& probe = nullptr);

// At debug level (MILLPOND_LOG_LEVEL=debug) writes `line` to stderr the first time any copy of the
// core in this process calls it (common/log.h); returns whether it did.
bool LogTransportFallbackOnce(const std::string& line);

}  // namespace millpond
