// wire/transport.hpp — Transport: what a byte stream needs from what carries its bytes
// (read_some and write_some that never wait; wait, or wait_blocking for a program without a
// loop; shutdown, close), and the transports wire has: SocketTransport over an AsyncSocket,
// FdTransport over one or two AsyncFds, BlockingSocketTransport over a plain Socket (the
// HTTP client). AsyncStream (async_stream.hpp) and the HTTP client read and write through
// one; a TLS transport would be one more kind, layered over a socket transport
// (docs/design/byte-streams.md).
//
//   auto transport =
//       std::make_unique<wire::SocketTransport>(wire::AsyncSocket(loop, std::move(socket)));
//   wire::AsyncStream stream(std::move(transport));
//
//   // A connection record keeps the socket; a stream reads through it for a while.
//   wire::SocketTransport transport = wire::SocketTransport::borrow(conn);
//
// Ownership: each transport owns what it was given (an AsyncSocket, one or two AsyncFds, a
// Socket; an AsyncFd that borrows its fd still leaves the fd open, see async_fd.hpp), except
// a SocketTransport made by borrow(), which refers to an AsyncSocket someone else owns and
// closes it only when asked to (close()).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "wire/async_fd.hpp"
#include "wire/async_socket.hpp"
#include "wire/error.hpp"
#include "wire/task.hpp"

namespace wire {

// A byte stream's transport: what AsyncStream reads and writes through. SocketTransport and
// FdTransport are the two here; a TLS transport would implement the same five verbs over an
// AsyncSocket (docs/design/byte-streams.md). Calls are virtual: one indirect call per syscall.
class Transport {
 public:
  virtual ~Transport() = default;

  // One attempt that never waits: bytes moved (0 from read_some: end of stream), or the
  // error; detail::would_block(error) asks for co_await wait(direction) and a retry.
  virtual Result<std::size_t> read_some(std::span<char> into) noexcept = 0;
  virtual Result<std::size_t> write_some(std::string_view data) noexcept = 0;
  // write_some, told that more bytes follow at once (a file after a response head): the
  // transport may hold a short write back to send it with them (SocketTransport: MSG_MORE).
  // By default the hint is ignored.
  virtual Result<std::size_t> write_some_corked(std::string_view data) noexcept {
    return write_some(data);
  }
  // Up to `length` bytes of the file `fd` from `offset` (the fd's own offset is neither used
  // nor moved): one attempt that never waits, like write_some. SocketTransport hands the
  // pages to the socket with sendfile(2); by default the file is read (pread) and what was
  // read is written with write_some, which is what a transport that changes the bytes (TLS)
  // must do. A file that ends before `length` is errc io_error, as with AsyncSocket::sendfile.
  virtual Result<std::size_t> send_file(int fd, std::uint64_t offset, std::size_t length) noexcept;
  // Until read_some (readable) or write_some (writable) can make progress, or the idle
  // timeout passes (errc::timed_out). Which fd and event that takes is the transport's
  // business (TLS may need its socket writable to read). Destroying it withdraws the wait.
  virtual Task<Result<void>> wait(Events direction) = 0;
  // The same wait for a program without an EventLoop (the blocking HTTP client): blocks the
  // thread until read_some (readable) or write_some (writable) can make progress, or until
  // `deadline` or the idle timeout passes (errc::timed_out; nullopt: no deadline). Socket
  // and fd transports poll(2) their fd; a layered one (TLS) waits on the one under it in the
  // direction it needs. The default refuses (operation_not_supported): a transport that can
  // only wait on a loop.
  virtual Result<void> wait_blocking(
      Events direction, std::optional<std::chrono::steady_clock::time_point> deadline) noexcept;
  // No more writes: the peer reads end of stream, reading goes on.
  virtual Result<void> shutdown() noexcept = 0;
  virtual void close() noexcept = 0;
  virtual bool is_open() const noexcept = 0;
  // What an error names for reads (readable) or writes (writable): a peer's address, "stdin
  // (pipe:[1234])".
  virtual std::string describe(Events direction) const = 0;
  virtual void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept = 0;
  virtual std::optional<std::chrono::nanoseconds> timeout() const noexcept = 0;
};

// A connected stream socket (TCP, Unix). shutdown() is shutdown(SHUT_WR). Writes go through
// the AsyncSocket's own send calls, so its bytes_sent() counts them. Like AsyncSocket, a read
// that found the kernel's buffer drained (a short read) makes the next read_some report
// would-block without a syscall: the wait that follows returns at once if bytes came
// meanwhile (level-triggered), and the usual EAGAIN is saved.
class SocketTransport final : public Transport {
 public:
  explicit SocketTransport(AsyncSocket socket) noexcept
      : owned_(std::move(socket)), socket_(&owned_), drained_(owned_.drained()) {}
  // Refers to `socket`, which must outlive the transport; destroying the transport leaves it
  // open. No allocation: the HTTP server makes one per burst of requests.
  static SocketTransport borrow(AsyncSocket& socket) noexcept { return SocketTransport(&socket); }
  SocketTransport(SocketTransport&& other) noexcept;
  SocketTransport& operator=(SocketTransport&&) = delete;
  AsyncSocket& socket() noexcept { return *socket_; }

