// wire/async/task_handle.hpp — TaskHandle<T>: join, cancel or detach a spawned task.
//
//   wire::TaskHandle<int> h = loop.spawn(count_lines(conn));
//   ...
//   int lines = co_await h;        // its value, or its exception rethrown
//   h.cancel();                    // or: destroyed at its next suspension point
//   if (h.done()) ...              // finished, failed or cancelled
//
// Dropping a handle detaches the task (it runs on; an exception it throws goes to the
// loop's exception handler), as asyncio's tasks do. Joining a cancelled task throws
// wire::Error with std::errc::operation_canceled.
//
// Ownership: the loop owns the task's frame; the handle and the loop share a small state
// (the result), freed when both let go. A handle may outlive its loop: it then reads as
// cancelled. One thread: the loop's.
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "wire/error.hpp"
#include "wire/loop.hpp"
#include "wire/task.hpp"

namespace wire {

class TaskGroup;

namespace detail {

// What a spawned task and whoever watches it (a handle, a group) share.
class TaskState {
 public:
  enum class Status : std::uint8_t { running, finished, failed, cancelled };

  explicit TaskState(EventLoop& loop) noexcept : loop_(&loop), alive_(loop.alive_token()) {}
  TaskState(const TaskState&) = delete;
  TaskState& operator=(const TaskState&) = delete;
  virtual ~TaskState() = default;

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }

  Status status() const noexcept { return status_; }
  bool cancel_requested() const noexcept { return cancel_requested_; }
  bool settled() const noexcept { return status_ != Status::running; }
  // Asks for the task to be destroyed at its next suspension point: before the loop's next
  // batch ends (never inline: the caller may be running inside it). False when settled.
  bool cancel() noexcept;
  // Destroys the task now. Only where it cannot be on the stack (a group going away).
  void cancel_now() noexcept;

  // The coroutine waiting for the task to settle (one at a time).
  WakeNode* joiner = nullptr;
  // The group the task belongs to, if any, and its place in the group's list.
  TaskGroup* group = nullptr;
  TaskState* group_next = nullptr;
  TaskState* group_prev = nullptr;
  // The exception was handed to someone (a joiner, a group): not reported on drop.
  bool error_taken = false;
  bool handle_dropped = false;

  EventLoop* loop() const noexcept { return alive_.expired() ? nullptr : loop_; }
  std::exception_ptr error() const noexcept { return error_; }
  // Reports an exception nobody took to the loop's exception handler (asyncio's "Task
  // exception was never retrieved").
  void report_untaken() noexcept;

  // For the runner.
  void set_error(std::exception_ptr e) noexcept { error_ = std::move(e); }
  void mark_ran_to_end() noexcept { ran_to_end_ = true; }
  void started(std::coroutine_handle<> root) noexcept { root_ = root; }
  static void on_done(void* context, std::exception_ptr escaped) noexcept;

 private:
  void settle() noexcept;

  EventLoop* loop_;
  std::weak_ptr<void> alive_;
  std::coroutine_handle<> root_;
  std::exception_ptr error_;
  std::uint32_t refs_ = 1;
  Status status_ = Status::running;
  bool ran_to_end_ = false;
  bool cancel_requested_ = false;
};

template <class T>
class ValueState : public TaskState {
 public:
  using TaskState::TaskState;
  std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
};

template <class T>
Task<void> run_spawned(Task<T> task, ValueState<T>* state) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(task);
      state->value.emplace(true);
    } else {
      state->value.emplace(co_await std::move(task));
    }
  } catch (...) {
    state->set_error(std::current_exception());
  }
  state->mark_ran_to_end();
}

// Spawns `task` on `loop` with a state the caller gets one reference to (the loop holds
// the other until the task's frame is gone).
template <class T>
ValueState<T>* spawn_with_state(EventLoop& loop, Task<T> task) {
  auto* state = new ValueState<T>(loop);
  state->add_ref();  // the caller's
  Task<void> runner = run_spawned(std::move(task), state);
  state->started(runner.handle());
  try {
    loop.spawn(std::move(runner), &TaskState::on_done, state);
  } catch (...) {
    state->release();
    state->release();
    throw;
  }
  return state;
}

// co_await on a state: waits until it settles (the handle's join, a group's members).
class SettleAwaiter {
 public:
  explicit SettleAwaiter(TaskState* state) noexcept : state_(state) {}
  SettleAwaiter(const SettleAwaiter&) = delete;
  SettleAwaiter& operator=(const SettleAwaiter&) = delete;
  ~SettleAwaiter() {
    if (node_.queued && loop_ != nullptr) loop_->unwake(node_);
    if (!holds_ref_) return;
    if (state_->joiner == &node_) state_->joiner = nullptr;
    state_->release();
  }
  bool await_ready() const noexcept { return state_ == nullptr || state_->settled(); }
  bool await_suspend(std::coroutine_handle<> handle);

