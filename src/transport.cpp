#include "wire/transport.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "io.hpp"

namespace wire {
namespace {

// Readiness of one fd, within an idle timeout: what a transport over an AsyncSocket waits
// with (AsyncSocket has no bare wait of its own). Its records live in the waiting frame, and
// its destructor withdraws them, so with_timeout can cancel it. A wait for room to write is
// timed as AsyncSocket's sends are: the kernel reports a socket writable only once a good
// part of its buffer drained, so when the timeout passes while the bytes it holds went down,
// the peer is reading (slowly but steadily) and the timer is armed again.
class Readiness : detail::IoWaiter, detail::TimerNode {
 public:
  Readiness(EventLoop& loop, int fd_to_wait, Events event,
            std::optional<std::chrono::nanoseconds> timeout) noexcept
      : loop_(loop), timeout_(timeout), event_(event) {
    fd = fd_to_wait;
    direction = static_cast<std::uint8_t>(event);
  }
  Readiness(const Readiness&) = delete;
  Readiness& operator=(const Readiness&) = delete;
  ~Readiness() {
    if (waiting) loop_.cancel_io(*this);
    if (armed()) loop_.disarm(*this);
  }

  bool await_ready() noexcept {
    if (fd >= 0) return false;
    result_ = errc::socket_closed;
    return true;
  }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    handle = h;
    ops = &io_ops;
    if (auto ec = loop_.wait_io(*this)) {
      result_ = ec;
      return false;
    }
    if (timeout_) {
      fire = [](detail::TimerNode* t) noexcept {
        auto* self = static_cast<Readiness*>(t);
        if (self->peer_kept_reading()) return;  // re-armed
        self->loop_.cancel_io(*self);
        self->result_ = errc::timed_out;
        self->handle.resume();
      };
      if (event_ == writable) queued_ = detail::send_queue_bytes(fd);
      loop_.arm(*this, detail::later(detail::Clock::now(), *timeout_));
    }
    return true;
  }
  Result<void> await_resume() noexcept {
    if (armed()) loop_.disarm(*this);
    return result_ ? Result<void>(result_) : Result<void>();
  }

 private:
  static bool ready(detail::IoWaiter*) noexcept { return true; }
  static void abort_wait(detail::IoWaiter* w, std::error_code reason) noexcept {
    auto* self = static_cast<Readiness*>(w);
    if (self->armed()) self->loop_.disarm(*self);
    self->result_ = reason;
    self->handle.resume();
  }
  static constexpr detail::IoOps io_ops{&ready, &abort_wait};

  bool peer_kept_reading() noexcept {
    if (event_ != writable || queued_ < 0) return false;
    const int queued = detail::send_queue_bytes(fd);
    if (queued < 0 || queued >= queued_) return false;
    queued_ = queued;
    loop_.arm(*this, detail::later(loop_.now(), *timeout_));
    return true;
  }

  EventLoop& loop_;
  std::optional<std::chrono::nanoseconds> timeout_;
  std::error_code result_;
  Events event_;
  int queued_ = -1;  // bytes in the kernel's send queue when the timer was armed
};

using Deadline = std::optional<std::chrono::steady_clock::time_point>;

// wait_blocking on one fd: the caller's deadline or the idle timeout, whichever is sooner.
Result<void> poll_until(int fd, Events direction, Deadline deadline,
                        std::optional<std::chrono::nanoseconds> idle) noexcept {
  if (fd < 0) return errc::socket_closed;
  if (idle) {
    const auto idle_end = detail::later(std::chrono::steady_clock::now(), *idle);
    if (!deadline || idle_end < *deadline) deadline = idle_end;
  }
  if (auto ec = detail::wait_until(fd, direction == readable ? POLLIN : POLLOUT, deadline)) {
    return ec;
  }
  return {};
}

}  // namespace

// --- Transport -------------------------------------------------------------------------------

