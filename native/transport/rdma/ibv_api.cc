#include "transport/rdma/ibv_api.h"

#include <dlfcn.h>

#include <cstring>
#include <mutex>

namespace millpond {

namespace {

struct Loaded {
  IbvApi api;
  bool ok = false;
  std::string detail;
};

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* out, std::string* detail) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    *detail = std::string("libibverbs.so.1 lacks ") + name;
    return false;
  }
  *out = reinterpret_cast<Fn>(sym);
  return true;
}

void LoadOnce(Loaded* l) {
  // RTLD_LOCAL: the providers libibverbs loads find it on their own; nothing else should.
  void* lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    l->detail = std::string("libibverbs not loadable: ") + (err ? err : "unknown error");
    return;
  }
  IbvApi& a = l->api;
  std::string& d = l->detail;
  l->ok = Bind(lib, "ibv_get_device_list", &a.getDeviceList, &d) &&
          Bind(lib, "ibv_free_device_list", &a.freeDeviceList, &d) &&
          Bind(lib, "ibv_get_device_name", &a.getDeviceName, &d) &&
          Bind(lib, "ibv_open_device", &a.openDevice, &d) &&
          Bind(lib, "ibv_close_device", &a.closeDevice, &d) &&
          Bind(lib, "ibv_query_device", &a.queryDevice, &d) &&
          Bind(lib, "ibv_query_port", &a.queryPortCompat, &d) &&
          Bind(lib, "ibv_query_gid", &a.queryGid, &d) &&
          Bind(lib, "ibv_alloc_pd", &a.allocPd, &d) &&
          Bind(lib, "ibv_dealloc_pd", &a.deallocPd, &d) &&
          Bind(lib, "ibv_reg_mr", &a.regMr, &d) &&
          Bind(lib, "ibv_dereg_mr", &a.deregMr, &d) &&
          Bind(lib, "ibv_create_comp_channel", &a.createCompChannel, &d) &&
          Bind(lib, "ibv_destroy_comp_channel", &a.destroyCompChannel, &d) &&
          Bind(lib, "ibv_create_cq", &a.createCq, &d) &&
          Bind(lib, "ibv_destroy_cq", &a.destroyCq, &d) &&
          Bind(lib, "ibv_get_cq_event", &a.getCqEvent, &d) &&
          Bind(lib, "ibv_ack_cq_events", &a.ackCqEvents, &d) &&
          Bind(lib, "ibv_create_qp", &a.createQp, &d) &&
          Bind(lib, "ibv_modify_qp", &a.modifyQp, &d) &&
          Bind(lib, "ibv_destroy_qp", &a.destroyQp, &d) &&
          Bind(lib, "ibv_wc_status_str", &a.wcStatusStr, &d);
  // The library stays loaded for the life of the process: providers and device lists
  // handed out may still point into it.
}

}  // namespace

int IbvApi::QueryPort(ibv_context* ctx, uint8_t port, ibv_port_attr* attr) const {
  std::memset(attr, 0, sizeof *attr);
  return queryPortCompat(ctx, port, attr);
}

const IbvApi* LoadIbvApi(std::string* detail) {
  static Loaded* loaded = [] {
    auto* l = new Loaded;  // never freed: see LoadOnce
    LoadOnce(l);
    return l;
  }();
  if (!loaded->ok) {
    if (detail) *detail = loaded->detail;
    return nullptr;
  }
  return &loaded->api;
}

}  // namespace millpond
