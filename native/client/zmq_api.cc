#include "client/zmq_api.h"

#include <dlfcn.h>

#include <cerrno>

namespace millpond {

namespace {

constexpr const char* kLibrary = "libzmq.so.5";

struct Loaded {
  ZmqApi api{};
  Status status;
};

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* out, Status* status) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    *status = Status::NotSupported(std::string(kLibrary) + " lacks " + name +
                                   ": apt-get install libzmq5 (4.x)");
    return false;
  }
  *out = reinterpret_cast<Fn>(sym);
  return true;
}

void LoadOnce(Loaded* l) {
  void* lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    l->status = Status::NotSupported(std::string(kLibrary) + " not found: apt-get install libzmq5 (" +
                                     (err ? err : "dlopen failed") + ")");
    return;
  }
  ZmqApi& a = l->api;
  Status& s = l->status;
  bool ok = Bind(lib, "zmq_ctx_new", &a.ctxNew, &s) && Bind(lib, "zmq_ctx_term", &a.ctxTerm, &s) &&
            Bind(lib, "zmq_socket", &a.socket, &s) && Bind(lib, "zmq_close", &a.close, &s) &&
            Bind(lib, "zmq_setsockopt", &a.setsockopt, &s) &&
            Bind(lib, "zmq_getsockopt", &a.getsockopt, &s) && Bind(lib, "zmq_bind", &a.bind, &s) &&
            Bind(lib, "zmq_connect", &a.connect, &s) && Bind(lib, "zmq_send", &a.send, &s) &&
            Bind(lib, "zmq_msg_init", &a.msgInit, &s) &&
            Bind(lib, "zmq_msg_recv", &a.msgRecv, &s) &&
            Bind(lib, "zmq_msg_close", &a.msgClose, &s) &&
            Bind(lib, "zmq_msg_data", &a.msgData, &s) &&
            Bind(lib, "zmq_msg_size", &a.msgSize, &s) &&
            Bind(lib, "zmq_msg_more", &a.msgMore, &s) && Bind(lib, "zmq_poll", &a.poll, &s) &&
            Bind(lib, "zmq_errno", &a.errnum, &s) && Bind(lib, "zmq_strerror", &a.strerror, &s) &&
            Bind(lib, "zmq_version", &a.version, &s) &&
            Bind(lib, "zmq_curve_public", &a.curvePublic, &s) &&
            Bind(lib, "zmq_z85_encode", &a.z85Encode, &s);
  if (!ok) return;
  int major = 0, minor = 0, patch = 0;
  a.version(&major, &minor, &patch);
  if (major != 4) {
    s = Status::NotSupported(std::string(kLibrary) + " is version " + std::to_string(major) + "." +
                             std::to_string(minor) + ", 4.x is required");
  }
  // The library stays loaded for the life of the process (its I/O threads may outlive a
  // context briefly).
}

}  // namespace

Status ZmqApi::Error(const std::string& what) const {
  int err = errnum();
  std::string m = what + ": " + strerror(err);
  if (err == EAGAIN) return Status::TimedOut(m);
  if (err == zmq::kETerm) return Status::Closed(m);
  if (err == EINVAL || err == EPROTONOSUPPORT) return Status::InvalidArgument(m);
  return Status::IoError(m);
}

Status LoadZmqApi(const ZmqApi** api) {
  static Loaded* loaded = [] {
    auto* l = new Loaded;  // never freed: see LoadOnce
    LoadOnce(l);
    return l;
  }();
  if (!loaded->status.ok()) return loaded->status;
  *api = &loaded->api;
  return Status::OK();
}

}  // namespace millpond
