// wire/error.hpp — the one error type of wire, and Result<T> for code that must not throw.
//
// Every failing call says what it was doing and to whom:
//   connect tcp://127.0.0.1:9: Connection refused
// The throwing overload raises wire::Error; the overload taking std::nothrow returns a
// Result<T> holding either the value or a std::error_code. Nothing is cached in a socket.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace wire {

// Conditions that are not errno values. Compare with `ec == wire::errc::timed_out`;
// timed_out also compares equal to std::errc::timed_out.
enum class errc {
  timed_out = 1,         // a deadline passed before the operation could finish
  unexpected_eof,        // the peer closed before the bytes asked for arrived
  line_too_long,         // read_line / read_until found no delimiter within max_len bytes
  invalid_address,       // an address string could not be parsed
  socket_closed,         // the Socket was closed or detached; its old fd number is never used
  option_size_mismatch,  // getsockopt returned a value of another size than the type asked for
  transport_miscounted,  // a Transport said it moved more bytes than it was offered (its bug)
  beyond_select_limit,   // the select selector cannot watch an fd >= FD_SETSIZE (1024)
};

const std::error_category& wire_category() noexcept;
// getaddrinfo's EAI_* codes.
const std::error_category& resolver_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), wire_category()};
}

// `OPERATION ADDRESS: reason`. operation() and address() give the parts back.
class Error : public std::system_error {
 public:
  // what() shows control bytes in `address` as \xNN (address() keeps them).
  Error(std::error_code code, std::string operation, std::string address);
  // `detail` replaces the reason text (used when one call failed for several reasons, such
  // as every address create_connection tried).
  Error(std::error_code code, std::string operation, std::string address, std::string detail);

  const std::string& operation() const noexcept { return operation_; }
  const std::string& address() const noexcept { return address_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string operation_;
  std::string address_;
  std::string message_;
};

namespace detail {
// A std::error_code without its default constructor's call: that one asks libstdc++ for
// system_category() out of line, and a Result made on every successful syscall paid it
// (0.6 % of the echo server's CPU). No error reads as std::error_code().
class ErrorSlot {
 public:
  ErrorSlot() noexcept = default;
  ErrorSlot(std::error_code error) noexcept  // NOLINT: implicit by design
      : value_(error.value()), category_(&error.category()) {}
  std::error_code get() const noexcept {
    return category_ != nullptr ? std::error_code(value_, *category_) : std::error_code();
  }
  explicit operator bool() const noexcept { return value_ != 0; }

 private:
  int value_ = 0;
  const std::error_category* category_ = nullptr;
};
}  // namespace detail

// The value of a call that succeeded, or the error_code of one that failed.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}           // NOLINT: implicit by design
  Result(std::error_code error) : error_(error) {}        // NOLINT
  Result(errc error) : error_(make_error_code(error)) {}  // NOLINT

  bool has_value() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  std::error_code error() const noexcept { return error_.get(); }

  // Throws wire::Error (operation "result") when there is no value.
  T& value() & { return check(), *value_; }
  const T& value() const& { return check(), *value_; }
  T&& value() && { return check(), std::move(*value_); }
  T& operator*() & noexcept { return *value_; }
  T&& operator*() && noexcept { return std::move(*value_); }
  T* operator->() noexcept { return &*value_; }
  const T* operator->() const noexcept { return &*value_; }

 private:
  void check() const {
    if (!value_) throw Error(error_.get(), "result", "");
  }
  std::optional<T> value_;
  detail::ErrorSlot error_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(std::error_code error) : error_(error) {}        // NOLINT
  Result(errc error) : error_(make_error_code(error)) {}  // NOLINT

  bool has_value() const noexcept { return !error_; }
  explicit operator bool() const noexcept { return has_value(); }
  std::error_code error() const noexcept { return error_.get(); }
  void value() const {
    if (error_) throw Error(error_.get(), "result", "");
  }

 private:
  detail::ErrorSlot error_;
};

namespace detail {
// The error_code for the current errno.
inline std::error_code last_error() noexcept {
  return {errno, std::system_category()};
}
// `text` for an error message: control bytes (a NUL, a CR) shown as \xNN, so a message
// about hostile input cannot carry them.
std::string printable(std::string_view text);
// The length of the UTF-8 sequence that starts at text[at] (1 for ASCII), or 0 when the
// bytes there are not UTF-8 (a stray continuation byte, an overlong form, a surrogate, a
// truncated sequence). `code` receives the code point when it is not null.
std::size_t utf8_sequence_at(std::string_view text, std::size_t at,
                             std::uint32_t* code = nullptr) noexcept;
}  // namespace detail

}  // namespace wire

template <>
struct std::is_error_code_enum<wire::errc> : std::true_type {};
