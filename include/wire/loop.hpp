// wire/loop.hpp — EventLoop: a selector, timers and a ready queue driving coroutines (asyncio).
//
//   wire::EventLoop loop;                         // epoll; or EventLoop(SelectorKind::poll)
//   loop.spawn(serve(loop));                      // a Task<> the loop owns
//   loop.call_later(std::chrono::seconds(5), [&] { loop.stop(); });
//   loop.run();                                   // until stop() or nothing is left to wait on
//
//   int x = loop.run_until_complete(compute());   // runs one task to its end, returns its value
//
// Ownership: the loop owns the tasks given to spawn() and destroys those still unfinished when
// it is destroyed (which cancels whatever they wait on). It never owns fds: AsyncSocket does.
// One thread drives a loop; stop() alone may be called from any thread or a signal handler.
//
// The awaitables (AsyncSocket's recv, send_all, ..., sleep) are objects in the coroutine
// frame that start an operation in await_suspend and hold its result until await_resume. A
// completion-based backend (io_uring) fits the same shape: it submits in await_suspend and
// stores the completion, so user code stays the same.
#pragma once

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire/buffer.hpp"
#include "wire/error.hpp"
#include "wire/selector.hpp"
#include "wire/task.hpp"

namespace wire {

class EventLoop;
template <class T>
class TaskHandle;

namespace detail {
class ThreadJob;
class ThreadPool;
}  // namespace detail

namespace detail {

using Clock = std::chrono::steady_clock;

// `from + duration`, saturating: a timeout of nanoseconds::max() means never, not a moment
// in the past (the plain sum overflows).
inline Clock::time_point later(Clock::time_point from, std::chrono::nanoseconds duration) noexcept {
  return duration > Clock::time_point::max() - from ? Clock::time_point::max() : from + duration;
}

// An entry in the loop's timer heap; lives inside whatever waits (an awaiter, a callback).
// Kept to 16 bytes: every waiting operation of every connection carries one.
struct TimerNode {
  static constexpr std::uint32_t not_armed = UINT32_MAX;
  // When it fires is kept in the heap entry (loop.cpp); the sequence breaks ties, rare
  // enough to be read from here.
  std::uint32_t heap_index = not_armed;
  std::uint32_t sequence = 0;  // first armed, first fired (compared wrapping)
  void (*fire)(TimerNode*) noexcept = nullptr;
  bool armed() const noexcept { return heap_index != not_armed; }
};
static_assert(sizeof(TimerNode) == 16);

struct IoWaiter;
// What the loop calls on a waiter: one static table per operation type, so a waiter holds
// one pointer rather than one per callback.
struct IoOps {
  // Retries the operation; true once it is finished (successfully or not).
  bool (*attempt)(IoWaiter*) noexcept;
  // Called instead of attempt when the fd is closed under the waiter.
  void (*abort)(IoWaiter*, std::error_code) noexcept;
  // For a waiter with no coroutine (a parked connection): called once attempt said
  // finished and the loop is done with the waiter, so it may free the waiter's owner.
  void (*complete)(IoWaiter*) noexcept = nullptr;
};

// One coroutine waiting for an fd to become readable or writable (24 bytes).
struct IoWaiter {
  std::coroutine_handle<> handle;
  const IoOps* ops = nullptr;
  int fd = -1;
  std::uint8_t direction = 0;  // readable or writable
  bool waiting = false;
};

// A coroutine made ready by something the loop does not watch (an Event, a Queue, a task
// that finished, yield()): queued for the loop's next batch, and taken back out by its
// awaiter's destructor if the coroutine is destroyed first. Lives inside the awaiter, so
// waking allocates nothing.
struct WakeNode {
  std::coroutine_handle<> handle;
  WakeNode* next = nullptr;
  WakeNode* prev = nullptr;
  bool queued = false;
};

}  // namespace detail

class EventLoop {
 public:
  using Duration = std::chrono::nanoseconds;
  using TimerId = std::uint64_t;

  explicit EventLoop(SelectorKind kind = default_selector_kind());
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop();

  // The loop running on this thread, or nullptr.
  static EventLoop* current() noexcept;

  // Runs until stop() is called or nothing is left: no task is unfinished, no fd or timer is
  // waited on, and nothing is queued. A task waiting on something the loop does not watch
  // (an Event, a Queue, an awaitable of your own) keeps run() going, as asyncio's
  // run_forever does: whatever will wake it (another task, call_soon_threadsafe, a signal)
  // can still come.
  void run();
  // Makes run() return after the current iteration. Safe from any thread and from signal
  // handlers.
  void stop() noexcept;

