// wire/async_fd.hpp — AsyncFd: any pollable fd on an EventLoop, not only a socket: a pipe, a
// FIFO, stdin/stdout, a tty, an eventfd, a signalfd, a timerfd, inotify.
//
//   wire::Task<> copy_stdin(wire::EventLoop& loop) {
//     wire::AsyncFd in = wire::AsyncFd::reopen(loop, 0);   // a private description of stdin
//     wire::AsyncFd out = wire::AsyncFd::borrow(loop, 1);  // stdout itself, never closed here
//     char buffer[4096];
//     for (;;) {
//       std::size_t n = co_await in.read(buffer);          // 0: end of input
//       if (n == 0) co_return;
//       co_await out.write_all({buffer, n});
//     }
//   }
//
//   wire::AsyncFd ticks = wire::AsyncFd::adopt(loop, wire::OwnedFd(::eventfd(0, EFD_CLOEXEC)));
//   co_await ticks.wait_readable();
//
// Ownership, said by the call that makes one:
//  - adopt(loop, OwnedFd): the AsyncFd owns the fd and closes it in close() or its destructor.
//  - borrow(loop, fd): the fd stays its owner's (stdin, stdout, an fd a library holds); close()
//    and the destructor withdraw it from the loop and never close it. The owner keeps it open
//    while the AsyncFd lives.
//  - reopen(loop, fd): the AsyncFd owns a new fd that it opens on the same file
//    (/proc/self/fd/N), with an open file description of its own; `fd` is left untouched.
// Closing or destroying an AsyncFd withdraws the fd from the loop and wakes any waiter with
// errc::socket_closed. Do not move an AsyncFd while one of its operations is pending.
//
// Non-blocking mode, and why reopen() exists: the loop needs O_NONBLOCK, and O_NONBLOCK is a
// flag of the open file description, not of the fd. stdin, stdout and stderr of a terminal
// are usually one description (the shell opened the tty once and dup'ed it), and a pipe's end
// may be shared with other processes of a pipeline. Setting O_NONBLOCK there makes their
// blocking reads and writes fail with EAGAIN too (printf to a slow terminal loses text).
// So adopt() and borrow() set O_NONBLOCK only if it was clear, and clear it again when the
// AsyncFd closes: the file is left as it was found (a process killed meanwhile cannot restore
// it). While the AsyncFd is open the sharing remains; where that matters (a tty, a FIFO, a
// pipe shared with others), reopen() gives a description no one else uses, which alone is made
// non-blocking. reopen() refuses a socket (the kernel cannot reopen one, ENXIO) and a pty
// master (reopening /dev/ptmx would make a new pty): borrow those.
// Two AsyncFds over one description (borrow(0) and borrow(1) on a terminal) would restore the
// flag when the first closes, under the second: reopen one of them.
//
// Not pollable: epoll refuses regular files and folders (they are always "ready", so waiting
// means nothing) and some character devices (/dev/null). adopt, borrow and reopen fail at once
// for them with a wire::Error saying so (EPERM), whatever the loop's selector, so a program
// behaves the same under WIRE_SELECTOR=poll; read such files with blocking calls
// (wire::Stream) or in a thread. Never a hang.
//
// Each call tries the syscall at once and waits only if the kernel says EAGAIN. At most one
// coroutine may wait to read and one to write at a time (a second gets EBUSY). Writes never
// raise SIGPIPE: a vanished reader is an EPIPE error. Errors are wire::Error naming the
// operation and the fd ("read pipe:[1234]: ...", "write stdout (/dev/pts/3): ..."); pass
// std::nothrow as the last argument to get a Result instead.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "wire/async_socket.hpp"
#include "wire/loop.hpp"
#include "wire/owned_fd.hpp"

namespace wire {

namespace detail {
template <class Op, bool Throw>
class FdAwaitable;
}  // namespace detail

class AsyncFd {
 public:
  AsyncFd() noexcept = default;
  // Owns `fd` from now on (closed even when this throws).
  static AsyncFd adopt(EventLoop& loop, OwnedFd fd);
  static Result<AsyncFd> adopt(EventLoop& loop, OwnedFd fd, std::nothrow_t) noexcept;
  // Uses `fd` without owning it; its O_NONBLOCK flag is restored when this closes.
  static AsyncFd borrow(EventLoop& loop, int fd);
  static Result<AsyncFd> borrow(EventLoop& loop, int fd, std::nothrow_t) noexcept;
  // Owns a new fd on the same file as `fd`, with its own open file description.
  static AsyncFd reopen(EventLoop& loop, int fd);
  static Result<AsyncFd> reopen(EventLoop& loop, int fd, std::nothrow_t) noexcept;

  AsyncFd(AsyncFd&& other) noexcept;
  AsyncFd& operator=(AsyncFd&& other) noexcept;
  AsyncFd(const AsyncFd&) = delete;
  AsyncFd& operator=(const AsyncFd&) = delete;
  ~AsyncFd() { close(); }

