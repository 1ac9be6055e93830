// wire/async_stream.hpp — AsyncStream: a buffered byte stream on the EventLoop (asyncio's
// StreamReader and StreamWriter in one), over a socket, a pipe, a tty or any Transport.
//
//   wire::Task<> chat(wire::EventLoop& loop, wire::Socket socket) {
//     wire::AsyncStream conn(wire::AsyncSocket(loop, std::move(socket)));
//     conn.set_timeout(std::chrono::seconds(5));          // idle: per wait, as AsyncSocket's
//     co_await conn.write("PING\n");                      // buffered
//     co_await conn.drain();                              // out to the kernel
//     std::string line = co_await conn.read_line();       // "PONG\n"; "" at end of stream
//   }
//
//   // stdin and stdout as one stream (reopen: O_NONBLOCK on stdin's own description only).
//   wire::AsyncStream console(wire::AsyncFd::reopen(loop, 0), wire::AsyncFd::borrow(loop, 1));
//
// Ownership: an AsyncStream owns its Transport, and the transport owns what it was given (an
// AsyncSocket, one or two AsyncFds; an AsyncFd that borrows its fd still leaves the fd open,
// see async_fd.hpp). close() or the destructor closes the transport at once: bytes written
// but not drained are dropped, so co_await drain() (or shutdown()) first.
//
// The same rules as the blocking Stream (stream.hpp), with the same error texts:
//  - Bounded: read_line / read_until fail with errc::line_too_long rather than buffer more
//    than max_len bytes (plus one read's chunk); the bytes stay buffered and read_some /
//    read_exact can still take them.
//  - Resumable: a read that fails with errc::timed_out (the transport's idle timeout) or is
//    cancelled (with_timeout destroys it mid-wait) keeps every byte it received, and the next
//    read starts from them. Every suspension point leaves the buffers consistent.
//  - Writes are buffered and go out at drain(), or from write() itself once more than
//    write_limit() bytes wait: write() then writes until no more than write_limit() wait,
//    waiting for room as long as it takes. Memory stays within write_limit() plus the data of
//    the write in progress, however slow the reader. A failed, timed-out or cancelled drain
//    or write keeps the unsent bytes buffered (pending()); the next drain resumes them.
// One coroutine may read and one write at a time. Awaiting a call must happen in the same
// full expression as the call (the string_views it takes are not copied), as in the examples.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "wire/async_fd.hpp"
#include "wire/async_socket.hpp"
#include "wire/error.hpp"
#include "wire/task.hpp"
#include "wire/transport.hpp"

namespace wire {

class AsyncStream {
 public:
  explicit AsyncStream(AsyncSocket socket);
  explicit AsyncStream(AsyncFd both);
  AsyncStream(AsyncFd read_end, AsyncFd write_end);
  explicit AsyncStream(std::unique_ptr<Transport> transport) noexcept;
  AsyncStream(AsyncStream&&) noexcept = default;  // not while an operation is pending
  AsyncStream& operator=(AsyncStream&&) noexcept = default;
  AsyncStream(const AsyncStream&) = delete;
  AsyncStream& operator=(const AsyncStream&) = delete;
  ~AsyncStream();  // closes the transport; undrained bytes are dropped

  Transport& transport() noexcept { return *transport_; }
  bool is_open() const noexcept { return transport_ && transport_->is_open(); }
  // The transport's idle timeout: each wait fails with errc::timed_out after this long.
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept {
    transport_->set_timeout(timeout);
  }
  std::optional<std::chrono::nanoseconds> timeout() const noexcept { return transport_->timeout(); }

  // Up to max_bytes: what is buffered, else one read. "" means end of stream.
  Task<std::string> read_some(std::size_t max_bytes = 65536);
  Task<Result<std::string>> read_some(std::size_t max_bytes, std::nothrow_t);
  // Exactly n bytes; errc::unexpected_eof if the stream ends first (the bytes stay buffered).
  Task<std::string> read_exact(std::size_t n);
  Task<Result<std::string>> read_exact(std::size_t n, std::nothrow_t);
  // Through the next '\n' inclusive. At end of stream: the partial last line, then "".
  Task<std::string> read_line(std::size_t max_len = 65536);
  Task<Result<std::string>> read_line(std::size_t max_len, std::nothrow_t);
  // Through the next `delimiter` inclusive, within max_len bytes (delimiter included).
  Task<std::string> read_until(std::string_view delimiter, std::size_t max_len = 65536);
  Task<Result<std::string>> read_until(std::string_view delimiter, std::size_t max_len,
                                       std::nothrow_t);

  // Buffers data; once more than write_limit() bytes wait, writes until no more than that do.
  Task<void> write(std::string_view data);
  Task<Result<void>> write(std::string_view data, std::nothrow_t);
  // Writes out everything buffered.
  Task<void> drain();
  Task<Result<void>> drain(std::nothrow_t);
  // drain(), then the transport's shutdown(): the peer reads end of stream; reads go on.
  Task<void> shutdown();
  Task<Result<void>> shutdown(std::nothrow_t);
  // Closes the transport now (waking its waiters with errc::socket_closed); undrained bytes
  // are dropped. Bytes already buffered for reading can still be read.
  void close() noexcept;

  // Bytes received but not yet returned by a read.
  std::size_t buffered() const noexcept { return read_buffer_.size() - read_pos_; }
  // Bytes written but not yet drained.
  std::size_t pending() const noexcept { return write_buffer_.size() - write_pos_; }
  std::size_t write_limit() const noexcept { return write_limit_; }
  void set_write_limit(std::size_t limit) noexcept { write_limit_ = limit; }

  static constexpr std::size_t default_write_limit = 65536;

 private:
  Result<std::size_t> try_fill() noexcept;
  Task<Result<std::size_t>> wait_then_fill();
  Error line_error(std::error_code error, std::size_t max_len) const;
  Task<Result<void>> write_out(std::size_t leave);
  std::string take(std::size_t n);

  std::unique_ptr<Transport> transport_;
  std::string read_buffer_;
  std::size_t read_pos_ = 0;
  std::size_t search_from_ = 0;  // bytes of the buffer already scanned for a delimiter
  std::string write_buffer_;
  std::size_t write_pos_ = 0;  // bytes of write_buffer_ already written
  std::size_t write_limit_ = default_write_limit;
};

}  // namespace wire