  // Runs `task` on this loop until it finishes and returns its value (or rethrows).
  template <class T>
  T run_until_complete(Task<T> task);

  // Starts `task` in the next batch; the loop owns it. The handle joins it (co_await),
  // cancels it or, dropped, detaches it; an exception escaping a detached task goes to the
  // exception handler (default: print to stderr) and does not stop the loop. See
  // wire/async/task_handle.hpp.
  template <class T>
  TaskHandle<T> spawn(Task<T> task);
  // The same, and calls on_done(context, exception) once the task's frame is gone: when it
  // finished (exception is its escaped exception or null; the handler is then not called)
  // or when the loop destroyed it unfinished (null). For owners of per-task state.
  using DoneHook = void (*)(void* context, std::exception_ptr exception) noexcept;
  void spawn(Task<void> task, DoneHook on_done, void* context);
  // Destroys a spawned task that has not finished, which cancels what it waits on (its
  // awaiters withdraw from fds and timers; the fds stay with their owners), then runs its
  // on_done hook with no exception. Not from inside the task itself. False when `task` is
  // not an unfinished task of this loop.
  bool cancel_task(std::coroutine_handle<> task) noexcept;
  // Hands an exception to the exception handler.
  void report(std::exception_ptr exception) noexcept;
  std::size_t task_count() const noexcept { return tasks_.size(); }
  void set_exception_handler(std::function<void(std::exception_ptr)> handler);

  // Callbacks: run `callback` on the next iteration, or after `delay`.
  void call_soon(std::function<void()> callback);
  TimerId call_later(Duration delay, std::function<void()> callback);
  // False when the timer already fired or was cancelled.
  bool cancel(TimerId id) noexcept;
  // co_await loop.run_in_thread(fn): `fn` on a worker thread, its value back on this one
  // (see wire/async/run_in_thread.hpp).
  template <class F>
  auto run_in_thread(F fn);
  static constexpr unsigned max_worker_threads = 4;

  // Runs `callback` on this loop's thread each time `signal` arrives, like asyncio's
  // add_signal_handler: the handler itself only notes the signal and wakes the loop, so
  // the callback may do anything. One loop per signal in a process (another loop's
  // registration is errc device_or_resource_busy); registering again replaces the
  // callback. The signal's previous disposition comes back with remove_signal_handler or
  // when the loop is destroyed. Signals arriving together may run the callback once.
  void add_signal_handler(int signal, std::function<void()> callback);
  bool remove_signal_handler(int signal) noexcept;

  // The one way into the loop from another thread: queues `callback` for the loop's next
  // batch and wakes it. Thread-safe, as are stop() and nothing else (a loop's other calls
  // belong to the thread running it). Not async-signal-safe (it takes a lock).
  void call_soon_threadsafe(std::function<void()> callback);

  // co_await loop.sleep(100ms);
  class SleepAwaitable;
  SleepAwaitable sleep(Duration duration) noexcept;

  // For its kind() and size() (how many fds the loop watches, its wakeup fd included).
  // Read-only: the loop registers its fds with the backend itself, and a registration of
  // yours on the same fd would fight it. To watch an fd on the loop, use AsyncFd.
  const Selector& selector() const noexcept { return *selector_; }
  // Read buffers lent by AsyncSocket::recv_pooled().
  BufferPool& buffer_pool() noexcept { return buffer_pool_; }
  // The time when this iteration's wait returned (cheap: read once per iteration).
  detail::Clock::time_point now() const noexcept { return now_; }

  // Queues the coroutine waiting in `node` to run in the loop's next batch (no-op when
  // queued already); unwake() takes it back out. For awaitables (see docs/design/
  // awaitables.md, "Writing an awaitable"): the node lives in the awaiter, whose destructor
  // calls unwake so a destroyed coroutine is never resumed.
  void wake(detail::WakeNode& node) noexcept;
  void unwake(detail::WakeNode& node) noexcept;

  // Runs `fn(context)` as soon as no coroutine of this loop is running: at once when
  // called outside run(), else right after the running coroutine suspends and control is
  // back in the loop. For cancelling a task that may be on the stack (TaskHandle::cancel):
  // it is destroyed before anything else is resumed.
  void defer_until_idle(void (*fn)(void* context) noexcept, void* context);

