// wire/async/waiter_list.hpp — the waiting line shared by Event, Semaphore, Lock and Queue.
//
// Not for direct use. A waiter is an awaiter in the waiting coroutine's frame: it sits in
// its primitive's FIFO until woken, then in its loop's wake list until resumed. Its
// destructor takes it out of whichever it is in, so a cancelled waiter leaves no trace;
// a waiter that was handed something (a permit, an item) and dies before it ran passes it
// on (see each primitive). Nothing here allocates.
#pragma once

#include <coroutine>

#include "wire/error.hpp"
#include "wire/loop.hpp"

namespace wire::detail {

struct SyncWaiter {
  WakeNode node;
  EventLoop* loop = nullptr;
  SyncWaiter* next = nullptr;
  SyncWaiter* prev = nullptr;
  bool listed = false;
  bool granted = false;   // woken with something in hand (a permit, an item, a slot)
  bool orphaned = false;  // its primitive was destroyed while it waited
};

// The loop a waiter must come back on: the one running this thread.
inline EventLoop& waiting_loop(const char* operation) {
  EventLoop* loop = EventLoop::current();
  if (loop == nullptr) {
    throw Error(std::make_error_code(std::errc::operation_not_permitted), operation, "",
                "no EventLoop is running on this thread");
  }
  return *loop;
}

class WaiterList {
 public:
  WaiterList() noexcept = default;
  WaiterList(const WaiterList&) = delete;
  WaiterList& operator=(const WaiterList&) = delete;
  // A primitive destroyed while coroutines wait on it: each is woken as orphaned (its
  // await_resume throws) and never touches the primitive again.
  ~WaiterList() {
    while (head_ != nullptr) {
      SyncWaiter* waiter = head_;
      remove(*waiter);
      waiter->orphaned = true;
      waiter->granted = false;
      waiter->loop->wake(waiter->node);
    }
  }

  bool empty() const noexcept { return head_ == nullptr; }
  SyncWaiter* front() const noexcept { return head_; }

  void push_back(SyncWaiter& waiter) noexcept {
    waiter.listed = true;
    waiter.next = nullptr;
    waiter.prev = tail_;
    (tail_ != nullptr ? tail_->next : head_) = &waiter;
    tail_ = &waiter;
  }
  void remove(SyncWaiter& waiter) noexcept {
    if (!waiter.listed) return;
    (waiter.prev != nullptr ? waiter.prev->next : head_) = waiter.next;
    (waiter.next != nullptr ? waiter.next->prev : tail_) = waiter.prev;
    waiter.next = waiter.prev = nullptr;
    waiter.listed = false;
  }
  // Takes the first waiter out and queues it to run (granted: with something in hand).
  SyncWaiter* wake_front(bool granted) noexcept {
    SyncWaiter* waiter = head_;
    if (waiter == nullptr) return nullptr;
    remove(*waiter);
    waiter->granted = granted;
    waiter->loop->wake(waiter->node);
    return waiter;
  }

 private:
  SyncWaiter* head_ = nullptr;
  SyncWaiter* tail_ = nullptr;
};

// Waits in `list` (await_suspend) and withdraws on destruction. A primitive derives its
// awaiter from this and says in await_ready whether to wait at all.
class ListedAwaiter : protected SyncWaiter {
 public:
  ListedAwaiter(const ListedAwaiter&) = delete;
  ListedAwaiter& operator=(const ListedAwaiter&) = delete;
  // Moved only before it waits (with_timeout takes the awaitable by value): the new one
  // starts out of every list.
  ListedAwaiter(ListedAwaiter&&) noexcept : SyncWaiter() {}

 protected:
  ListedAwaiter() noexcept = default;
  ~ListedAwaiter() = default;
  void wait_in(WaiterList& list, std::coroutine_handle<> handle, const char* operation) {
    loop = &waiting_loop(operation);
    node.handle = handle;
    list.push_back(*this);
  }
  // From await_resume: the primitive is gone (and must not be touched).
  void throw_if_orphaned(const char* operation) const {
    if (orphaned) {
      throw Error(std::make_error_code(std::errc::operation_canceled), operation, "",
                  "it was destroyed while this task waited on it");
    }
  }
  // From the destructor: true when this waiter had been granted something it never took.
  // Touches `list` only while listed (an orphan's list is gone).
  bool withdraw(WaiterList& list) noexcept {
    if (listed) list.remove(*this);
    if (!node.queued) return false;
    loop->unwake(node);
    return granted;
  }
};

}  // namespace wire::detail
