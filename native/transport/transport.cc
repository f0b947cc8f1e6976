#include "transport/transport.h"

namespace millpond {

const char* TransportKindName(TransportKind kind) {
  return kind == TransportKind::kRdma ? "rdma" : "tcp";
}

Status ParseTransportChoice(const std::string& text, TransportChoice* out) {
  if (text == "auto") *out = TransportChoice::kAuto;
  else if (text == "tcp") *out = TransportChoice::kTcp;
  else if (text == "rdma") *out = TransportChoice::kRdma;
  else return Status::InvalidArgument("transport must be 'auto', 'tcp' or 'rdma', not '" + text + "'");
  return Status::OK();
}

uint64_t ClientCall::bytesInFlight() const {
  uint64_t n = frame::kHeaderBytes + meta.size() + payloadBytes;
  for (const auto& v : replyData) n += v.iov_len;
  return n;
}

}  // namespace millpond
