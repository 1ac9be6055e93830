// wire/task.hpp — Task<T>, the coroutine type of wire's event loop.
//
//   wire::Task<int> answer() { co_return 42; }
//   wire::Task<> main_task(wire::EventLoop& loop) {
//     int x = co_await answer();
//     co_await loop.sleep(std::chrono::milliseconds(10));
//   }
//
// A Task is lazy (it starts when awaited or spawned) and owns its coroutine frame: destroying
// a Task that is suspended destroys the frame, and with it every awaiter inside, each of which
// withdraws its fd registration and timer. That is how cancellation works.
//
// Why no symmetric transfer: g++ 12 does not turn `await_suspend` returning a handle into a
// tail call at -O0/-O1 or under ASan, so a million synchronously finishing awaits overflow
// the stack (docs/design/awaitables.md). Instead await_suspend resumes the child inline and returns
// false when the child finished before returning, so the parent continues in the same frame
// of the stack; only a child that really suspended resumes its parent later, from the loop.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

namespace wire {

template <class T = void>
class Task;

namespace detail {

// Coroutine frames are made and destroyed once per request, per wait with a timeout, per
// child task: a per-thread cache of freed frames by size skips malloc for them (glibc's
// own per-thread cache stops at 1 KiB, below many frames). Compiled out under ASan.
void* allocate_frame(std::size_t size);
void free_frame(void* frame, std::size_t size) noexcept;

class PromiseBase {
 public:
  static void* operator new(std::size_t size) { return allocate_frame(size); }
  static void operator delete(void* frame, std::size_t size) noexcept { free_frame(frame, size); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    void await_suspend(std::coroutine_handle<Promise> self) noexcept {
      PromiseBase& p = self.promise();
      p.finished_ = true;
      if (p.running_inline_) return;  // the parent's await_suspend will return false
      if (p.on_finish_ != nullptr) {
        // A detached task: whoever spawned it is told, and may destroy this frame.
        p.on_finish_(p.on_finish_context_, self);
        return;
      }
      // Copy before resuming: the parent may destroy this frame before resume() returns.
      std::coroutine_handle<> parent = p.continuation_;
      if (parent) parent.resume();
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { exception_ = std::current_exception(); }

  // For the loop: call `on_finish(context, handle)` when a detached task finishes.
  void set_on_finish(void (*on_finish)(void*, std::coroutine_handle<>), void* context) noexcept {
    on_finish_ = on_finish;
    on_finish_context_ = context;
  }
  bool finished() const noexcept { return finished_; }
  std::exception_ptr exception() const noexcept { return exception_; }
  // Where the loop keeps this task in its table of spawned tasks (O(1) removal).
  std::uint32_t spawn_index = 0;

 protected:
  template <class U>
  friend class wire::Task;

  std::coroutine_handle<> continuation_;
  std::exception_ptr exception_;
  void (*on_finish_)(void*, std::coroutine_handle<>) = nullptr;
  void* on_finish_context_ = nullptr;
  bool running_inline_ = false;
  bool finished_ = false;
};

template <class T>
class Promise : public PromiseBase {
 public:
  Task<T> get_return_object() noexcept;
  template <class U>
  void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    value_.emplace(std::forward<U>(value));
  }
  T take() {
    if (exception_) std::rethrow_exception(exception_);
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class Promise<void> : public PromiseBase {
 public:
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() {
    if (exception_) std::rethrow_exception(exception_);
  }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::Promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  explicit Task(handle_type handle) noexcept : handle_(handle) {}
  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  bool valid() const noexcept { return bool(handle_); }
  bool done() const noexcept { return handle_ && handle_.promise().finished(); }

  // Destroys the frame (cancelling whatever it waits on).
  void reset() noexcept {
    if (handle_) std::exchange(handle_, {}).destroy();
  }
  // The frame, still owned by this Task (for awaiters that drive a child task).
  handle_type handle() const noexcept { return handle_; }
  // Gives up ownership of the frame (for the loop's spawn).
  handle_type release() noexcept { return std::exchange(handle_, {}); }

  struct Awaiter {
    handle_type child;
    bool await_ready() const noexcept { return !child || child.promise().finished(); }
    bool await_suspend(std::coroutine_handle<> parent) noexcept {
      auto& p = child.promise();
      p.continuation_ = parent;
      p.running_inline_ = true;
      child.resume();
      p.running_inline_ = false;
      return !p.finished();  // finished already: continue the parent without suspending
    }
    T await_resume() { return child.promise().take(); }
  };
  Awaiter operator co_await() && noexcept { return Awaiter{handle_}; }
  Awaiter operator co_await() & noexcept { return Awaiter{handle_}; }

 private:
  handle_type handle_;
};

namespace detail {
template <class T>
Task<T> Promise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Task<void> Promise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace wire