  // For run_in_thread's awaiter: runs the job on a worker, then wakes its node here.
  void submit_to_thread(detail::ThreadJob* job);

  // True while forget_fd (a socket's close) resumes a waiter inside its caller's step: the
  // coroutine that closed is on the stack, and must not be destroyed until the step ends.
  bool resuming_inline() const noexcept { return inline_steps_ > 0; }

  // Used by awaitables (AsyncSocket's): not for general use.
  std::error_code wait_io(detail::IoWaiter& waiter) noexcept;
  // Like wait_io, for a waiter that must run before every other fd reported in the same
  // iteration: state the batch's handlers must see fresh (a file cache that inotify
  // invalidates: an edit and the next request can be reported together).
  std::error_code wait_io_first(detail::IoWaiter& waiter) noexcept;
  // Expires when the loop is destroyed: for a waiter's owner that may outlive the loop and
  // must then not call forget_fd on it.
  std::weak_ptr<void> alive_token() const noexcept { return alive_; }
  void cancel_io(detail::IoWaiter& waiter) noexcept;
  // Drops the fd's registration and aborts its waiters with `reason` (before it is closed).
  void forget_fd(int fd, std::error_code reason) noexcept;
  void arm(detail::TimerNode& timer, detail::Clock::time_point when) noexcept;
  void disarm(detail::TimerNode& timer) noexcept;

 private:
  // Per fd: its reader, its writer, and the events the selector watches it for (0: not
  // registered). 16 bytes, since every connection has one: the interest rides in the low
  // bits of the reader pointer (an IoWaiter is 8-byte aligned), and the selector keeps no
  // registry of its own for the loop's fds (see Selector::loop_add).
  class FdState {
   public:
    detail::IoWaiter* reader() const noexcept {
      return reinterpret_cast<detail::IoWaiter*>(reader_ & ~interest_bits);
    }
    detail::IoWaiter* writer() const noexcept { return writer_; }
    detail::IoWaiter* waiter(unsigned direction) const noexcept {
      return direction == readable ? reader() : writer_;
    }
    void set_waiter(unsigned direction, detail::IoWaiter* waiter) noexcept {
      if (direction == readable) {
        reader_ = reinterpret_cast<std::uintptr_t>(waiter) | interest();
      } else {
        writer_ = waiter;
      }
    }
    unsigned interest() const noexcept { return static_cast<unsigned>(reader_ & interest_bits); }
    void set_interest(unsigned events) noexcept { reader_ = (reader_ & ~interest_bits) | events; }

   private:
    static constexpr std::uintptr_t interest_bits = readable | writable;
    static_assert(alignof(detail::IoWaiter) > interest_bits);
    std::uintptr_t reader_ = 0;
    detail::IoWaiter* writer_ = nullptr;
  };
  struct CallbackTimer;

  void run_ready();
  void dispatch(int fd, unsigned events);
  void fire_timers();
  void heap_up(std::size_t index) noexcept;
  void heap_down(std::size_t index) noexcept;
  static void on_task_finished(void* loop, std::coroutine_handle<> handle) noexcept;
  void drain_wakeup() noexcept;
  // After each coroutine step: what defer_until_idle queued meanwhile.
  void run_deferred() noexcept {
    if (!deferred_.empty()) run_deferred_slow();
  }
  void run_deferred_slow() noexcept;
  void take_remote();
  bool is_first(int fd) const noexcept {
    return std::find(first_fds_.begin(), first_fds_.end(), fd) != first_fds_.end();
  }

