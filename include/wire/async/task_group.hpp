// wire/async/task_group.hpp — structured concurrency: TaskGroup, when_all, when_any.
//
//   wire::Task<> serve_pair(wire::AsyncSocket& a, wire::AsyncSocket& b) {
//     wire::TaskGroup group;                  // on the loop running this coroutine
//     group.spawn(pump(a, b));
//     group.spawn(pump(b, a));
//     co_await group.join();                  // both done; the first exception cancels the
//   }                                         // other and is rethrown here
//
//   auto [page, count] = co_await wire::when_all(fetch(url), count_rows(db));
//   auto [index, reply] = co_await wire::when_any(ask(a), ask(b));   // the others cancelled
//
// Like asyncio's TaskGroup and Trio's nursery: children may use the spawning coroutine's
// locals, because a group never outlives them: destroying a group (its coroutine returned
// or was cancelled) destroys every child still running, at once. Exceptions after the
// first (from children that failed before their cancellation took effect) go to the
// loop's exception handler rather than vanish.
//
// Ownership: the loop owns the children's frames; the group holds a reference to each
// running child's state. One thread: the loop's.
#pragma once

#include <array>
#include <cstddef>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "wire/async/task_handle.hpp"
#include "wire/loop.hpp"

namespace wire {

class TaskGroup {
 public:
  // On the loop running this thread (EventLoop::current()); errc::operation_not_permitted
  // when none runs.
  TaskGroup();
  explicit TaskGroup(EventLoop& loop) noexcept : loop_(&loop) {}
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  // Destroys every child still running (which withdraws what each waits on).
  ~TaskGroup();

  // Starts `task` as a child. A group that has already failed cancels it at once.
  template <class T>
  TaskHandle<T> spawn(Task<T> task) {
    auto* state = detail::spawn_with_state(*loop_, std::move(task));
    adopt(state);
    return TaskHandle<T>(state);
  }

  class JoinAwaiter;
  // co_await group.join(): waits until every child has settled, then rethrows the first
  // exception a child threw (the others were cancelled when it came).
  JoinAwaiter join() noexcept;
  // co_await group.join_settled(): the same wait, never throwing.
  JoinAwaiter join_settled() noexcept;
  // co_await group.first_done(): waits until some child has settled since the group began
  // (at once if one has) and returns its id (TaskHandle::id()); nullptr when the group
  // has no child.
  JoinAwaiter first_done() noexcept;

  // Cancels every running child (each destroyed at its next suspension point).
  void cancel() noexcept;
  std::size_t running() const noexcept { return running_; }
  bool failed() const noexcept { return error_ != nullptr; }

  // For detail::TaskState.
  void child_settled(detail::TaskState* child) noexcept;

 private:
  enum class Until : unsigned char { all, all_quietly, first };
  void adopt(detail::TaskState* state) noexcept;
  bool satisfied(Until until) const noexcept {
    return until == Until::first ? (first_settled_ != nullptr || running_ == 0) : running_ == 0;
  }

  EventLoop* loop_;
  detail::TaskState* head_ = nullptr;  // running children (one reference each)
  std::size_t running_ = 0;
  std::exception_ptr error_;
  const void* first_settled_ = nullptr;
  JoinAwaiter* joiner_ = nullptr;
};

class TaskGroup::JoinAwaiter {
 public:
  JoinAwaiter(TaskGroup& group, Until until) noexcept
      : group_(group), loop_(group.loop_), until_(until) {}
  JoinAwaiter(const JoinAwaiter&) = delete;
  JoinAwaiter& operator=(const JoinAwaiter&) = delete;
  ~JoinAwaiter();
  bool await_ready() const noexcept { return group_.satisfied(until_); }
  bool await_suspend(std::coroutine_handle<> handle);
  const void* await_resume();

 private:
  friend class TaskGroup;
  TaskGroup& group_;
  EventLoop* loop_;
  Until until_;
  bool orphaned_ = false;  // the group was destroyed while this waited
  detail::WakeNode node_;
};

inline TaskGroup::JoinAwaiter TaskGroup::join() noexcept {
  return JoinAwaiter(*this, Until::all);
}
inline TaskGroup::JoinAwaiter TaskGroup::join_settled() noexcept {
  return JoinAwaiter(*this, Until::all_quietly);
}
inline TaskGroup::JoinAwaiter TaskGroup::first_done() noexcept {
  return JoinAwaiter(*this, Until::first);
}

namespace detail {
template <class T>
using joined_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
joined_t<T> joined_value(const TaskHandle<T>& handle) {
  if constexpr (std::is_void_v<T>) {
    handle.result();
    return {};
  } else {
    return handle.result();
  }
}
}  // namespace detail

// Runs every task at once and returns all their values (std::monostate for a Task<void>),
// in order. The first exception cancels the rest and is rethrown.
template <class... T>
Task<std::tuple<detail::joined_t<T>...>> when_all(Task<T>... tasks) {
  TaskGroup group;
  std::tuple<TaskHandle<T>...> handles{group.spawn(std::move(tasks))...};
  co_await group.join();
  co_return std::apply(
      [](const auto&... handle) { return std::make_tuple(detail::joined_value(handle)...); },
      handles);
}

// Runs every task at once; the first to finish wins and the rest are cancelled (and gone
// before this returns). Returns {index, value} (just the index for Task<void>), or
// rethrows the winner's exception.
template <class T, class... Rest>
requires(std::is_same_v<T, Rest>&&...) Task<
    std::conditional_t<std::is_void_v<T>, std::size_t,
                       std::pair<std::size_t, detail::joined_t<T>>>> when_any(Task<T> first,
                                                                              Task<Rest>... rest) {
  TaskGroup group;
  std::array<TaskHandle<T>, 1 + sizeof...(Rest)> handles{group.spawn(std::move(first)),
                                                         group.spawn(std::move(rest))...};
  const void* winner = co_await group.first_done();
  group.cancel();
  co_await group.join_settled();
  std::size_t index = 0;
  while (handles[index].id() != winner) ++index;
  if constexpr (std::is_void_v<T>) {
    handles[index].result();
    co_return index;
  } else {
    co_return std::pair<std::size_t, T>(index, handles[index].result());
  }
}

}  // namespace wire
