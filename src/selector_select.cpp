// The select backend: two fd_sets. It can only watch fds below FD_SETSIZE; a larger fd is
// refused at registration rather than written past the end of an fd_set. select(2) cannot
// wait for errors alone, so events 0 is refused too (see selector.hpp).
#include <fcntl.h>
#include <sys/select.h>

#include <cerrno>

#include "selector_backends.hpp"

namespace wire::detail {
namespace {

class SelectSelector final : public Selector {
 public:
  SelectSelector() : Selector(SelectorKind::select) {
    FD_ZERO(&read_);
    FD_ZERO(&write_);
  }

 protected:
  std::error_code backend_add(int fd, unsigned events) noexcept override {
    if (fd >= FD_SETSIZE) return errc::beyond_select_limit;
    if (events == 0) return std::make_error_code(std::errc::invalid_argument);
    set(fd, events);
    return {};
  }
  std::error_code backend_modify(int fd, unsigned events) noexcept override {
    if (events == 0) return std::make_error_code(std::errc::invalid_argument);
    if (::fcntl(fd, F_GETFD) < 0) return std::make_error_code(std::errc::bad_file_descriptor);
    set(fd, events);
    return {};
  }
  std::error_code backend_remove(int fd) noexcept override {
    set(fd, 0);
    return {};
  }
  std::error_code backend_select(int timeout_ms) noexcept override {
    while (max_fd_ >= 0 && !FD_ISSET(max_fd_, &read_) && !FD_ISSET(max_fd_, &write_) &&
           !is_registered(max_fd_)) {
      --max_fd_;
    }
    ::fd_set r, w;
    int n;
    for (;;) {
      r = read_;
      w = write_;
      ::timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
      n = ::select(max_fd_ + 1, &r, &w, nullptr, timeout_ms < 0 ? nullptr : &tv);
      if (n >= 0) break;
      // One closed fd fails the whole call: drop the closed ones, as epoll does, and wait
      // again (EBADF came at once, so no time was spent).
      if (errno != EBADF || !drop_closed()) return last_error();
    }
    for (int fd = 0; fd <= max_fd_ && n > 0; ++fd) {
      unsigned events = (FD_ISSET(fd, &r) ? readable : 0u) | (FD_ISSET(fd, &w) ? writable : 0u);
      if (events == 0) continue;
      n -= ((events & readable) ? 1 : 0) + ((events & writable) ? 1 : 0);
      ready_.push_back({fd, events, nullptr});
    }
    return {};
  }

 private:
  // Stops watching every watched fd that is closed; false if there was none.
  bool drop_closed() noexcept {
    bool dropped = false;
    for (int fd = 0; fd <= max_fd_; ++fd) {
      if ((FD_ISSET(fd, &read_) || FD_ISSET(fd, &write_)) && ::fcntl(fd, F_GETFD) < 0) {
        FD_CLR(fd, &read_);
        FD_CLR(fd, &write_);
        dropped = true;
      }
    }
    return dropped;
  }

  void set(int fd, unsigned events) noexcept {
    if (events & readable)
      FD_SET(fd, &read_);
    else
      FD_CLR(fd, &read_);
    if (events & writable)
      FD_SET(fd, &write_);
    else
      FD_CLR(fd, &write_);
    if (fd > max_fd_) max_fd_ = fd;
  }

  ::fd_set read_;
  ::fd_set write_;
  int max_fd_ = -1;
};

}  // namespace

Result<std::unique_ptr<Selector>> make_select_selector() noexcept {
  try {
    return std::unique_ptr<Selector>(new SelectSelector());
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

}  // namespace wire::detail
