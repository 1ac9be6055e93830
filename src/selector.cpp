#include "wire/selector.hpp"

#include <fcntl.h>
#include <sys/select.h>

#include <cstdlib>
#include <cstring>
#include <limits>

#include "selector_backends.hpp"

namespace wire {
namespace {

int to_milliseconds(std::optional<std::chrono::nanoseconds> timeout) {
  if (!timeout) return -1;
  if (timeout->count() <= 0) return 0;
  // Round up: a 0.3 ms timeout must wait, not spin at 0.
  auto ms = timeout->count() / 1'000'000 + (timeout->count() % 1'000'000 != 0);
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

SelectorKind default_selector_kind() {
  const char* name = std::getenv("WIRE_SELECTOR");
  if (name == nullptr || *name == '\0') return SelectorKind::epoll;
  if (auto kind = selector_kind_from_string(name)) return *kind;
  // A misspelt backend used to mean epoll without a word: a user comparing backends would
  // have measured epoll twice.
  throw Error(std::make_error_code(std::errc::invalid_argument),
              "WIRE_SELECTOR=" + detail::printable(name), "", "expected epoll, poll or select");
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
  if (auto r = register_fd(fd, events, data, std::nothrow); !r)
    fail(r.error(), "register", fd, events);
}

Result<void> Selector::change(int fd, unsigned events, std::optional<void*> data) noexcept {
  if (!is_registered(fd)) return std::make_error_code(std::errc::no_such_file_or_directory);
  if (events & ~(readable | writable)) return std::make_error_code(std::errc::invalid_argument);
  Registration& r = registry_[fd];
  if (events != r.events) {
    if (auto ec = backend_modify(fd, events)) return ec;
  }
  r.events = events;
  if (data) r.data = *data;
  return {};
}

Result<void> Selector::modify(int fd, unsigned events, std::nothrow_t) noexcept {
  return change(fd, events, std::nullopt);
}

Result<void> Selector::modify(int fd, unsigned events, void* data, std::nothrow_t) noexcept {
  return change(fd, events, data);
}

void Selector::modify(int fd, unsigned events) {
  if (auto r = change(fd, events, std::nullopt); !r) fail(r.error(), "modify", fd, events);
}

void Selector::modify(int fd, unsigned events, void* data) {
  if (auto r = change(fd, events, data); !r) fail(r.error(), "modify", fd, events);
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
  if (auto r = unregister(fd, std::nothrow); !r) fail(r.error(), "unregister", fd, 0);
}

void Selector::fail(std::error_code error, std::string_view operation, int fd,
                    unsigned events) const {
  // The errno's name too: "Invalid argument" alone does not say which rule was broken.
  std::string name;
  if (error.category() == std::generic_category() || error.category() == std::system_category()) {
    const char* symbol = ::strerrorname_np(error.value());
    name = symbol != nullptr ? symbol : "errno " + std::to_string(error.value());
  }
  const std::string code = " (" + name + ")";
  std::string why;
  if (error == std::errc::file_exists) {
    why = "already registered" + code + "; use modify() to change its events";
  } else if (error == std::errc::no_such_file_or_directory) {
    why = "not registered" + code;
  } else if (error == std::errc::bad_file_descriptor) {
    why = operation == "register" ? "not an open file descriptor" + code
                                  : "closed while registered" + code + "; unregister it";
  } else if (error == std::errc::invalid_argument && (events & ~(readable | writable))) {
    why = "events must be readable, writable, both or 0, not " + std::to_string(events) + code;
  } else if (error == errc::beyond_select_limit) {
    why = error.message();
  } else if (error == std::errc::invalid_argument && kind_ == SelectorKind::select && events == 0) {
    why = "select() cannot wait for errors alone, so events 0 is refused" + code +
          "; ask for readable or writable, or use the poll or epoll selector";
  } else if (error == std::errc::operation_not_permitted && kind_ == SelectorKind::epoll) {
    why = "epoll cannot watch this kind of file (a regular file or a folder)" + code +
          "; use the poll or select selector";
  } else {
    why = error.message() + code;
  }
  throw Error(error, std::string(operation), fd_text(fd), why);
}

Result<std::span<const Ready>> Selector::select(std::optional<std::chrono::nanoseconds> timeout,
                                                std::nothrow_t) noexcept {
  auto reported = loop_select(timeout);
  if (!reported) return reported.error();
  // Keep only what was asked for, and attach each registration's data. An fd registered
  // with no events is only ever reported for an error or hang-up, and then as both.
  std::size_t kept = 0;
  for (const Ready& r : ready_) {
    const Registration* reg = registration(r.fd);
    if (reg == nullptr || !reg->registered) continue;
    unsigned events = reg->events == 0 ? r.events : r.events & reg->events;
    if (events == 0) continue;
    ready_[kept++] = {r.fd, events, reg->data};
  }
  ready_.resize(kept);
  return std::span<const Ready>(ready_);
}

std::error_code Selector::loop_add(int fd, unsigned events) noexcept {
  if (auto ec = backend_add(fd, events)) return ec;
  ++count_;
  return {};
}

void Selector::loop_remove(int fd) noexcept {
  (void)backend_remove(fd);  // as in unregister: the kernel may have forgotten a closed fd
  --count_;
}

Result<std::span<const Ready>> Selector::loop_select(
    std::optional<std::chrono::nanoseconds> timeout) noexcept {
  ready_.clear();
  if (auto ec = backend_select(to_milliseconds(timeout))) {
    if (ec == std::errc::interrupted) return std::span<const Ready>();
    return ec;
  }
  return std::span<const Ready>(ready_);
}

std::span<const Ready> Selector::select(std::optional<std::chrono::nanoseconds> timeout) {
  auto r = select(timeout, std::nothrow);
  if (!r) throw Error(r.error(), "select", std::string(to_string(kind_)));
  return *r;
}

}  // namespace wire