  std::unique_ptr<Selector> selector_;
  BufferPool buffer_pool_;
  std::vector<FdState> fds_;
  std::size_t io_waiters_ = 0;
  // The keys sit in the heap itself: sifting compares without touching the awaiters' frames
  // (a cache miss each), and only an entry that moves writes its node's heap_index.
  // 16 bytes: every parked connection's idle timer has one (24 cost 0.02 KiB per idle
  // connection once the vector's doubling slack is counted).
  struct HeapEntry {
    detail::Clock::time_point when;
    detail::TimerNode* node;
  };
  static_assert(sizeof(HeapEntry) == 16);
  std::vector<HeapEntry> heap_;
  std::uint32_t timer_sequence_ = 0;
  std::unordered_map<TimerId, std::unique_ptr<CallbackTimer>> callback_timers_;
  TimerId next_timer_id_ = 1;
  std::deque<std::function<void()>> ready_;
  std::deque<std::coroutine_handle<>> ready_tasks_;
  detail::WakeNode* woken_head_ = nullptr;  // FIFO of woken coroutines (intrusive)
  detail::WakeNode* woken_tail_ = nullptr;
  std::size_t woken_ = 0;
  unsigned busy_batches_ = 0;  // batches run since the selector was last polled
  struct Deferred {
    void (*fn)(void*) noexcept;
    void* context;
  };
  std::vector<Deferred> deferred_;
  bool running_ = false;       // inside run(): defer_until_idle waits for the step to end
  unsigned inline_steps_ = 0;  // coroutines forget_fd is resuming (it may be outside run())
  struct Spawned {
    std::coroutine_handle<detail::Promise<void>> handle;
    DoneHook on_done;
    void* context;
  };
  std::vector<Spawned> tasks_;  // spawned, unfinished; each promise knows its index
  std::function<void(std::exception_ptr)> exception_handler_;
  detail::Clock::time_point now_;
  int wakeup_fd_ = -1;  // eventfd: stop() from elsewhere interrupts select
  // Fds waited on with wait_io_first, dispatched before the others of their iteration: a
  // list, not a flag per fd, as there is seldom more than one (a file cache's inotify fd).
  std::vector<int> first_fds_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
  std::atomic<bool> stop_requested_{false};
  std::mutex remote_mutex_;
  std::vector<std::function<void()>> remote_;  // from call_soon_threadsafe
  std::atomic<bool> remote_pending_{false};
  std::unique_ptr<detail::ThreadPool> pool_;  // made on first run_in_thread
  struct SignalHandler {
    int signal;
    std::function<void()> callback;
    struct ::sigaction previous;
  };
  std::vector<SignalHandler> signal_handlers_;
  unsigned signals_seen_ = 0;  // the process's signal generation last looked at
  void run_signal_handlers();
};

class EventLoop::SleepAwaitable : detail::TimerNode {
 public:
  SleepAwaitable(EventLoop& loop, Duration duration) noexcept : loop_(loop), duration_(duration) {}
  SleepAwaitable(const SleepAwaitable&) = delete;
  SleepAwaitable& operator=(const SleepAwaitable&) = delete;
  SleepAwaitable(SleepAwaitable&& other) noexcept
      : detail::TimerNode(), loop_(other.loop_), duration_(other.duration_) {}
  ~SleepAwaitable() {
    if (armed()) loop_.disarm(*this);
  }
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> handle) noexcept {
    handle_ = handle;
    fire = [](detail::TimerNode* node) noexcept {
      static_cast<SleepAwaitable*>(node)->handle_.resume();
    };
    loop_.arm(*this, detail::later(detail::Clock::now(), duration_));
  }
  void await_resume() const noexcept {}

 private:
  EventLoop& loop_;
  Duration duration_;
  std::coroutine_handle<> handle_;
};

inline EventLoop::SleepAwaitable EventLoop::sleep(Duration duration) noexcept {
  return SleepAwaitable(*this, duration);
}

template <class T>
T EventLoop::run_until_complete(Task<T> task) {
  struct Outcome {
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
    std::exception_ptr error;
  } outcome;
  auto runner = [](EventLoop& loop, Task<T> inner, Outcome& out) -> Task<void> {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await std::move(inner);
        out.value.emplace(true);
      } else {
        out.value.emplace(co_await std::move(inner));
      }
    } catch (...) {
      out.error = std::current_exception();
    }
    loop.stop();
  };
  Task<void> wrapped = runner(*this, std::move(task), outcome);
  const std::coroutine_handle<> running = wrapped.handle();
  spawn(std::move(wrapped), nullptr, nullptr);
  run();
  if (outcome.error) std::rethrow_exception(outcome.error);
  if (!outcome.value) {
    // Stopped early: the runner would write into this frame's `outcome` once resumed by a
    // later run(), so it (and the task inside it) is cancelled here.
    cancel_task(running);
    throw Error(std::make_error_code(std::errc::operation_canceled), "run_until_complete", "",
                "the loop stopped before the task finished (the task was cancelled)");
  }
  if constexpr (!std::is_void_v<T>) return std::move(*outcome.value);
}

