// RDMA transport over libibverbs (loaded with dlopen). See transport.h for the contract.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/file_io.h"
#include "common/status.h"
#include "transport/transport.h"

namespace millpond {

// First 4 bytes a client sends on a TCP connection to ask for RDMA instead of TCP framing.
constexpr uint32_t kRdmaHandshakeMagic = 0x3152504Du;  // "MPR1"

// OK when libibverbs loads and a device with an ACTIVE port exists; else kNoDevice with the
// reason in the message.
Status RdmaProbe(std::string* detail);

class RdmaServerTransport : public ServerTransport {
 public:
  // Has no listener of its own: the TCP server transport accepts the connection, reads the
  // 4-byte magic and hands the socket over here; the RDMA handshake continues on it, and it
  // stays open as the liveness channel of the queue pair.
  // `peer` is what the socket authenticated as (auth_handshake.h); the connection's calls carry it.
  virtual void Adopt(UniqueFd socket, const PeerIdentity& peer) = 0;
};

std::unique_ptr<RdmaServerTransport> NewRdmaServerTransport();  // Start() opens the device
std::unique_ptr<ClientTransport> NewRdmaClientTransport(const ClientTransportOptions& options);

}  // namespace millpond
