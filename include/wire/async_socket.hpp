// wire/async_socket.hpp — AsyncSocket: a Socket driven by an EventLoop, with awaitable calls.
//
//   wire::Task<> echo(wire::AsyncSocket& conn) {
//     for (;;) {
//       wire::Buffer data = co_await conn.recv_pooled();   // lent only once data is there
//       if (data.empty()) co_return;                       // the peer closed
//       co_await conn.send_all(data);
//     }
//   }
//
// Ownership: an AsyncSocket owns its Socket (and so the fd) and belongs to one loop; closing
// or destroying it withdraws the fd from the loop and wakes any waiter with
// errc::socket_closed. The socket is switched to non-blocking mode. Do not move an
// AsyncSocket while one of its operations is pending (the operation points to it).
//
// Each call tries the operation at once and suspends only if the kernel says EAGAIN, so a
// socket with data waiting costs no trip through the selector. At most one coroutine may
// wait to read and one to write on a socket at a time (a second gets EBUSY).
// Errors are wire::Error naming the operation and the peer; pass std::nothrow as the last
// argument to get a Result instead.
#pragma once

#include <algorithm>
#include <chrono>
#include <span>
#include <string_view>

#include "wire/loop.hpp"
#include "wire/socket.hpp"

namespace wire {

namespace detail {
template <class Op, bool Throw>
class IoAwaitable;
struct RecvOp;
struct RecvPooledOp;
struct SendOp;
struct SendAllOp;
struct SendFileOp;
struct AcceptOp;
struct ConnectOp;
struct RecvFromOp;
struct SendToOp;
}  // namespace detail

// How long a handler waits in its frame for a quiet peer before returning parkable: busy
// connections (the peer answers within this) never pay for parking, idle ones stop costing
// a frame soon after they fall silent.
inline constexpr std::chrono::milliseconds park_after{50};

class AsyncSocket {
 public:
  struct Accepted;

  AsyncSocket() noexcept = default;
  AsyncSocket(EventLoop& loop, Socket socket);
  AsyncSocket(AsyncSocket&& other) noexcept;
  AsyncSocket& operator=(AsyncSocket&& other) noexcept;
  AsyncSocket(const AsyncSocket&) = delete;
  AsyncSocket& operator=(const AsyncSocket&) = delete;
  ~AsyncSocket() { close(); }

  Socket& socket() noexcept { return socket_; }
  const Socket& socket() const noexcept { return socket_; }
  EventLoop* loop() const noexcept { return loop_; }
  bool is_open() const noexcept { return socket_.is_open(); }
  int fileno() const { return socket_.fileno(); }
  Address peer_address() const { return socket_.peer_address(); }
  Address local_address() const { return socket_.local_address(); }
  // Withdraws the fd from the loop (waking waiters with errc::socket_closed) and closes it.
  void close() noexcept;
  void shutdown(Shutdown how) { socket_.shutdown(how); }
  // A protocol marks a connection idle while it waits between requests (an HTTP keep-alive
  // connection, say): a server stopping gracefully closes idle connections at once instead
  // of granting them the shutdown grace period.
  void mark_idle(bool idle) noexcept { idle_ = idle; }
  bool idle() const noexcept { return idle_; }
  // A handler that returns with this set asks a Server to park the connection (keep only
  // its record, no frame) and call the handler again once the peer sends more.
  void mark_parkable(bool parkable) noexcept { parkable_ = parkable; }
  bool parkable() const noexcept { return parkable_; }
  // Set by a Server handing its work to a successor: the protocol should end the connection
  // at its next natural end (HTTP: answer the next request with Connection: close).
  void mark_draining(bool draining) noexcept { draining_ = draining; }
  bool draining() const noexcept { return draining_; }
  // Bytes the kernel took from send, send_now, send_all and sendfile on this socket, counted
  // modulo 2^32 (it lives in padding: every idle connection carries one): the difference of
  // two readings is exact for anything under 4 GiB. Tells whether a handler wrote anything;
  // sendfile and send_all can also report their own progress exactly (see below).
  std::uint32_t bytes_sent() const noexcept { return bytes_sent_; }
  // The last read emptied the kernel's buffer: the next read would most likely wait.
  bool drained() const noexcept { return read_drained_; }
  // The fd is known to be readable (the selector said so): the next read tries at once.
  void note_readable() noexcept { read_drained_ = false; }
  std::optional<std::chrono::nanoseconds> timeout() const noexcept {
    if (timeout_ns_ < 0) return std::nullopt;
    return std::chrono::nanoseconds(timeout_ns_);
  }
  // An idle timeout: every wait of every later call fails with errc::timed_out once this
  // long passes without progress. A send_all or sendfile that keeps moving is never cut (the
  // clock restarts with each chunk the kernel takes); one whose peer stops reading is.
  // nullopt (the default) waits without limit. Like Socket::set_timeout, per wait.
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept {
    timeout_ns_ = timeout ? std::max<std::int64_t>(0, timeout->count()) : -1;
  }
  // A total deadline, progress or not, is with_timeout(): co_await with_timeout(5s,
  // conn.send_all(data)) cancels the send when it takes longer in all.

