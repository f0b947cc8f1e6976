#include "transport/rdma/rdma_device.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/limits.h"
#include "transport/rdma/rdma_transport.h"

namespace millpond {
namespace rdma {

namespace {

// Index of the RoCEv2 (IPv4-mapped) GID on an Ethernet port, else the first non-zero one.
int PickGid(const IbvApi& api, ibv_context* ctx, uint8_t port, int tableLen, ibv_gid* out) {
  static const uint8_t kV4Prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  int fallback = -1;
  ibv_gid fallbackGid{};
  for (int i = 0; i < tableLen && i < limits::kRdmaGidIndexScanMax; i++) {
    ibv_gid g;
    if (api.queryGid(ctx, port, i, &g) != 0) continue;
    if (std::memcmp(g.raw, kV4Prefix, 12) == 0) {
      *out = g;
      return i;
    }
    static const uint8_t kZero[16] = {};
    if (fallback < 0 && std::memcmp(g.raw, kZero, 16) != 0) {
      fallback = i;
      fallbackGid = g;
    }
  }
  *out = fallbackGid;
  return fallback;
}

std::string ListError(int err) {
  if (err == ENOSYS)
    return "ibv_get_device_list: the kernel has no RDMA support (ENOSYS)";
  return std::string("ibv_get_device_list failed: ") + std::strerror(err);
}

}  // namespace

// Opens devices in order until one has an ACTIVE port and keeps that one open.
Status Device::OpenFirstActive(std::string* detail) {
  const IbvApi* api = api_;
  Device* dev = this;
  int count = 0;
  errno = 0;
  ibv_device** list = api->getDeviceList(&count);
  if (list == nullptr) return Status::NoDevice(ListError(errno));
  std::string why = "no RDMA devices";
  for (int d = 0; d < count && dev->ctx_ == nullptr; d++) {
    const char* name = api->getDeviceName(list[d]);
    ibv_context* ctx = api->openDevice(list[d]);
    if (ctx == nullptr) {
      why = std::string("cannot open ") + name + ": " + std::strerror(errno);
      continue;
    }
    ibv_device_attr attr;
    if (api->queryDevice(ctx, &attr) != 0) {
      api->closeDevice(ctx);
      why = std::string("cannot query ") + name;
      continue;
    }
    why = std::string(name) + ": no ACTIVE port";
    for (uint8_t p = 1; p <= attr.phys_port_cnt; p++) {
      ibv_port_attr pa;
      if (api->QueryPort(ctx, p, &pa) != 0 || pa.state != IBV_PORT_ACTIVE) continue;
      ibv_gid gid{};
      int gidIndex = -1;
      if (pa.link_layer != IBV_LINK_LAYER_INFINIBAND) {
        gidIndex = PickGid(*api, ctx, p, pa.gid_tbl_len, &gid);
        if (gidIndex < 0) {
          why = std::string(name) + ": port " + std::to_string(p) + " has no GID (no IP address?)";
          continue;
        }
      }
      dev->ctx_ = ctx;
      dev->name_ = name;
      dev->port_ = p;
      dev->gidIndex_ = gidIndex;
      dev->gid_ = gid;
      dev->lid_ = pa.lid;
      dev->mtu_ = pa.active_mtu;
      dev->maxQpWr_ = static_cast<uint32_t>(attr.max_qp_wr);
      break;
    }
    if (dev->ctx_ == nullptr) api->closeDevice(ctx);
  }
  api->freeDeviceList(list);
  if (dev->ctx_ == nullptr) return Status::NoDevice(why);
  if (detail)
    *detail = dev->name_ + " port " + std::to_string(dev->port_) +
              (dev->gidIndex_ >= 0 ? " gid index " + std::to_string(dev->gidIndex_) : " lid " + std::to_string(dev->lid_)) +
              " mtu " + std::to_string(128 << dev->mtu_);
  return Status::OK();
}

Status Device::Open(std::unique_ptr<Device>* out) {
  std::string detail;
  const IbvApi* api = LoadIbvApi(&detail);
  if (api == nullptr) return Status::NoDevice(detail);
  std::unique_ptr<Device> dev(new Device);
  dev->api_ = api;
  MP_RETURN_IF_ERROR(dev->OpenFirstActive(nullptr));
  dev->pd_ = api->allocPd(dev->ctx_);
  if (dev->pd_ == nullptr) return Status::FromErrno(errno, "ibv_alloc_pd on " + dev->name_);
  dev->channel_ = api->createCompChannel(dev->ctx_);
  if (dev->channel_ == nullptr) return Status::FromErrno(errno, "ibv_create_comp_channel on " + dev->name_);
  *out = std::move(dev);
  return Status::OK();
}

Device::~Device() {
  if (channel_) api_->destroyCompChannel(channel_);
  if (pd_) api_->deallocPd(pd_);
  if (ctx_) api_->closeDevice(ctx_);
}

Hello Device::LocalHello(uint32_t qpn, uint32_t psn, uint32_t depth, uint32_t controlBytes) const {
  Hello h;
  h.qpn = qpn;
  h.psn = psn & 0xffffff;
  h.lid = lid_;
  h.mtu = static_cast<uint8_t>(mtu_);
  h.flags = gidIndex_ >= 0 ? kHelloFlagGlobal : 0;
  std::memcpy(h.gid, gid_.raw, 16);
  h.depth = depth;
  h.controlBytes = controlBytes;
  return h;
}

// ------------------------------------------------------------------ Region

Status Region::Register(Device* device, size_t bytes, std::unique_ptr<Region>* out) {
  std::unique_ptr<Region> r(new Region);
  r->device_ = device;
  r->bytes_ = bytes;
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return Status::FromErrno(errno, "mmap of a registered region");
  // A forked child (node's child_process) must not share pages the device writes into.
  madvise(p, bytes, MADV_DONTFORK);
  r->base_ = static_cast<char*>(p);
  r->mr_ = device->api().regMr(device->pd(), p, bytes,
                               IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
  if (r->mr_ == nullptr)
    return Status::FromErrno(errno, "ibv_reg_mr of " + std::to_string(bytes) + " bytes on " + device->name());
  *out = std::move(r);
  return Status::OK();
}

Region::~Region() {
  if (mr_) device_->api().deregMr(mr_);
  if (base_) munmap(base_, bytes_);
}

// ------------------------------------------------------------------ QueuePair

Status QueuePair::Create(Device* device, void* cqContext, uint32_t sendWr, uint32_t recvWr,
                         std::unique_ptr<QueuePair>* out) {
  const IbvApi& api = device->api();
  std::unique_ptr<QueuePair> q(new QueuePair);
  q->device_ = device;
  if (device->maxQpWr() != 0 && sendWr > device->maxQpWr())
    return Status::NoDevice(device->name() + " supports " + std::to_string(device->maxQpWr()) +
                            " work requests per queue, " + std::to_string(sendWr) + " needed");
  int cqe = static_cast<int>(sendWr + recvWr + 16);
  q->cq_ = api.createCq(device->context(), cqe, cqContext, device->channel(), 0);
  if (q->cq_ == nullptr) return Status::FromErrno(errno, "ibv_create_cq");
  if (ibv_req_notify_cq(q->cq_, 0) != 0) return Status::IoError("ibv_req_notify_cq failed");
  ibv_qp_init_attr init;
  std::memset(&init, 0, sizeof init);
  init.send_cq = q->cq_;
  init.recv_cq = q->cq_;
  init.qp_type = IBV_QPT_RC;
  init.cap.max_send_wr = sendWr;
  init.cap.max_recv_wr = recvWr;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  q->qp_ = api.createQp(device->pd(), &init);
  if (q->qp_ == nullptr) return Status::FromErrno(errno, "ibv_create_qp");
  ibv_qp_attr a;
  std::memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_INIT;
  a.pkey_index = 0;
  a.port_num = device->port();
  a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
  int rc = api.modifyQp(q->qp_, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
  if (rc != 0) return Status::FromErrno(rc, "ibv_modify_qp to INIT");
  *out = std::move(q);
  return Status::OK();
}

Status QueuePair::Connect(const Hello& local, const Hello& remote) {
  const IbvApi& api = device_->api();
  ibv_qp_attr a;
  std::memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_RTR;
  a.path_mtu = static_cast<ibv_mtu>(std::min(local.mtu, remote.mtu));
  a.dest_qp_num = remote.qpn;
  a.rq_psn = remote.psn;
  a.max_dest_rd_atomic = limits::kRdmaMaxRdAtomic;
  a.min_rnr_timer = limits::kRdmaMinRnrTimer;
  a.ah_attr.port_num = device_->port();
  a.ah_attr.dlid = remote.lid;
  if (remote.flags & kHelloFlagGlobal) {
    a.ah_attr.is_global = 1;
    std::memcpy(a.ah_attr.grh.dgid.raw, remote.gid, 16);
    a.ah_attr.grh.sgid_index = static_cast<uint8_t>(device_->gidIndex() < 0 ? 0 : device_->gidIndex());
    a.ah_attr.grh.hop_limit = 64;
  }
  int rc = api.modifyQp(qp_, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN |
                                     IBV_QP_RQ_PSN | IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
  if (rc != 0) return Status::FromErrno(rc, "ibv_modify_qp to RTR");
  std::memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_RTS;
  a.timeout = limits::kRdmaAckTimeout;
  a.retry_cnt = limits::kRdmaRetryCount;
  a.rnr_retry = limits::kRdmaRnrRetry;
  a.sq_psn = local.psn;
  a.max_rd_atomic = limits::kRdmaMaxRdAtomic;
  rc = api.modifyQp(qp_, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                                 IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
  if (rc != 0) return Status::FromErrno(rc, "ibv_modify_qp to RTS");
  return Status::OK();
}

void QueuePair::Fail() {
  ibv_qp_attr a;
  std::memset(&a, 0, sizeof a);
  a.qp_state = IBV_QPS_ERR;
  device_->api().modifyQp(qp_, &a, IBV_QP_STATE);
}

QueuePair::~QueuePair() {
  const IbvApi& api = device_->api();
  if (qp_) api.destroyQp(qp_);
  if (cq_) api.destroyCq(cq_);
}

Status Device::Probe(std::string* detail) {
  std::string why;
  const IbvApi* api = LoadIbvApi(&why);
  if (api == nullptr) {
    if (detail) *detail = why;
    return Status::NoDevice(why);
  }
  Device probe;  // the destructor closes what OpenFirstActive opened
  probe.api_ = api;
  Status s = probe.OpenFirstActive(detail);
  if (!s.ok() && detail) *detail = s.message();
  return s;
}

std::string WcError(const Device& device, const ibv_wc& wc) {
  return std::string("rdma work completion failed: ") + device.api().wcStatusStr(wc.status) +
         " (status " + std::to_string(wc.status) + ", opcode " + std::to_string(wc.opcode) + ")";
}

}  // namespace rdma

Status RdmaProbe(std::string* detail) { return rdma::Device::Probe(detail); }

}  // namespace millpond
