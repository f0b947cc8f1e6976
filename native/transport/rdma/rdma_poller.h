// The event thread of an RDMA transport: one epoll over the device's completion channel, the
// liveness sockets of the queue pairs, and a wake-up eventfd. Completions are taken in
// batches; after a batch the queue is polled a few more times (a brief spin, cheap when
// traffic is steady) and then the thread blocks in epoll, so an idle transport uses no CPU.
#pragma once

#include "transport/rdma/rdma_config.h"

#include <atomic>
#include <thread>

#include "common/file_io.h"
#include "common/status.h"
#include "transport/rdma/rdma_device.h"

namespace millpond::rdma {

// Work request ids: kind in the high half, a slot index in the low half.
enum WrKind : uint32_t { kWrRecv = 1, kWrSend = 2, kWrRead = 3 };
inline uint64_t MakeWrId(WrKind kind, uint32_t index) { return (uint64_t{kind} << 32) | index; }
inline WrKind WrKindOf(uint64_t id) { return static_cast<WrKind>(id >> 32); }
inline uint32_t WrIndexOf(uint64_t id) { return static_cast<uint32_t>(id); }

class Poller {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // Completions of the CQ created with `cqContext`. Must not destroy that CQ: mark the
    // connection dead and destroy it in Reap().
    virtual void OnCompletions(void* cqContext, const ibv_wc* wcs, int count) = 0;
    // A watched socket became readable or closed (the peer died, or broke the protocol).
    virtual void OnSocket(void* tag) = 0;
    virtual void OnTick() = 0;   // every limits::kTimerTickMs or so
    virtual void Reap() = 0;     // end of every round: destroy what died in it
  };

  Poller() = default;
  ~Poller() { Stop(); }
  Status Start(Device* device, Handler* handler);
  // REQUIRES: `tag` stays valid until Unwatch(fd) (or Stop).
  Status Watch(int fd, void* tag);
  void Unwatch(int fd);
  void Stop();  // joins the thread

 private:
  void Run();
  void DrainChannel();
  Device* device_ = nullptr;
  Handler* handler_ = nullptr;
  UniqueFd epoll_;
  UniqueFd wake_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace millpond::rdma
