// Internal: the pure parts of the HTTP client's URL handling, apart from any socket so the
// tests and fuzz/url_fuzz.cpp can call them. parse_url itself is public (client.hpp).
#pragma once

#include <string>
#include <string_view>

#include "wire/http/client.hpp"

namespace wire::http::detail {

// printable() (control bytes as \xNN) is wire::detail::printable, from wire/error.hpp.

// RFC 3986 §5.2.4: "/a/b/../c/./d" -> "/a/c/d".
std::string remove_dot_segments(std::string_view path);

// Resolves a Location value (any URI reference) against the absolute URL `base` per
// RFC 3986 §5.2: absolute, network-path (//host/p), absolute-path, relative-path and
// query-only references, dot segments removed, the scheme lowercased, the reference's
// fragment kept. An http+unix: base keeps its socket as the authority. Throws wire::Error
// (errc::invalid_address) for a reference that names a host against an http+unix: base.
std::string resolve_location(std::string_view base, std::string_view location);

// Whether a redirect from `from` may go to `to`: from http:// only to http://, and from
// http+unix: only to the same socket. A server on the network must never be able to send
// the client to a local Unix socket (Location: http+unix:/run/docker.sock:/...).
bool redirect_allowed(const Url& from, const Url& to) noexcept;

}  // namespace wire::http::detail
