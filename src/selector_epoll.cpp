// The epoll backend: the kernel keeps the interest list, select costs O(ready).
#include <sys/epoll.h>
#include <unistd.h>

#include "selector_backends.hpp"

namespace wire::detail {
namespace {

std::uint32_t to_epoll(unsigned events) {
  return ((events & readable) ? EPOLLIN : 0u) | ((events & writable) ? EPOLLOUT : 0u);
}

class EpollSelector final : public Selector {
 public:
  explicit EpollSelector(int epoll_fd) : Selector(SelectorKind::epoll), epoll_fd_(epoll_fd) {
    events_.resize(256);
  }
  ~EpollSelector() override { ::close(epoll_fd_); }

 protected:
  std::error_code backend_add(int fd, unsigned events) noexcept override {
    return control(EPOLL_CTL_ADD, fd, events);
  }
  std::error_code backend_modify(int fd, unsigned events) noexcept override {
    auto ec = control(EPOLL_CTL_MOD, fd, events);
    // The kernel forgot the fd when it was closed; its number may be some other file now.
    if (ec == std::errc::no_such_file_or_directory)
      return std::make_error_code(std::errc::bad_file_descriptor);
    return ec;
  }
  std::error_code backend_remove(int fd) noexcept override { return control(EPOLL_CTL_DEL, fd, 0); }
  std::error_code backend_select(int timeout_ms) noexcept override {
    int n = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (n < 0) return last_error();
    for (int i = 0; i < n; ++i) {
      const std::uint32_t e = events_[i].events;
      unsigned events = ((e & EPOLLIN) ? readable : 0u) | ((e & EPOLLOUT) ? writable : 0u);
      if (e & (EPOLLERR | EPOLLHUP)) events |= readable | writable;
      ready_.push_back({events_[i].data.fd, events, nullptr});
    }
    // A full batch hints at more ready fds than room: grow for the next call.
    if (static_cast<std::size_t>(n) == events_.size() && events_.size() < 65536) {
      events_.resize(events_.size() * 2);
    }
    return {};
  }

 private:
  std::error_code control(int op, int fd, unsigned events) noexcept {
    ::epoll_event ev{};
    ev.events = to_epoll(events);
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, op, fd, &ev) < 0) return last_error();
    return {};
  }

  int epoll_fd_;
  std::vector<::epoll_event> events_;
};

}  // namespace

Result<std::unique_ptr<Selector>> make_epoll_selector() noexcept {
  int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return last_error();
  try {
    return std::unique_ptr<Selector>(new EpollSelector(fd));
  } catch (const std::bad_alloc&) {
    ::close(fd);
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

}  // namespace wire::detail
