// One opened RDMA device (context, protection domain, completion channel), registered memory
// regions, and reliable-connected queue pairs with their own completion queue.
#pragma once

#include "transport/rdma/rdma_config.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "transport/rdma/ibv_api.h"
#include "transport/rdma/rdma_wire.h"

namespace millpond::rdma {

class Device {
 public:
  // Opens the first device with an ACTIVE port (kNoDevice otherwise, with the reason).
  static Status Open(std::unique_ptr<Device>* out);
  // Opens and closes the device Open() would pick; *detail names it or says why none.
  static Status Probe(std::string* detail);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const IbvApi& api() const { return *api_; }
  ibv_context* context() const { return ctx_; }
  ibv_pd* pd() const { return pd_; }
  ibv_comp_channel* channel() const { return channel_; }
  const std::string& name() const { return name_; }
  uint8_t port() const { return port_; }
  uint32_t maxQpWr() const { return maxQpWr_; }
  int gidIndex() const { return gidIndex_; }

  // This side's half of the handshake for queue pair `qpn`.
  Hello LocalHello(uint32_t qpn, uint32_t psn, uint32_t depth, uint32_t controlBytes) const;

 private:
  Device() = default;
  const IbvApi* api_ = nullptr;
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  ibv_comp_channel* channel_ = nullptr;
  std::string name_;
  uint8_t port_ = 1;
  int gidIndex_ = -1;  // -1: InfiniBand link layer, addressed by LID
  ibv_gid gid_{};
  uint16_t lid_ = 0;
  ibv_mtu mtu_ = IBV_MTU_1024;
  uint32_t maxQpWr_ = 0;
  Status OpenFirstActive(std::string* detail);
};

// Page-aligned memory registered for local write and remote read/write.
class Region {
 public:
  static Status Register(Device* device, size_t bytes, std::unique_ptr<Region>* out);
  ~Region();
  char* base() const { return base_; }
  size_t bytes() const { return bytes_; }
  uint32_t lkey() const { return mr_->lkey; }
  uint32_t rkey() const { return mr_->rkey; }

 private:
  Region() = default;
  Device* device_ = nullptr;
  char* base_ = nullptr;
  size_t bytes_ = 0;
  ibv_mr* mr_ = nullptr;
};

// A reliable-connected queue pair and its completion queue (whose events go to the device's
// channel, with `cqContext` as their context).
class QueuePair {
 public:
  static Status Create(Device* device, void* cqContext, uint32_t sendWr, uint32_t recvWr,
                       std::unique_ptr<QueuePair>* out);
  ~QueuePair();  // destroys the QP, then the CQ
  // INIT -> RTR -> RTS towards the peer described by `remote`.
  // REQUIRES: receives the peer may target are posted before this returns.
  Status Connect(const Hello& local, const Hello& remote);
  // Moves the QP to ERROR: outstanding work completes with flush errors, nothing new runs.
  void Fail();
  ibv_qp* qp() const { return qp_; }
  ibv_cq* cq() const { return cq_; }
  uint32_t qpn() const { return qp_->qp_num; }

 private:
  QueuePair() = default;
  Device* device_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
};

// Message for a failed work completion.
std::string WcError(const Device& device, const ibv_wc& wc);

}  // namespace millpond::rdma
