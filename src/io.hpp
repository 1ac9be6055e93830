// Internal: the one place where blocking, non-blocking and timed-out I/O are decided.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <optional>
#include <system_error>

#include "wire/error.hpp"

namespace wire::detail {

// Waits for readiness after a call met EAGAIN, honouring one timeout across an operation's
// waits (restarted by progressed() where the operation is a transfer in pieces). The deadline is
// computed only when a wait is first needed, so a call that succeeds at once never reads the clock.
class Waiter {
 public:
  explicit Waiter(std::int64_t timeout_ns) noexcept : timeout_ns_(timeout_ns) {}

  // Returns {} once `fd` is ready for `events` (or has an error/hang-up for the next call to
  // report), errc::timed_out after the deadline, EAGAIN when the socket is non-blocking.
  std::error_code wait(int fd, short events) noexcept;
  // The operation moved (bytes came or went): the timeout starts again from the next wait,
  // so it bounds idleness, not the whole transfer.
  void progressed() noexcept { started_ = false; }

 private:
  std::int64_t timeout_ns_;
  bool started_ = false;
  std::chrono::steady_clock::time_point deadline_{};
};

// Waits for readiness until `deadline` (nullopt: without limit): {} once `fd` is ready for
// `events` or has an error or hang-up for the next call to report, errc::timed_out after
// the deadline. What a Transport's wait_blocking does on its fd.
std::error_code wait_until(int fd, short events,
                           std::optional<std::chrono::steady_clock::time_point> deadline) noexcept;

// Repeats `op` (a syscall returning -1 and errno on failure) across EINTR and, through the
// waiter, EAGAIN. Returns the syscall's result or the error that ended it.
template <class Op>
Result<std::size_t> retry_io(int fd, short events, Waiter& waiter, Op&& op) noexcept {
  for (;;) {
    ::ssize_t n = op();
    if (n >= 0) return static_cast<std::size_t>(n);
    int error = errno;
    if (error == EINTR) continue;
    if (error != EAGAIN && error != EWOULDBLOCK)
      return std::error_code(error, std::system_category());
    if (auto ec = waiter.wait(fd, events)) return ec;
  }
}

}  // namespace wire::detail