  Result<std::size_t> read_some(std::span<char> into) noexcept override;
  Result<std::size_t> write_some(std::string_view data) noexcept override;
  Result<std::size_t> write_some_corked(std::string_view data) noexcept override;
  Result<std::size_t> send_file(int fd, std::uint64_t offset, std::size_t length) noexcept override;
  Task<Result<void>> wait(Events direction) override;
  Result<void> wait_blocking(
      Events direction,
      std::optional<std::chrono::steady_clock::time_point> deadline) noexcept override;
  Result<void> shutdown() noexcept override;
  void close() noexcept override { socket_->close(); }
  bool is_open() const noexcept override { return socket_->is_open(); }
  std::string describe(Events direction) const override;
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    socket_->set_timeout(timeout);
  }
  std::optional<std::chrono::nanoseconds> timeout() const noexcept override {
    return socket_->timeout();
  }

 private:
  explicit SocketTransport(AsyncSocket* borrowed) noexcept
      : socket_(borrowed), drained_(borrowed->drained()) {}

  AsyncSocket owned_;     // unused when borrowed
  AsyncSocket* socket_;   // &owned_, or the borrowed socket
  bool drained_ = false;  // the last read emptied the kernel's buffer
};

// Reads one AsyncFd and writes another (a pipe pair: stdin and stdout, a child's stdout and
// stdin), or reads and writes one (a tty, a pty, a socket given as an fd). shutdown() closes
// the write end of a pair, shuts a socket's writing down, and closes a lone write-only fd; a
// lone fd that also reads (a tty) has no half-close: operation_not_supported.
class FdTransport final : public Transport {
 public:
  explicit FdTransport(AsyncFd both) noexcept : reader_(std::move(both)) {}
  FdTransport(AsyncFd read_end, AsyncFd write_end) noexcept
      : reader_(std::move(read_end)), writer_(std::move(write_end)), pair_(true) {}
  AsyncFd& reader() noexcept { return reader_; }
  AsyncFd& writer() noexcept { return pair_ ? writer_ : reader_; }

  Result<std::size_t> read_some(std::span<char> into) noexcept override;
  Result<std::size_t> write_some(std::string_view data) noexcept override;
  Task<Result<void>> wait(Events direction) override;
  Result<void> wait_blocking(
      Events direction,
      std::optional<std::chrono::steady_clock::time_point> deadline) noexcept override;
  Result<void> shutdown() noexcept override;
  void close() noexcept override;
  bool is_open() const noexcept override;
  std::string describe(Events direction) const override;
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept override;
  std::optional<std::chrono::nanoseconds> timeout() const noexcept override {
    return reader_.timeout();
  }

 private:
  const AsyncFd& writer() const noexcept { return pair_ ? writer_ : reader_; }

  AsyncFd reader_;
  AsyncFd writer_;  // unused for a lone fd
  bool pair_ = false;
};

// A connected stream socket (TCP, Unix) for a program without an EventLoop: the blocking
// HTTP client reads and writes through one. The socket is made non-blocking (its Socket
// timeout becomes 0) and waited for with wait_blocking (poll(2)); the awaitable wait() has
// no loop to wait on and fails with operation_not_supported. shutdown() is shutdown(SHUT_WR).
//
//   wire::BlockingSocketTransport transport(wire::create_connection("tcp://127.0.0.1:8000", 5s));
//   auto r = wire::http::request(transport, {.url = "http://127.0.0.1:8000/"});
//
// Ownership: owns the Socket (and so the fd) until release() hands it back.
class BlockingSocketTransport final : public Transport {
 public:
  // Throws wire::Error if the socket cannot be made non-blocking.
  explicit BlockingSocketTransport(Socket socket);
  Socket& socket() noexcept { return socket_; }
  // The socket back (still non-blocking), say to keep it for another request; this
  // transport is closed.
  Socket release() noexcept { return std::move(socket_); }

  Result<std::size_t> read_some(std::span<char> into) noexcept override;
  Result<std::size_t> write_some(std::string_view data) noexcept override;
  Task<Result<void>> wait(Events direction) override;
  Result<void> wait_blocking(
      Events direction,
      std::optional<std::chrono::steady_clock::time_point> deadline) noexcept override;
  Result<void> shutdown() noexcept override;
  void close() noexcept override { socket_.close(); }
  bool is_open() const noexcept override { return socket_.is_open(); }
  std::string describe(Events direction) const override;
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    timeout_ = timeout;
  }
  std::optional<std::chrono::nanoseconds> timeout() const noexcept override { return timeout_; }

 private:
  Socket socket_;
  std::optional<std::chrono::nanoseconds> timeout_;  // for wait_blocking
};

namespace detail {
// The counts a transport reports, checked: a transport that claims more than it was offered
// (a bug in it) is an error for the stream, not a buffer overrun or a throw in noexcept
// code. Every caller of the verbs goes through one of these.
// read_some: at most what was offered; 0 is the end of the stream.
inline Result<std::size_t> checked_read_count(Result<std::size_t> moved,
                                              std::size_t offered) noexcept {
  if (moved && *moved > offered) return errc::transport_miscounted;
  return moved;
}
// write_some, write_some_corked, send_file: at most what was offered, and not 0 when
// something was. A transport with no room says would-block; a 0 would send the stream back
// to wait for a socket that is already writable, round and round.
inline Result<std::size_t> checked_write_count(Result<std::size_t> moved,
                                               std::size_t offered) noexcept {
  if (moved && (*moved > offered || (*moved == 0 && offered > 0)))
    return errc::transport_miscounted;
  return moved;
}
}  // namespace detail

}  // namespace wire
