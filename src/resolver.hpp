// Internal: resolve() in two steps, for open_connection, which must not block its loop:
// ask first whether the lookup may block, then run it where blocking is harmless.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "wire/address.hpp"
#include "wire/error.hpp"

namespace wire::detail {

// Whether resolve(text) would ask NSS: getaddrinfo for a host name, the services database
// for a port given by name. Either can wait as long as a DNS server (or an LDAP one) takes.
// False for numeric and Unix addresses, and for text that does not parse (resolve fails at
// once).
bool resolve_may_block(std::string_view text);

// resolve(text) with no timeout; on failure `why` says what was wrong with the text, when
// that is the reason (empty for a lookup error, which the error_code names).
Result<std::vector<Address>> resolve_explained(std::string_view text, std::string& why);

}  // namespace wire::detail
