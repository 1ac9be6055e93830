#include "wire/process/fd_passing.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "../io.hpp"

namespace wire {
namespace {

// SCM_PIDFD (Linux 6.5): a pidfd the kernel attaches when the receiver set SO_PASSPIDFD.
// wire does not hand it out, but it is an fd and must not leak.
constexpr int scm_pidfd = 0x04;

class FdPassingCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "fd_passing"; }
  std::string message(int code) const override {
    switch (static_cast<FdPassingErrc>(code)) {
      case FdPassingErrc::not_unix_socket:
        return "fds can only be passed over a Unix domain socket";
      case FdPassingErrc::no_data:
        return "fds must travel with at least one byte of data (0 bytes given)";
      case FdPassingErrc::no_room:
        return "max_fds and max_bytes must both be at least 1";
      case FdPassingErrc::too_many_fds:
        return "at most 253 fds fit in one message (SCM_MAX_FD)";
      case FdPassingErrc::fds_truncated:
        return "more fds arrived than max_fds allows; the ones received were closed";
      case FdPassingErrc::datagram_truncated:
        return "the datagram was longer than max_bytes; its fds were closed";
    }
    return "unknown fd passing error";
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<FdPassingErrc>(code)) {
      case FdPassingErrc::not_unix_socket:
        return std::errc::address_family_not_supported;
      case FdPassingErrc::no_data:
      case FdPassingErrc::no_room:
      case FdPassingErrc::too_many_fds:
        return std::errc::invalid_argument;
      case FdPassingErrc::fds_truncated:
      case FdPassingErrc::datagram_truncated:
        return std::errc::message_size;
    }
    return {code, *this};
  }
};

std::error_code check_unix(int fd) noexcept {
  int domain = 0;
  ::socklen_t len = sizeof domain;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) return detail::last_error();
  if (domain != AF_UNIX) return FdPassingErrc::not_unix_socket;
  return {};
}

std::error_code check_send(int fd, std::span<const int> fds, std::string_view bytes) noexcept {
  if (bytes.empty()) return FdPassingErrc::no_data;
  if (fds.size() > max_fds_per_message) return FdPassingErrc::too_many_fds;
  return check_unix(fd);
}

std::error_code check_recv(int fd, std::size_t max_fds, std::size_t max_bytes) noexcept {
  if (max_fds == 0 || max_bytes == 0) return FdPassingErrc::no_room;
  return check_unix(fd);
}

// Room for the most fds one message can carry: the control buffer lives on the stack.
constexpr std::size_t control_space = CMSG_SPACE(sizeof(int) * max_fds_per_message);

// One sendmsg carrying the fds (none if empty): the syscall's result, -1 and errno on failure.
::ssize_t send_with_fds(int fd, std::span<const int> fds, std::string_view bytes) noexcept {
  ::iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  ::msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(::cmsghdr) char control[control_space];
  if (!fds.empty()) {
    std::memset(control, 0, sizeof control);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size_bytes());
    ::cmsghdr* header = CMSG_FIRSTHDR(&msg);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(fds.size_bytes());
    std::memcpy(CMSG_DATA(header), fds.data(), fds.size_bytes());
  }
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL);
}

// A received fd, owned at once: a Socket if Socket can adopt it, else an OwnedFd.
ReceivedFd own(int fd) noexcept {
  struct ::stat st {};
  if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
    if (auto socket = Socket::adopt(fd, std::nothrow)) return std::move(*socket);
  }
  return OwnedFd(fd);
}

// One recvmsg (the caller decides what EAGAIN means) and everything it brought, owned.
class Receiver {
 public:
  Receiver(std::size_t max_fds, std::size_t max_bytes) noexcept
      : max_fds_(std::min(max_fds, max_fds_per_message)), max_bytes_(max_bytes) {}

  // The recvmsg result: -1 and errno on failure (nothing was received then).
  ::ssize_t receive(int fd) noexcept {
    if (bytes_.size() != max_bytes_) {
      try {
        bytes_.resize(max_bytes_);
      } catch (const std::bad_alloc&) {
        errno = ENOMEM;
        return -1;
      }
    }
    iov_ = {bytes_.data(), bytes_.size()};
    msg_ = {};
    msg_.msg_iov = &iov_;
    msg_.msg_iovlen = 1;
    msg_.msg_control = control_;
    msg_.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds_);
    return ::recvmsg(fd, &msg_, MSG_CMSG_CLOEXEC);
  }

  // After a successful receive(): the bytes and fds, or the error that closed the fds.
  Result<ReceivedFds> take(std::size_t n, bool datagram) noexcept {
    std::vector<int> arrived;
    std::size_t pidfds = 0;
    for (::cmsghdr* c = CMSG_FIRSTHDR(&msg_); c != nullptr; c = CMSG_NXTHDR(&msg_, c)) {
      if (c->cmsg_level != SOL_SOCKET) continue;
      if (c->cmsg_type != SCM_RIGHTS && c->cmsg_type != scm_pidfd) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (c->cmsg_type == scm_pidfd) {
          ::close(fd);
          ++pidfds;
          continue;
        }
        try {
          arrived.push_back(fd);
        } catch (const std::bad_alloc&) {
          ::close(fd);
          pidfds = SIZE_MAX;  // reported below, after the rest are closed too
        }
      }
    }
    std::error_code failed;
    if (pidfds == SIZE_MAX) {
      failed = std::make_error_code(std::errc::not_enough_memory);
    } else if ((msg_.msg_flags & MSG_CTRUNC) != 0 || arrived.size() > max_fds_) {
      // The kernel rounds the control buffer up and may fit one fd more than asked for:
      // max_fds is what the caller can handle, so that is a truncation too.
      failed = FdPassingErrc::fds_truncated;
    } else if (datagram && (msg_.msg_flags & MSG_TRUNC) != 0) {
      failed = FdPassingErrc::datagram_truncated;
    }
    if (failed) {
      for (int fd : arrived) ::close(fd);
      return failed;
    }
    ReceivedFds received;
    try {
      received.fds.reserve(arrived.size());
      for (int fd : arrived) received.fds.push_back(own(fd));
    } catch (const std::bad_alloc&) {
      // received.fds owns the first ones; close the rest.
      for (std::size_t i = received.fds.size(); i < arrived.size(); ++i) ::close(arrived[i]);
      return std::make_error_code(std::errc::not_enough_memory);
    }
    bytes_.resize(std::min(n, bytes_.size()));
    received.bytes = std::move(bytes_);
    return received;
  }

 private:
  std::size_t max_fds_;
  std::size_t max_bytes_;
  std::string bytes_;
  ::iovec iov_{};
  ::msghdr msg_{};
  alignas(::cmsghdr) char control_[control_space];
};

