// libFuzzer target for what conditional and range requests parse: HTTP dates, Range and
// If-None-Match. The first 8 bytes give a number (a time, a file size, an ETag); the rest
// is the header value.
//   Dates: a time from 1970 to 9999 formats and parses back to itself; a value that parses
//     formats back to the same text (no Feb 31 or 25:00 taken for another date).
//   Range: a satisfiable range lies inside the file and reads the same when written back as
//     "bytes=first-last"; the suffix form takes the file's last bytes.
//   If-None-Match: the tag itself, weak or in a list, matches; "*" matches; a match means
//     the tag (or "*") is in the value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "http/conditional.hpp"
#include "wire/http/server.hpp"

using namespace wire::http;

namespace {

constexpr std::int64_t year_10000 = 253402300800;  // 10000-01-01T00:00:00Z

void check_dates(std::uint64_t number, std::string_view text) {
  const auto t = static_cast<std::int64_t>(number % static_cast<std::uint64_t>(year_10000));
  if (parse_http_date(http_date(t)) != t) std::abort();
  const std::int64_t parsed = parse_http_date(text);
  if (parsed < -1) std::abort();
  if (parsed >= 0 && http_date(parsed) != text) std::abort();
}

void check_range(std::uint64_t number, std::string_view header) {
  const std::uint64_t size = number % 4 == 0 ? number % 8 : number >> 2;  // often tiny
  std::uint64_t first = 7, last = 7;
  const int r = detail::parse_range(header, size, first, last);
  if (r < -1 || r > 1) std::abort();
  if (r != 1) {
    if (first != 7 || last != 7) std::abort();  // untouched unless satisfiable
    return;
  }
  if (first > last || last >= size) std::abort();
  const std::string again = "bytes=" + std::to_string(first) + "-" + std::to_string(last);
  std::uint64_t first2 = 0, last2 = 0;
  if (detail::parse_range(again, size, first2, last2) != 1 || first2 != first || last2 != last) {
    std::abort();
  }
  if (header.substr(0, 7) == "bytes=-" && last != size - 1) std::abort();
}

void check_etag(std::uint64_t number, std::string_view header) {
  char text[40];
  std::snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(number >> 32),
                static_cast<unsigned long long>(number & 0xffffffffu));
  const std::string etag = text;
  const bool matched = detail::etag_matches(header, etag);
  if (matched && header.find(etag) == std::string_view::npos &&
      header.find('*') == std::string_view::npos) {
    std::abort();
  }
  if (!detail::etag_matches(etag, etag) || !detail::etag_matches("W/" + etag, etag) ||
      !detail::etag_matches("*", etag)) {
    std::abort();
  }
  // Listing more tags around it changes nothing.
  const std::string listed = "\"other\", " + std::string(header) + " , W/" + etag;
  if (!detail::etag_matches(listed, etag)) std::abort();
  if (header.find(',') == std::string_view::npos && header != "*" &&
      detail::etag_matches("\"x\" ,\t" + std::string(header), etag) != matched) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t number = 0;
  std::memcpy(&number, data, 8);
  const std::string text(reinterpret_cast<const char*>(data) + 8, size - 8);
  check_dates(number, text);
  check_range(number, text);
  check_etag(number, text);
  return 0;
}
