#include "wire/async_stream.hpp"

#include <algorithm>
#include <new>

namespace wire {
namespace {

std::string describe(const Transport* transport, Events direction) {
  return transport ? transport->describe(direction) : std::string("closed stream");
}
}  // namespace

AsyncStream::AsyncStream(AsyncSocket socket)
    : AsyncStream(std::make_unique<SocketTransport>(std::move(socket))) {}

AsyncStream::AsyncStream(AsyncFd both)
    : AsyncStream(std::make_unique<FdTransport>(std::move(both))) {}

AsyncStream::AsyncStream(AsyncFd read_end, AsyncFd write_end)
    : AsyncStream(std::make_unique<FdTransport>(std::move(read_end), std::move(write_end))) {}

AsyncStream::AsyncStream(std::unique_ptr<Transport> transport) noexcept
    : owned_transport_(std::move(transport)), transport_(owned_transport_.get()) {}

AsyncStream::AsyncStream(Transport& transport, std::string& read_buffer) noexcept
    : transport_(&transport), read_buffer_(&read_buffer) {}

AsyncStream::AsyncStream(AsyncStream&& other) noexcept
    : owned_transport_(std::move(other.owned_transport_)),
      transport_(std::exchange(other.transport_, nullptr)),
      own_read_buffer_(std::move(other.own_read_buffer_)),
      read_buffer_(other.read_buffer_ == &other.own_read_buffer_ ? &own_read_buffer_
                                                                 : other.read_buffer_),
      read_pos_(std::exchange(other.read_pos_, 0)),
      search_from_(std::exchange(other.search_from_, 0)),
      write_buffer_(std::move(other.write_buffer_)),
      write_pos_(std::exchange(other.write_pos_, 0)),
      write_limit_(other.write_limit_),
      bytes_written_(other.bytes_written_) {
  other.read_buffer_ = &other.own_read_buffer_;
  other.own_read_buffer_.clear();
}

AsyncStream& AsyncStream::operator=(AsyncStream&& other) noexcept {
  if (this != &other) {
    this->~AsyncStream();
    new (this) AsyncStream(std::move(other));
  }
  return *this;
}

AsyncStream::~AsyncStream() {
  // While the buffers still exist: a waiter it wakes may look at them. A borrowed transport
  // stays open: its owner decides.
  if (owned_transport_) close();
}

void AsyncStream::close() noexcept {
  write_buffer_.clear();
  write_pos_ = 0;
  // Last: waking a waiter may end the coroutine that owns this stream.
  if (transport_) transport_->close();
}

// Makes room and reads once, all without suspending, so a cancelled or timed-out wait never
// finds the buffer half-grown: bytes read, 0 at end of stream, EAGAIN when none are there.
Result<std::size_t> AsyncStream::try_fill(std::size_t max_bytes) noexcept {
  if (!transport_) return errc::socket_closed;
  // "At most" is a bound, not a size to allocate: the buffer grows by what one read may take.
  max_bytes = std::min(max_bytes, max_fill);
  std::string& buffer = *read_buffer_;
  try {
    if (read_pos_ == buffer.size()) {
      buffer.clear();
      read_pos_ = 0;
      search_from_ = 0;
    } else if (read_pos_ > buffer.size() / 2) {
      buffer.erase(0, read_pos_);
      search_from_ -= std::min(search_from_, read_pos_);
      read_pos_ = 0;
    }
    const std::size_t old_size = buffer.size();
    buffer.resize(old_size + max_bytes);
    auto n = detail::checked_read_count(
        transport_->read_some(std::span<char>(buffer.data() + old_size, max_bytes)), max_bytes);
    buffer.resize(old_size + (n ? *n : 0));
    return n;
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Task<Result<std::size_t>> AsyncStream::wait_then_fill(std::size_t max_bytes) {
  // The idle timeout bounds the whole fill, not each wait: a layered transport (TLS) is woken
  // by bytes that make no whole record yet, and a peer trickling a byte per wait would hold
  // the fill open forever (and, through it, a server's header timeout). A socket reads after
  // its first wait, so only a layered transport reaches the second one.
  const auto timeout = transport_->timeout();
  const auto deadline =
      timeout ? std::optional(detail::later(detail::Clock::now(), *timeout)) : std::nullopt;
  for (bool first = true;; first = false) {
    Result<void> ready = std::error_code();
    if (first || !deadline) {
      ready = co_await transport_->wait(readable);
    } else {
      const auto left = *deadline - detail::Clock::now();
      if (left <= std::chrono::nanoseconds(0)) co_return errc::timed_out;
      try {
        ready = co_await with_timeout(left, transport_->wait(readable), "read");
      } catch (const Error& e) {
        ready = e.code();
      }
    }
    if (!ready) co_return ready.error();
    auto n = try_fill(max_bytes);
    if (n || !detail::would_block(n.error())) co_return n;
  }
}

StreamAwaitable<std::size_t> AsyncStream::fill(std::size_t max_bytes, std::nothrow_t) {
  if (max_bytes == 0) return std::size_t(0);
  auto n = try_fill(max_bytes);
  if (n || !detail::would_block(n.error())) return n;
  try {
    return StreamAwaitable<std::size_t>(wait_then_fill(max_bytes));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

void AsyncStream::consume(std::size_t n) noexcept {
  read_pos_ += std::min(n, buffered());
  search_from_ = std::max(search_from_, read_pos_);
}

std::string AsyncStream::take(std::size_t n) {
  std::string out = read_buffer_->substr(read_pos_, n);
  read_pos_ += n;
  search_from_ = read_pos_;
  return out;
}

Task<Result<std::string>> AsyncStream::read_some(std::size_t max_bytes, std::nothrow_t) {
  try {
    if (max_bytes == 0) co_return std::string();
    if (buffered() == 0) {
      auto n = try_fill();  // a frame to wait in only when the kernel has nothing yet
      if (!n && detail::would_block(n.error())) n = co_await wait_then_fill();
      if (!n) co_return n.error();
    }
    co_return take(std::min(max_bytes, buffered()));
  } catch (const std::bad_alloc&) {
    co_return std::make_error_code(std::errc::not_enough_memory);
  }
}

Task<Result<std::string>> AsyncStream::read_exact(std::size_t n, std::nothrow_t) {
  try {
    while (buffered() < n) {
      auto got = try_fill();
      if (!got && detail::would_block(got.error())) got = co_await wait_then_fill();
      if (!got) co_return got.error();
      if (*got == 0) co_return errc::unexpected_eof;
    }
    co_return take(n);
  } catch (const std::bad_alloc&) {
    co_return std::make_error_code(std::errc::not_enough_memory);
  }
}

Task<Result<std::string>> AsyncStream::read_until(std::string_view delimiter, std::size_t max_len,
                                                  std::nothrow_t) {
  if (delimiter.empty()) co_return std::make_error_code(std::errc::invalid_argument);
  try {
    for (;;) {
      // Resume the search where the last one stopped (this call's or a timed-out one's),
      // backing up enough to catch a delimiter split across two reads.
      const std::size_t from = std::max(read_pos_, search_from_ >= read_pos_ + delimiter.size()
                                                       ? search_from_ - delimiter.size() + 1
                                                       : read_pos_);
      const std::size_t found = read_buffer_->find(delimiter, from);
      if (found != std::string::npos) {
        const std::size_t length = found + delimiter.size() - read_pos_;
        if (length > max_len) co_return errc::line_too_long;
        co_return take(length);
      }
      search_from_ = read_buffer_->size();
      if (buffered() >= max_len) co_return errc::line_too_long;
      auto got = try_fill();
      if (!got && detail::would_block(got.error())) got = co_await wait_then_fill();
      if (!got) co_return got.error();
      if (*got == 0) co_return take(buffered());  // end of stream: the partial last line
    }
  } catch (const std::bad_alloc&) {
    co_return std::make_error_code(std::errc::not_enough_memory);
  }
}

Task<Result<std::string>> AsyncStream::read_line(std::size_t max_len, std::nothrow_t) {
  co_return co_await read_until("\n", max_len, std::nothrow);
}

// Writes until no more than `leave` bytes wait, without waiting: true when that is so, false
// when the transport has no room. Sent bytes leave the buffer as they go, so a wait that is
// cancelled or times out later leaves exactly the unsent ones.
Result<bool> AsyncStream::try_write_out(std::size_t leave) noexcept {
  while (pending() > leave) {
    if (!transport_) return errc::socket_closed;
    const std::string_view rest = std::string_view(write_buffer_).substr(write_pos_);
    auto n = detail::checked_write_count(transport_->write_some(rest), rest.size());
    if (!n) {
      if (detail::would_block(n.error())) return false;
      return n.error();
    }
    if (*n == 0) return false;
    bytes_written_ += *n;
    write_pos_ += *n;
    if (write_pos_ == write_buffer_.size()) {
      write_buffer_.clear();
      write_pos_ = 0;
    }
  }
  return true;
}

Task<Result<void>> AsyncStream::write_out(std::size_t leave) {
  for (;;) {
    auto done = try_write_out(leave);
    if (!done) co_return done.error();
    if (*done) co_return Result<void>();
    auto ready = co_await transport_->wait(writable);
    if (!ready) co_return ready.error();
  }
}

StreamAwaitable<void> AsyncStream::write(std::string_view data, std::nothrow_t) {
  if (!is_open()) return errc::socket_closed;
  try {
    // Written bytes in front are dropped before appending, so the buffer's size follows
    // what waits rather than what ever passed through.
    if (write_pos_ > 0 && write_pos_ >= write_buffer_.size() / 2) {
      write_buffer_.erase(0, write_pos_);
      write_pos_ = 0;
    }
    write_buffer_.append(data);
    if (pending() <= write_limit_) return Result<void>();
    auto done = try_write_out(write_limit_);
    if (!done) return done.error();
    if (*done) return Result<void>();
    return StreamAwaitable<void>(write_out(write_limit_));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

StreamAwaitable<void> AsyncStream::drain(std::nothrow_t) {
  auto done = try_write_out(0);
  if (!done) return done.error();
  if (*done) return Result<void>();
  try {
    return StreamAwaitable<void>(write_out(0));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

// Writes what the transport takes of `data` now: the count (maybe 0), or an error.
Result<std::size_t> AsyncStream::try_write_direct(std::string_view data,
                                                  bool more_follows) noexcept {
  std::size_t done = 0;
  while (done < data.size()) {
    if (!transport_) return errc::socket_closed;
    const std::string_view rest = data.substr(done);
    auto n = detail::checked_write_count(
        more_follows ? transport_->write_some_corked(rest) : transport_->write_some(rest),
        rest.size());
    if (!n) {
      if (detail::would_block(n.error())) break;
      return n.error();
    }
    if (*n == 0) break;
    bytes_written_ += *n;
    done += *n;
  }
  return done;
}

Task<Result<void>> AsyncStream::write_all_waiting(std::string_view data, bool more_follows) {
  if (auto drained = co_await write_out(0); !drained) co_return drained;
  for (;;) {
    auto n = try_write_direct(data, more_follows);
    if (!n) co_return n.error();
    data.remove_prefix(*n);
    if (data.empty()) co_return Result<void>();
    auto ready = co_await transport_->wait(writable);
    if (!ready) co_return ready.error();
  }
}

StreamAwaitable<void> AsyncStream::write_all(std::string_view data, bool more_follows,
                                             std::nothrow_t) {
  if (!is_open()) return errc::socket_closed;
  if (pending() == 0) {
    // The common case: nothing waits, and the kernel takes all of it in the call.
    auto n = try_write_direct(data, more_follows);
    if (!n) return n.error();
    if (*n == data.size()) return Result<void>();
    data.remove_prefix(*n);
  }
  try {
    return StreamAwaitable<void>(write_all_waiting(data, more_follows));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

// Sends what the transport takes of the file now: the count (maybe 0), or an error.
Result<std::uint64_t> AsyncStream::try_send_file(int fd, std::uint64_t offset,
                                                 std::uint64_t length) noexcept {
  std::uint64_t done = 0;
  while (done < length) {
    if (!transport_) return errc::socket_closed;
    const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(length - done, 1u << 30));
    auto n = detail::checked_write_count(transport_->send_file(fd, offset + done, chunk), chunk);
    if (!n) {
      if (detail::would_block(n.error())) break;
      return n.error();
    }
    if (*n == 0) break;
    bytes_written_ += *n;
    done += *n;
  }
  return done;
}

Task<Result<void>> AsyncStream::send_file_waiting(int fd, std::uint64_t offset,
                                                  std::uint64_t length) {
  if (auto drained = co_await write_out(0); !drained) co_return drained;
  for (;;) {
    auto n = try_send_file(fd, offset, length);
    if (!n) co_return n.error();
    offset += *n;
    length -= *n;
    if (length == 0) co_return Result<void>();
    auto ready = co_await transport_->wait(writable);
    if (!ready) co_return ready.error();
  }
}

StreamAwaitable<void> AsyncStream::send_file(int fd, std::uint64_t offset, std::uint64_t length,
                                             std::nothrow_t) {
  if (!is_open()) return errc::socket_closed;
  if (pending() == 0) {
    auto n = try_send_file(fd, offset, length);
    if (!n) return n.error();
    if (*n == length) return Result<void>();
    offset += *n;
    length -= *n;
  }
  try {
    return StreamAwaitable<void>(send_file_waiting(fd, offset, length));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Task<Result<void>> AsyncStream::shutdown(std::nothrow_t) {
  if (auto drained = co_await write_out(0); !drained) co_return drained;
  if (!transport_) co_return errc::socket_closed;
  co_return transport_->shutdown();
}

// The throwing calls: the same messages as Stream's.

Task<std::string> AsyncStream::read_some(std::size_t max_bytes) {
  auto r = co_await read_some(max_bytes, std::nothrow);
  if (!r) throw Error(r.error(), "read", describe(transport_, readable));
  co_return std::move(*r);
}

Task<std::string> AsyncStream::read_exact(std::size_t n) {
  auto r = co_await read_exact(n, std::nothrow);
  if (!r) {
    throw Error(r.error(), "read_exact", describe(transport_, readable),
                r.error() == errc::unexpected_eof
                    ? "stream ended after " + std::to_string(buffered()) + " of " +
                          std::to_string(n) + " bytes"
                    : r.error().message());
  }
  co_return std::move(*r);
}

Error AsyncStream::line_error(std::error_code error, std::size_t max_len) const {
  return Error(error, "read_line", describe(transport_, readable),
               error == errc::line_too_long
                   ? "no delimiter within " + std::to_string(max_len) + " bytes"
                   : error.message());
}

Task<std::string> AsyncStream::read_line(std::size_t max_len) {
  auto r = co_await read_until("\n", max_len, std::nothrow);
  if (!r) throw line_error(r.error(), max_len);
  co_return std::move(*r);
}

Task<std::string> AsyncStream::read_until(std::string_view delimiter, std::size_t max_len) {
  auto r = co_await read_until(delimiter, max_len, std::nothrow);
  if (!r) throw line_error(r.error(), max_len);
  co_return std::move(*r);
}

Task<void> AsyncStream::write(std::string_view data) {
  if (auto r = co_await write(data, std::nothrow); !r) {
    throw Error(r.error(), "write", describe(transport_, writable));
  }
}

Task<void> AsyncStream::drain() {
  if (auto r = co_await drain(std::nothrow); !r) {
    throw Error(r.error(), "drain", describe(transport_, writable));
  }
}

Task<std::size_t> AsyncStream::fill(std::size_t max_bytes) {
  auto r = co_await fill(max_bytes, std::nothrow);
  if (!r) throw Error(r.error(), "read", describe(transport_, readable));
  co_return *r;
}

Task<void> AsyncStream::write_all(std::string_view data, bool more_follows) {
  if (auto r = co_await write_all(data, more_follows, std::nothrow); !r) {
    throw Error(r.error(), "write", describe(transport_, writable));
  }
}

Task<void> AsyncStream::send_file(int fd, std::uint64_t offset, std::uint64_t length) {
  if (auto r = co_await send_file(fd, offset, length, std::nothrow); !r) {
    throw Error(r.error(), "send_file", describe(transport_, writable));
  }
}

Task<void> AsyncStream::shutdown() {
  if (auto r = co_await shutdown(std::nothrow); !r) {
    throw Error(r.error(), "shutdown", describe(transport_, writable));
  }
}

}  // namespace wire