std::int64_t timeout_ns(const Socket& socket) noexcept {
  auto timeout = socket.timeout();
  return timeout ? timeout->count() : -1;
}

}  // namespace

const std::error_category& fd_passing_category() noexcept {
  static const FdPassingCategory category;
  return category;
}

int fd_number(const ReceivedFd& fd) noexcept {
  if (const auto* socket = std::get_if<Socket>(&fd)) {
    return socket->is_open() ? socket->fileno() : -1;
  }
  return std::get<OwnedFd>(fd).fd();
}

Result<void> send_fds(Socket& unix_socket, std::span<const int> fds, std::string_view bytes,
                      std::nothrow_t) noexcept {
  if (!unix_socket.is_open()) return errc::socket_closed;
  const int fd = unix_socket.fileno();
  if (auto ec = check_send(fd, fds, bytes)) return ec;
  detail::Waiter waiter(timeout_ns(unix_socket));
  auto n = detail::retry_io(fd, POLLOUT, waiter, [&] { return send_with_fds(fd, fds, bytes); });
  if (!n) return n.error();
  // A stream socket may take part of the bytes; the fds went with that part.
  if (*n < bytes.size()) return unix_socket.send_all(bytes.substr(*n), std::nothrow);
  return {};
}

void send_fds(Socket& unix_socket, std::span<const int> fds, std::string_view bytes) {
  if (auto sent = send_fds(unix_socket, fds, bytes, std::nothrow); !sent) {
    throw detail::fd_passing_error(sent.error(), "send_fds", unix_socket, fds);
  }
}

Result<ReceivedFds> recv_fds(Socket& unix_socket, std::size_t max_fds, std::size_t max_bytes,
                             std::nothrow_t) noexcept {
  if (!unix_socket.is_open()) return errc::socket_closed;
  const int fd = unix_socket.fileno();
  if (auto ec = check_recv(fd, max_fds, max_bytes)) return ec;
  Receiver receiver(max_fds, max_bytes);
  detail::Waiter waiter(timeout_ns(unix_socket));
  auto n = detail::retry_io(fd, POLLIN, waiter, [&] { return receiver.receive(fd); });
  if (!n) return n.error();
  return receiver.take(*n, unix_socket.type() == Type::dgram);
}

ReceivedFds recv_fds(Socket& unix_socket, std::size_t max_fds, std::size_t max_bytes) {
  auto received = recv_fds(unix_socket, max_fds, max_bytes, std::nothrow);
  if (!received) throw detail::fd_passing_error(received.error(), "recv_fds", unix_socket, {});
  return std::move(*received);
}

namespace detail {

Error fd_passing_error(std::error_code ec, const char* operation, const Socket& socket,
                       std::span<const int> fds) {
  std::string reason = ec.message();
  if (ec == std::errc::bad_file_descriptor && socket.is_open()) {
    // The kernel says only that one of them is bad: name it.
    for (int fd : fds) {
      if (::fcntl(fd, F_GETFD) < 0) {
        reason = "fd " + std::to_string(fd) + " is not open: " + reason;
        break;
      }
    }
  }
  return Error(ec, operation, socket.describe(), reason);
}

bool SendFdsOp::attempt(int fd, AsyncSocket&, Result<Value>& result) noexcept {
  if (sent == 0) {
    if (auto ec = check_send(fd, fds, data)) {
      result = ec;
      return true;
    }
  }
  while (sent < data.size()) {
    ::ssize_t n;
    do {
      n = sent == 0 ? send_with_fds(fd, fds, data)
                    : ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
      result = last_error();
      return true;
    }
    sent += static_cast<std::size_t>(n);
  }
  result = sent;
  return true;
}

bool RecvFdsOp::attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept {
  if (!checked) {
    if (auto ec = check_recv(fd, max_fds, max_bytes)) {
      result = ec;
      return true;
    }
    checked = true;
  }
  Receiver receiver(max_fds, max_bytes);
  ::ssize_t n;
  do {
    n = receiver.receive(fd);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    result = last_error();
    return true;
  }
  result = receiver.take(static_cast<std::size_t>(n), owner.socket().type() == Type::dgram);
  return true;
}

}  // namespace detail
}  // namespace wire
