#include "wire/async_fd.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <climits>

#include "sigpipe.hpp"

namespace wire {
namespace {

// "pipe:[1234]", "/dev/pts/3", "anon_inode:[eventfd]": what the kernel says the fd is.
std::string fd_target(int fd) {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  char target[PATH_MAX];
  const ::ssize_t n = ::readlink(link.c_str(), target, sizeof target);
  if (n <= 0) return "fd " + std::to_string(fd);
  return std::string(target, static_cast<std::size_t>(n));
}

// stdin, stdout and stderr are named as such: "stdin (pipe:[1234])" says more than the pipe.
std::string fd_name(int fd) {
  static constexpr const char* standard[] = {"stdin", "stdout", "stderr"};
  std::string target = fd_target(fd);
  if (fd >= 0 && fd <= 2) return std::string(standard[fd]) + " (" + target + ")";
  return target;
}

struct FileKind {
  ::mode_t type = 0;  // S_IFMT bits; 0 for anonymous inodes (eventfd, signalfd, timerfd, ...)
  bool pty_master = false;
};

// {} when epoll can watch `fd`; EPERM when it refuses (regular files, folders, /dev/null),
// whatever selector the loop uses, so a program behaves the same under every selector.
std::error_code check_pollable(int fd, FileKind& kind) noexcept {
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) return detail::last_error();
  kind.type = st.st_mode & S_IFMT;
  if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) return {};
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
    return std::make_error_code(std::errc::operation_not_permitted);
  }
  // Character devices and anonymous inodes: only epoll itself knows (it refuses /dev/null).
  const int probe = ::epoll_create1(EPOLL_CLOEXEC);
  if (probe < 0) return detail::last_error();
  ::epoll_event event{};
  event.events = EPOLLIN;
  const int rc = ::epoll_ctl(probe, EPOLL_CTL_ADD, fd, &event);
  const int error = errno;
  ::close(probe);
  if (rc != 0) return {error, std::system_category()};
  return {};
}

// The reason a failed adopt/borrow/reopen gives, with what to do instead.
std::string why(std::error_code error, const FileKind& kind, bool reopening) {
  std::string text = error.message();
  if (error == std::errc::operation_not_permitted) {
    if (kind.type == S_IFREG) {
      text +=
          ": epoll cannot wait for a regular file (it is always ready); read it with "
          "blocking calls (wire::Stream) or in a thread";
    } else if (kind.type == S_IFDIR) {
      text += ": a folder is not a stream, and epoll cannot wait for it";
    } else {
      text +=
          ": epoll cannot wait for this file (its driver has no readiness to report, like "
          "/dev/null's); use blocking calls";
    }
  } else if (error == std::errc::bad_file_descriptor) {
    text += ": not an open file descriptor";
  } else if (reopening && error == std::errc::no_such_device_or_address) {
    text += kind.type == S_IFSOCK ? ": a socket cannot be reopened; borrow it instead"
                                  : ": nothing has the other end of the pipe open";
  } else if (reopening && error == std::errc::operation_not_supported) {
    text += kind.pty_master ? ": a pty master cannot be reopened (that would make a new pty); "
                              "borrow it instead"
                            : ": reopening it gives another file; borrow it instead";
  }
  return text;
}

}  // namespace

