// wire/stream.hpp — Stream, a buffered reader/writer over a stream fd (Python's makefile()).
//
//   wire::Stream f = sock.makefile();
//   f.write("PING\n");
//   f.flush();
//   std::string line = f.read_line();        // "PONG\n"; "" at end of stream
//
// Ownership: a Stream never owns its fd; whoever does (a Socket, a pipe's owner) must keep it
// open while the Stream is used. It works on any stream fd: sockets, pipes, terminals.
//
// Bounded: read_line / read_until fail with errc::line_too_long rather than buffer more than
// max_len bytes. Resumable: a read that times out keeps every byte it had already received,
// and the next read starts from them (Python's makefile() loses them, cpython#80109).
// Writes on sockets use MSG_NOSIGNAL and writes on pipes block SIGPIPE for the call, so a
// vanished reader is an EPIPE error, never a dead process.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "wire/error.hpp"

namespace wire {
namespace detail {
class Waiter;
}

class Stream {
 public:
  // `timeout` is an idle timeout: a read or write fails with errc::timed_out once that long
  // passes with no byte moving, and a transfer that keeps moving is never cut (like Python's
  // makefile(), whose timeout bounds each underlying call). Applied with poll, whatever the
  // fd's O_NONBLOCK: a write to a blocking socket or pipe whose reader stalls times out too.
  explicit Stream(int fd, std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  Stream(Stream&& other) noexcept;
  Stream& operator=(Stream&& other) noexcept;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  // Flushes what is left, ignoring errors (call flush() to see them), like std::ofstream.
  ~Stream();

  int fileno() const noexcept { return fd_; }
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept;
  std::optional<std::chrono::nanoseconds> timeout() const noexcept;

  // Up to max_bytes: what is buffered, else one read. "" means end of stream.
  std::string read(std::size_t max_bytes);
  Result<std::string> read(std::size_t max_bytes, std::nothrow_t) noexcept;
  // Exactly n bytes; errc::unexpected_eof if the stream ends first (the bytes stay buffered).
  std::string read_exact(std::size_t n);
  Result<std::string> read_exact(std::size_t n, std::nothrow_t) noexcept;
  // Through the next '\n' inclusive. At end of stream: the partial last line, then "".
  std::string read_line(std::size_t max_len = 65536);
  Result<std::string> read_line(std::size_t max_len, std::nothrow_t) noexcept;
  // Through the next `delimiter` inclusive, within max_len bytes (delimiter included).
  std::string read_until(std::string_view delimiter, std::size_t max_len = 65536);
  Result<std::string> read_until(std::string_view delimiter, std::size_t max_len,
                                 std::nothrow_t) noexcept;

  // Buffers data; writes it out once the buffer holds buffer_limit bytes.
  void write(std::string_view data);
  Result<void> write(std::string_view data, std::nothrow_t) noexcept;
  // Writes out everything buffered. On error or timeout the unsent bytes stay buffered.
  void flush();
  Result<void> flush(std::nothrow_t) noexcept;

  // Bytes received but not yet returned by a read.
  std::size_t buffered() const noexcept { return read_buffer_.size() - read_pos_; }
  // Bytes written but not yet flushed.
  std::size_t pending() const noexcept { return write_buffer_.size(); }

  static constexpr std::size_t buffer_limit = 8192;

 private:
  // Reads once more from the fd into the buffer; 0 at end of stream.
  Result<std::size_t> fill(detail::Waiter& waiter) noexcept;
  Result<void> flush_with(detail::Waiter& waiter) noexcept;
  std::string take(std::size_t n);
  std::string describe() const;

  int fd_ = -1;
  bool is_socket_ = false;
  bool nonblocking_ = false;  // O_NONBLOCK on the fd: EAGAIN, not a blocked call, ends a read
  std::int64_t timeout_ns_ = -1;
  std::string read_buffer_;
  std::size_t read_pos_ = 0;
  std::size_t search_from_ = 0;  // bytes of the buffer already scanned for a delimiter
  std::string write_buffer_;
};

}  // namespace wire
