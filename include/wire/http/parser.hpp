// wire/http/parser.hpp — a strict, incremental HTTP/1.1 parser that owns no socket.
//
//   wire::http::RequestHead head;
//   auto r = wire::http::parse_request_head(buffer, head);   // buffer: bytes read so far
//   if (r.state == wire::http::ParseState::incomplete) { /* read more, call again */ }
//   if (r.state == wire::http::ParseState::error) { /* answer r.error.status, close */ }
//   // complete: head.method, head.target, head.headers(), head.body, r.consumed
//
// Zero-copy and allocation-free: every string_view points into the caller's buffer, and
// the headers live in a fixed array inside RequestHead. Call again with the grown buffer
// whenever bytes arrive (pass the previous size as `already_checked` to skip re-scanning):
// any split of the input, even one byte at a time, gives the same result.
//
// Strict per RFC 9112, because leniency is how request smuggling happens: Transfer-Encoding
// with Content-Length, differing repeated Content-Length, non-digit or overflowing lengths,
// a final coding other than chunked, obs-fold, whitespace before a colon, non-token
// methods and names, control characters in values, bare CR or LF, bad versions, and a 1.1
// request without exactly one Host are all rejected, each with a reason for the log.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace wire::http {

enum class ParseState { incomplete, complete, error };

// Why a message was rejected: the status to answer and a fixed reason for the log.
struct ParseError {
  int status = 0;
  const char* reason = "";
};

struct ParseResult {
  ParseState state = ParseState::incomplete;
  std::size_t consumed = 0;  // bytes of the head (complete only)
  ParseError error;
};

struct Limits {
  std::size_t max_request_line = 8 * 1024;   // longer: 414
  std::size_t max_header_block = 16 * 1024;  // longer: 431
  std::size_t max_header_count = 100;        // more: 431
  std::uint64_t max_body = 1 << 20;          // larger: 413
};

struct Header {
  std::string_view name;
  std::string_view value;  // without surrounding whitespace
};

enum class BodyKind { none, length, chunked, until_close };

inline constexpr std::size_t max_headers = 100;

// What both heads share: headers and the framing derived from them.
struct MessageHead {
  int version_minor = 1;  // HTTP/1.x
  BodyKind body = BodyKind::none;
  std::uint64_t content_length = 0;
  bool keep_alive = true;

  std::span<const Header> headers() const noexcept { return {header_storage, header_count}; }
  // The first header with this name (case-insensitive), or "".
  std::string_view header(std::string_view name) const noexcept;

  Header header_storage[max_headers];
  std::size_t header_count = 0;
};

struct RequestHead : MessageHead {
  std::string_view method;
  // In the form its method allows (RFC 9112 3.2): origin-form "/path?q" for most, also
  // absolute-form "http://host/path" (whose authority is then `host`), authority-form
  // "host:port" for CONNECT only, "*" for OPTIONS only; anything else is a 400.
  std::string_view target;
  std::string_view host;  // the Host field (valid uri-host[:port]) or the target's authority
  bool expect_continue = false;
};

struct ResponseHead : MessageHead {
  int status = 0;
  std::string_view reason;
};

ParseResult parse_request_head(std::string_view input, RequestHead& out, const Limits& limits = {},
                               std::size_t already_checked = 0) noexcept;
// `request_method` decides the framing of the body (a response to HEAD has none).
ParseResult parse_response_head(std::string_view input, ResponseHead& out,
                                std::string_view request_method = "GET", const Limits& limits = {},
                                std::size_t already_checked = 0) noexcept;

// Decodes a chunked body incrementally: feed it bytes as they come; it consumes what it
// can and hands back the chunk data as views into the input.
class ChunkedDecoder {
 public:
  explicit ChunkedDecoder(const Limits& limits = {}) noexcept : limits_(limits) {}

  struct Step {
    std::size_t consumed = 0;
    std::string_view data;  // body bytes found in this step (a view into the input)
    bool done = false;      // the last chunk and the trailers have been read
    ParseError error;       // status != 0: the body is malformed or too large
  };
  // Consumes from the front of `input`. Call again with the unconsumed rest plus new bytes.
  Step feed(std::string_view input) noexcept;
  std::uint64_t body_size() const noexcept { return total_; }

 private:
  enum class State { size_line, data, data_crlf, trailers, done };
  Limits limits_;
  State state_ = State::size_line;
  std::uint64_t remaining_ = 0;
  std::uint64_t total_ = 0;
  std::size_t trailer_bytes_ = 0;
  std::size_t trailer_count_ = 0;
};

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept;
// uri-host [ ":" port ] (RFC 9110 7.2): what a Host field or a target's authority may hold.
bool is_valid_host(std::string_view host) noexcept;
// What a handler may put in a response header: a token for the name; for the value, no
// CR, LF or other control character (which would split the field: response splitting).
bool is_valid_header_name(std::string_view name) noexcept;
bool is_valid_header_value(std::string_view value) noexcept;
// 1*DIGIT without sign, spaces or overflow (Content-Length, byte ranges).
bool parse_decimal(std::string_view text, std::uint64_t& value) noexcept;

}  // namespace wire::http
