// wire/selector.hpp — wait on many fds at once (Python's selectors).
//
//   auto selector = wire::Selector::create();            // epoll unless asked otherwise
//   selector->register_fd(server.fileno(), wire::readable, &server);
//   for (const wire::Ready& ready : selector->select(std::chrono::seconds(1))) {
//     auto* s = static_cast<wire::Socket*>(ready.data);   // whatever you registered
//     ...
//   }
//
// Semantics live here, in the base class, and are the same for every backend: registering an
// fd twice or a closed fd is an error, unregistering an unknown fd is an error, and an error
// or hang-up on an fd is reported as readable and writable (whichever were asked for), so the
// handler's own recv or send meets the real error. Backends only translate event masks.
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

// The kind named by WIRE_SELECTOR (epoll, poll or select) if set and valid, else epoll.
SelectorKind default_selector_kind() noexcept;
std::string_view to_string(SelectorKind kind) noexcept;
std::optional<SelectorKind> selector_kind_from_string(std::string_view name) noexcept;

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

  // `events` is readable, writable or both (0 is allowed: registered but not watched).
  void register_fd(int fd, unsigned events, void* data = nullptr);
  Result<void> register_fd(int fd, unsigned events, void* data, std::nothrow_t) noexcept;
  void modify(int fd, unsigned events, void* data = nullptr);
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
  // Appends (fd, events) pairs to ready_; `data` is filled in by the base.
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
  SelectorKind kind_;
  std::vector<Registration> registry_;  // indexed by fd
  std::size_t count_ = 0;
};

}  // namespace wire
