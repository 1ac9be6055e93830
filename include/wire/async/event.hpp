// wire/async/event.hpp — Event: one coroutine (or many) waits until another says go.
//
//   wire::Event ready;
//   // a task:                      // another task, on the same loop:
//   co_await ready.wait();          ready.set();        // wakes every waiter
//
// Like asyncio.Event: set() wakes every waiter and leaves the event set (a later wait()
// returns at once) until clear(). A waiter resumes in the loop's next batch, never inside
// set(). Cancelling a waiting task removes it without a trace. Waiting allocates nothing.
//
// One thread: the event belongs to the loop its waiters run on (from another thread, go
// through EventLoop::call_soon_threadsafe).
#pragma once

#include "wire/async/waiter_list.hpp"

namespace wire {

class Event {
 public:
  Event() noexcept = default;
  explicit Event(bool set) noexcept : set_(set) {}
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  // Tasks still waiting are woken: their wait() throws errc::operation_canceled.
  ~Event() = default;

  bool is_set() const noexcept { return set_; }
  void set() noexcept {
    set_ = true;
    while (waiters_.wake_front(false) != nullptr) {
    }
  }
  void clear() noexcept { set_ = false; }

  class WaitAwaiter : detail::ListedAwaiter {
   public:
    WaitAwaiter(WaitAwaiter&&) noexcept = default;  // before it waits only
    explicit WaitAwaiter(Event& event) noexcept : event_(event) {}
    ~WaitAwaiter() { withdraw(event_.waiters_); }
    bool await_ready() const noexcept { return event_.set_; }
    void await_suspend(std::coroutine_handle<> handle) {
      wait_in(event_.waiters_, handle, "Event::wait");
    }
    void await_resume() const { throw_if_orphaned("Event::wait"); }

   private:
    Event& event_;
  };
  // co_await event.wait(): returns once the event is set.
  WaitAwaiter wait() noexcept { return WaitAwaiter(*this); }

 private:
  detail::WaiterList waiters_;
  bool set_ = false;
};

}  // namespace wire
