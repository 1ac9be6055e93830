#include "wire/http/parser.hpp"

#include <algorithm>
#include <bit>
#include <cctype>
#include <cstring>

namespace wire::http {
namespace {

constexpr std::size_t max_chunk_line = 4096;

// Byte classes, looked up rather than computed: the parser checks every byte of a head.
struct ByteClasses {
  bool tchar[256] = {};
  bool field[256] = {};
  bool target[256] = {};
  bool reg_name[256] = {};    // unreserved and sub-delims (RFC 3986 3.2.2), '%' apart
  bool ip_literal[256] = {};  // what may stand between [ and ]: hex digits, ':', '.', 'v'
  unsigned char lower[256] = {};
  constexpr ByteClasses() {
    for (int c = 0; c < 256; ++c) {
      tchar[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      // field-value characters: VCHAR, obs-text, SP, HTAB (no other control characters).
      field[c] = c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7f);
      target[c] = c >= 0x21 && c <= 0x7e;
      lower[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    for (unsigned char c :
         {'!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~'})
      tchar[c] = true;
    for (int c = 0; c < 256; ++c) {
      const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      const bool hex = (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9');
      reg_name[c] = alnum;
      ip_literal[c] = hex || c == ':' || c == '.' || c == 'v' || c == 'V';
    }
    for (unsigned char c :
         {'-', '.', '_', '~', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '='})
      reg_name[c] = true;
  }
};
constexpr ByteClasses byte_classes;

bool is_tchar(unsigned char c) {
  return byte_classes.tchar[c];
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!byte_classes.tchar[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

bool is_field_char(unsigned char c) {
  return byte_classes.field[c];
}

bool all_field_chars(std::string_view s) {
  for (char c : s) {
    if (!byte_classes.field[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

// Inline so the header loops below cost a length compare for most names.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (byte_classes.lower[static_cast<unsigned char>(a[i])] !=
        byte_classes.lower[static_cast<unsigned char>(b[i])])
      return false;
  }
  return true;
}

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

ParseResult fail(int status, const char* reason) {
  return ParseResult{ParseState::error, 0, ParseError{status, reason}};
}

// Finds the CRLF ending the line that starts at `from`, checking each byte on the way in
// order, so that the first problem by position wins whatever the split of the input:
// the line limit, then a bare CR or LF. Returns the index of the CR, npos if the line is
// not complete yet, or sets `error`.
std::size_t find_line_end(std::string_view input, std::size_t from, std::size_t limit_from,
                          std::size_t limit, int limit_status, const char* limit_reason,
                          ParseResult& error) {
  // Bytes at or past limit_from + limit are over the limit; only those before it are
  // searched for the first CR or LF, with memchr (vectorised): CR, then LF before it.
  const std::size_t end = std::min(input.size(), limit_from + limit);
  std::size_t i = end;
  if (from < end) {
    const char* begin = input.data() + from;
    const std::size_t span = end - from;
    const char* cr = static_cast<const char*>(std::memchr(begin, '\r', span));
    const std::size_t before_cr = cr != nullptr ? static_cast<std::size_t>(cr - begin) : span;
    const char* lf = static_cast<const char*>(std::memchr(begin, '\n', before_cr));
    i = from + (lf != nullptr ? static_cast<std::size_t>(lf - begin) : before_cr);
  }
  if (i < end) {
    if (input[i] == '\n') {
      error = fail(400, "bare LF (lines must end with CRLF)");
      return std::string_view::npos;
    }
    if (i + 1 == input.size()) return std::string_view::npos;  // wait for the LF
    if (input[i + 1] != '\n') {
      error = fail(400, "bare CR");
      return std::string_view::npos;
    }
    return i;
  }
  if (input.size() - limit_from >= limit) error = fail(limit_status, limit_reason);
  return std::string_view::npos;
}

bool is_scheme(std::string_view s) {
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
  if (s.empty() || !std::isalpha(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
}

// Resuming after an incomplete parse of input[0, already_checked): whether the new bytes can
// change the outcome, so that a head arriving in many small reads costs O(bytes) in all
// rather than a full parse per read (picohttpparser's last_len). A full parse is due when
// the new bytes hold the head's end, a bare CR or LF (an error the parse reports), when the
// input outgrows every limit (the parse names which), or when its size crosses a power of
// two: at most a few dozen full parses per head, O(bytes) together, and an error on an
// earlier line is still found while the input is at most twice as long.
bool worth_parsing(std::string_view input, std::size_t already_checked, const Limits& limits) {
  if (already_checked == 0 || already_checked >= input.size()) return true;
  if (input.size() > limits.max_request_line + limits.max_header_block) return true;
  if (std::bit_width(already_checked) != std::bit_width(input.size())) return true;
  const std::size_t from = already_checked > 3 ? already_checked - 3 : 0;
  for (std::size_t i = from; i < input.size(); ++i) {
    const char c = input[i];
    if (c == '\n') {
      if (i == 0 || input[i - 1] != '\r') return true;                          // bare LF
      if (i >= 3 && input[i - 2] == '\n' && input[i - 3] == '\r') return true;  // CRLF CRLF
    } else if (c == '\r' && i + 1 < input.size() && input[i + 1] != '\n') {
      return true;  // bare CR
    }
  }
  return false;
}

// HTTP-version = "HTTP/" DIGIT "." DIGIT. Sets minor, or returns the status to answer.
int parse_version(std::string_view v, int& minor) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9') {
    return 400;
  }
  if (v[5] != '1') return 505;  // HTTP/0.9, HTTP/2 (the h2 preface), HTTP/3
  minor = v[7] - '0';
  return 0;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = trim_ows(list.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// Reads the header lines from `pos` up to the empty line. On success sets `pos` past the
// empty line.
ParseResult parse_fields(std::string_view input, std::size_t& pos, MessageHead& out,
                         const Limits& limits) {
  const std::size_t block_start = pos;
  out.header_count = 0;
  for (;;) {
    ParseResult error;
    std::size_t end = find_line_end(input, pos, block_start, limits.max_header_block, 431,
                                    "header block too large", error);
    if (error.state == ParseState::error) return error;
    if (end == std::string_view::npos) return {};  // incomplete
    std::string_view line = input.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) return ParseResult{ParseState::complete, pos, {}};
    if (is_ows(line.front())) return fail(400, "obs-fold (a header line starting with whitespace)");
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "header line without a colon");
    std::string_view name = line.substr(0, colon);
    if (!name.empty() && is_ows(name.back())) {
      return fail(400, "whitespace between a header name and its colon");
    }
    if (!is_token(name)) return fail(400, "header name is not a token");
    std::string_view value = trim_ows(line.substr(colon + 1));
    if (!all_field_chars(value)) {
      return fail(400, "control character in a header value");
    }
    if (out.header_count == std::min(limits.max_header_count, max_headers)) {
      return fail(431, "too many header fields");
    }
    out.header_storage[out.header_count++] = Header{name, value};
  }
}

// Content-Length and Transfer-Encoding, the two ways to frame a body, checked against
// each other. `is_request` applies the request-only rules (chunked must be final).
ParseResult derive_framing(MessageHead& head, bool is_request, const Limits& limits) {
  bool has_length = false;
  bool has_te = false;
  bool chunked_last = false;
  bool chunked_earlier = false;
  bool other_coding = false;
  for (const Header& h : head.headers()) {
    if (iequals(h.name, "content-length")) {
      std::uint64_t value = 0;
      if (!parse_decimal(h.value, value)) return fail(400, "Content-Length is not plain digits");
      if (has_length && value != head.content_length) {
        return fail(400, "repeated Content-Length with different values");
      }
      has_length = true;
      head.content_length = value;
    } else if (iequals(h.name, "transfer-encoding")) {
      has_te = true;
      std::string_view list = h.value;
      while (!list.empty()) {
        auto comma = list.find(',');
        std::string_view coding = trim_ows(list.substr(0, comma));
        if (!coding.empty()) {
          if (chunked_last) chunked_earlier = true;  // something follows a chunked
          chunked_last = iequals(coding, "chunked");
          if (!chunked_last) other_coding = true;
        }
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    }
  }
  if (has_te) {
    if (has_length) return fail(400, "both Transfer-Encoding and Content-Length");
    if (head.version_minor == 0) return fail(400, "Transfer-Encoding in an HTTP/1.0 message");
    if (chunked_earlier) return fail(400, "chunked is not the final transfer coding only once");
    if (!chunked_last) {
      if (is_request) return fail(400, "final transfer coding is not chunked");
      head.body = BodyKind::until_close;
      return ParseResult{ParseState::complete, 0, {}};
    }
    if (other_coding) return fail(501, "unsupported transfer coding");
    head.body = BodyKind::chunked;
    return ParseResult{ParseState::complete, 0, {}};
  }
  if (has_length) {
    if (head.content_length > limits.max_body) return fail(413, "body larger than the limit");
    head.body = head.content_length == 0 ? BodyKind::none : BodyKind::length;
    return ParseResult{ParseState::complete, 0, {}};
  }
  head.body = is_request ? BodyKind::none : BodyKind::until_close;
  return ParseResult{ParseState::complete, 0, {}};
}

void derive_keep_alive(MessageHead& head) {
  bool close = false, keep = false;
  for (const Header& h : head.headers()) {
    if (!iequals(h.name, "connection")) continue;
    close = close || has_token(h.value, "close");
    keep = keep || has_token(h.value, "keep-alive");
  }
  head.keep_alive = !close && (head.version_minor >= 1 || keep);
}

}  // namespace

bool parse_decimal(std::string_view text, std::uint64_t& value) noexcept {
  if (text.empty() || text.size() > 19) return false;  // 19 digits cannot overflow 64 bits
  value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

bool is_valid_host(std::string_view host) noexcept {
  // uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): an IP-literal in brackets, or a
  // reg-name / IPv4address of unreserved, sub-delims and pct-encoded bytes; port = *DIGIT.
  // Checked on every request, so one pass over a byte table for the common case.
  const char* p = host.data();
  const char* end = p + host.size();
  if (p != end && *p == '[') {
    for (++p; p != end && *p != ']'; ++p) {
      if (!byte_classes.ip_literal[static_cast<unsigned char>(*p)]) return false;
    }
    if (p == end || p == host.data() + 1) return false;  // no "]", or "[]"
    ++p;
    if (p == end) return true;
    if (*p != ':') return false;
  } else {
    for (; p != end && *p != ':'; ++p) {
      const unsigned char c = static_cast<unsigned char>(*p);
      if (byte_classes.reg_name[c]) continue;
      if (c != '%' || end - p < 3 || !std::isxdigit(static_cast<unsigned char>(p[1])) ||
          !std::isxdigit(static_cast<unsigned char>(p[2]))) {
        return false;
      }
      p += 2;
    }
    if (p == end) return true;
  }
  for (++p; p != end; ++p) {  // the port, after the ':'
    if (*p < '0' || *p > '9') return false;
  }
  return true;
}

bool is_valid_header_name(std::string_view name) noexcept {
  return is_token(name);
}

bool is_valid_header_value(std::string_view value) noexcept {
  // field-value: no CR, LF, NUL or other controls (they would end or split the field).
  return all_field_chars(value);
}

bool equals_ignore_case(std::string_view a, std::string_view b) noexcept {
  return iequals(a, b);
}

std::string_view MessageHead::header(std::string_view name) const noexcept {
  for (const Header& h : headers()) {
    if (iequals(h.name, name)) return h.value;
  }
  return {};
}

ParseResult parse_request_head(std::string_view input, RequestHead& out, const Limits& limits,
                               std::size_t already_checked) noexcept {
  if (!worth_parsing(input, already_checked, limits)) return {};
  std::size_t pos = 0;
  // RFC 9112 2.2: ignore empty lines before a request line (left over after a body), but
  // count them against the request line's limit: a flood of them is not a request.
  while (pos < input.size() && input[pos] == '\r') {
    if (pos >= limits.max_request_line) return fail(400, "too many empty lines before a request");
    if (pos + 1 == input.size()) return {};
    if (input[pos + 1] != '\n') return fail(400, "bare CR");
    pos += 2;
  }
  if (pos < input.size() && input[pos] == '\n')
    return fail(400, "bare LF (lines must end with CRLF)");

  ParseResult error;
  const std::size_t line_end =
      find_line_end(input, pos, pos, limits.max_request_line, 414, "request line too long", error);
  if (error.state == ParseState::error) return error;
  if (line_end == std::string_view::npos) return {};
  std::string_view line = input.substr(pos, line_end - pos);
  auto first_space = line.find(' ');
  auto last_space = line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space) {
    return fail(400, "request line is not METHOD SP TARGET SP VERSION");
  }
  out.method = line.substr(0, first_space);
  out.target = line.substr(first_space + 1, last_space - first_space - 1);
  std::string_view version = line.substr(last_space + 1);
  if (!is_token(out.method)) return fail(400, "method is not a token");
  if (out.target.empty() || !std::all_of(out.target.begin(), out.target.end(), [](char c) {
        return byte_classes.target[static_cast<unsigned char>(c)];
      })) {
    return fail(400, "invalid request target");
  }
  if (int status = parse_version(version, out.version_minor); status != 0) {
    return fail(status, status == 505 ? "HTTP version not supported" : "invalid HTTP version");
  }
  // RFC 9112 3.2: the target's form must be one its method allows.
  std::string_view target_authority;
  const bool is_connect = out.method == "CONNECT";
  if (out.target.front() == '/') {
    if (is_connect) return fail(400, "CONNECT needs an authority-form target (host:port)");
  } else if (out.target == "*") {
    if (out.method != "OPTIONS") return fail(400, "the * target is for OPTIONS only");
  } else if (auto scheme_end = out.target.find("://");
             !is_connect && scheme_end != std::string_view::npos && scheme_end > 0) {
    // absolute-form: its authority, not the Host field, names the host (RFC 9112 3.2.2).
    if (!is_scheme(out.target.substr(0, scheme_end))) return fail(400, "invalid URI scheme");
    std::string_view rest = out.target.substr(scheme_end + 3);
    target_authority = rest.substr(0, rest.find_first_of("/?"));
    if (target_authority.empty() || target_authority.find('@') != std::string_view::npos ||
        !is_valid_host(target_authority)) {
      return fail(400, "invalid authority in an absolute-form target");
    }
  } else if (is_connect) {
    if (!is_valid_host(out.target) || out.target.rfind(':') == std::string_view::npos ||
        out.target.back() == ']') {
      return fail(400, "CONNECT target is not host:port");
    }
  } else {
    return fail(400, "request target is not origin-form (/path) or absolute-form");
  }

  pos = line_end + 2;
  ParseResult fields = parse_fields(input, pos, out, limits);
  if (fields.state != ParseState::complete) return fields;

  std::size_t hosts = 0;
  out.expect_continue = false;
  out.host = {};
  for (const Header& h : out.headers()) {
    if (iequals(h.name, "host")) {
      ++hosts;
      out.host = h.value;
    } else if (iequals(h.name, "expect")) {
      // An HTTP/1.0 client knows no 100 (Continue): RFC 9110 10.1.1 says to ignore it.
      out.expect_continue = out.version_minor >= 1 && iequals(h.value, "100-continue");
    }
  }
  if (out.version_minor >= 1 && hosts != 1)
    return fail(400, "HTTP/1.1 request without exactly one Host");
  if (hosts > 1) return fail(400, "more than one Host");
  if (hosts == 1 && !out.host.empty() && !is_valid_host(out.host))
    return fail(400, "Host is not uri-host[:port]");
  if (!target_authority.empty()) out.host = target_authority;
  out.content_length = 0;
  ParseResult framing = derive_framing(out, true, limits);
  if (framing.state == ParseState::error) return framing;
  derive_keep_alive(out);
  return ParseResult{ParseState::complete, pos, {}};
}

ParseResult parse_response_head(std::string_view input, ResponseHead& out,
                                std::string_view request_method, const Limits& limits,
                                std::size_t already_checked) noexcept {
  if (!worth_parsing(input, already_checked, limits)) return {};
  ParseResult error;
  const std::size_t line_end =
      find_line_end(input, 0, 0, limits.max_request_line, 502, "status line too long", error);
  if (error.state == ParseState::error) return error;
  if (line_end == std::string_view::npos) return {};
  std::string_view line = input.substr(0, line_end);
  // HTTP-version SP 3DIGIT SP [reason-phrase]
  if (line.size() < 12 || line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    return fail(502, "malformed status line");
  }
  if (parse_version(line.substr(0, 8), out.version_minor) != 0) {
    return fail(502, "invalid HTTP version in status line");
  }
  std::string_view code = line.substr(9, 3);
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail(502, "status code is not three digits");
  }
  out.status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view();
  if (!all_field_chars(out.reason)) {
    return fail(502, "control character in the reason phrase");
  }
  std::size_t pos = line_end + 2;
  ParseResult fields = parse_fields(input, pos, out, limits);
  if (fields.state == ParseState::error) return fail(502, fields.error.reason);
  if (fields.state != ParseState::complete) return fields;
  out.content_length = 0;
  ParseResult framing = derive_framing(out, false, limits);
  if (framing.state == ParseState::error) {
    return fail(framing.error.status == 413 ? 413 : 502, framing.error.reason);
  }
  // Methods are case-sensitive (RFC 9110 9.1): "head" is some other method, with a body.
  if (out.status / 100 == 1 || out.status == 204 || out.status == 304 || request_method == "HEAD") {
    out.body = BodyKind::none;
  }
  derive_keep_alive(out);
  if (out.body == BodyKind::until_close) out.keep_alive = false;
  return ParseResult{ParseState::complete, pos, {}};
}

ChunkedDecoder::Step ChunkedDecoder::feed(std::string_view input) noexcept {
  Step step;
  auto error = [&](int status, const char* reason) {
    step.error = ParseError{status, reason};
    return step;
  };
  while (step.consumed < input.size() || state_ == State::done) {
    std::string_view rest = input.substr(step.consumed);
    switch (state_) {
      case State::size_line: {
        ParseResult line_error;
        std::size_t end =
            find_line_end(rest, 0, 0, max_chunk_line, 400, "chunk size line too long", line_error);
        if (line_error.state == ParseState::error) {
          return error(line_error.error.status, line_error.error.reason);
        }
        if (end == std::string_view::npos) return step;
        std::string_view line = rest.substr(0, end);
        std::size_t digits = 0;
        std::uint64_t size = 0;
        while (digits < line.size()) {
          char c = line[digits];
          int v = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
          if (v < 0) break;
          if (digits == 16) return error(400, "chunk size overflows");
          size = size * 16 + static_cast<std::uint64_t>(v);
          ++digits;
        }
        if (digits == 0) return error(400, "chunk size is not hex");
        // chunk-ext: *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
        std::string_view ext = line.substr(digits);
        while (!ext.empty()) {
          ext = trim_ows(ext);
          if (ext.empty() || ext.front() != ';') return error(400, "junk after the chunk size");
          ext.remove_prefix(1);
          ext = trim_ows(ext);
          std::size_t n = 0;
          while (n < ext.size() && is_tchar(ext[n])) ++n;
          if (n == 0) return error(400, "chunk extension without a name");
          ext.remove_prefix(n);
          ext = trim_ows(ext);
          if (!ext.empty() && ext.front() == '=') {
            ext = trim_ows(ext.substr(1));
            if (!ext.empty() && ext.front() == '"') {
              std::size_t i = 1;
              for (; i < ext.size() && ext[i] != '"'; ++i) {
                if (ext[i] == '\\')
                  ++i;
                else if (!is_field_char(ext[i]))
                  return error(400, "bad quoted chunk extension");
              }
              if (i >= ext.size()) return error(400, "unterminated quoted chunk extension");
              ext.remove_prefix(i + 1);
            } else {
              n = 0;
              while (n < ext.size() && is_tchar(ext[n])) ++n;
              if (n == 0) return error(400, "chunk extension without a value");
              ext.remove_prefix(n);
            }
          }
        }
        if (size > limits_.max_body || total_ > limits_.max_body - size) {
          return error(413, "body larger than the limit");
        }
        step.consumed += end + 2;
        if (size == 0) {
          state_ = State::trailers;
        } else {
          remaining_ = size;
          state_ = State::data;
        }
        break;
      }
      case State::data: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, rest.size()));
        step.data = rest.substr(0, n);
        step.consumed += n;
        remaining_ -= n;
        total_ += n;
        if (remaining_ == 0) state_ = State::data_crlf;
        return step;  // one contiguous piece of data per step
      }
      case State::data_crlf:
        if (rest.size() < 2) {
          if (rest.size() == 1 && rest[0] != '\r')
            return error(400, "chunk data not followed by CRLF");
          return step;
        }
        if (rest[0] != '\r' || rest[1] != '\n')
          return error(400, "chunk data not followed by CRLF");
        step.consumed += 2;
        state_ = State::size_line;
        break;
      case State::trailers: {
        ParseResult line_error;
        const std::size_t room =
            limits_.max_header_block - std::min(trailer_bytes_, limits_.max_header_block);
        std::size_t end =
            find_line_end(rest, 0, 0, room, 431, "trailer section too large", line_error);
        if (line_error.state == ParseState::error) {
          return error(line_error.error.status, line_error.error.reason);
        }
        if (end == std::string_view::npos) return step;
        std::string_view line = rest.substr(0, end);
        step.consumed += end + 2;
        trailer_bytes_ += end + 2;
        if (line.empty()) {
          state_ = State::done;
          break;
        }
        if (is_ows(line.front())) return error(400, "obs-fold in a trailer");
        auto colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
          return error(400, "malformed trailer field");
        }
        std::string_view value = trim_ows(line.substr(colon + 1));
        if (!all_field_chars(value)) {
          return error(400, "control character in a trailer value");
        }
        if (++trailer_count_ > limits_.max_header_count)
          return error(431, "too many trailer fields");
        break;
      }
      case State::done:
        step.done = true;
        return step;
    }
  }
  return step;
}

}  // namespace wire::http
