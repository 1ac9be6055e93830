#include "wire/error.hpp"

#include <netdb.h>

namespace wire {
namespace {

class WireCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "wire"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::timed_out:
        return "timed out";
      case errc::unexpected_eof:
        return "peer closed the connection before all bytes arrived";
      case errc::line_too_long:
        return "no delimiter within the maximum length";
      case errc::invalid_address:
        return "invalid address";
      case errc::socket_closed:
        return "socket is closed or detached";
    }
    return "unknown wire error";
  }
  // Lets callers test `ec == std::errc::timed_out` whichever layer produced the timeout.
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<errc>(code)) {
      case errc::timed_out:
        return std::errc::timed_out;
      case errc::socket_closed:
        return std::errc::bad_file_descriptor;
      case errc::invalid_address:
        return std::errc::invalid_argument;
      default:
        return {code, *this};
    }
  }
};

class ResolverCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "resolver"; }
  std::string message(int code) const override { return ::gai_strerror(code); }
};

std::string join(const std::string& operation, const std::string& address) {
  if (address.empty()) return operation;
  return operation + " " + address;
}

}  // namespace

const std::error_category& wire_category() noexcept {
  static const WireCategory category;
  return category;
}

const std::error_category& resolver_category() noexcept {
  static const ResolverCategory category;
  return category;
}

Error::Error(std::error_code code, std::string operation, std::string address)
    : Error(code, std::move(operation), std::move(address), code.message()) {}

Error::Error(std::error_code code, std::string operation, std::string address, std::string detail)
    : std::system_error(code),
      operation_(std::move(operation)),
      address_(std::move(address)),
      // A peer chooses its own Unix name (ESC, newline, NUL...): shown escaped, so an error
      // about it cannot forge lines on a terminal. Idempotent for text already escaped.
      message_(join(operation_, detail::printable(address_)) + ": " + detail) {}

namespace detail {

std::string printable(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace detail

}  // namespace wire
