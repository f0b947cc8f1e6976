// The RDMA entry points when the core is built without <infiniband/verbs.h>: the probe says
// why, and the transports refuse with kNoDevice so `auto` selects TCP.
#include "transport/rdma/rdma_config.h"

#if !MILLPOND_HAVE_VERBS
#include "transport/rdma/rdma_transport.h"

namespace millpond {

namespace {
constexpr const char* kWhy = "built without libibverbs headers (install libibverbs-dev and rebuild)";

class UnavailableServer : public RdmaServerTransport {
 public:
  Status Start(const ServerTransportOptions&, CallHandler*) override { return Status::NoDevice(kWhy); }
  uint16_t port() const override { return 0; }
  void Stop() override {}
  TransportKind kind() const override { return TransportKind::kRdma; }
  const TransportCounters& counters() const override { return counters_; }
  void Adopt(UniqueFd) override {}  // closing the socket refuses the peer

 private:
  TransportCounters counters_;
};

class UnavailableClient : public ClientTransport {
 public:
  void Submit(const std::string&, ClientCall* call) override {
    call->status = Status::NoDevice(kWhy);
    call->carriedBy = TransportKind::kRdma;
    call->done(call);
  }
  void Close() override {}
  TransportKind kind() const override { return TransportKind::kRdma; }
  const TransportCounters& counters() const override { return counters_; }

 private:
  TransportCounters counters_;
};
}  // namespace

Status RdmaProbe(std::string* detail) {
  if (detail) *detail = kWhy;
  return Status::NoDevice(kWhy);
}
std::unique_ptr<RdmaServerTransport> NewRdmaServerTransport() {
  return std::make_unique<UnavailableServer>();
}
std::unique_ptr<ClientTransport> NewRdmaClientTransport(const ClientTransportOptions&) {
  return std::make_unique<UnavailableClient>();
}

}  // namespace millpond
#endif  // !MILLPOND_HAVE_VERBS
