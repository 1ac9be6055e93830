// The sockets of this network namespace from sock_diag netlink (NETLINK_SOCK_DIAG,
// SOCK_DIAG_BY_FAMILY), as ss reads them: inet_diag for TCP and UDP over IPv4 and IPv6,
// with the states and the port filtered by the kernel, and unix_diag for Unix sockets with
// their peers and queues, which /proc/net/unix does not have.
#pragma once

#include <system_error>
#include <vector>

#include "socket_query.hpp"
#include "wire/diag/sockets.hpp"

namespace wire::diag::internal {

// The sockets `query` selects (owners not filled in), in the caller's network namespace.
// Throws wire::Error (operation "sock_diag") with the errno of a refusal or failure.
std::vector<SocketInfo> sock_diag_sockets(const SocketQuery& query);

// Whether `error` says netlink sock_diag is not available here (no such protocol or family
// handler, refused by a sandbox or an LSM), as opposed to a failure worth reporting.
bool is_refusal(std::error_code error) noexcept;

}  // namespace wire::diag::internal