  // co_await conn.recv(buffer) -> bytes read; 0 means the peer closed.
  auto recv(std::span<char> buffer);
  auto recv(std::span<char> buffer, std::nothrow_t);
  // co_await conn.recv_pooled() -> a Buffer lent by the loop once data is there (empty: the
  // peer closed). Waiting holds no buffer, so idle connections cost no read memory.
  auto recv_pooled();
  auto recv_pooled(std::nothrow_t);
  // Sends what the kernel takes right now, without waiting: the byte count (maybe 0).
  // Lets a handler skip an awaiter (and its frame space) when the send buffer has room.
  std::size_t send_now(std::string_view data);
  // co_await conn.send(data) -> bytes sent (maybe fewer than given).
  auto send(std::string_view data);
  auto send(std::string_view data, std::nothrow_t);
  // co_await conn.send_all(data): every byte, waiting while the kernel's buffer is full. The
  // bytes stay in the caller's buffer until sent, so memory never grows with a slow reader.
  auto send_all(std::string_view data);
  auto send_all(std::string_view data, std::nothrow_t);
  // With send(2) flags: MSG_MORE holds a small write back until what follows (a sendfile
  // body, say) can join it in the same segment.
  auto send_all(std::string_view data, int flags);
  auto send_all(std::string_view data, int flags, std::nothrow_t);
  // co_await conn.sendfile(file_fd, offset, length): the file's bytes straight from the page
  // cache to the socket (sendfile(2)), waiting while the socket's buffer is full.
  auto sendfile(int file_fd, std::uint64_t offset, std::uint64_t length);
  auto sendfile(int file_fd, std::uint64_t offset, std::uint64_t length, std::nothrow_t);
  // The same, adding each byte sent to `progress` as it goes: how far a failed one got.
  auto sendfile(int file_fd, std::uint64_t offset, std::uint64_t length, std::nothrow_t,
                std::uint64_t& progress);
  // co_await listener.accept() -> Accepted{AsyncSocket, Address} on the same loop.
  auto accept();
  auto accept(std::nothrow_t);
  // co_await sock.connect(address): wrap in with_timeout() for a deadline.
  auto connect(const Address& address);
  auto connect(const Address& address, std::nothrow_t);
  // Datagrams.
  auto recvfrom(std::span<char> buffer);
  auto recvfrom(std::span<char> buffer, std::nothrow_t);
  auto sendto(std::string_view data, const Address& to);
  auto sendto(std::string_view data, const Address& to, std::nothrow_t);

 private:
  template <class Op, bool Throw>
  friend class detail::IoAwaitable;

  friend struct detail::RecvOp;
  friend struct detail::RecvPooledOp;
  friend struct detail::SendOp;
  friend struct detail::SendAllOp;
  friend struct detail::SendFileOp;

