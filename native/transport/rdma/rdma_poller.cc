#include "transport/rdma/rdma_poller.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/limits.h"

namespace millpond::rdma {

namespace {
constexpr int kBatch = 32;
uint64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Status Poller::Start(Device* device, Handler* handler) {
  device_ = device;
  handler_ = handler;
  epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) return Status::FromErrno(errno, "epoll_create1");
  wake_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_.valid()) return Status::FromErrno(errno, "eventfd");
  int chfd = device->channel()->fd;
  int flags = fcntl(chfd, F_GETFL);
  if (flags < 0 || fcntl(chfd, F_SETFL, flags | O_NONBLOCK) < 0)
    return Status::FromErrno(errno, "making the completion channel non-blocking");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = device->channel();
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, chfd, &ev) != 0) return Status::FromErrno(errno, "epoll_ctl channel");
  ev.data.ptr = this;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) return Status::FromErrno(errno, "epoll_ctl eventfd");
  thread_ = std::thread([this] { Run(); });
  return Status::OK();
}

Status Poller::Watch(int fd, void* tag) {
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP;
  ev.data.ptr = tag;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Status::FromErrno(errno, "epoll_ctl socket");
  return Status::OK();
}

void Poller::Unwatch(int fd) { epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr); }

void Poller::Stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  uint64_t one = 1;
  ssize_t n = write(wake_.get(), &one, sizeof one);
  (void)n;
  thread_.join();
}

void Poller::DrainChannel() {
  ibv_comp_channel* channel = device_->channel();
  ibv_cq* cq;
  void* context;
  // Each event names a CQ that fired; re-arm it before polling so no completion is missed.
  while (device_->api().getCqEvent(channel, &cq, &context) == 0) {
    device_->api().ackCqEvents(cq, 1);
    ibv_req_notify_cq(cq, 0);
    ibv_wc wcs[kBatch];
    for (uint32_t idle = 0; idle < limits::kRdmaPollSpinRounds;) {
      int n = ibv_poll_cq(cq, kBatch, wcs);
      if (n < 0) break;
      if (n == 0) {
        idle++;
        continue;
      }
      idle = 0;
      handler_->OnCompletions(context, wcs, n);
    }
  }
}

void Poller::Run() {
  uint64_t nextTick = NowMs() + limits::kTimerTickMs;
  epoll_event events[kBatch];
  while (!stop_) {
    uint64_t now = NowMs();
    int waitMs = nextTick > now ? static_cast<int>(nextTick - now) : 0;
    int n = epoll_wait(epoll_.get(), events, kBatch, waitMs);
    for (int i = 0; i < n; i++) {
      void* tag = events[i].data.ptr;
      if (tag == device_->channel()) {
        DrainChannel();
      } else if (tag == this) {
        uint64_t v;
        ssize_t r = read(wake_.get(), &v, sizeof v);
        (void)r;
      } else {
        handler_->OnSocket(tag);
      }
    }
    if (NowMs() >= nextTick) {
      handler_->OnTick();
      nextTick = NowMs() + limits::kTimerTickMs;
    }
    handler_->Reap();
  }
}

}  // namespace millpond::rdma
