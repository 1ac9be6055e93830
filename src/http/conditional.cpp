#include "conditional.hpp"

#include <cstdio>
#include <ctime>

#include "wire/http/parser.hpp"
#include "wire/http/server.hpp"

namespace wire::http {
namespace {

constexpr const char* day_names[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

}  // namespace

namespace detail {

bool etag_matches(std::string_view header, const std::string& etag) {
  if (header == "*") return true;
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item.substr(0, 2) == "W/") item.remove_prefix(2);  // weak comparison for GET
    if (item == etag) return true;
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return false;
}

int parse_range(std::string_view header, std::uint64_t size, std::uint64_t& first,
                std::uint64_t& last) {
  if (header.substr(0, 6) != "bytes=") return 0;
  std::string_view spec = header.substr(6);
  if (spec.find(',') != std::string_view::npos) return 0;  // several ranges: send it all
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return 0;
  auto number = [](std::string_view s, std::uint64_t& v) { return parse_decimal(s, v); };
  std::string_view a = spec.substr(0, dash), b = spec.substr(dash + 1);
  std::uint64_t x = 0, y = 0;
  if (a.empty()) {  // suffix: the last y bytes
    if (!number(b, y)) return 0;
    if (y == 0 || size == 0) return -1;
    first = size > y ? size - y : 0;
    last = size - 1;
    return 1;
  }
  if (!number(a, x)) return 0;
  if (b.empty()) {
    y = size == 0 ? 0 : size - 1;
  } else {
    if (!number(b, y) || y < x) return 0;
    if (y >= size) y = size - 1;
  }
  if (x >= size) return -1;
  first = x;
  last = y;
  return 1;
}

}  // namespace detail

std::string http_date(std::int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", day_names[tm.tm_wday],
                tm.tm_mday, month_names[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return text;
}

std::int64_t parse_http_date(std::string_view text) noexcept {
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (text.size() != 29 || text.substr(3, 2) != ", " || text.substr(25) != " GMT") return -1;
  auto number = [&](std::size_t at, std::size_t digits) -> int {
    int v = 0;
    for (std::size_t i = 0; i < digits; ++i) {
      char c = text[at + i];
      if (c < '0' || c > '9') return -1;
      v = v * 10 + (c - '0');
    }
    return v;
  };
  std::tm tm{};
  tm.tm_mday = number(5, 2);
  tm.tm_mon = -1;
  for (int m = 0; m < 12; ++m) {
    if (text.substr(8, 3) == month_names[m]) tm.tm_mon = m;
  }
  tm.tm_year = number(12, 4) - 1900;
  tm.tm_hour = number(17, 2);
  tm.tm_min = number(20, 2);
  tm.tm_sec = number(23, 2);
  if (tm.tm_mday < 1 || tm.tm_mon < 0 || tm.tm_year < 70 || tm.tm_hour < 0 || tm.tm_min < 0 ||
      tm.tm_sec < 0 || text[7] != ' ' || text[11] != ' ' || text[16] != ' ' || text[19] != ':' ||
      text[22] != ':') {
    return -1;
  }
  // timegm takes Feb 31 or 25:00 for some other date, and the day name is not read above:
  // a valid date is one that formats back to the same text (RFC 9110 says to ignore an
  // If-Modified-Since that is not a valid date, rather than guess).
  const auto t = static_cast<std::int64_t>(::timegm(&tm));
  return http_date(t) == text ? t : -1;
}

}  // namespace wire::http
