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
//   // A parser that works in place: lending reads, and writes from the caller's memory.
//   while (!complete(conn.peek())) {
//     auto n = co_await conn.fill(16384, std::nothrow);  // no frame unless it must wait
//     if (!n || *n == 0) co_return;
//   }
//   conn.consume(used);
//   co_await conn.write_all(reply, std::nothrow);        // no copy into the stream's buffer
//
// Ownership: an AsyncStream owns its Transport, and the transport owns what it was given (an
// AsyncSocket, one or two AsyncFds; an AsyncFd that borrows its fd still leaves the fd open,
// see async_fd.hpp). close() or the destructor closes the transport at once: bytes written
// but not drained are dropped, so co_await drain() (or shutdown()) first. A stream made with
// AsyncStream(Transport&, std::string&) borrows both (they must outlive it): its destructor
// leaves the transport open; close() still closes it.
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
// fill, write, write_all, drain and send_file with std::nothrow do their work in the call
// when no wait is needed and make a coroutine frame only to wait (StreamAwaitable).
#pragma once

#include <chrono>
#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
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

// What AsyncStream's frame-free calls return: either the result, found without waiting, or
// the coroutine that waits for it (made only then). co_await it in the call's full
// expression; with_timeout accepts it.
template <class T>
class [[nodiscard]] StreamAwaitable {
 public:
  // The result, from anything a Result<T> is made of (a value, an error code).
  template <class U>
  requires std::constructible_from<Result<T>, U &&> StreamAwaitable(U&& done)
      : result_(std::forward<U>(done)) {}  // NOLINT: implicit
  explicit StreamAwaitable(Task<Result<T>> waiting) noexcept : waiting_(std::move(waiting)) {}

  bool await_ready() const noexcept { return !waiting_.valid(); }
  bool await_suspend(std::coroutine_handle<> parent) noexcept {
    return typename Task<Result<T>>::Awaiter{waiting_.handle()}.await_suspend(parent);
  }
  Result<T> await_resume() {
    if (waiting_.valid())
      return typename Task<Result<T>>::Awaiter{waiting_.handle()}.await_resume();
    return std::move(result_);
  }

 private:
  Result<T> result_{std::error_code()};
  Task<Result<T>> waiting_;
};

class AsyncStream {
 public:
  explicit AsyncStream(AsyncSocket socket);
  explicit AsyncStream(AsyncFd both);
  AsyncStream(AsyncFd read_end, AsyncFd write_end);
  explicit AsyncStream(std::unique_ptr<Transport> transport) noexcept;
  // Borrows `transport` and reads into `read_buffer` (both must outlive the stream): no
  // allocation. Bytes already in read_buffer are the first ones read. (The HTTP server makes
  // one per burst of requests, over the connection's socket and a per-thread buffer.)
  AsyncStream(Transport& transport, std::string& read_buffer) noexcept;
  AsyncStream(AsyncStream&& other) noexcept;  // not while an operation is pending
  AsyncStream& operator=(AsyncStream&& other) noexcept;
  AsyncStream(const AsyncStream&) = delete;
  AsyncStream& operator=(const AsyncStream&) = delete;
  ~AsyncStream();  // closes an owned transport; undrained bytes are dropped

  Transport& transport() noexcept { return *transport_; }
  bool is_open() const noexcept { return transport_ != nullptr && transport_->is_open(); }
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

  // Lending reads. fill() reads once more into the buffer, at most max_bytes (and at most
  // max_fill), waiting only if nothing has come yet: the bytes added, 0 at end of stream. The
  // idle timeout bounds the whole fill, however many wake-ups a layered transport needs. peek() is
  // every buffered byte, valid until the next fill, read or consume; consume(n) drops the first n
  // of them.
  Task<std::size_t> fill(std::size_t max_bytes = default_fill);
  StreamAwaitable<std::size_t> fill(std::size_t max_bytes, std::nothrow_t);
  std::string_view peek() const noexcept {
    return std::string_view(*read_buffer_).substr(read_pos_);
  }
  void consume(std::size_t n) noexcept;