namespace detail {

// "250 ms", "2 s", "1.5 s": for messages.
std::string describe_duration(std::chrono::nanoseconds duration);

// What with_timeout says timed out: an AsyncSocket operation names itself and its peer
// (timeout_label()), formatted only if it does time out; anything else is named by the
// caller, or is "with_timeout".
struct TimeoutLabel {
  const char* operation = "with_timeout";
  std::string what;  // the caller's name for it: replaces operation and address
  std::string (*describe)(const void* subject) = nullptr;
  const void* subject = nullptr;
};

template <class A>
TimeoutLabel label_of(const A& awaitable) noexcept {
  if constexpr (requires { awaitable.timeout_label(); }) {
    return awaitable.timeout_label();
  } else {
    return {};
  }
}

// with_timeout's awaiter: runs the child inline like Task's awaiter, and destroys it (which
// cancels what it waits on) if the timer fires first.
template <class T>
class TimeoutAwaiter : TimerNode {
 public:
  TimeoutAwaiter(EventLoop& loop, EventLoop::Duration duration, Task<T> task,
                 TimeoutLabel label) noexcept
      : loop_(loop), duration_(duration), task_(std::move(task)), label_(std::move(label)) {}
  TimeoutAwaiter(const TimeoutAwaiter&) = delete;
  ~TimeoutAwaiter() {
    if (armed()) loop_.disarm(*this);
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> parent) noexcept {
    parent_ = parent;
    auto awaiter = typename Task<T>::Awaiter{task_.handle()};
    if (!awaiter.await_suspend(parent)) return false;  // finished without waiting
    fire = [](TimerNode* node) noexcept {
      auto* self = static_cast<TimeoutAwaiter*>(node);
      self->timed_out_ = true;
      self->task_.reset();
      self->parent_.resume();
    };
    loop_.arm(*this, later(Clock::now(), duration_));
    return true;
  }
  T await_resume() {
    if (armed()) loop_.disarm(*this);
    if (timed_out_) {
      std::string address;
      if (label_.what.empty() && label_.describe != nullptr) {
        address = label_.describe(label_.subject);
      }
      throw Error(errc::timed_out, label_.what.empty() ? label_.operation : label_.what,
                  std::move(address), "timed out after " + describe_duration(duration_));
    }
    return typename Task<T>::Awaiter{task_.handle()}.await_resume();
  }

 private:
  EventLoop& loop_;
  EventLoop::Duration duration_;
  Task<T> task_;
  TimeoutLabel label_;
  std::coroutine_handle<> parent_;
  bool timed_out_ = false;
};

// What co_await gives for an awaitable, or for a type with a member operator co_await
// (Task, TaskHandle).
template <class A>
struct awaiter_of {
  using type = A;
};
template <class A>
requires requires(A& a) {
  a.operator co_await();
}
struct awaiter_of<A> {
  using type = decltype(std::declval<A&>().operator co_await());
};
template <class A>
using await_result_t = decltype(std::declval<typename awaiter_of<A>::type&>().await_resume());

template <class A>
Task<await_result_t<A>> as_task(A awaitable) {
  co_return co_await std::move(awaitable);
}

template <class T>
struct is_task : std::false_type {};
template <class T>
struct is_task<Task<T>> : std::true_type {};

EventLoop& loop_for_timeout();

}  // namespace detail

// co_await wire::with_timeout(2s, sock.recv(buffer));  co_await wire::with_timeout(2s, task());
// Throws errc::timed_out when the duration passes first; the operation is then cancelled
// (its fd registration and timers withdrawn). Uses the loop running on this thread. The
// error names what timed out: "recv 127.0.0.1:8080: timed out after 2 s" for a socket's
// operation; pass `what` to name anything else ("fetch /index.html: timed out after 2 s").
template <class Awaitable>
auto with_timeout(EventLoop::Duration duration, Awaitable awaitable, std::string what = {}) {
  EventLoop& loop = detail::loop_for_timeout();
  detail::TimeoutLabel label = detail::label_of(awaitable);
  label.what = std::move(what);
  if constexpr (detail::is_task<Awaitable>::value) {
    return detail::TimeoutAwaiter<typename Awaitable::value_type>(
        loop, duration, std::move(awaitable), std::move(label));
  } else {
    using T = detail::await_result_t<Awaitable>;
    return detail::TimeoutAwaiter<T>(loop, duration, detail::as_task(std::move(awaitable)),
                                     std::move(label));
  }
}

}  // namespace wire

// EventLoop::spawn returns a TaskHandle and run_in_thread an awaiter: defined there, once
// EventLoop is complete.
#include "wire/async/run_in_thread.hpp"  // IWYU pragma: export
#include "wire/async/task_handle.hpp"    // IWYU pragma: export