  EventLoop* loop_ = nullptr;
  Socket socket_;
  std::int64_t timeout_ns_ = -1;
  std::uint32_t bytes_sent_ = 0;
  // The last read took less than it asked for, so the kernel's buffer was empty: the next
  // read waits for readiness instead of trying first (which would almost surely be an
  // EAGAIN, one wasted syscall per request on a keep-alive connection).
  bool read_drained_ = false;
  bool idle_ = false;
  bool parkable_ = false;
  bool draining_ = false;
};

struct AsyncSocket::Accepted {
  AsyncSocket socket;
  Address peer;
};

namespace detail {

// Bytes the kernel still holds to send on `fd` (sent but unacknowledged, or unsent:
// SIOCOUTQ), -1 when it cannot tell.
int send_queue_bytes(int fd) noexcept;

inline bool would_block(std::error_code ec) noexcept {
  return ec == std::errc::resource_unavailable_try_again || ec == std::errc::operation_would_block;
}

// One awaitable for every operation: Op::attempt() does the syscall (never blocking) and
// says whether it finished; the rest (suspending, the socket's timeout, cancellation on
// destruction) is shared. It lives in the coroutine frame of every waiting connection, so
// it is kept small: one pointer to its AsyncSocket (for the loop, fd and timeout), the
// 24-byte waiter and 16-byte timer records, the operation's arguments and its result.
template <class Op, bool Throw>
class IoAwaitable : IoWaiter, TimerNode {
 public:
  using Value = typename Op::Value;

  IoAwaitable(AsyncSocket& owner, Op op) noexcept : owner_(&owner), op_(std::move(op)) {}
  IoAwaitable(IoAwaitable&& other) noexcept
      : IoWaiter(), TimerNode(), owner_(other.owner_), op_(std::move(other.op_)) {}
  IoAwaitable(const IoAwaitable&) = delete;
  IoAwaitable& operator=(const IoAwaitable&) = delete;
  ~IoAwaitable() {
    if (waiting) owner_->loop_->cancel_io(*this);
    if (armed()) owner_->loop_->disarm(*this);
  }

  // For with_timeout's error: "recv 127.0.0.1:8080: timed out after 2 s".
  TimeoutLabel timeout_label() const noexcept {
    return {Op::name,
            {},
            [](const void* owner) {
              return static_cast<const AsyncSocket*>(owner)->socket().describe();
            },
            owner_};
  }

  bool await_ready() noexcept {
    if (!owner_->socket_.is_open()) {
      result_ = errc::socket_closed;
      return true;
    }
    fd = owner_->socket_.fileno();
    if (Op::direction == readable && owner_->read_drained_) {
      owner_->read_drained_ = false;  // level-triggered: data that came meanwhile wakes us at once
      return false;
    }
    return op_.attempt(fd, *owner_, result_);
  }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    handle = h;
    direction = static_cast<std::uint8_t>(Op::direction);
    ops = &io_ops;
    EventLoop& loop = *owner_->loop_;
    if (auto ec = loop.wait_io(*this)) {
      result_ = ec;
      return false;
    }
    // The socket's timeout bounds each wait; the timer lives here, so arming costs no
    // allocation and a destroyed awaiter takes it along.
    if (owner_->timeout_ns_ >= 0) {
      const auto limit = later(Clock::now(), std::chrono::nanoseconds(owner_->timeout_ns_));
      fire = [](TimerNode* t) noexcept {
        auto* self = static_cast<IoAwaitable*>(t);
        if constexpr (requires { self->op_.queued; }) {
          if (self->peer_kept_reading()) return;  // re-armed
        }
        self->owner_->loop_->cancel_io(*self);
        self->result_ = errc::timed_out;
        self->handle.resume();
      };
      if constexpr (requires { op_.queued; }) op_.queued = send_queue_bytes(fd);
      loop.arm(*this, limit);
    }
    return true;
  }
  auto await_resume() {
    EventLoop& loop = *owner_->loop_;
    if (armed()) loop.disarm(*this);
    if constexpr (Throw) {
      if (!result_) throw Error(result_.error(), Op::name, owner_->socket_.describe());
      if constexpr (!std::is_void_v<Value>) return op_.finish(std::move(*result_), loop);
    } else {
      using Out = decltype(op_.finish(std::move(*result_), loop));
      if (!result_) return Result<Out>(result_.error());
      if constexpr (std::is_void_v<Out>) {
        op_.finish(std::move(*result_), loop);
        return Result<void>();
      } else {
        return Result<Out>(op_.finish(std::move(*result_), loop));
      }
    }
  }

