// wire/async/run_in_thread.hpp — co_await loop.run_in_thread(fn): blocking work off the loop.
//
//   std::string text = co_await loop.run_in_thread([path] { return slurp(path); });
//   auto addresses = co_await loop.run_in_thread([] { return wire::resolve("example.org"); });
//
// `fn` runs on one of the loop's worker threads (at most EventLoop::max_worker_threads, made
// as needed, joined when the loop is destroyed); the coroutine resumes on the loop's thread
// with its value, or its exception rethrown. Like asyncio's run_in_executor and libuv's
// uv_queue_work. Cancelling the waiting task cannot stop `fn` (a thread cannot be
// interrupted safely): it runs to its end and its result is dropped. So `fn` must own what
// it uses (capture by value), never the waiting coroutine's locals.
#pragma once

#include <atomic>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "wire/loop.hpp"

namespace wire::detail {

// Shared by the waiting coroutine (on the loop's thread) and the worker running it.
class ThreadJob {
 public:
  ThreadJob() = default;
  ThreadJob(const ThreadJob&) = delete;
  ThreadJob& operator=(const ThreadJob&) = delete;
  virtual ~ThreadJob() = default;
  // On the worker thread.
  virtual void run() noexcept = 0;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // On the loop's thread only.
  WakeNode node;
  bool abandoned = false;  // its waiter is gone
  bool finished = false;

 private:
  std::atomic<int> refs_{1};
};

template <class F>
class FunctionJob final : public ThreadJob {
 public:
  using Value = std::invoke_result_t<F&>;
  explicit FunctionJob(F fn) : fn_(std::move(fn)) {}
  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<Value>) {
        fn_();
        value_.emplace(true);
      } else {
        value_.emplace(fn_());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }
  Value take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<Value>) return std::move(*value_);
  }

 private:
  F fn_;
  std::optional<std::conditional_t<std::is_void_v<Value>, bool, Value>> value_;
  std::exception_ptr error_;
};

template <class F>
class RunInThreadAwaiter {
 public:
  RunInThreadAwaiter(EventLoop& loop, F fn) : loop_(loop), fn_(std::in_place, std::move(fn)) {}
  RunInThreadAwaiter(RunInThreadAwaiter&& other) noexcept
      : loop_(other.loop_), fn_(std::move(other.fn_)) {}  // before it waits only
  RunInThreadAwaiter& operator=(const RunInThreadAwaiter&) = delete;
  ~RunInThreadAwaiter() {
    if (job_ == nullptr) return;
    if (!job_->finished) job_->abandoned = true;
    if (job_->node.queued) loop_.unwake(job_->node);
    job_->release();
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> handle) {
    job_ = new FunctionJob<F>(std::move(*fn_));
    job_->node.handle = handle;
    try {
      loop_.submit_to_thread(job_);
    } catch (...) {
      job_->release();
      job_ = nullptr;
      throw;
    }
  }
  typename FunctionJob<F>::Value await_resume() { return job_->take(); }

 private:
  EventLoop& loop_;
  std::optional<F> fn_;
  FunctionJob<F>* job_ = nullptr;
};

}  // namespace wire::detail

namespace wire {

template <class F>
auto EventLoop::run_in_thread(F fn) {
  return detail::RunInThreadAwaiter<F>(*this, std::move(fn));
}

}  // namespace wire