  EventLoop* loop() const noexcept { return loop_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  // The fd; -1 once closed.
  int fileno() const noexcept { return fd_; }
  // Whether close() closes the fd (adopt, reopen) or leaves it to its owner (borrow).
  bool owns_fd() const noexcept { return owned_.is_open(); }
  // What errors call it: "pipe:[1234]", "/dev/pts/3", "anon_inode:[eventfd]", "stdin
  // (pipe:[1234])". Kept after close.
  const std::string& name() const noexcept { return name_; }
  // Withdraws the fd from the loop (waking waiters with errc::socket_closed), restores its
  // O_NONBLOCK flag if this set it, and closes it if owned. Idempotent.
  void close() noexcept;

  std::optional<std::chrono::nanoseconds> timeout() const noexcept {
    if (timeout_ns_ < 0) return std::nullopt;
    return std::chrono::nanoseconds(timeout_ns_);
  }
  // An idle timeout, as AsyncSocket's: every wait of every later call fails with
  // errc::timed_out once this long passes without progress (write_all restarts the clock
  // with each piece the kernel takes). nullopt (the default) waits without limit. A total
  // deadline is with_timeout(): co_await with_timeout(1s, in.read(buffer)).
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept {
    timeout_ns_ = timeout ? std::max<std::int64_t>(0, timeout->count()) : -1;
  }

  // co_await in.read(buffer) -> bytes read; 0 means end of input (every writer closed).
  auto read(std::span<char> buffer);
  auto read(std::span<char> buffer, std::nothrow_t);
  // co_await out.write(data) -> bytes written, maybe fewer than given.
  auto write(std::string_view data);
  auto write(std::string_view data, std::nothrow_t);
  // co_await out.write_all(data) -> data.size(): every byte, waiting while the pipe is full.
  auto write_all(std::string_view data);
  auto write_all(std::string_view data, std::nothrow_t);
  // co_await fd.wait_readable(): until a read would not wait (data, end of input, an error,
  // an eventfd's count, a signal for a signalfd). For fds read with their own calls.
  auto wait_readable();
  auto wait_readable(std::nothrow_t);
  auto wait_writable();
  auto wait_writable(std::nothrow_t);

  // One attempt that never waits: bytes moved (0 from read_now: end of input), or the error;
  // EAGAIN (detail::would_block) when the kernel has nothing or no room right now.
  Result<std::size_t> read_now(std::span<char> buffer, std::nothrow_t) noexcept;
  Result<std::size_t> write_now(std::string_view data, std::nothrow_t) noexcept;

 private:
  template <class Op, bool Throw>
  friend class detail::FdAwaitable;

  // Checks that epoll can watch `fd` and makes it non-blocking; `failure` gets the reason.
  static Result<AsyncFd> make(EventLoop& loop, OwnedFd owned, int fd,
                              std::string& failure) noexcept;

  EventLoop* loop_ = nullptr;
  OwnedFd owned_;  // empty when borrowed
  int fd_ = -1;
  std::int64_t timeout_ns_ = -1;
  bool is_socket_ = false;         // writes use send(MSG_NOSIGNAL): no SIGPIPE
  bool is_pipe_ = false;           // writes block SIGPIPE for the call (a pipe or a FIFO)
  bool restore_blocking_ = false;  // this set O_NONBLOCK: clear it again at close
  std::string name_;
};

namespace detail {

// The awaitable of every AsyncFd operation, shaped like AsyncSocket's IoAwaitable: Op::attempt
// does the syscall (never blocking) and says whether it finished; suspending, the idle
// timeout and withdrawing on destruction (with_timeout's cancellation) are shared.
template <class Op, bool Throw>
class FdAwaitable : IoWaiter, TimerNode {
 public:
  using Value = typename Op::Value;

  FdAwaitable(AsyncFd& owner, Op op) noexcept : owner_(&owner), op_(std::move(op)) {}
  FdAwaitable(FdAwaitable&& other) noexcept
      : IoWaiter(), TimerNode(), owner_(other.owner_), op_(std::move(other.op_)) {}
  FdAwaitable(const FdAwaitable&) = delete;
  FdAwaitable& operator=(const FdAwaitable&) = delete;
  ~FdAwaitable() {
    if (waiting) loop_->cancel_io(*this);
    if (armed()) loop_->disarm(*this);
  }

  bool await_ready() noexcept {
    loop_ = owner_->loop_;
    if (!owner_->is_open()) {
      result_ = errc::socket_closed;
      return true;
    }
    fd = owner_->fd_;
    return op_.attempt(*owner_, result_);
  }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    handle = h;
    direction = static_cast<std::uint8_t>(Op::direction);
    ops = &io_ops;
    if (auto ec = loop_->wait_io(*this)) {
      result_ = ec;
      return false;
    }
    if (owner_->timeout_ns_ >= 0) {
      fire = [](TimerNode* t) noexcept {
        auto* self = static_cast<FdAwaitable*>(t);
        self->loop_->cancel_io(*self);
        self->result_ = errc::timed_out;
        self->handle.resume();
      };
      loop_->arm(*this, Clock::now() + std::chrono::nanoseconds(owner_->timeout_ns_));
    }
    return true;
  }
  auto await_resume() {
    if (armed()) loop_->disarm(*this);
    if constexpr (Throw) {
      if (!result_) throw Error(result_.error(), Op::name, owner_->name_);
      if constexpr (!std::is_void_v<Value>) return std::move(*result_);
    } else {
      return std::move(result_);
    }
  }