 private:
  static bool retry(IoWaiter* w) noexcept {
    auto* self = static_cast<IoAwaitable*>(w);
    if constexpr (requires { self->op_.sent; }) {
      // A transfer in pieces: each piece the kernel took restarts the idle timeout.
      const auto before = self->op_.sent;
      const bool done = self->op_.attempt(self->fd, *self->owner_, self->result_);
      if (!done && self->op_.sent != before && self->armed()) {
        EventLoop& loop = *self->owner_->loop_;
        self->op_.queued = send_queue_bytes(self->fd);
        loop.arm(*self, later(loop.now(), std::chrono::nanoseconds(self->owner_->timeout_ns_)));
      }
      return done;
    } else {
      return self->op_.attempt(self->fd, *self->owner_, self->result_);
    }
  }
  static void abort_wait(IoWaiter* w, std::error_code reason) noexcept {
    auto* self = static_cast<IoAwaitable*>(w);
    if (self->armed()) self->owner_->loop_->disarm(*self);
    self->result_ = reason;
    self->handle.resume();
  }
  static constexpr IoOps io_ops{&retry, &abort_wait};

  // The idle timer of a send ran out. The kernel reports the socket writable again only
  // once a good part of its (megabytes large) buffer has drained, so a peer reading slowly
  // but steadily can leave the send waiting longer than the timeout: if the bytes queued in
  // the kernel went down since the timer was armed, the peer is reading, and the timer is
  // armed again (within the deadline, if any).
  bool peer_kept_reading() noexcept {
    const int queued = send_queue_bytes(fd);
    if (queued < 0 || op_.queued < 0 || queued >= op_.queued) return false;
    op_.queued = queued;
    EventLoop& loop = *owner_->loop_;
    loop.arm(*this, later(loop.now(), std::chrono::nanoseconds(owner_->timeout_ns_)));
    return true;
  }

  AsyncSocket* owner_;
  [[no_unique_address]] Op op_;
  Result<Value> result_{std::error_code()};
};

struct RecvOp {
  using Value = std::size_t;
  static constexpr unsigned direction = readable;
  static constexpr const char* name = "recv";
  std::span<char> buffer;
  bool attempt(int fd, AsyncSocket&, Result<Value>& result) noexcept;
  Value finish(Value n, EventLoop&) noexcept { return n; }
};

struct RecvPooledOp {
  using Value = Buffer;
  static constexpr unsigned direction = readable;
  static constexpr const char* name = "recv";
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  Value finish(Value buffer, EventLoop&) noexcept { return buffer; }
};

struct SendOp {
  using Value = std::size_t;
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "send";
  std::string_view data;
  bool attempt(int fd, AsyncSocket&, Result<Value>& result) noexcept;
  Value finish(Value n, EventLoop&) noexcept { return n; }
};

struct SendAllOp {
  using Value = std::size_t;  // bytes sent in all
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "send_all";
  std::string_view data;
  int flags = 0;
  std::size_t sent = 0;
  int queued = -1;  // bytes in the kernel's send queue when the idle timer was armed
  std::uint64_t* progress = nullptr;  // the caller's count of bytes sent, kept even on error
  bool attempt(int fd, AsyncSocket&, Result<Value>& result) noexcept;
  void finish(Value, EventLoop&) noexcept {}
};

struct SendFileOp {
  using Value = std::size_t;  // bytes sent in all
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "sendfile";
  int file_fd;
  std::uint64_t offset;
  std::uint64_t remaining;
  std::size_t sent = 0;
  int queued = -1;  // bytes in the kernel's send queue when the idle timer was armed
  std::uint64_t* progress = nullptr;  // the caller's count of bytes sent, kept even on error
  bool attempt(int fd, AsyncSocket&, Result<Value>& result) noexcept;
  void finish(Value, EventLoop&) noexcept {}
};

struct AcceptOp {
  using Value = Socket::Accepted;
  static constexpr unsigned direction = readable;
  static constexpr const char* name = "accept";
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  AsyncSocket::Accepted finish(Value accepted, EventLoop& loop) {
    return {AsyncSocket(loop, std::move(accepted.socket)), accepted.peer};
  }
};

struct ConnectOp {
  using Value = bool;
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "connect";
  Address address;
  bool started = false;
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  void finish(Value, EventLoop&) noexcept {}
};

struct RecvFromOp {
  using Value = Socket::Received;
  static constexpr unsigned direction = readable;
  static constexpr const char* name = "recvfrom";
  std::span<char> buffer;
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  Value finish(Value v, EventLoop&) noexcept { return v; }
};

struct SendToOp {
  using Value = std::size_t;
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "sendto";
  std::string_view data;
  Address to;
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  Value finish(Value n, EventLoop&) noexcept { return n; }
};

}  // namespace detail

