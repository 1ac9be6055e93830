// wire/async/send_queue.hpp — SendQueue: many coroutines write to one socket, in order.
//
//   wire::SendQueue out(conn, 64);             // up to 64 messages waiting
//   out.try_send("hello\n");                   // never waits: false if full or failed
//   co_await out.send(line);                   // waits while full: false once failed
//   co_await out.drain();                      // everything queued has been written
//
// AsyncSocket lets one coroutine write at a time (a second gets EBUSY). A SendQueue owns
// the writing side: a task of its own sends the queued messages one after another, so any
// number of coroutines may send, each message whole and in order. A write error (the peer
// reset, or stopped reading past the socket's timeout) is this peer's error: it ends the
// queue (failed() and error() say why), later sends return false, and the senders (a
// broadcaster serving every other peer) never see an exception for it.
//
// Ownership: borrows the AsyncSocket (which must outlive the queue) and writes to it; the
// socket's reading side stays with its owner. Destroying the queue cancels its writer:
// messages not yet written are dropped (drain() first to keep them). One thread.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

#include "wire/async/event.hpp"
#include "wire/async/queue.hpp"
#include "wire/async/task_group.hpp"
#include "wire/async_socket.hpp"

namespace wire {

class SendQueue {
 public:
  SendQueue(AsyncSocket& socket, std::size_t max_messages);
  SendQueue(const SendQueue&) = delete;
  SendQueue& operator=(const SendQueue&) = delete;
  ~SendQueue() = default;

  // Queues `message` if there is room; false if full, closed or failed.
  bool try_send(std::string message);
  class SendAwaiter {
   public:
    SendAwaiter(SendQueue& queue, std::string message)
        : push_(queue.queue_.push(std::move(message))) {}
    bool await_ready() { return push_.await_ready(); }
    void await_suspend(std::coroutine_handle<> handle) { push_.await_suspend(handle); }
    bool await_resume() noexcept {
      try {
        push_.await_resume();
        return true;
      } catch (const Error&) {
        return false;  // closed: the peer failed or close() was called
      }
    }

   private:
    Queue<std::string>::PushAwaiter push_;
  };
  // co_await out.send(message): queues it, waiting while full; false if closed or failed.
  SendAwaiter send(std::string message) { return SendAwaiter(*this, std::move(message)); }

  // No more messages; the writer sends what is queued, then stops.
  void close() noexcept { queue_.close(); }
  // co_await out.drain(): closes, and returns once everything queued was written or the
  // writing failed.
  Event::WaitAwaiter drain() noexcept {
    queue_.close();
    return finished_.wait();
  }
  std::size_t queued() const noexcept { return queue_.size(); }
  bool failed() const noexcept { return bool(error_); }
  std::error_code error() const noexcept { return error_; }

 private:
  static Task<void> write_all(SendQueue& self);

  AsyncSocket& socket_;
  Queue<std::string> queue_;
  Event finished_;
  std::error_code error_;
  TaskGroup writer_;  // last: destroyed first, taking the writer (which points here) along
};

}  // namespace wire
