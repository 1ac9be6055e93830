// URLs for the HTTP client: parse_url, redirect resolution (RFC 3986 §5.2) and the rule
// for where a redirect may go. No sockets here: fuzz/url_fuzz.cpp links this file alone.
#include "url.hpp"

#include <cstdint>

#include "wire/error.hpp"

namespace wire::http {
namespace {

constexpr std::string_view http_scheme = "http://";
constexpr std::string_view unix_scheme = "http+unix:";

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (lower(s[i]) != prefix[i]) return false;
  }
  return true;
}

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_unreserved(char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool is_sub_delim(char c) {
  return std::string_view("!$&'()*+,;=").find(c) != std::string_view::npos;
}

using wire::detail::printable;

std::string quote(std::string_view s) {
  return "'" + printable(s) + "'";
}

std::string byte_name(unsigned char c) {
  static const char* hex = "0123456789abcdef";
  std::string code = std::string("0x") + hex[c >> 4] + hex[c & 15];
  switch (c) {
    case '\0':
      return "NUL (" + code + ")";
    case '\r':
      return "CR (" + code + ")";
    case '\n':
      return "LF (" + code + ")";
    case '\t':
      return "tab (" + code + ")";
    case ' ':
      return "space (" + code + ")";
    default:
      if (c > 0x20 && c < 0x7f) return "'" + std::string(1, static_cast<char>(c)) + "'";
      return "byte " + code;
  }
}

Error bad_url(std::string_view url, const std::string& why) {
  return Error(errc::invalid_address, "parse url", printable(url), why);
}

// The first byte of a path (extra "/"), query or fragment (extra "/?") that RFC 3986 does
// not allow there, a '%' not followed by two hex digits included; npos if none. Everything
// refused here would otherwise go into the request line as it is: CR LF is header
// injection, a space splits the request line.
std::size_t first_bad_byte(std::string_view part, std::string_view extra) {
  for (std::size_t i = 0; i < part.size(); ++i) {
    const char c = part[i];
    if (c == '%') {
      if (i + 2 >= part.size() || !is_hex(part[i + 1]) || !is_hex(part[i + 2])) return i;
      i += 2;
      continue;
    }
    if (is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@') continue;
    if (extra.find(c) != std::string_view::npos) continue;
    return i;
  }
  return std::string_view::npos;
}

// Throws unless `part`, found at `offset` in `url`, holds only what RFC 3986 allows.
void check_part(std::string_view url, std::string_view part, std::size_t offset,
                std::string_view extra, const char* what) {
  const std::size_t bad = first_bad_byte(part, extra);
  if (bad == std::string_view::npos) return;
  const std::string at = " at offset " + std::to_string(offset + bad);
  if (part[bad] == '%') {
    throw bad_url(url, "'%' not followed by two hex digits" + at + " in the " + what);
  }
  throw bad_url(url, byte_name(static_cast<unsigned char>(part[bad])) + at +
                         " is not allowed in a URL's " + what + "; percent-encode it");
}

// An http+unix: URL after its scheme: the socket path, then ":/target". A trailing ':'
// with no target is the separator too, so that "http+unix:/s.sock:" names /s.sock.
struct UnixParts {
  std::string_view socket;
  std::string_view tail;  // "/path?query#fragment", or ""
};
UnixParts split_unix(std::string_view rest) {
  const auto split = rest.find(":/");
  if (split != std::string_view::npos) return {rest.substr(0, split), rest.substr(split + 1)};
  if (!rest.empty() && rest.back() == ':') return {rest.substr(0, rest.size() - 1), {}};
  return {rest, {}};
}

// A URI reference cut up as RFC 3986 Appendix B does.
struct Reference {
  std::string_view scheme;  // empty: none
  bool has_authority = false;
  std::string_view authority;
  std::string_view path;
  bool has_query = false;
  std::string_view query;
  bool has_fragment = false;
  std::string_view fragment;
};

// The path, query and fragment of a target ("/p?q#f"). Cut by hand, not as a reference:
// a target has no scheme or authority, so "/a:b" and "//x" stay paths.
Reference split_target(std::string_view target) {
  Reference r;
  const auto path_end = std::min(target.find_first_of("?#"), target.size());
  r.path = target.substr(0, path_end);
  target.remove_prefix(path_end);
  if (!target.empty() && target.front() == '?') {
    const auto end = std::min(target.find('#'), target.size());
    r.has_query = true;
    r.query = target.substr(1, end - 1);
    target.remove_prefix(end);
  }
  if (!target.empty() && target.front() == '#') {
    r.has_fragment = true;
    r.fragment = target.substr(1);
  }
  return r;
}

Reference split_reference(std::string_view ref) {
  Reference r;
  const auto colon = ref.find_first_of(":/?#");
  if (colon != std::string_view::npos && colon > 0 && ref[colon] == ':') {
    r.scheme = ref.substr(0, colon);
    ref.remove_prefix(colon + 1);
  }
  if (ref.substr(0, 2) == "//") {
    ref.remove_prefix(2);
    const auto end = std::min(ref.find_first_of("/?#"), ref.size());
    r.has_authority = true;
    r.authority = ref.substr(0, end);
    ref.remove_prefix(end);
  }
  const Reference tail = split_target(ref);
  r.path = tail.path;
  r.has_query = tail.has_query;
  r.query = tail.query;
  r.has_fragment = tail.has_fragment;
  r.fragment = tail.fragment;
  return r;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

// RFC 3986 §5.2.3.
std::string merge(std::string_view base_path, bool base_has_authority, std::string_view path) {
  if (base_has_authority && base_path.empty()) return "/" + std::string(path);
  const auto slash = base_path.rfind('/');
  if (slash == std::string_view::npos) return std::string(path);
  return std::string(base_path.substr(0, slash + 1)) + std::string(path);
}

std::string query_text(bool has, std::string_view query) {
  return has ? "?" + std::string(query) : std::string();
}

// Parses the target part of a URL ("/path?query#fragment", or "" for "/"): validated,
// the fragment dropped (it is never sent).
std::string parse_target(std::string_view url, std::string_view tail, std::size_t offset) {
  Reference t = split_target(tail);
  if (!t.path.empty() && t.path.front() != '/') {
    throw bad_url(url, "the path must start with '/'");
  }
  check_part(url, t.path, offset, "/", "path");
  const std::size_t query_at = offset + t.path.size() + 1;
  if (t.has_query) check_part(url, t.query, query_at, "/?", "query");
  if (t.has_fragment) {
    check_part(url, t.fragment, offset + tail.size() - t.fragment.size(), "/?", "fragment");
  }
  std::string target = t.path.empty() ? "/" : std::string(t.path);
  return target + query_text(t.has_query, t.query);
}

int hex_value(char c) {
  return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

// RFC 3986 §3.2.1 userinfo: unreserved, sub-delims, ':' and %XX; percent-decoded, since
// Basic auth carries the bytes themselves. A decoded control byte is refused: it would end
// up in the Authorization header's base64 only, but a user never means one.
std::string decode_userinfo(std::string_view url, std::string_view info, std::size_t offset) {
  std::string out;
  for (std::size_t i = 0; i < info.size(); ++i) {
    const char c = info[i];
    if (c == '%' && i + 2 < info.size() && is_hex(info[i + 1]) && is_hex(info[i + 2])) {
      const auto decoded =
          static_cast<unsigned char>(hex_value(info[i + 1]) * 16 + hex_value(info[i + 2]));
      if (decoded < 0x20 || decoded == 0x7f) {
        throw bad_url(url, byte_name(decoded) + " (encoded) at offset " +
                               std::to_string(offset + i) + " is not allowed in user information");
      }
      out.push_back(static_cast<char>(decoded));
      i += 2;
      continue;
    }
    if (!is_unreserved(c) && !is_sub_delim(c) && c != ':') {
      throw bad_url(url, byte_name(static_cast<unsigned char>(c)) + " at offset " +
                             std::to_string(offset + i) +
                             " is not allowed in user information (percent-encode it)");
    }
    out.push_back(c);
  }
  if (out.empty()) throw bad_url(url, "empty user information before '@'");
  return out;
}

// A reg-name for the resolver: letters, digits, '-', '.' and '_'.
bool is_host_name_char(char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_';
}

}  // namespace

namespace detail {}  // namespace detail

Url parse_url(std::string_view url) {
  Url out;
  if (starts_with_ci(url, "https://")) throw bad_url(url, "https is not supported");
  if (starts_with_ci(url, unix_scheme)) {
    const UnixParts parts = split_unix(url.substr(unix_scheme.size()));
    if (parts.socket.empty()) throw bad_url(url, "empty Unix socket path");
    // "@NAME" is a Linux abstract socket, as in unix:@NAME addresses.
    if (parts.socket == "@") throw bad_url(url, "empty abstract socket name after '@'");
    for (std::size_t i = 0; i < parts.socket.size(); ++i) {
      const auto c = static_cast<unsigned char>(parts.socket[i]);
      if (c < 0x20 || c == 0x7f) {
        throw bad_url(url, byte_name(c) + " at offset " + std::to_string(unix_scheme.size() + i) +
                               " is not allowed in a Unix socket path");
      }
    }
    out.connect = "unix:" + std::string(parts.socket);
    out.host = "localhost";
    out.target = parse_target(url, parts.tail, url.size() - parts.tail.size());
    return out;
  }
  if (!starts_with_ci(url, http_scheme)) {
    throw bad_url(url,
                  "expected http://HOST[:PORT]/PATH, http+unix:/SOCKET:/PATH or "
                  "http+unix:@NAME:/PATH");
  }
  const std::string_view rest = url.substr(http_scheme.size());
  const std::size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  std::size_t host_offset = http_scheme.size();  // for error messages
  // user:pass@ becomes Basic auth; the last '@' ends it (a password may hold an encoded one).
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    out.userinfo = decode_userinfo(url, authority.substr(0, at), http_scheme.size());
    authority = authority.substr(at + 1);
    host_offset += at + 1;
  }
  std::string_view host = authority, port;
  std::string_view zone;  // an IPv6 zone (RFC 6874: [fe80::1%25eth0])
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) throw bad_url(url, "missing ']'");
    host = authority.substr(0, close + 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') throw bad_url(url, "junk after ']'");
      port = authority.substr(close + 2);
      has_port = true;
    }
    std::string_view inside = host.substr(1, host.size() - 2);
    if (const auto percent = inside.find('%'); percent != std::string_view::npos) {
      if (inside.substr(percent, 3) != "%25" || percent + 3 == inside.size()) {
        throw bad_url(url, "write an IPv6 zone as %25NAME, as in [fe80::1%25eth0] (RFC 6874)");
      }
      zone = inside.substr(percent + 3);
      inside = inside.substr(0, percent);
      for (char c : zone) {
        if (!is_unreserved(c)) {
          throw bad_url(
              url, byte_name(static_cast<unsigned char>(c)) + " is not allowed in an IPv6 zone");
        }
      }
    }
    if (inside.empty()) throw bad_url(url, "empty IPv6 address");
    for (char c : inside) {
      if (!is_hex(c) && c != ':' && c != '.') {
        throw bad_url(
            url, byte_name(static_cast<unsigned char>(c)) + " is not allowed in an IPv6 address");
      }
    }
    host = host.substr(0, inside.size() + 1);  // "[" + address, "]" added back below
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    has_port = true;
  }
  const bool bracketed = !host.empty() && host.front() == '[';
  if (host.empty()) throw bad_url(url, "empty host");
  if (!bracketed) {
    for (std::size_t i = 0; i < host.size(); ++i) {
      if (!is_host_name_char(host[i])) {
        throw bad_url(url, byte_name(static_cast<unsigned char>(host[i])) + " at offset " +
                               std::to_string(host_offset + i) + " is not allowed in a host name");
      }
    }
  }
  std::uint32_t port_number = 80;
  if (has_port && !port.empty()) {  // "host:" means the default port (RFC 3986 §3.2.3)
    if (port.size() > 5) throw bad_url(url, "port " + quote(port) + " out of range 1-65535");
    port_number = 0;
    for (char c : port) {
      if (c < '0' || c > '9') throw bad_url(url, "port " + quote(port) + " is not a number");
      port_number = port_number * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (port_number == 0 || port_number > 65535) {
      throw bad_url(url, "port " + quote(port) + " out of range 1-65535");
    }
  }
  // Scheme and host are case-insensitive (RFC 3986 §6.2.2.1); a zone names an interface,
  // whose name is not.
  std::string name = lowercase(host) + (bracketed ? "]" : "");
  const std::string port_text = std::to_string(port_number);
  std::string connect_name = name;
  if (!zone.empty()) connect_name.insert(connect_name.size() - 1, "%" + std::string(zone));
  out.connect = "tcp://" + connect_name + ":" + port_text;
  out.host = port_number == 80 ? name : name + ":" + port_text;
  out.target = parse_target(url, rest.substr(authority_end), http_scheme.size() + authority_end);
  return out;
}