Result<std::size_t> Transport::send_file(int fd, std::uint64_t offset,
                                         std::size_t length) noexcept {
  // Bytes read but not taken by write_some are read again by the next call (pread keeps no
  // position): simpler than holding them here, and the page cache makes it cheap.
  char chunk[16384];
  const std::size_t want = std::min(length, sizeof chunk);
  if (want == 0) return std::size_t(0);
  ::ssize_t n;
  do {
    n = ::pread(fd, chunk, want, static_cast<::off_t>(offset));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return detail::last_error();
  if (n == 0) return std::make_error_code(std::errc::io_error);  // the file shrank meanwhile
  // Checked here against what was read: the caller can only check against `length`, and a
  // claim between the two would skip file bytes unseen.
  return detail::checked_write_count(
      write_some(std::string_view(chunk, static_cast<std::size_t>(n))),
      static_cast<std::size_t>(n));
}

Result<void> Transport::wait_blocking(Events, Deadline) noexcept {
  return std::make_error_code(std::errc::operation_not_supported);
}

// --- SocketTransport -------------------------------------------------------------------------

SocketTransport::SocketTransport(SocketTransport&& other) noexcept
    : owned_(std::move(other.owned_)),
      socket_(other.socket_ == &other.owned_ ? &owned_ : other.socket_),
      drained_(other.drained_) {}

Result<std::size_t> SocketTransport::read_some(std::span<char> into) noexcept {
  if (!socket_->is_open()) return errc::socket_closed;
  if (drained_ && !into.empty()) {
    drained_ = false;
    return std::make_error_code(std::errc::resource_unavailable_try_again);
  }
  const int fd = socket_->socket().fileno();
  for (;;) {
    const ::ssize_t n = ::recv(fd, into.data(), into.size(), 0);
    if (n >= 0) {
      drained_ = n > 0 && static_cast<std::size_t>(n) < into.size();
      return static_cast<std::size_t>(n);
    }
    if (errno != EINTR) return detail::last_error();
  }
}

Result<std::size_t> SocketTransport::write_some(std::string_view data) noexcept {
  if (!socket_->is_open()) return errc::socket_closed;
  if (data.empty()) return std::size_t(0);
  // send_now keeps the socket's bytes_sent() count, which servers report from.
  try {
    const std::size_t n = socket_->send_now(data);
    if (n == 0) return std::make_error_code(std::errc::resource_unavailable_try_again);
    return n;
  } catch (const Error& e) {
    return e.code();
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

// The socket's own send operations, tried once without waiting: they count bytes_sent().
// Bytes they took before an EAGAIN or an error are reported; the error, if any, comes again
// with the next call.
namespace {
template <class Op>
Result<std::size_t> attempt_send(AsyncSocket& socket, Op op) noexcept {
  Result<std::size_t> result = std::error_code();
  const bool done = op.attempt(socket.socket().fileno(), socket, result);
  if (op.sent > 0) return op.sent;
  if (!done) return std::make_error_code(std::errc::resource_unavailable_try_again);
  return result;
}
}  // namespace

Result<std::size_t> SocketTransport::write_some_corked(std::string_view data) noexcept {
  if (!socket_->is_open()) return errc::socket_closed;
  if (data.empty()) return std::size_t(0);
  return attempt_send(*socket_, detail::SendAllOp{data, MSG_MORE});
}

Result<std::size_t> SocketTransport::send_file(int fd, std::uint64_t offset,
                                               std::size_t length) noexcept {
  if (!socket_->is_open()) return errc::socket_closed;
  if (length == 0) return std::size_t(0);
  return attempt_send(*socket_, detail::SendFileOp{fd, offset, length});
}

Task<Result<void>> SocketTransport::wait(Events direction) {
  if (!socket_->is_open() || socket_->loop() == nullptr) co_return errc::socket_closed;
  co_return co_await Readiness(*socket_->loop(), socket_->socket().fileno(), direction,
                               socket_->timeout());
}

Result<void> SocketTransport::wait_blocking(Events direction, Deadline deadline) noexcept {
  if (!socket_->is_open()) return errc::socket_closed;
  return poll_until(socket_->socket().fileno(), direction, deadline, socket_->timeout());
}

Result<void> SocketTransport::shutdown() noexcept {
  if (!socket_->is_open()) return errc::socket_closed;
  return socket_->socket().shutdown(Shutdown::write, std::nothrow);
}

std::string SocketTransport::describe(Events) const {
  return socket_->is_open() ? socket_->socket().describe() : std::string("closed socket");
}

// --- FdTransport -----------------------------------------------------------------------------

Result<std::size_t> FdTransport::read_some(std::span<char> into) noexcept {
  return reader_.read_now(into, std::nothrow);
}

Result<std::size_t> FdTransport::write_some(std::string_view data) noexcept {
  return writer().write_now(data, std::nothrow);
}

Task<Result<void>> FdTransport::wait(Events direction) {
  if (direction == readable) co_return co_await reader_.wait_readable(std::nothrow);
  co_return co_await writer().wait_writable(std::nothrow);
}

Result<void> FdTransport::wait_blocking(Events direction, Deadline deadline) noexcept {
  const AsyncFd& fd = direction == readable ? reader_ : writer();
  return poll_until(fd.fileno(), direction, deadline, fd.timeout());
}

Result<void> FdTransport::shutdown() noexcept {
  AsyncFd& out = writer();
  if (!out.is_open()) return errc::socket_closed;
  if (pair_) {
    out.close();  // the reader of a pipe sees end of input once every writer closed
    return {};
  }
  if (::shutdown(out.fileno(), SHUT_WR) == 0) return {};
  if (errno != ENOTSOCK) return detail::last_error();
  const int flags = ::fcntl(out.fileno(), F_GETFL);
  if (flags >= 0 && (flags & O_ACCMODE) == O_WRONLY) {
    out.close();
    return {};
  }
  // A tty or pty reads and writes through one fd and has no half-close.
  return std::make_error_code(std::errc::operation_not_supported);
}

void FdTransport::close() noexcept {
  // Closing either end may wake a coroutine that destroys this transport: both are taken
  // out first. Their waiters are nothrow waits, which need nothing of the AsyncFd to resume.
  AsyncFd reader = std::move(reader_);
  AsyncFd writer = std::move(writer_);
  writer.close();
  reader.close();
}

bool FdTransport::is_open() const noexcept {
  return reader_.is_open() || writer().is_open();
}

std::string FdTransport::describe(Events direction) const {
  const std::string& name = direction == readable ? reader_.name() : writer().name();
  return name.empty() ? std::string("closed fd") : name;  // close() moved the AsyncFds out
}

void FdTransport::set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept {
  reader_.set_timeout(timeout);
  if (pair_) writer_.set_timeout(timeout);
}

// --- BlockingSocketTransport -----------------------------------------------------------------

BlockingSocketTransport::BlockingSocketTransport(Socket socket) : socket_(std::move(socket)) {
  // A socket already non-blocking (one a client kept for reuse) costs no fcntl.
  if (socket_.is_open() && socket_.timeout() != std::chrono::nanoseconds(0)) {
    socket_.set_timeout(std::chrono::nanoseconds(0));
  }
}

Result<std::size_t> BlockingSocketTransport::read_some(std::span<char> into) noexcept {
  if (!socket_.is_open()) return errc::socket_closed;
  const int fd = socket_.fileno();
  for (;;) {
    const ::ssize_t n = ::recv(fd, into.data(), into.size(), 0);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return detail::last_error();
  }
}

Result<std::size_t> BlockingSocketTransport::write_some(std::string_view data) noexcept {
  if (!socket_.is_open()) return errc::socket_closed;
  if (data.empty()) return std::size_t(0);
  const int fd = socket_.fileno();
  for (;;) {
    const ::ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return detail::last_error();
  }
}

Task<Result<void>> BlockingSocketTransport::wait(Events) {
  // No loop to wait on: blocking in poll here would stall whatever loop awaits this.
  co_return std::make_error_code(std::errc::operation_not_supported);
}

Result<void> BlockingSocketTransport::wait_blocking(Events direction, Deadline deadline) noexcept {
  if (!socket_.is_open()) return errc::socket_closed;
  return poll_until(socket_.fileno(), direction, deadline, timeout_);
}

Result<void> BlockingSocketTransport::shutdown() noexcept {
  if (!socket_.is_open()) return errc::socket_closed;
  return socket_.shutdown(Shutdown::write, std::nothrow);
}

std::string BlockingSocketTransport::describe(Events) const {
  return socket_.is_open() ? socket_.describe() : std::string("closed socket");
}

}  // namespace wire