 private:
  static bool retry(IoWaiter* w) noexcept {
    auto* self = static_cast<FdAwaitable*>(w);
    if constexpr (requires { self->op_.sent; }) {
      // A transfer in pieces: each piece the kernel took restarts the idle timeout.
      const auto before = self->op_.sent;
      const bool done = self->op_.attempt(*self->owner_, self->result_);
      if (!done && self->op_.sent != before && self->armed()) {
        self->loop_->arm(*self,
                         self->loop_->now() + std::chrono::nanoseconds(self->owner_->timeout_ns_));
      }
      return done;
    } else {
      return self->op_.attempt(*self->owner_, self->result_);
    }
  }
  static void abort_wait(IoWaiter* w, std::error_code reason) noexcept {
    auto* self = static_cast<FdAwaitable*>(w);
    if (self->armed()) self->loop_->disarm(*self);
    self->result_ = reason;
    self->handle.resume();
  }
  static constexpr IoOps io_ops{&retry, &abort_wait};

  AsyncFd* owner_;
  EventLoop* loop_ = nullptr;  // kept: a close() under the waiter empties nothing it needs
  [[no_unique_address]] Op op_;
  Result<Value> result_{std::error_code()};
};

struct FdReadOp {
  using Value = std::size_t;
  static constexpr unsigned direction = readable;
  static constexpr const char* name = "read";
  std::span<char> buffer;
  bool attempt(AsyncFd& owner, Result<Value>& result) noexcept;
};

struct FdWriteOp {
  using Value = std::size_t;
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "write";
  std::string_view data;
  bool attempt(AsyncFd& owner, Result<Value>& result) noexcept;
};

struct FdWriteAllOp {
  using Value = std::size_t;  // bytes written in all
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "write_all";
  std::string_view data;
  std::size_t sent = 0;
  bool attempt(AsyncFd& owner, Result<Value>& result) noexcept;
};

// Readiness alone: the first attempt waits, the loop's report finishes it.
template <unsigned Direction>
struct FdWaitOp {
  using Value = bool;
  static constexpr unsigned direction = Direction;
  static constexpr const char* name = Direction == readable ? "wait_readable" : "wait_writable";
  bool asked = false;
  bool attempt(AsyncFd&, Result<Value>& result) noexcept {
    if (!std::exchange(asked, true)) return false;
    result = true;
    return true;
  }
};

// Drops the bool a wait stores, so co_await gives void (or Result<void>).
template <class Inner, bool Throw>
class FdWaitAwaitable {
 public:
  explicit FdWaitAwaitable(AsyncFd& owner) noexcept : inner_(owner, {}) {}
  bool await_ready() noexcept { return inner_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept { return inner_.await_suspend(h); }
  auto await_resume() {
    if constexpr (Throw) {
      inner_.await_resume();
    } else {
      auto r = inner_.await_resume();
      return r ? Result<void>() : Result<void>(r.error());
    }
  }

 private:
  FdAwaitable<Inner, Throw> inner_;
};

}  // namespace detail

inline auto AsyncFd::read(std::span<char> buffer) {
  return detail::FdAwaitable<detail::FdReadOp, true>(*this, {buffer});
}
inline auto AsyncFd::read(std::span<char> buffer, std::nothrow_t) {
  return detail::FdAwaitable<detail::FdReadOp, false>(*this, {buffer});
}
inline auto AsyncFd::write(std::string_view data) {
  return detail::FdAwaitable<detail::FdWriteOp, true>(*this, {data});
}
inline auto AsyncFd::write(std::string_view data, std::nothrow_t) {
  return detail::FdAwaitable<detail::FdWriteOp, false>(*this, {data});
}
inline auto AsyncFd::write_all(std::string_view data) {
  return detail::FdAwaitable<detail::FdWriteAllOp, true>(*this, {data});
}
inline auto AsyncFd::write_all(std::string_view data, std::nothrow_t) {
  return detail::FdAwaitable<detail::FdWriteAllOp, false>(*this, {data});
}
inline auto AsyncFd::wait_readable() {
  return detail::FdWaitAwaitable<detail::FdWaitOp<readable>, true>(*this);
}
inline auto AsyncFd::wait_readable(std::nothrow_t) {
  return detail::FdWaitAwaitable<detail::FdWaitOp<readable>, false>(*this);
}
inline auto AsyncFd::wait_writable() {
  return detail::FdWaitAwaitable<detail::FdWaitOp<writable>, true>(*this);
}
inline auto AsyncFd::wait_writable(std::nothrow_t) {
  return detail::FdWaitAwaitable<detail::FdWaitOp<writable>, false>(*this);
}

}  // namespace wire
