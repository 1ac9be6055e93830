#include "wire/selector.hpp"

#include <fcntl.h>
#include <sys/select.h>

#include <cstdlib>
#include <limits>

#include "selector_backends.hpp"

namespace wire {
namespace {

int to_milliseconds(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return -1;
  if (timeout->count() <= 0) return 0;
  // Round up: a 0.3 ms timeout must wait, not spin at 0.
  auto ms = (timeout->count() + 999'999) / 1'000'000;
  return static_cast<int>(std::min<std::int64_t>(ms, std::numeric_limits<int>::max()));
}

std::string fd_text(int fd) {
  return "fd " + std::to_string(fd);
}

}  // namespace

std::string_view to_string(SelectorKind kind) noexcept {
  switch (kind) {
    case SelectorKind::epoll:
      return "epoll";
    case SelectorKind::poll:
      return "poll";
    case SelectorKind::select:
      return "select";
  }
  return "unknown";
}

std::optional<SelectorKind> selector_kind_from_string(std::string_view name) noexcept {
  for (auto kind : {SelectorKind::epoll, SelectorKind::poll, SelectorKind::select}) {
    if (name == to_string(kind)) return kind;
  }
  return std::nullopt;
}

SelectorKind default_selector_kind() noexcept {
  if (const char* name = std::getenv("WIRE_SELECTOR")) {
    if (auto kind = selector_kind_from_string(name)) return *kind;
  }
  return SelectorKind::epoll;
}

Result<std::unique_ptr<Selector>> Selector::create(SelectorKind kind, std::nothrow_t) noexcept {
  switch (kind) {
    case SelectorKind::epoll:
      return detail::make_epoll_selector();
    case SelectorKind::poll:
      return detail::make_poll_selector();
    case SelectorKind::select:
      return detail::make_select_selector();
  }
  return std::make_error_code(std::errc::invalid_argument);
}

std::unique_ptr<Selector> Selector::create(SelectorKind kind) {
  auto selector = create(kind, std::nothrow);
  if (!selector) throw Error(selector.error(), "create selector", std::string(to_string(kind)));
  return std::move(*selector);
}

bool Selector::is_registered(int fd) const noexcept {
  const Registration* r = registration(fd);
  return r != nullptr && r->registered;
}

Result<void> Selector::register_fd(int fd, unsigned events, void* data, std::nothrow_t) noexcept {
  if (fd < 0 || ::fcntl(fd, F_GETFD) < 0)
    return std::make_error_code(std::errc::bad_file_descriptor);
  if (events & ~(readable | writable)) return std::make_error_code(std::errc::invalid_argument);
  if (is_registered(fd)) return std::make_error_code(std::errc::file_exists);
  try {
    if (static_cast<std::size_t>(fd) >= registry_.size()) registry_.resize(fd + 1);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  if (auto ec = backend_add(fd, events)) return ec;
  registry_[fd] = {true, events, data};
  ++count_;
  return {};
}

void Selector::register_fd(int fd, unsigned events, void* data) {
  auto r = register_fd(fd, events, data, std::nothrow);
  if (r) return;
  if (kind_ == SelectorKind::select && fd >= FD_SETSIZE) {
    throw Error(r.error(), "register_fd", fd_text(fd),
                "fd is not below FD_SETSIZE (" + std::to_string(FD_SETSIZE) +
                    "), which select() cannot watch; use the poll or epoll selector");
  }
  if (r.error() == std::errc::file_exists) {
    throw Error(r.error(), "register_fd", fd_text(fd), "already registered; use modify()");
  }
  throw Error(r.error(), "register_fd", fd_text(fd));
}

Result<void> Selector::modify(int fd, unsigned events, void* data, std::nothrow_t) noexcept {
  if (!is_registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
  if (events & ~(readable | writable)) return std::make_error_code(std::errc::invalid_argument);
  Registration& r = registry_[fd];
  if (events != r.events) {
    if (auto ec = backend_modify(fd, events)) return ec;
  }
  r.events = events;
  r.data = data;
  return {};
}

void Selector::modify(int fd, unsigned events, void* data) {
  auto r = modify(fd, events, data, std::nothrow);
  if (!r) {
    throw Error(
        r.error(), "modify", fd_text(fd),
        r.error() == std::errc::no_such_file_or_directory ? "not registered" : r.error().message());
  }
}

Result<void> Selector::unregister(int fd, std::nothrow_t) noexcept {
  if (!is_registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
  // The kernel may already have forgotten an fd that was closed while registered; the
  // registration goes either way.
  (void)backend_remove(fd);
  registry_[fd] = {};
  --count_;
  return {};
}

void Selector::unregister(int fd) {
  auto r = unregister(fd, std::nothrow);
  if (!r) throw Error(r.error(), "unregister", fd_text(fd), "not registered");
}

Result<std::span<const Ready>> Selector::select(std::optional<std::chrono::nanoseconds> timeout,
                                                std::nothrow_t) noexcept {
  ready_.clear();
  if (auto ec = backend_select(to_milliseconds(timeout))) {
    if (ec == std::errc::interrupted) return std::span<const Ready>();
    return ec;
  }
  // Keep only what was asked for, and attach each registration's data.
  std::size_t kept = 0;
  for (const Ready& r : ready_) {
    const Registration* reg = registration(r.fd);
    if (reg == nullptr || !reg->registered) continue;
    unsigned events = r.events & reg->events;
    if (events == 0) continue;
    ready_[kept++] = {r.fd, events, reg->data};
  }
  ready_.resize(kept);
  return std::span<const Ready>(ready_);
}

std::span<const Ready> Selector::select(std::optional<std::chrono::nanoseconds> timeout) {
  auto r = select(timeout, std::nothrow);
  if (!r) throw Error(r.error(), "select", std::string(to_string(kind_)));
  return *r;
}

}  // namespace wire