  // Buffers data; once more than write_limit() bytes wait, writes until no more than that do.
  Task<void> write(std::string_view data);
  StreamAwaitable<void> write(std::string_view data, std::nothrow_t);
  // Writes out everything buffered.
  Task<void> drain();
  StreamAwaitable<void> drain(std::nothrow_t);
  // Everything buffered, then `data` straight from the caller's memory (never copied into the
  // stream's buffer: it must stay valid until the await ends). more_follows tells the
  // transport that more bytes follow at once (a file after a response head: MSG_MORE).
  Task<void> write_all(std::string_view data, bool more_follows = false);
  StreamAwaitable<void> write_all(std::string_view data, bool more_follows, std::nothrow_t);
  StreamAwaitable<void> write_all(std::string_view data, std::nothrow_t) {
    return write_all(data, false, std::nothrow);
  }
  // Everything buffered, then `length` bytes of the file `fd` from `offset` through the
  // transport's send_file (sendfile(2) on a socket; the fd's offset is neither used nor
  // moved). What went out is in bytes_written(), a failed call's part too.
  Task<void> send_file(int fd, std::uint64_t offset, std::uint64_t length);
  StreamAwaitable<void> send_file(int fd, std::uint64_t offset, std::uint64_t length,
                                  std::nothrow_t);
  // drain(), then the transport's shutdown(): the peer reads end of stream; reads go on.
  Task<void> shutdown();
  Task<Result<void>> shutdown(std::nothrow_t);
  // Closes the transport now (waking its waiters with errc::socket_closed); undrained bytes
  // are dropped. Bytes already buffered for reading can still be read.
  void close() noexcept;

  // Bytes received but not yet returned by a read.
  std::size_t buffered() const noexcept { return read_buffer_->size() - read_pos_; }
  // Bytes written but not yet drained.
  std::size_t pending() const noexcept { return write_buffer_.size() - write_pos_; }
  // Bytes the transport took from this stream (writes, drains, files) since it was made:
  // what a server counts as sent.
  std::uint64_t bytes_written() const noexcept { return bytes_written_; }
  std::size_t write_limit() const noexcept { return write_limit_; }
  void set_write_limit(std::size_t limit) noexcept { write_limit_ = limit; }

  static constexpr std::size_t default_write_limit = 65536;
  static constexpr std::size_t default_fill = 16384;
  static constexpr std::size_t max_fill = 262144;  // one fill's most: what its read may take

 private:
  Result<std::size_t> try_fill(std::size_t max_bytes = 8192) noexcept;
  Task<Result<std::size_t>> wait_then_fill(std::size_t max_bytes = 8192);
  Error line_error(std::error_code error, std::size_t max_len) const;
  Result<bool> try_write_out(std::size_t leave) noexcept;
  Task<Result<void>> write_out(std::size_t leave);
  Result<std::size_t> try_write_direct(std::string_view data, bool more_follows) noexcept;
  Task<Result<void>> write_all_waiting(std::string_view data, bool more_follows);
  Result<std::uint64_t> try_send_file(int fd, std::uint64_t offset, std::uint64_t length) noexcept;
  Task<Result<void>> send_file_waiting(int fd, std::uint64_t offset, std::uint64_t length);
  std::string take(std::size_t n);

  std::unique_ptr<Transport> owned_transport_;
  Transport* transport_ = nullptr;  // owned_transport_, or a borrowed one
  std::string own_read_buffer_;
  std::string* read_buffer_ = &own_read_buffer_;  // own_read_buffer_, or a borrowed one
  std::size_t read_pos_ = 0;
  std::size_t search_from_ = 0;  // bytes of the buffer already scanned for a delimiter
  std::string write_buffer_;
  std::size_t write_pos_ = 0;  // bytes of write_buffer_ already written
  std::size_t write_limit_ = default_write_limit;
  std::uint64_t bytes_written_ = 0;
};

}  // namespace wire
