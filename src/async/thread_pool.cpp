#include "thread_pool.hpp"

#include <utility>

namespace wire::detail {

namespace {
// Back on the loop's thread: wakes the waiter unless it is gone. Holds the worker's
// reference, so a loop destroyed with this still queued frees the job too. Moved, never
// copied, into the loop's queue: the worker keeps no reference, so the job (and the
// exception or value in it) is freed on the loop's thread, never on a worker.
struct Finished {
  ThreadJob* job;
  explicit Finished(ThreadJob* j) noexcept : job(j) {}
  Finished(Finished&& other) noexcept : job(std::exchange(other.job, nullptr)) {}
  Finished(const Finished& other) noexcept : job(other.job) {
    if (job != nullptr) job->add_ref();
  }
  Finished& operator=(const Finished&) = delete;
  ~Finished() {
    if (job != nullptr) job->release();
  }
  void operator()() const noexcept {
    job->finished = true;
    if (!job->abandoned) {
      if (EventLoop* loop = EventLoop::current()) loop->wake(job->node);
    }
  }
};
}  // namespace

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (std::thread& thread : threads_) thread.join();
  for (ThreadJob* job : jobs_) job->release();  // never started
}

void ThreadPool::submit(ThreadJob* job) {
  job->add_ref();
  std::unique_lock<std::mutex> lock(mutex_);
  try {
    jobs_.push_back(job);
  } catch (...) {
    job->release();
    throw;
  }
  if (idle_ == 0 && threads_.size() < max_threads_) {
    try {
      threads_.emplace_back([this] { work(); });
    } catch (...) {
      // No new thread (out of threads or memory): a running one takes the job when free;
      // with none at all, the job cannot run and says so.
      if (threads_.empty()) {
        jobs_.pop_back();
        job->release();
        throw;
      }
    }
  }
  lock.unlock();
  ready_.notify_one();
}

void ThreadPool::work() noexcept {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    ++idle_;
    ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    --idle_;
    if (stopping_) return;
    ThreadJob* job = jobs_.front();
    jobs_.pop_front();
    lock.unlock();
    job->run();
    try {
      loop_.call_soon_threadsafe(Finished(job));  // the reference goes with it
    } catch (...) {
      job->release();  // out of memory: the waiter is never woken (its loop will end it)
    }
    lock.lock();
  }
}

}  // namespace wire::detail
