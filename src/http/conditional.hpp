// Internal: the parsing behind conditional and range requests, apart from any file or
// socket so that fuzz/conditional_fuzz.cpp can link it alone. Used by static_files.cpp;
// http_date and parse_http_date (declared in wire/http/server.hpp) live here too.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wire::http::detail {

// Whether an If-None-Match value matches `etag`: "*", or any listed tag, compared weakly
// (a W/ prefix is ignored), as RFC 9110 §13.1.2 asks for GET and HEAD.
bool etag_matches(std::string_view header, const std::string& etag);

// A single "bytes=first-last" range against `size`: 0 none/ignored, 1 satisfiable (first
// and last set, last < size), -1 not satisfiable.
int parse_range(std::string_view header, std::uint64_t size, std::uint64_t& first,
                std::uint64_t& last);

}  // namespace wire::http::detail
