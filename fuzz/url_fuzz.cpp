// libFuzzer target for the HTTP client's URLs: parse_url, resolve_location (RFC 3986 §5.2),
// remove_dot_segments and the redirect rule. The first byte picks a base URL; the rest is
// both a URL and a Location value.
//   parse_url: a failure is invalid_address with a printable message; a success has a
//     target and host free of CR, LF, space, NUL and anything else outside RFC 3986, no
//     fragment, the same result for an upper-case scheme and host or an added #fragment,
//     and parses back from its own parts to the same Url.
//   resolve_location: an absolute result resolves to itself; a result that parses has no
//     dot segment in its path; and none that names a Unix socket is allowed from http://.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "http/url.hpp"

using namespace wire;
using wire::http::parse_url;
using wire::http::Url;

namespace {

const char* const bases[] = {
    "http://a/b/c/d;p?q", "http://127.0.0.1:8080/dir/page?x=1",
    "http://h",           "http+unix:/run/app.sock:/v1/items/7?full=1",
    "http+unix:/s.sock",
};

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// RFC 3986: unreserved, sub-delims, ':', '@', '/', '?' and %XX; nothing else may reach the
// request line.
bool rfc3986_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return false;
  for (std::size_t i = 0; i < target.size(); ++i) {
    const char c = target[i];
    if (c == '%') {
      if (i + 2 >= target.size() || !is_hex(target[i + 1]) || !is_hex(target[i + 2])) return false;
      i += 2;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view("-._~!$&'()*+,;=:@/?").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool host_header(std::string_view host) {
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    std::string_view("-._:[]").find(c) != std::string_view::npos;
    if (!ok) return false;  // upper case included: the host comes out lowercased
  }
  return !host.empty();
}

bool printable(std::string_view text) {
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

bool same(const Url& a, const Url& b) {
  return a.connect == b.connect && a.host == b.host && a.target == b.target;
}

// parse_url, or false with the error checked.
bool parse(std::string_view text, Url& out) {
  try {
    out = parse_url(text);
    return true;
  } catch (const Error& e) {
    if (e.code() != errc::invalid_address || !printable(e.what())) std::abort();
    return false;
  }
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] + 32) : s[i];
    if (c != prefix[i]) return false;
  }
  return true;
}

void check_parse(std::string_view text) {
  Url url;
  if (!parse(text, url)) return;
  if (!rfc3986_target(url.target) || !host_header(url.host)) std::abort();
  if (url.connect.rfind("tcp://", 0) != 0 && url.connect.rfind("unix:", 0) != 0) std::abort();
  Url again;
  if (url.connect.rfind("unix:", 0) == 0) {
    if (!parse("http+unix:" + url.connect.substr(5) + ":" + url.target, again)) std::abort();
    if (!same(again, url)) std::abort();
    return;
  }
  if (url.connect.find('%') == std::string::npos) {  // a zone is not in the Host header
    if (!parse("http://" + url.host + url.target, again) || !same(again, url)) std::abort();
  }
  if (!starts_with_ci(text, "http://")) return;
  if (text.find('#') == std::string::npos) {
    if (!parse(std::string(text) + "#fragment", again) || !same(again, url)) std::abort();
  }
  // Upper-case scheme and host (not a zone, which names an interface): the same Url.
  std::string shouting(text);
  const std::size_t authority_end = std::min(shouting.find_first_of("/?#", 7), shouting.size());
  const std::size_t zone = shouting.find('%');
  for (std::size_t i = 0; i < std::min(authority_end, zone); ++i) {
    if (shouting[i] >= 'a' && shouting[i] <= 'z') shouting[i] = static_cast<char>(shouting[i] - 32);
  }
  if (!parse(shouting, again) || !same(again, url)) std::abort();
}

void check_dot_segments(std::string_view path) {
  if (path.empty() || path.front() != '/') return;
  const std::string once = http::detail::remove_dot_segments(path);
  if (once.size() > path.size() || once.empty() || once.front() != '/') std::abort();
  if (http::detail::remove_dot_segments(once) != once) std::abort();
  for (std::size_t at = 0; at < once.size();) {
    const std::size_t end = std::min(once.find('/', at + 1), once.size());
    const std::string_view segment = std::string_view(once).substr(at + 1, end - at - 1);
    if (segment == "." || segment == "..") std::abort();
    at = end;
  }
}

void check_resolve(std::string_view base, std::string_view location) {
  std::string resolved;
  try {
    resolved = http::detail::resolve_location(base, location);
  } catch (const Error& e) {
    if (e.code() != errc::invalid_address || !printable(e.what())) std::abort();
    return;
  }
  if (http::detail::resolve_location(base, resolved) != resolved) std::abort();
  Url from, to;
  if (!parse(base, from)) std::abort();
  if (!parse(resolved, to)) return;
  check_dot_segments(to.target.substr(0, to.target.find('?')));
  if (http::detail::redirect_allowed(from, to)) {
    const bool from_unix = from.connect.rfind("unix:", 0) == 0;
    if (from_unix ? to.connect != from.connect : to.connect.rfind("tcp://", 0) != 0) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view base = bases[data[0] % (sizeof bases / sizeof bases[0])];
  // An exact-size heap copy, so ASan sees any read past the end.
  const std::unique_ptr<char[]> copy(new char[size - 1]);
  std::memcpy(copy.get(), data + 1, size - 1);
  const std::string_view text(copy.get(), size - 1);
  check_parse(text);
  check_resolve(base, text);
  check_dot_segments(text);
  return 0;
}
