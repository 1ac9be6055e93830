// wire/selector.hpp — wait on many fds at once (Python's selectors).
//
//   auto selector = wire::Selector::create();            // epoll unless asked otherwise
//   selector->register_fd(server.fileno(), wire::readable, &server);
//   for (const wire::Ready& ready : selector->select(std::chrono::seconds(1))) {
//     auto* s = static_cast<wire::Socket*>(ready.data);   // whatever you registered
//     ...
//   }
//
// Semantics live here, in the base class, and are the same for every backend:
//  - Readiness is reported for the events asked for: readable, writable or both.
//  - An error or hang-up (POLLERR/POLLHUP, EPOLLERR/EPOLLHUP) is reported as every event
//    asked for, so the owner's own recv or send meets the real error (as in Python's
//    selectors and Redis's ae). An fd whose owner ignores such a report is reported again.
//  - Events 0 watches the fd for errors and hang-ups alone, reported as readable | writable:
//    what netcat needs to notice a peer that resets a half-closed connection while it waits
//    on stdin. The kernel's poll and epoll report these whatever is asked for; select(2)
//    cannot wait for them alone, so the select backend refuses 0 (std::errc::invalid_argument)
//    rather than never report them. To stop watching an fd, unregister it.
//  - Registering an fd twice or a closed fd, and modifying or unregistering an fd that is
//    not registered, are errors naming the fd and the cause.
//  - An fd closed while registered is dropped: never reported again, select() goes on
//    waiting for the others, changing its events fails with EBADF, unregister() succeeds.
//    Dropping is what epoll does by itself (the kernel forgets a closed file); poll's
//    POLLNVAL and select's EBADF would otherwise report the fd forever or fail every select.
//    (epoll watches the open file, not the number: a closed fd whose file lives on in a
//    dup() is still reported. Unregister before closing and none of this matters.)
// Backends only translate event masks.
//
// Ownership: a Selector never owns the fds registered with it; unregister an fd before
// closing it. Not thread-safe: one thread drives a selector.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "wire/error.hpp"

namespace wire {

enum Events : unsigned { readable = 1u << 0, writable = 1u << 1 };

enum class SelectorKind { epoll, poll, select };

// The kind named by WIRE_SELECTOR (epoll, poll or select); epoll when it is unset or empty.
// Throws wire::Error (std::errc::invalid_argument) for any other value, e.g.
// "WIRE_SELECTOR=bogus: expected epoll, poll or select": it is read wherever a selector,
// loop or ServeOptions is made without a kind, so a typo fails there instead of silently
// running epoll.
SelectorKind default_selector_kind();
std::string_view to_string(SelectorKind kind) noexcept;
std::optional<SelectorKind> selector_kind_from_string(std::string_view name) noexcept;

class EventLoop;

struct Ready {
  int fd;
  unsigned events;  // readable | writable
  void* data;       // as registered
};

class Selector {
 public:
  static std::unique_ptr<Selector> create(SelectorKind kind = default_selector_kind());
  static Result<std::unique_ptr<Selector>> create(SelectorKind kind, std::nothrow_t) noexcept;

  Selector(const Selector&) = delete;
  Selector& operator=(const Selector&) = delete;
  virtual ~Selector() = default;

  // `events` is readable, writable or both; 0 watches for errors and hang-ups alone (not on
  // the select backend, see above). `data` comes back in every Ready for this fd.
  void register_fd(int fd, unsigned events, void* data = nullptr);
  Result<void> register_fd(int fd, unsigned events, void* data, std::nothrow_t) noexcept;
  // Changes the events; the data stays what it was unless new data is given.
  void modify(int fd, unsigned events);
  void modify(int fd, unsigned events, void* data);
  Result<void> modify(int fd, unsigned events, std::nothrow_t) noexcept;
  Result<void> modify(int fd, unsigned events, void* data, std::nothrow_t) noexcept;
  void unregister(int fd);
  Result<void> unregister(int fd, std::nothrow_t) noexcept;

  // Waits until at least one registered fd is ready or the timeout passes (nullopt: no
  // limit; zero: just look). EINTR returns an empty list. The span is valid until the next
  // call on this selector.
  std::span<const Ready> select(std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
  Result<std::span<const Ready>> select(std::optional<std::chrono::nanoseconds> timeout,
                                        std::nothrow_t) noexcept;

  bool is_registered(int fd) const noexcept;
  std::size_t size() const noexcept { return count_; }
  SelectorKind kind() const noexcept { return kind_; }

 protected:
  explicit Selector(SelectorKind kind) noexcept : kind_(kind) {}

  // What a backend implements: translate, add, change, remove, wait.
  virtual std::error_code backend_add(int fd, unsigned events) noexcept = 0;
  virtual std::error_code backend_modify(int fd, unsigned events) noexcept = 0;
  virtual std::error_code backend_remove(int fd) noexcept = 0;
  // Appends (fd, events) pairs to ready_, an error or hang-up as readable | writable, and
  // skips (and stops watching) fds found closed; `data` is filled in by the base.
  virtual std::error_code backend_select(int timeout_ms) noexcept = 0;

  // The backend's output buffer; data is filled in from the registry after backend_select.
  std::vector<Ready> ready_;

  struct Registration {
    bool registered = false;
    unsigned events = 0;
    void* data = nullptr;
  };
  const Registration* registration(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < registry_.size() ? &registry_[fd] : nullptr;
  }

 private:
  // The event loop's way in. It keeps its own state per fd (which waiter, which events), so
  // its registrations skip the registry: no second record per connection, no fcntl per
  // registration, no filtering pass per wait. size() still counts them. The loop's
  // selector is its own (EventLoop::selector() is const), so no fd is in both.
  friend class EventLoop;
  std::error_code loop_add(int fd, unsigned events) noexcept;
  std::error_code loop_modify(int fd, unsigned events) noexcept {
    return backend_modify(fd, events);
  }
  void loop_remove(int fd) noexcept;
  // What the backend reported, unfiltered, with null data.
  Result<std::span<const Ready>> loop_select(
      std::optional<std::chrono::nanoseconds> timeout) noexcept;

  Result<void> change(int fd, unsigned events, std::optional<void*> data) noexcept;
  [[noreturn]] void fail(std::error_code error, std::string_view operation, int fd,
                         unsigned events) const;

  SelectorKind kind_;
  std::vector<Registration> registry_;  // indexed by fd
  std::size_t count_ = 0;
};

}  // namespace wire
