#include "transport/rdma/rdma_select.h"

#include <atomic>
#include <mutex>

#include "common/log.h"
#include "transport/rdma/rdma_transport.h"

namespace millpond {

Status RdmaProbeCached(std::string* detail) {
  static std::once_flag once;
  static Status* status;
  static std::string* text;
  std::call_once(once, [] {
    text = new std::string;
    status = new Status(RdmaProbe(text));
  });
  if (detail) *detail = *text;
  return *status;
}

Status ResolveTransport(TransportChoice choice, TransportKind* out, std::string* note,
                        const RdmaProbeFn& probe) {
  if (choice == TransportChoice::kTcp) {
    *out = TransportKind::kTcp;
    if (note) *note = "tcp requested";
    return Status::OK();
  }
  std::string detail;
  Status s = probe ? probe(&detail) : RdmaProbeCached(&detail);
  if (s.ok()) {
    *out = TransportKind::kRdma;
    if (note) *note = "rdma: " + detail;
    return Status::OK();
  }
  if (choice == TransportChoice::kRdma) {
    // The caller asked for RDMA explicitly: no silent fallback.
    return Status::NoDevice("transport 'rdma' requested but no RDMA device is usable: " + s.message());
  }
  *out = TransportKind::kTcp;
  if (note) *note = "no usable RDMA device (" + s.message() + "), using TCP";
  LogTransportFallbackOnce("transport auto: no usable RDMA device (" + s.message() +
                           "); using TCP");
  return Status::OK();
}

bool LogTransportFallbackOnce(const std::string& line) {
  return LogDebugOncePerProcess("TRANSPORT", line);
}

}  // namespace millpond
