#include "io.hpp"

#include <ctime>

#include "wire/loop.hpp"

namespace wire::detail {

std::error_code Waiter::wait(int fd, short events) noexcept {
  if (timeout_ns_ == 0) return std::make_error_code(std::errc::resource_unavailable_try_again);
  if (timeout_ns_ > 0 && !started_) {
    deadline_ = later(std::chrono::steady_clock::now(), std::chrono::nanoseconds(timeout_ns_));
    started_ = true;
  }
  for (;;) {
    ::timespec wait_for{};
    ::timespec* wait_ptr = nullptr;  // blocking mode on an fd that is non-blocking anyway
    if (timeout_ns_ > 0) {
      auto left = deadline_ - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) return errc::timed_out;
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      wait_for.tv_sec = static_cast<std::time_t>(ns / 1'000'000'000);
      wait_for.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      wait_ptr = &wait_for;
    }
    ::pollfd pfd{fd, events, 0};
    int n = ::ppoll(&pfd, 1, wait_ptr, nullptr);
    if (n > 0) {
      if (pfd.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
      return {};
    }
    if (n < 0 && errno != EINTR) return last_error();
  }
}

std::error_code wait_until(int fd, short events,
                           std::optional<std::chrono::steady_clock::time_point> deadline) noexcept {
  for (;;) {
    ::timespec wait_for{};
    ::timespec* wait_ptr = nullptr;
    bool last_look = false;
    if (deadline) {
      auto left = *deadline - std::chrono::steady_clock::now();
      // A deadline already past still gets one look: an fd that is ready is not timed out.
      if (left <= std::chrono::nanoseconds(0)) {
        left = std::chrono::nanoseconds(0);
        last_look = true;
      }
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      wait_for.tv_sec = static_cast<std::time_t>(ns / 1'000'000'000);
      wait_for.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      wait_ptr = &wait_for;
    }
    ::pollfd pfd{fd, events, 0};
    const int n = ::ppoll(&pfd, 1, wait_ptr, nullptr);
    if (n > 0) {
      if (pfd.revents & POLLNVAL) return std::make_error_code(std::errc::bad_file_descriptor);
      return {};
    }
    if (n < 0 && errno != EINTR) return last_error();
    if (last_look && n == 0) return errc::timed_out;
  }
}

}  // namespace wire::detail