 protected:
  TaskState* state_;
  EventLoop* loop_ = nullptr;
  WakeNode node_;
  bool holds_ref_ = false;  // while waiting: the handle may be dropped meanwhile
};

}  // namespace detail

template <class T = void>
class TaskHandle {
 public:
  TaskHandle() noexcept = default;
  explicit TaskHandle(detail::ValueState<T>* state) noexcept : state_(state) {}
  TaskHandle(TaskHandle&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  TaskHandle& operator=(TaskHandle&& other) noexcept {
    if (this != &other) {
      drop();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  TaskHandle(const TaskHandle&) = delete;
  TaskHandle& operator=(const TaskHandle&) = delete;
  ~TaskHandle() { drop(); }

  bool valid() const noexcept { return state_ != nullptr; }
  // Finished, failed or cancelled.
  bool done() const noexcept { return state_ == nullptr || state_->settled(); }
  bool cancelled() const noexcept {
    return state_ != nullptr && state_->status() == detail::TaskState::Status::cancelled;
  }
  // The task is destroyed at its next suspension point, before the loop's next batch
  // ends; what it waits on is withdrawn, its fds stay with their owners. A joiner then
  // gets errc::operation_canceled. False when it had already settled.
  bool cancel() noexcept { return state_ != nullptr && state_->cancel(); }
  // Lets the task run on unwatched (what dropping the handle does).
  void detach() noexcept { drop(); }

  // The outcome of a task that is done(), without waiting (asyncio's Task.result()): its
  // value (moved out: once), its exception, or errc::operation_canceled. A task still
  // running is errc::resource_unavailable_try_again.
  T result() const { return take(state_); }
  // Identifies the task (for matching a TaskGroup's first_done()).
  const void* id() const noexcept { return state_; }

  class JoinAwaiter : detail::SettleAwaiter {
   public:
    using detail::SettleAwaiter::await_ready;
    using detail::SettleAwaiter::await_suspend;
    explicit JoinAwaiter(detail::ValueState<T>* state) noexcept : SettleAwaiter(state) {}
    T await_resume() { return take(static_cast<detail::ValueState<T>*>(state_)); }
  };
  // co_await handle: the task's value (moved out: once), its exception, or
  // errc::operation_canceled.
  JoinAwaiter operator co_await() const noexcept { return JoinAwaiter(state_); }

 private:
  static T take(detail::ValueState<T>* state) {
    if (state == nullptr) {
      throw Error(std::make_error_code(std::errc::invalid_argument), "join task", "",
                  "the handle holds no task");
    }
    switch (state->status()) {
      case detail::TaskState::Status::running:
        throw Error(std::make_error_code(std::errc::resource_unavailable_try_again), "task result",
                    "", "the task has not finished");
      case detail::TaskState::Status::failed:
        state->error_taken = true;
        std::rethrow_exception(state->error());
      case detail::TaskState::Status::cancelled:
        throw Error(std::make_error_code(std::errc::operation_canceled), "join task", "",
                    "the task was cancelled");
      case detail::TaskState::Status::finished:
        break;
    }
    if constexpr (!std::is_void_v<T>) {
      if (!state->value) {
        throw Error(std::make_error_code(std::errc::invalid_argument), "join task", "",
                    "its value was already taken by an earlier join");
      }
      T out = std::move(*state->value);
      state->value.reset();
      return out;
    }
  }

  void drop() noexcept {
    if (state_ == nullptr) return;
    auto* state = std::exchange(state_, nullptr);
    state->handle_dropped = true;
    if (state->settled()) state->report_untaken();
    state->release();
  }

  detail::ValueState<T>* state_ = nullptr;
};

template <class T>
TaskHandle<T> EventLoop::spawn(Task<T> task) {
  return TaskHandle<T>(detail::spawn_with_state(*this, std::move(task)));
}

// co_await wire::yield(): lets every other ready coroutine run first (asyncio's sleep(0)).
class YieldAwaiter {
 public:
  YieldAwaiter() noexcept = default;
  YieldAwaiter(const YieldAwaiter&) = delete;
  YieldAwaiter& operator=(const YieldAwaiter&) = delete;
  ~YieldAwaiter() {
    if (node_.queued) loop_->unwake(node_);
  }
  bool await_ready() noexcept {
    loop_ = EventLoop::current();
    return loop_ == nullptr;
  }
  void await_suspend(std::coroutine_handle<> handle) noexcept {
    node_.handle = handle;
    loop_->wake(node_);
  }
  void await_resume() const noexcept {}

 private:
  EventLoop* loop_ = nullptr;
  detail::WakeNode node_;
};
inline YieldAwaiter yield() noexcept {
  return {};
}

}  // namespace wire