Result<AsyncFd> AsyncFd::make(EventLoop& loop, OwnedFd owned, int fd,
                              std::string& failure) noexcept {
  try {
    FileKind kind;
    if (auto ec = check_pollable(fd, kind)) {
      failure = why(ec, kind, false);
      return ec;
    }
    AsyncFd out;
    out.loop_ = &loop;
    out.is_socket_ = kind.type == S_IFSOCK;
    out.is_pipe_ = kind.type == S_IFIFO;
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) {
      failure = detail::last_error().message();
      return detail::last_error();
    }
    if (!(flags & O_NONBLOCK)) {
      if (::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        failure = detail::last_error().message();
        return detail::last_error();
      }
      out.restore_blocking_ = true;
    }
    out.owned_ = std::move(owned);
    out.fd_ = fd;
    return out;
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Result<AsyncFd> AsyncFd::adopt(EventLoop& loop, OwnedFd fd, std::nothrow_t) noexcept {
  std::string failure;
  const int raw = fd.fd();
  if (raw < 0) return std::make_error_code(std::errc::bad_file_descriptor);
  auto made = make(loop, std::move(fd), raw, failure);
  if (made) {
    try {
      made->name_ = fd_name(raw);
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  return made;
}

AsyncFd AsyncFd::adopt(EventLoop& loop, OwnedFd fd) {
  const int raw = fd.fd();
  std::string name = raw < 0 ? std::string("fd -1") : fd_name(raw);
  if (raw < 0) {
    throw Error(std::make_error_code(std::errc::bad_file_descriptor), "adopt", name,
                "the OwnedFd owns no fd");
  }
  std::string failure;
  auto made = make(loop, std::move(fd), raw, failure);
  if (!made)
    throw Error(made.error(), "adopt", name, failure.empty() ? made.error().message() : failure);
  made->name_ = std::move(name);
  return std::move(*made);
}

Result<AsyncFd> AsyncFd::borrow(EventLoop& loop, int fd, std::nothrow_t) noexcept {
  if (fd < 0) return std::make_error_code(std::errc::bad_file_descriptor);
  std::string failure;
  auto made = make(loop, OwnedFd(), fd, failure);
  if (made) {
    try {
      made->name_ = fd_name(fd);
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  return made;
}

AsyncFd AsyncFd::borrow(EventLoop& loop, int fd) {
  std::string name = fd_name(fd);
  if (fd < 0) {
    throw Error(std::make_error_code(std::errc::bad_file_descriptor), "borrow", name,
                "not an open file descriptor");
  }
  std::string failure;
  auto made = make(loop, OwnedFd(), fd, failure);
  if (!made) {
    throw Error(made.error(), "borrow", name, failure.empty() ? made.error().message() : failure);
  }
  made->name_ = std::move(name);
  return std::move(*made);
}

namespace {

// A new fd on the file `fd` refers to, with an open file description of its own, already
// non-blocking. Opening /proc/self/fd/N reopens the file (a tty, a FIFO, even an anonymous
// pipe) rather than duplicating the description as dup() would.
Result<OwnedFd> open_again(int fd, FileKind& kind) noexcept {
  struct ::stat st {};
  if (fd < 0 || ::fstat(fd, &st) != 0) return std::make_error_code(std::errc::bad_file_descriptor);
  kind.type = st.st_mode & S_IFMT;
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return detail::last_error();
  // A pty master's link is /dev/ptmx (or /dev/pts/ptmx), and opening that makes a new pty.
  unsigned pty_number = 0;
  if (::ioctl(fd, TIOCGPTN, &pty_number) == 0) {
    kind.pty_master = true;
    return std::make_error_code(std::errc::operation_not_supported);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  // O_NONBLOCK also keeps the open itself from waiting (a FIFO with no one at the other end).
  OwnedFd again(::open(path.c_str(), (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!again) return detail::last_error();
  // Whatever else opens as another file than the one it names is refused the same way.
  struct ::stat now {};
  if (::fstat(again.fd(), &now) != 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino) {
    return std::make_error_code(std::errc::operation_not_supported);
  }
  return again;
}

}  // namespace

Result<AsyncFd> AsyncFd::reopen(EventLoop& loop, int fd, std::nothrow_t) noexcept {
  try {
    FileKind kind;
    auto again = open_again(fd, kind);
    if (!again) return again.error();
    const int raw = again->fd();
    std::string failure;
    auto made = make(loop, std::move(*again), raw, failure);
    if (made) made->name_ = fd_name(fd);
    return made;
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

AsyncFd AsyncFd::reopen(EventLoop& loop, int fd) {
  std::string name = fd_name(fd);
  FileKind kind;
  auto again = open_again(fd, kind);
  if (!again) throw Error(again.error(), "reopen", name, why(again.error(), kind, true));
  const int raw = again->fd();
  std::string failure;
  auto made = make(loop, std::move(*again), raw, failure);
  if (!made) {
    throw Error(made.error(), "reopen", name, failure.empty() ? made.error().message() : failure);
  }
  made->name_ = std::move(name);
  return std::move(*made);
}

AsyncFd::AsyncFd(AsyncFd&& other) noexcept
    : loop_(other.loop_),
      owned_(std::move(other.owned_)),
      fd_(std::exchange(other.fd_, -1)),
      timeout_ns_(other.timeout_ns_),
      is_socket_(other.is_socket_),
      is_pipe_(other.is_pipe_),
      restore_blocking_(std::exchange(other.restore_blocking_, false)),
      name_(std::move(other.name_)) {}

AsyncFd& AsyncFd::operator=(AsyncFd&& other) noexcept {
  if (this != &other) {
    close();
    loop_ = other.loop_;
    owned_ = std::move(other.owned_);
    fd_ = std::exchange(other.fd_, -1);
    timeout_ns_ = other.timeout_ns_;
    is_socket_ = other.is_socket_;
    is_pipe_ = other.is_pipe_;
    restore_blocking_ = std::exchange(other.restore_blocking_, false);
    name_ = std::move(other.name_);
  }
  return *this;
}

void AsyncFd::close() noexcept {
  if (fd_ < 0) return;
  // Waking a waiter may run its coroutine to the end and destroy the frame that holds this
  // AsyncFd: take everything out first and touch nothing of *this afterwards.
  const int fd = std::exchange(fd_, -1);
  OwnedFd closing = std::move(owned_);
  EventLoop* loop = loop_;
  if (std::exchange(restore_blocking_, false)) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0 && (flags & O_NONBLOCK)) (void)::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  if (loop != nullptr) loop->forget_fd(fd, errc::socket_closed);
  // `closing` closes an owned fd here, after the loop let go of it.
}

Result<std::size_t> AsyncFd::read_now(std::span<char> buffer, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  for (;;) {
    const ::ssize_t n = ::read(fd_, buffer.data(), buffer.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return detail::last_error();
  }
}

Result<std::size_t> AsyncFd::write_now(std::string_view data, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  for (;;) {
    // Only pipes and sockets raise SIGPIPE; a socket can say so per call, a pipe cannot.
    ::ssize_t n;
    if (is_socket_) {
      n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    } else if (is_pipe_) {
      n = detail::without_sigpipe([&] { return ::write(fd_, data.data(), data.size()); });
    } else {
      n = ::write(fd_, data.data(), data.size());
    }
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return detail::last_error();
  }
}

namespace detail {

namespace {
// Stores a finished result; false (keep waiting) when the kernel said EAGAIN.
bool settle(Result<std::size_t>&& attempt, Result<std::size_t>& result) noexcept {
  if (!attempt && would_block(attempt.error())) return false;
  result = std::move(attempt);
  return true;
}
}  // namespace

bool FdReadOp::attempt(AsyncFd& owner, Result<Value>& result) noexcept {
  return settle(owner.read_now(buffer, std::nothrow), result);
}

bool FdWriteOp::attempt(AsyncFd& owner, Result<Value>& result) noexcept {
  return settle(owner.write_now(data, std::nothrow), result);
}

bool FdWriteAllOp::attempt(AsyncFd& owner, Result<Value>& result) noexcept {
  while (sent < data.size()) {
    auto n = owner.write_now(data.substr(sent), std::nothrow);
    if (!n) {
      if (would_block(n.error())) return false;  // full: wait for room
      result = n.error();
      return true;
    }
    sent += *n;
  }
  result = sent;
  return true;
}

}  // namespace detail
}  // namespace wire
