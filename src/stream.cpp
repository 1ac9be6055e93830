#include "wire/stream.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "io.hpp"
#include "sigpipe.hpp"
#include "wire/address.hpp"

namespace wire {
namespace {

constexpr std::size_t read_chunk = 8192;

std::int64_t to_ns(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return -1;
  return std::max<std::int64_t>(0, timeout->count());
}

}  // namespace

Stream::Stream(int fd, std::optional<std::chrono::nanoseconds> timeout)
    : fd_(fd), timeout_ns_(to_ns(timeout)) {
  struct ::stat st {};
  is_socket_ = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  nonblocking_ = (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

Stream::Stream(Stream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      is_socket_(other.is_socket_),
      nonblocking_(other.nonblocking_),
      timeout_ns_(other.timeout_ns_),
      read_buffer_(std::move(other.read_buffer_)),
      read_pos_(std::exchange(other.read_pos_, 0)),
      search_from_(std::exchange(other.search_from_, 0)),
      write_buffer_(std::move(other.write_buffer_)) {
  other.read_buffer_.clear();
  other.write_buffer_.clear();
}

Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    (void)flush(std::nothrow);
    fd_ = std::exchange(other.fd_, -1);
    is_socket_ = other.is_socket_;
    nonblocking_ = other.nonblocking_;
    timeout_ns_ = other.timeout_ns_;
    read_buffer_ = std::move(other.read_buffer_);
    read_pos_ = std::exchange(other.read_pos_, 0);
    search_from_ = std::exchange(other.search_from_, 0);
    write_buffer_ = std::move(other.write_buffer_);
    other.read_buffer_.clear();
    other.write_buffer_.clear();
  }
  return *this;
}

Stream::~Stream() {
  if (fd_ >= 0 && !write_buffer_.empty()) (void)flush(std::nothrow);
}

void Stream::set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept {
  timeout_ns_ = to_ns(timeout);
  nonblocking_ = (::fcntl(fd_, F_GETFL) & O_NONBLOCK) != 0;
}

std::optional<std::chrono::nanoseconds> Stream::timeout() const noexcept {
  if (timeout_ns_ < 0) return std::nullopt;
  return std::chrono::nanoseconds(timeout_ns_);
}

std::string Stream::describe() const {
  if (is_socket_) {
    ::sockaddr_storage ss{};
    ::socklen_t len = sizeof ss;
    if (::getpeername(fd_, reinterpret_cast<::sockaddr*>(&ss), &len) == 0) {
      int type = 0;
      ::socklen_t type_len = sizeof type;
      ::getsockopt(fd_, SOL_SOCKET, SO_TYPE, &type, &type_len);
      std::string text = Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len,
                                                type == SOCK_DGRAM ? Type::dgram : Type::stream)
                             .to_string();
      if (!text.empty() && text != "unix:") return text;
    }
  }
  return "fd " + std::to_string(fd_);
}

Result<std::size_t> Stream::fill(detail::Waiter& waiter) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (read_pos_ == read_buffer_.size()) {
    read_buffer_.clear();
    read_pos_ = 0;
    search_from_ = 0;
  } else if (read_pos_ > read_buffer_.size() / 2) {
    read_buffer_.erase(0, read_pos_);
    search_from_ -= std::min(search_from_, read_pos_);
    read_pos_ = 0;
  }
  const std::size_t old_size = read_buffer_.size();
  try {
    read_buffer_.resize(old_size + read_chunk);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  char* into = read_buffer_.data() + old_size;
  // Wait first when a timeout applies to a blocking fd (a pipe, a blocking socket): a plain
  // read would ignore the deadline.
  if (timeout_ns_ > 0 && !nonblocking_) {
    if (auto ec = waiter.wait(fd_, POLLIN)) {
      read_buffer_.resize(old_size);
      return ec;
    }
  }
  auto n = detail::retry_io(fd_, POLLIN, waiter, [&] {
    return is_socket_ ? ::recv(fd_, into, read_chunk, 0) : ::read(fd_, into, read_chunk);
  });
  read_buffer_.resize(old_size + (n ? *n : 0));
  if (n && *n > 0) waiter.progressed();
  return n;
}

std::string Stream::take(std::size_t n) {
  std::string out = read_buffer_.substr(read_pos_, n);
  read_pos_ += n;
  search_from_ = read_pos_;
  return out;
}

Result<std::string> Stream::read(std::size_t max_bytes, std::nothrow_t) noexcept {
  try {
    if (max_bytes == 0) return std::string();
    if (buffered() == 0) {
      detail::Waiter waiter(timeout_ns_);
      auto n = fill(waiter);
      if (!n) return n.error();
    }
    return take(std::min(max_bytes, buffered()));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Result<std::string> Stream::read_exact(std::size_t n, std::nothrow_t) noexcept {
  try {
    detail::Waiter waiter(timeout_ns_);
    while (buffered() < n) {
      auto got = fill(waiter);
      if (!got) return got.error();
      if (*got == 0) return errc::unexpected_eof;
    }
    return take(n);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Result<std::string> Stream::read_until(std::string_view delimiter, std::size_t max_len,
                                       std::nothrow_t) noexcept {
  if (delimiter.empty()) return std::make_error_code(std::errc::invalid_argument);
  try {
    detail::Waiter waiter(timeout_ns_);
    for (;;) {
      // Resume the search where the last one stopped, backing up enough to catch a
      // delimiter split across two reads: each byte is scanned about once.
      std::size_t from = std::max(read_pos_, search_from_ >= read_pos_ + delimiter.size()
                                                 ? search_from_ - delimiter.size() + 1
                                                 : read_pos_);
      std::size_t found = read_buffer_.find(delimiter, from);
      if (found != std::string::npos) {
        std::size_t length = found + delimiter.size() - read_pos_;
        if (length > max_len) return errc::line_too_long;
        return take(length);
      }
      search_from_ = read_buffer_.size();
      if (buffered() >= max_len) return errc::line_too_long;
      auto got = fill(waiter);
      if (!got) return got.error();
      if (*got == 0) return take(buffered());  // end of stream: the partial last line
    }
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Result<std::string> Stream::read_line(std::size_t max_len, std::nothrow_t) noexcept {
  return read_until("\n", max_len, std::nothrow);
}

Result<void> Stream::flush_with(detail::Waiter& waiter) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  std::size_t sent = 0;
  Result<void> result;
  while (sent < write_buffer_.size()) {
    const char* from = write_buffer_.data() + sent;
    const std::size_t size = write_buffer_.size() - sent;
    if (timeout_ns_ > 0 && !nonblocking_) {
      if (auto ec = waiter.wait(fd_, POLLOUT)) {
        result = ec;
        break;
      }
    }
    // On a blocking fd a large write would sleep in the kernel until all of it is taken,
    // past any timeout: after POLLOUT, a socket write is made non-blocking for the call
    // (MSG_DONTWAIT) and a pipe write is kept to PIPE_BUF, which a writable pipe takes whole.
    const bool bounded = timeout_ns_ > 0 && !nonblocking_;
    auto n = detail::retry_io(fd_, POLLOUT, waiter, [&] {
      if (is_socket_) return ::send(fd_, from, size, MSG_NOSIGNAL | (bounded ? MSG_DONTWAIT : 0));
      const std::size_t piece = bounded ? std::min<std::size_t>(size, PIPE_BUF) : size;
      return detail::without_sigpipe([&] { return ::write(fd_, from, piece); });
    });
    if (!n) {
      result = n.error();
      break;
    }
    sent += *n;
    waiter.progressed();
  }
  write_buffer_.erase(0, sent);
  return result;
}

Result<void> Stream::flush(std::nothrow_t) noexcept {
  detail::Waiter waiter(timeout_ns_);
  return flush_with(waiter);
}

Result<void> Stream::write(std::string_view data, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  try {
    write_buffer_.append(data);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  if (write_buffer_.size() < buffer_limit) return {};
  return flush(std::nothrow);
}

std::string Stream::read(std::size_t max_bytes) {
  auto r = read(max_bytes, std::nothrow);
  if (!r) throw Error(r.error(), "read", describe());
  return std::move(*r);
}

std::string Stream::read_exact(std::size_t n) {
  auto r = read_exact(n, std::nothrow);
  if (!r) {
    throw Error(r.error(), "read_exact", describe(),
                r.error() == errc::unexpected_eof
                    ? "stream ended after " + std::to_string(buffered()) + " of " +
                          std::to_string(n) + " bytes"
                    : r.error().message());
  }
  return std::move(*r);
}

std::string Stream::read_line(std::size_t max_len) {
  return read_until("\n", max_len);
}

std::string Stream::read_until(std::string_view delimiter, std::size_t max_len) {
  auto r = read_until(delimiter, max_len, std::nothrow);
  if (!r) {
    throw Error(r.error(), "read_line", describe(),
                r.error() == errc::line_too_long
                    ? "no delimiter within " + std::to_string(max_len) + " bytes"
                    : r.error().message());
  }
  return std::move(*r);
}

void Stream::write(std::string_view data) {
  if (auto r = write(data, std::nothrow); !r) throw Error(r.error(), "write", describe());
}

void Stream::flush() {
  if (auto r = flush(std::nothrow); !r) throw Error(r.error(), "flush", describe());
}

}  // namespace wire
