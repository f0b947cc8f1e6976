#include "client/zmq_api.h"

#include <dlfcn.h>
#include <link.h>

#include <cerrno>
#include <cstdlib>
#include <string>
#include <vector>

namespace millpond {

namespace {

constexpr const char* kLibrary = "libzmq.so.5";
// A loaded object exporting this is taken for libzmq 4.x with CURVE (the control plane needs
// zmq_curve_public).
constexpr const char* kMarkerSymbol = "zmq_curve_public";

// dl_iterate_phdr callback: the names of the loaded objects but the main program. (They are
// opened after the walk: dlopen inside the callback would run under the loader's lock.)
int CollectLoaded(struct dl_phdr_info* info, size_t, void* out) {
  const char* name = info->dlpi_name;
  if (name != nullptr && name[0] != '\0') static_cast<std::vector<std::string>*>(out)->push_back(name);
  return 0;
}

// The first loaded object that exports libzmq's API, opened again by name so the handle keeps
// it loaded; nullptr when none does.
void* FindLoadedLibzmq() {
  std::vector<std::string> names;
  dl_iterate_phdr(CollectLoaded, &names);
  for (const std::string& name : names) {
    void* lib = dlopen(name.c_str(), RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    if (lib == nullptr) continue;
    if (dlsym(lib, kMarkerSymbol) != nullptr && dlsym(lib, "zmq_ctx_new") != nullptr) return lib;
    dlclose(lib);
  }
  return nullptr;
}

// Where libzmq comes from, first found wins:
//  1. MILLPOND_LIBZMQ, a path to a library exporting libzmq's C API (set it to pick one);
//  2. a libzmq already loaded in this process: in node that is the `zeromq` package's addon,
//     which links libzmq 4.3 with CURVE statically and exports its C API (src/native/libzmq.ts
//     loads it before anything native speaks ZeroMQ), so an installed package needs no
//     system library and the process has one libzmq, the one the TS control plane uses;
//  3. the system's libzmq.so.5 (processes outside node: the C++ tests, a DuckDB CLI).
// On failure *why says what was tried.
void* OpenLibzmq(std::string* where, std::string* why) {
  const char* chosen = std::getenv("MILLPOND_LIBZMQ");
  if (chosen != nullptr && chosen[0] != '\0') {
    void* lib = dlopen(chosen, RTLD_LAZY | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* err = dlerror();
      *why = std::string("MILLPOND_LIBZMQ=") + chosen + " cannot be loaded (" + (err ? err : "dlopen failed") + ")";
    }
    *where = chosen;
    return lib;
  }
  void* lib = FindLoadedLibzmq();
  if (lib != nullptr) {
    *where = "the libzmq loaded in this process";
    return lib;
  }
  lib = dlopen(kLibrary, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    *why = std::string("no libzmq: the `zeromq` package's addon is not loaded in this process and ") +
           kLibrary + " is not found (" + (err ? err : "dlopen failed") +
           "); run under node with the millpond package, or apt-get install libzmq5";
  }
  *where = kLibrary;
  return lib;
}

struct Loaded {
  ZmqApi api{};
  Status status;
};

template <typename Fn>
bool Bind(void* lib, const char* name, Fn* out, Status* status) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    *status = Status::NotSupported(std::string("libzmq lacks ") + name + ": libzmq 4.x is required");
    return false;
  }
  *out = reinterpret_cast<Fn>(sym);
  return true;
}

void LoadOnce(Loaded* l) {
  std::string where, why;
  void* lib = OpenLibzmq(&where, &why);
  if (lib == nullptr) {
    l->status = Status::NotSupported(why);
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
            Bind(lib, "zmq_z85_encode", &a.z85Encode, &s) &&
            Bind(lib, "zmq_socket_monitor", &a.socketMonitor, &s);
  if (!ok) return;
  int major = 0, minor = 0, patch = 0;
  a.version(&major, &minor, &patch);
  if (major != 4) {
    s = Status::NotSupported(where + " is libzmq " + std::to_string(major) + "." +
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
