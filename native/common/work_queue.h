// A fixed set of threads running queued tasks, with a bounded queue.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace millpond {

class WorkQueue {
 public:
  WorkQueue(unsigned threads, size_t queuedMax) : queuedMax_(queuedMax) {
    for (unsigned i = 0; i < threads; i++) threads_.emplace_back([this] { Run(); });
  }
  ~WorkQueue() { Stop(); }
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // False (and `task` not queued) when the queue is full or stopped.
  bool TryPush(std::function<void()> task) {
    {
      MutexLock lock(&mu_);
      if (stopped_ || tasks_.size() >= queuedMax_) return false;
      tasks_.push_back(std::move(task));
    }
    cv_.Signal();
    return true;
  }

  // Runs the tasks already queued, then joins the threads.
  void Stop() {
    {
      MutexLock lock(&mu_);
      stopped_ = true;
    }
    cv_.SignalAll();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void Run() {
    for (;;) {
      std::function<void()> task;
      {
        MutexLock lock(&mu_);
        while (!stopped_ && tasks_.empty()) cv_.Wait(&mu_);
        if (tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  const size_t queuedMax_;
  Mutex mu_;
  CondVar cv_;
  bool stopped_ GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> tasks_ GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace millpond
