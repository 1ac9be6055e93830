#include "wire/error.hpp"

#include <sys/select.h>

#include <cstdint>

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
      case errc::option_size_mismatch:
        return "the option's value has another size than the type asked for";
      case errc::transport_miscounted:
        return "the transport reported more bytes than it was offered, or none of a write";
      case errc::beyond_select_limit:
        static_assert(FD_SETSIZE == 1024, "the message names the limit");
        return "fd is not below FD_SETSIZE (1024), which select() cannot watch; use the poll or "
               "epoll selector";
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
      case errc::beyond_select_limit:
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

std::size_t utf8_sequence_at(std::string_view text, std::size_t at, std::uint32_t* code) noexcept {
  if (at >= text.size()) return 0;
  const auto c = static_cast<unsigned char>(text[at]);
  if (c < 0x80) {
    if (code != nullptr) *code = c;
    return 1;
  }
  const std::size_t length = c >= 0xc2 && c <= 0xdf   ? 2
                             : c >= 0xe0 && c <= 0xef ? 3
                             : c >= 0xf0 && c <= 0xf4 ? 4
                                                      : 0;
  if (length == 0 || at + length > text.size()) return 0;
  std::uint32_t value = length == 2 ? c & 0x1f : length == 3 ? c & 0x0f : c & 0x07;
  for (std::size_t k = 1; k < length; ++k) {
    const auto next = static_cast<unsigned char>(text[at + k]);
    if ((next & 0xc0) != 0x80) return 0;
    value = (value << 6) | (next & 0x3f);
  }
  if ((length == 3 && (value < 0x800 || (value >= 0xd800 && value <= 0xdfff))) ||
      (length == 4 && (value < 0x10000 || value > 0x10ffff))) {
    return 0;
  }
  if (code != nullptr) *code = value;
  return length;
}

std::string printable(std::string_view text) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  auto escape = [&](unsigned char c) {
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
  };
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      escape(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // UTF-8 passes as it is, but not the C1 controls (U+0080..U+009F: U+009B is CSI to many
    // terminals) nor bytes that are not UTF-8 (a lone 0x9b is CSI to an 8-bit terminal).
    std::uint32_t code = 0;
    const std::size_t length = utf8_sequence_at(text, i, &code);
    if (length == 0 || code <= 0x9f) {
      escape(c);
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

}  // namespace detail

}  // namespace wire
