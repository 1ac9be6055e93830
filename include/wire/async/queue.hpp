// wire/async/queue.hpp — Queue<T>: a bounded queue between coroutines, with backpressure.
//
//   wire::Queue<std::string> lines(64);        // at most 64 waiting
//   // producer:                               // consumer:
//   co_await lines.push(std::move(line));      while (auto line = co_await lines.pop()) {
//   ...                                          use(*line);
//   lines.close();                             }   // nullopt: closed and drained
//
// push waits while the queue is full (the producer slows to the consumer's pace: memory
// stays bounded), pop waits while it is empty. close() lets the consumers drain what is
// queued, then pop gives nullopt; a push after close throws errc::broken_pipe. try_push /
// try_pop never wait (a fan-out that would rather drop than wait for a slow reader).
//
// First come, first served on both sides. An item is handed straight to a waiting popper;
// a popper cancelled after it was handed one but before it ran gives the item back at the
// front, so nothing is lost and order is kept. A pusher's item is in the queue from the
// moment push returns ready or its waiter is granted a slot. The storage is allocated once
// (capacity items); no operation allocates. Destroyed while tasks wait: it ends like a
// closed queue (pop gives nullopt; push throws errc::operation_canceled). One thread.
#pragma once

#include <cstddef>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "wire/async/waiter_list.hpp"

namespace wire {

template <class T>
class Queue {
 public:
  explicit Queue(std::size_t capacity) : capacity_(capacity), slots_(capacity) {
    if (capacity == 0) {
      throw Error(std::make_error_code(std::errc::invalid_argument), "Queue", "",
                  "a queue needs room for at least one item");
    }
  }
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  std::size_t size() const noexcept { return count_; }
  std::size_t capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return count_ == 0; }
  bool full() const noexcept { return count_ >= capacity_; }
  bool closed() const noexcept { return closed_; }

  // Queues `item` if there is room (and nobody waits ahead); false otherwise or if closed.
  bool try_push(T& item) {
    if (closed_ || !pushers_.empty()) return false;
    if (hand_to_popper(item)) return true;
    if (full()) return false;
    put_back(std::move(item));
    return true;
  }
  bool try_push(T&& item) { return try_push(item); }
  // The first item, if any, without waiting.
  std::optional<T> try_pop() {
    if (count_ == 0) return std::nullopt;
    std::optional<T> item = take_front();
    refill_from_pusher();
    return item;
  }

  // No more pushes: waiting pushers fail, waiting poppers get nullopt once it is drained.
  void close() noexcept {
    closed_ = true;
    while (pushers_.wake_front(false) != nullptr) {
    }
    while (poppers_.wake_front(false) != nullptr) {
    }
  }

  class PushAwaiter : detail::ListedAwaiter {
   public:
    PushAwaiter(PushAwaiter&&) noexcept = default;  // before it waits only
    PushAwaiter(Queue& queue, T&& item) noexcept : queue_(queue), item_(std::move(item)) {}
    ~PushAwaiter() { withdraw(queue_.pushers_); }  // a granted push is done already
    bool await_ready() { return queue_.closed_ || queue_.try_push(item_); }
    void await_suspend(std::coroutine_handle<> handle) {
      wait_in(queue_.pushers_, handle, "Queue::push");
    }
    void await_resume() const {
      if (error_) std::rethrow_exception(error_);
      throw_if_orphaned("Queue::push");
      if (!granted && queue_.closed_) {
        throw Error(std::make_error_code(std::errc::broken_pipe), "Queue::push", "",
                    "the queue is closed");
      }
    }

   private:
    friend class Queue;
    Queue& queue_;
    T item_;
    std::exception_ptr error_;  // moving item_ into the queue threw
  };
  // co_await queue.push(item): waits while the queue is full.
  PushAwaiter push(T item) { return PushAwaiter(*this, std::move(item)); }

  class PopAwaiter : detail::ListedAwaiter {
   public:
    PopAwaiter(PopAwaiter&&) noexcept = default;  // before it waits only
    explicit PopAwaiter(Queue& queue) noexcept : queue_(queue) {}
    ~PopAwaiter() {
      // Handed an item but cancelled before it ran: the item goes back, first in line.
      if (withdraw(queue_.poppers_) && item_) queue_.give_back(std::move(*item_));
    }
    bool await_ready() {
      if (queue_.count_ > 0) {
        item_ = queue_.take_front();
        queue_.refill_from_pusher();
        return true;
      }
      return queue_.closed_;
    }
    void await_suspend(std::coroutine_handle<> handle) {
      wait_in(queue_.poppers_, handle, "Queue::pop");
    }
    // A queue destroyed while this waited ends like a closed one: nullopt.
    std::optional<T> await_resume() {
      granted = false;
      return std::move(item_);
    }

   private:
    friend class Queue;
    Queue& queue_;
    std::optional<T> item_;
  };
  // co_await queue.pop(): the first item, waiting while empty; nullopt once closed and empty.
  PopAwaiter pop() noexcept { return PopAwaiter(*this); }

 private:
  // A popper waits only while the queue is empty: an item goes straight to it.
  bool hand_to_popper(T& item) {
    if (poppers_.empty()) return false;
    auto* popper = static_cast<PopAwaiter*>(poppers_.front());
    popper->item_.emplace(std::move(item));
    poppers_.wake_front(true);
    return true;
  }
  // A slot came free: the longest-waiting pusher's item takes it. Never throws: a move
  // that throws fails that pusher's push (with the exception), and the popper that made
  // room still gets its item.
  void refill_from_pusher() noexcept {
    if (pushers_.empty() || full()) return;
    auto* pusher = static_cast<PushAwaiter*>(pushers_.front());
    try {
      put_back(std::move(pusher->item_));
    } catch (...) {
      pusher->error_ = std::current_exception();
      pushers_.wake_front(false);
      return;
    }
    pushers_.wake_front(true);
  }
  void put_back(T&& item) {
    slots_[(head_ + count_) % slots_.size()].emplace(std::move(item));
    ++count_;
  }
  T take_front() {
    std::optional<T>& slot = slots_[head_];
    T item = std::move(*slot);
    slot.reset();
    head_ = (head_ + 1) % slots_.size();
    --count_;
    return item;
  }
  // From a cancelled popper: before everything else. If the storage is full (pushers
  // filled it meanwhile) it grows: the only allocation, on a cancellation path.
  void give_back(T&& item) noexcept {
    try {
      if (!poppers_.empty()) {
        hand_to_popper(item);
        return;
      }
      if (count_ == slots_.size()) grow();
      head_ = (head_ + slots_.size() - 1) % slots_.size();
      slots_[head_].emplace(std::move(item));
      ++count_;
    } catch (...) {
      // Out of memory while giving an item back: it is lost, and nothing else is.
    }
  }
  void grow() {
    std::vector<std::optional<T>> bigger(slots_.size() * 2);
    for (std::size_t i = 0; i < count_; ++i) {
      bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    }
    slots_ = std::move(bigger);
    head_ = 0;
  }

  detail::WaiterList pushers_;
  detail::WaiterList poppers_;
  std::size_t capacity_;
  std::vector<std::optional<T>> slots_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  bool closed_ = false;
};

}  // namespace wire
