#include "wire/async_stream.hpp"

#include <algorithm>

namespace wire {
namespace {

constexpr std::size_t read_chunk = 8192;

std::string describe(const std::unique_ptr<Transport>& transport, Events direction) {
  return transport ? transport->describe(direction) : std::string("closed stream");
}
}  // namespace

AsyncStream::AsyncStream(AsyncSocket socket)
    : transport_(std::make_unique<SocketTransport>(std::move(socket))) {}

AsyncStream::AsyncStream(AsyncFd both)
    : transport_(std::make_unique<FdTransport>(std::move(both))) {}

AsyncStream::AsyncStream(AsyncFd read_end, AsyncFd write_end)
    : transport_(std::make_unique<FdTransport>(std::move(read_end), std::move(write_end))) {}

AsyncStream::AsyncStream(std::unique_ptr<Transport> transport) noexcept
    : transport_(std::move(transport)) {}

AsyncStream::~AsyncStream() {
  close();  // while the buffers still exist: a waiter it wakes may look at them
}

void AsyncStream::close() noexcept {
  write_buffer_.clear();
  write_pos_ = 0;
  // Last: waking a waiter may end the coroutine that owns this stream.
  if (transport_) transport_->close();
}

// Makes room and reads once, all without suspending, so a cancelled or timed-out wait never
// finds the buffer half-grown: bytes read, 0 at end of stream, EAGAIN when none are there.
Result<std::size_t> AsyncStream::try_fill() noexcept {
  if (!transport_) return errc::socket_closed;
  try {
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
    read_buffer_.resize(old_size + read_chunk);
    auto n = transport_->read_some(std::span<char>(read_buffer_.data() + old_size, read_chunk));
    read_buffer_.resize(old_size + (n ? *n : 0));
    return n;
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Task<Result<std::size_t>> AsyncStream::wait_then_fill() {
  for (;;) {
    auto ready = co_await transport_->wait(readable);
    if (!ready) co_return ready.error();
    auto n = try_fill();
    if (n || !detail::would_block(n.error())) co_return n;
  }
}

std::string AsyncStream::take(std::size_t n) {
  std::string out = read_buffer_.substr(read_pos_, n);
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
      const std::size_t found = read_buffer_.find(delimiter, from);
      if (found != std::string::npos) {
        const std::size_t length = found + delimiter.size() - read_pos_;
        if (length > max_len) co_return errc::line_too_long;
        co_return take(length);
      }
      search_from_ = read_buffer_.size();
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

// Writes until no more than `leave` bytes wait. Sent bytes leave the buffer as they go, so
// a wait cancelled or timed out leaves exactly the unsent ones.
Task<Result<void>> AsyncStream::write_out(std::size_t leave) {
  while (pending() > leave) {
    if (!transport_) co_return errc::socket_closed;
    auto n = transport_->write_some(std::string_view(write_buffer_).substr(write_pos_));
    if (n) {
      write_pos_ += *n;
      if (write_pos_ == write_buffer_.size()) {
        write_buffer_.clear();
        write_pos_ = 0;
      }
      continue;
    }
    if (!detail::would_block(n.error())) co_return n.error();
    auto ready = co_await transport_->wait(writable);
    if (!ready) co_return ready.error();
  }
  co_return Result<void>();
}

Task<Result<void>> AsyncStream::write(std::string_view data, std::nothrow_t) {
  if (!is_open()) co_return errc::socket_closed;
  try {
    // Written bytes in front are dropped before appending, so the buffer's size follows
    // what waits rather than what ever passed through.
    if (write_pos_ > 0 && write_pos_ >= write_buffer_.size() / 2) {
      write_buffer_.erase(0, write_pos_);
      write_pos_ = 0;
    }
    write_buffer_.append(data);
  } catch (const std::bad_alloc&) {
    co_return std::make_error_code(std::errc::not_enough_memory);
  }
  if (pending() <= write_limit_) co_return Result<void>();
  co_return co_await write_out(write_limit_);
}

Task<Result<void>> AsyncStream::drain(std::nothrow_t) {
  co_return co_await write_out(0);
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

Task<void> AsyncStream::shutdown() {
  if (auto r = co_await shutdown(std::nothrow); !r) {
    throw Error(r.error(), "shutdown", describe(transport_, writable));
  }
}

}  // namespace wire