inline auto AsyncSocket::recv(std::span<char> buffer) {
  return detail::IoAwaitable<detail::RecvOp, true>(*this, {buffer});
}
inline auto AsyncSocket::recv(std::span<char> buffer, std::nothrow_t) {
  return detail::IoAwaitable<detail::RecvOp, false>(*this, {buffer});
}
inline auto AsyncSocket::recv_pooled() {
  return detail::IoAwaitable<detail::RecvPooledOp, true>(*this, {});
}
inline auto AsyncSocket::recv_pooled(std::nothrow_t) {
  return detail::IoAwaitable<detail::RecvPooledOp, false>(*this, {});
}
inline auto AsyncSocket::send(std::string_view data) {
  return detail::IoAwaitable<detail::SendOp, true>(*this, {data});
}
inline auto AsyncSocket::send(std::string_view data, std::nothrow_t) {
  return detail::IoAwaitable<detail::SendOp, false>(*this, {data});
}
inline auto AsyncSocket::send_all(std::string_view data) {
  return detail::IoAwaitable<detail::SendAllOp, true>(*this, {data});
}
inline auto AsyncSocket::send_all(std::string_view data, std::nothrow_t) {
  return detail::IoAwaitable<detail::SendAllOp, false>(*this, {data});
}
inline auto AsyncSocket::sendfile(int file_fd, std::uint64_t offset, std::uint64_t length) {
  return detail::IoAwaitable<detail::SendFileOp, true>(*this, {file_fd, offset, length});
}
inline auto AsyncSocket::send_all(std::string_view data, int flags) {
  return detail::IoAwaitable<detail::SendAllOp, true>(*this, {data, flags});
}
inline auto AsyncSocket::send_all(std::string_view data, int flags, std::nothrow_t) {
  return detail::IoAwaitable<detail::SendAllOp, false>(*this, {data, flags});
}
inline auto AsyncSocket::sendfile(int file_fd, std::uint64_t offset, std::uint64_t length,
                                  std::nothrow_t) {
  return detail::IoAwaitable<detail::SendFileOp, false>(*this, {file_fd, offset, length});
}
inline auto AsyncSocket::sendfile(int file_fd, std::uint64_t offset, std::uint64_t length,
                                  std::nothrow_t, std::uint64_t& progress) {
  return detail::IoAwaitable<detail::SendFileOp, false>(
      *this, {file_fd, offset, length, 0, -1, &progress});
}
inline auto AsyncSocket::accept() {
  return detail::IoAwaitable<detail::AcceptOp, true>(*this, {});
}
inline auto AsyncSocket::accept(std::nothrow_t) {
  return detail::IoAwaitable<detail::AcceptOp, false>(*this, {});
}
inline auto AsyncSocket::connect(const Address& address) {
  return detail::IoAwaitable<detail::ConnectOp, true>(*this, {address});
}
inline auto AsyncSocket::connect(const Address& address, std::nothrow_t) {
  return detail::IoAwaitable<detail::ConnectOp, false>(*this, {address});
}
inline auto AsyncSocket::recvfrom(std::span<char> buffer) {
  return detail::IoAwaitable<detail::RecvFromOp, true>(*this, {buffer});
}
inline auto AsyncSocket::recvfrom(std::span<char> buffer, std::nothrow_t) {
  return detail::IoAwaitable<detail::RecvFromOp, false>(*this, {buffer});
}
inline auto AsyncSocket::sendto(std::string_view data, const Address& to) {
  return detail::IoAwaitable<detail::SendToOp, true>(*this, {data, to});
}
inline auto AsyncSocket::sendto(std::string_view data, const Address& to, std::nothrow_t) {
  return detail::IoAwaitable<detail::SendToOp, false>(*this, {data, to});
}

}  // namespace wire
