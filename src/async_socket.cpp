#include "wire/async_socket.hpp"

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>

#include "sigpipe.hpp"

#include <algorithm>

namespace wire {

AsyncSocket::AsyncSocket(EventLoop& loop, Socket socket)
    : loop_(&loop), socket_(std::move(socket)) {
  if (socket_.is_open()) socket_.set_blocking(false);
}

AsyncSocket::AsyncSocket(AsyncSocket&& other) noexcept
    : loop_(other.loop_),
      socket_(std::move(other.socket_)),
      timeout_ns_(other.timeout_ns_),
      bytes_sent_(other.bytes_sent_),
      read_drained_(other.read_drained_),
      idle_(other.idle_),
      parkable_(other.parkable_) {}

AsyncSocket& AsyncSocket::operator=(AsyncSocket&& other) noexcept {
  if (this != &other) {
    close();
    loop_ = other.loop_;
    socket_ = std::move(other.socket_);
    timeout_ns_ = other.timeout_ns_;
    bytes_sent_ = other.bytes_sent_;
    read_drained_ = other.read_drained_;
    idle_ = other.idle_;
    parkable_ = other.parkable_;
  }
  return *this;
}

std::size_t AsyncSocket::send_now(std::string_view data) {
  auto sent = socket_.send(data, std::nothrow);  // the socket is non-blocking
  if (sent) {
    bytes_sent_ += static_cast<std::uint32_t>(*sent);
    return *sent;
  }
  if (detail::would_block(sent.error())) return 0;
  throw Error(sent.error(), "send", socket_.describe());
}

void AsyncSocket::close() noexcept {
  if (!socket_.is_open()) return;
  // Waking a waiter may run its coroutine to the end and destroy the frame that holds this
  // AsyncSocket, so move the fd out first and touch nothing of *this afterwards.
  Socket closing = std::move(socket_);
  if (loop_ != nullptr) loop_->forget_fd(closing.fileno(), errc::socket_closed);
}

namespace detail {

int send_queue_bytes(int fd) noexcept {
  int queued = 0;
  return ::ioctl(fd, SIOCOUTQ, &queued) == 0 ? queued : -1;
}

namespace {
// Stores a finished result; false (keep waiting) when the kernel said EAGAIN.
template <class T>
bool settle(Result<T>&& attempt, Result<T>& result) noexcept {
  if (!attempt && would_block(attempt.error())) return false;
  result = std::move(attempt);
  return true;
}
// select(2) cannot wait on an fd at or above FD_SETSIZE, and on a select loop a handler's
// open files can push new connections up there: the connection moves to the lowest free
// number, or, with none below the limit, is closed and refused with an error that says why.
Result<Socket::Accepted> below_fd_setsize(Socket::Accepted accepted) noexcept {
  const int lower = ::fcntl(accepted.socket.fileno(), F_DUPFD_CLOEXEC, 0);
  if (lower < 0 || lower >= FD_SETSIZE) {
    if (lower >= 0) ::close(lower);
    return errc::beyond_select_limit;  // `accepted` closes the connection
  }
  auto moved = Socket::adopt(lower, std::nothrow);
  if (!moved) {
    ::close(lower);
    return moved.error();
  }
  accepted.socket = std::move(*moved);  // closes the old number
  return accepted;
}
}  // namespace

// recv and send, the hot path, make their syscall directly. The others go through the
// blocking layer's non-throwing calls, which return EAGAIN at once on a non-blocking socket.

// One non-blocking syscall, retried across EINTR: finished unless it would block.
template <class Syscall>
bool attempt_once(Syscall&& call, Result<std::size_t>& result) noexcept {
  for (;;) {
    ::ssize_t n = call();
    if (n >= 0) {
      result = static_cast<std::size_t>(n);
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    result = last_error();
    return true;
  }
}

bool RecvOp::attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept {
  bool done = attempt_once([&] { return ::recv(fd, buffer.data(), buffer.size(), 0); }, result);
  if (done && result && *result > 0 && *result < buffer.size()) owner.read_drained_ = true;
  return done;
}

bool RecvPooledOp::attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept {
  BufferPool* pool = &owner.loop()->buffer_pool();
  char* block;
  try {
    block = pool->acquire();
  } catch (const std::bad_alloc&) {
    result = std::make_error_code(std::errc::not_enough_memory);
    return true;
  }
  for (;;) {
    ::ssize_t n = ::recv(fd, block, BufferPool::block_size, 0);
    if (n > 0) {
      if (static_cast<std::size_t>(n) < BufferPool::block_size) owner.read_drained_ = true;
      result = Buffer(pool, block, static_cast<std::size_t>(n));
      return true;
    }
    const int error = n == 0 ? 0 : errno;
    if (error == EINTR) continue;
    pool->give_back(block);  // nothing to hold while waiting, or at EOF
    if (error == EAGAIN || error == EWOULDBLOCK) return false;
    if (error == 0) {
      result = Buffer();
    } else {
      result = std::error_code(error, std::system_category());
    }
    return true;
  }
}

bool SendOp::attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept {
  const bool done =
      attempt_once([&] { return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL); }, result);
  if (done && result) owner.bytes_sent_ += static_cast<std::uint32_t>(*result);
  return done;
}

bool SendAllOp::attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept {
  while (sent < data.size()) {
    Result<std::size_t> n = std::error_code();
    if (!attempt_once(
            [&] {
              return ::send(fd, data.data() + sent, data.size() - sent, flags | MSG_NOSIGNAL);
            },
            n)) {
      return false;  // the kernel's buffer is full: wait for room
    }
    if (!n) {
      result = n.error();
      return true;
    }
    sent += *n;
    owner.bytes_sent_ += static_cast<std::uint32_t>(*n);
    if (progress != nullptr) *progress += *n;
  }
  result = sent;
  return true;
}

bool SendFileOp::attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept {
  while (remaining > 0) {
    auto off = static_cast<::off_t>(offset);
    const std::size_t chunk =
        static_cast<std::size_t>(std::min<std::uint64_t>(remaining, 1u << 30));
    Result<std::size_t> n = std::error_code();
    // sendfile has no MSG_NOSIGNAL: a peer that left would raise SIGPIPE.
    if (!attempt_once(
            [&] { return without_sigpipe([&] { return ::sendfile(fd, file_fd, &off, chunk); }); },
            n)) {
      return false;
    }
    if (n && *n == 0) n = std::make_error_code(std::errc::io_error);  // the file shrank meanwhile
    if (!n) {
      result = n.error();
      return true;
    }
    offset += *n;
    remaining -= *n;
    sent += *n;
    owner.bytes_sent_ += static_cast<std::uint32_t>(*n);
    if (progress != nullptr) *progress += *n;
  }
  result = sent;
  return true;
}

bool AcceptOp::attempt(int, AsyncSocket& owner, Result<Value>& result) noexcept {
  auto accepted = owner.socket().accept(std::nothrow);
  if (accepted && accepted->socket.fileno() >= FD_SETSIZE && owner.loop() != nullptr &&
      owner.loop()->selector().kind() == SelectorKind::select) {
    accepted = below_fd_setsize(std::move(*accepted));
  }
  return settle(std::move(accepted), result);
}

bool ConnectOp::attempt(int, AsyncSocket& owner, Result<Value>& result) noexcept {
  Socket* socket = &owner.socket();
  if (!started) {
    started = true;
    auto r = socket->connect(address, std::nothrow);
    if (r) {
      result = true;
      return true;
    }
    if (r.error() == std::errc::operation_in_progress) return false;
    result = r.error();
    return true;
  }
  auto r = socket->finish_connect(address, std::nothrow);
  if (r) {
    result = true;
  } else {
    result = r.error();
  }
  return true;
}

bool RecvFromOp::attempt(int, AsyncSocket& owner, Result<Value>& result) noexcept {
  return settle(owner.socket().recvfrom(buffer, std::nothrow), result);
}

bool SendToOp::attempt(int, AsyncSocket& owner, Result<Value>& result) noexcept {
  return settle(owner.socket().sendto(data, to, std::nothrow), result);
}

}  // namespace detail
}  // namespace wire
