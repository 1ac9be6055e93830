// The poll backend: an array of pollfd kept dense (removal swaps in the last entry). An fd
// found closed (POLLNVAL) is dropped by storing ~fd, which poll(2) skips as negative.
#include <fcntl.h>
#include <poll.h>

#include "selector_backends.hpp"

namespace wire::detail {
namespace {

short to_poll(unsigned events) {
  return static_cast<short>(((events & readable) ? POLLIN : 0) |
                            ((events & writable) ? POLLOUT : 0));
}

class PollSelector final : public Selector {
 public:
  PollSelector() : Selector(SelectorKind::poll) {}

 protected:
  std::error_code backend_add(int fd, unsigned events) noexcept override {
    try {
      if (static_cast<std::size_t>(fd) >= slot_.size()) slot_.resize(fd + 1, -1);
      slot_[fd] = static_cast<int>(fds_.size());
      fds_.push_back({fd, to_poll(events), 0});
    } catch (const std::bad_alloc&) {
      return std::make_error_code(std::errc::not_enough_memory);
    }
    return {};
  }
  std::error_code backend_modify(int fd, unsigned events) noexcept override {
    ::pollfd& p = fds_[slot_[fd]];
    if (p.fd < 0 || ::fcntl(fd, F_GETFD) < 0) {
      return std::make_error_code(std::errc::bad_file_descriptor);
    }
    p.events = to_poll(events);
    return {};
  }
  std::error_code backend_remove(int fd) noexcept override {
    const int at = slot_[fd];
    fds_[at] = fds_.back();
    slot_[real_fd(fds_[at])] = at;
    fds_.pop_back();
    slot_[fd] = -1;
    return {};
  }
  std::error_code backend_select(int timeout_ms) noexcept override {
    for (;;) {
      int n = ::poll(fds_.data(), fds_.size(), timeout_ms);
      if (n < 0) return last_error();
      bool dropped = false;
      for (::pollfd& p : fds_) {
        if (n == 0) break;
        if (p.revents == 0) continue;
        --n;
        if (p.revents & POLLNVAL) {  // closed while registered: dropped, as epoll does
          p.fd = ~p.fd;
          dropped = true;
          continue;
        }
        unsigned events =
            ((p.revents & POLLIN) ? readable : 0u) | ((p.revents & POLLOUT) ? writable : 0u);
        if (p.revents & (POLLERR | POLLHUP)) events |= readable | writable;
        ready_.push_back({p.fd, events, nullptr});
      }
      // Only dropped fds woke us, at once: wait again, as epoll would have gone on waiting.
      if (!dropped || !ready_.empty()) return {};
    }
  }

 private:
  static int real_fd(const ::pollfd& p) noexcept { return p.fd < 0 ? ~p.fd : p.fd; }

  std::vector<::pollfd> fds_;
  std::vector<int> slot_;  // fd -> index in fds_, -1 when absent
};

}  // namespace

Result<std::unique_ptr<Selector>> make_poll_selector() noexcept {
  try {
    return std::unique_ptr<Selector>(new PollSelector());
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

}  // namespace wire::detail
