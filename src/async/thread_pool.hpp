// The worker threads behind EventLoop::run_in_thread (internal).
//
// Threads are made on demand, up to a limit, and live until the pool is destroyed, which
// waits for the jobs running (a thread cannot be interrupted safely) and drops the jobs
// not started. A finished job goes back to its loop through call_soon_threadsafe.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "wire/async/run_in_thread.hpp"

namespace wire::detail {

class ThreadPool {
 public:
  ThreadPool(EventLoop& loop, unsigned max_threads) : loop_(loop), max_threads_(max_threads) {}
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  // Takes one reference to `job` (given back once its result is on the loop).
  void submit(ThreadJob* job);

 private:
  void work() noexcept;

  EventLoop& loop_;
  const unsigned max_threads_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<ThreadJob*> jobs_;
  std::vector<std::thread> threads_;
  unsigned idle_ = 0;
  bool stopping_ = false;
};

}  // namespace wire::detail
