// libibverbs, loaded with dlopen: the addon has no link-time dependency on it.
//
// Only the exported entry points come through this table. The data-path verbs (post_send,
// post_recv, poll_cq, req_notify_cq) are static inline in verbs.h and dispatch through the
// device context's ops, so they are called directly. Never call verbs.h's exported functions
// by name in rdma/: the link would then need libibverbs (some are also macros or inline
// wrappers over versioned symbols, e.g. ibv_reg_mr, ibv_query_port).
#pragma once

#include "transport/rdma/rdma_config.h"

#include <infiniband/verbs.h>

#include <string>

#include "common/status.h"

namespace millpond {

struct IbvApi {
  ibv_device** (*getDeviceList)(int*);
  void (*freeDeviceList)(ibv_device**);
  const char* (*getDeviceName)(ibv_device*);
  ibv_context* (*openDevice)(ibv_device*);
  int (*closeDevice)(ibv_context*);
  int (*queryDevice)(ibv_context*, ibv_device_attr*);
  int (*queryPortCompat)(ibv_context*, uint8_t, ibv_port_attr*);  // see QueryPort
  int (*queryGid)(ibv_context*, uint8_t, int, ibv_gid*);
  ibv_pd* (*allocPd)(ibv_context*);
  int (*deallocPd)(ibv_pd*);
  ibv_mr* (*regMr)(ibv_pd*, void*, size_t, int);
  int (*deregMr)(ibv_mr*);
  ibv_comp_channel* (*createCompChannel)(ibv_context*);
  int (*destroyCompChannel)(ibv_comp_channel*);
  ibv_cq* (*createCq)(ibv_context*, int, void*, ibv_comp_channel*, int);
  int (*destroyCq)(ibv_cq*);
  int (*getCqEvent)(ibv_comp_channel*, ibv_cq**, void**);
  void (*ackCqEvents)(ibv_cq*, unsigned int);
  ibv_qp* (*createQp)(ibv_pd*, ibv_qp_init_attr*);
  int (*modifyQp)(ibv_qp*, ibv_qp_attr*, int);
  int (*destroyQp)(ibv_qp*);
  const char* (*wcStatusStr)(ibv_wc_status);

  // ibv_query_port without verbs.h's inline wrapper: the exported symbol fills the older,
  // shorter attribute layout, a prefix of ibv_port_attr, so the rest is zeroed first.
  int QueryPort(ibv_context* ctx, uint8_t port, ibv_port_attr* attr) const;
};

// Loads libibverbs.so.1 once per process. Returns nullptr, with the reason in *detail, when
// the library or one of its symbols is missing. Thread-safe.
const IbvApi* LoadIbvApi(std::string* detail);

}  // namespace millpond