std::string percent_encode(std::string_view bytes, std::string_view also_keep) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  out.reserve(bytes.size());
  for (const char c : bytes) {
    if (is_unreserved(c) || (c != '\0' && also_keep.find(c) != std::string_view::npos)) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += hex[byte >> 4];
      out += hex[byte & 15];
    }
  }
  return out;
}

std::string redact_userinfo(std::string_view url) {
  std::string out(url);
  const auto scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  const auto authority = scheme + 3;
  const auto end = std::min(out.find_first_of("/?#", authority), out.size());
  const auto at = out.rfind('@', end);
  if (at == std::string::npos || at < authority) return out;
  const auto colon = out.find(':', authority);
  if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  return out;
}

namespace detail {

std::string remove_dot_segments(std::string_view in) {
  std::string out;
  auto drop_last_segment = [&out] {
    const auto slash = out.rfind('/');
    out.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!in.empty()) {
    if (in.substr(0, 3) == "../") {
      in.remove_prefix(3);
    } else if (in.substr(0, 2) == "./") {
      in.remove_prefix(2);
    } else if (in.substr(0, 3) == "/./") {
      in.remove_prefix(2);
    } else if (in == "/.") {
      in = "/";
    } else if (in.substr(0, 4) == "/../") {
      in.remove_prefix(3);
      drop_last_segment();
    } else if (in == "/..") {
      in = "/";
      drop_last_segment();
    } else if (in == "." || in == "..") {
      in = {};
    } else {
      const auto end = std::min(in.find('/', 1), in.size());
      out.append(in.substr(0, end));
      in.remove_prefix(end);
    }
  }
  return out;
}

std::string resolve_location(std::string_view base, std::string_view location) {
  // The base as scheme-and-authority (kept as it is) plus path and query.
  std::string prefix, scheme;
  Reference b;
  const bool unix_base = starts_with_ci(base, unix_scheme);
  if (unix_base) {
    const UnixParts parts = split_unix(base.substr(unix_scheme.size()));
    scheme = "http+unix";
    prefix = "http+unix:" + std::string(parts.socket) + ":";
    b = split_target(parts.tail);
    if (b.path.empty()) b.path = "/";  // what parse_url requests for it
    b.has_authority = true;            // the socket plays the authority's part
  } else {
    b = split_reference(base);
    scheme = lowercase(b.scheme);
    prefix = scheme + ":" + (b.has_authority ? "//" + std::string(b.authority) : "");
  }

  const Reference r = split_reference(location);
  std::string result;
  if (!r.scheme.empty()) {
    const std::string r_scheme = lowercase(r.scheme);
    if (r_scheme == "http+unix") {
      // Its socket path is a file name, not a URI path: only the target loses dot segments.
      const UnixParts parts = split_unix(location.substr(unix_scheme.size()));
      const Reference t = split_target(parts.tail);
      result = "http+unix:" + std::string(parts.socket) + ":" + remove_dot_segments(t.path) +
               query_text(t.has_query, t.query);
      if (t.has_fragment) result += "#" + std::string(t.fragment);
      return result;
    }
    result = r_scheme + ":" + (r.has_authority ? "//" + std::string(r.authority) : "") +
             remove_dot_segments(r.path) + query_text(r.has_query, r.query);
  } else if (r.has_authority) {
    if (unix_base) {
      throw Error(errc::invalid_address, "resolve location", printable(location),
                  "a reference naming a host (//HOST) has no meaning against " + printable(base));
    }
    result = scheme + "://" + std::string(r.authority) + remove_dot_segments(r.path) +
             query_text(r.has_query, r.query);
  } else if (r.path.empty()) {
    result = prefix + std::string(b.path) +
             (r.has_query ? query_text(true, r.query) : query_text(b.has_query, b.query));
  } else if (r.path.front() == '/') {
    result = prefix + remove_dot_segments(r.path) + query_text(r.has_query, r.query);
  } else {
    result = prefix + remove_dot_segments(merge(b.path, b.has_authority, r.path)) +
             query_text(r.has_query, r.query);
  }
  if (r.has_fragment) result += "#" + std::string(r.fragment);
  return result;
}

bool redirect_allowed(const Url& from, const Url& to) noexcept {
  const bool from_unix = from.connect.rfind("unix:", 0) == 0;
  const bool to_unix = to.connect.rfind("unix:", 0) == 0;
  if (from_unix) return to_unix && to.connect == from.connect;
  return !to_unix;
}

}  // namespace detail
}  // namespace wire::http
