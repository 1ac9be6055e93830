// wire/connect.hpp — the two calls most programs start with.
//
//   wire::Socket conn = wire::create_connection("tcp://localhost:8080", 5s);
//   wire::Socket server = wire::create_server("tcp://127.0.0.1:0");
//
// create_connection is Happy Eyeballs (RFC 8305): candidates alternate between IPv6 and IPv4,
// a new attempt starts 250 ms after the previous one (at once if it failed), the first to
// connect wins and the rest are closed. The timeout is one deadline for the whole call,
// resolution included (Python's applies to each address, cpython#123793).
//
// ConnectOptions adds what nc's flags do, for library users as much as for `wire connect`:
//   wire::Socket s = wire::create_connection(
//       "tcp://localhost:http", {.timeout = 5s, .family = wire::Family::inet6,    // nc -6
//                                .source_host = "::1", .source_port = 40000});    // -s, -p
// A unixgram: client is bound to an autobound abstract name (Linux), so the server can
// answer it: an unbound datagram socket has no address to reply to.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/address.hpp"
#include "wire/error.hpp"
#include "wire/socket.hpp"

namespace wire {

// Delay before starting the next attempt while the previous one is still pending.
inline constexpr std::chrono::milliseconds connection_attempt_delay{250};

struct ConnectOptions {
  Timeout timeout = std::nullopt;       // one deadline for resolving and connecting
  Family family = Family::unspecified;  // inet or inet6: try only that family (nc -4 / -6)
  std::string source_host = {};  // numeric IP to bind before connecting (nc -s); "" lets the kernel
  std::uint16_t source_port = 0;  // port to bind before connecting (nc -p); 0 lets the kernel
};

// Resolves `address` (names allowed) and connects. The socket returned is blocking.
// Throws wire::Error naming every address tried and why each failed.
Socket create_connection(std::string_view address, Timeout timeout = std::nullopt);
Result<Socket> create_connection(std::string_view address, Timeout timeout,
                                 std::nothrow_t) noexcept;
// The same with a family preference and a source address. Candidates of another family
// than `family` or the source's are skipped; none left is an error (errc::invalid_address)
// that says so. A source port sets reuse_address, so the same port works again at once.
Socket create_connection(std::string_view address, const ConnectOptions& options);
Result<Socket> create_connection(std::string_view address, const ConnectOptions& options,
                                 std::nothrow_t) noexcept;
// The same over an explicit candidate list, in the caller's preference order (no resolver).
Socket create_connection(const std::vector<Address>& candidates, Timeout timeout = std::nullopt);
Result<Socket> create_connection(const std::vector<Address>& candidates, Timeout timeout,
                                 std::nothrow_t) noexcept;

// The order in which create_connection tries `candidates`: families interleaved, starting
// with the family of the first (RFC 8305 section 4).
std::vector<Address> interleave_families(const std::vector<Address>& candidates);

struct ServerOptions {
  int backlog = SOMAXCONN;
  // With a host name: bind its first address of this family (nc -4 / -6), not the first.
  Family family = Family::unspecified;
  bool reuse_port = false;    // SO_REUSEPORT: several listeners (one per thread) on one port
  bool dual_stack = false;    // an IPv6 listener that also accepts IPv4 ("[::]:port")
  ::mode_t unix_mode = 0600;  // permissions of a Unix socket file
};

// A listening stream socket (a bound datagram socket for udp:// and unixgram:). reuse_address
// is on. For a Unix path, a stale socket file is removed only when nothing listens on it;
// if something does (even with a full backlog: the check never blocks), this fails with
// EADDRINUSE. A path that is not a socket is left alone (EADDRINUSE, "not a socket"); a
// socket file this user may not connect to fails with EACCES.
Socket create_server(std::string_view address, const ServerOptions& options = {});
Socket create_server(const Address& address, const ServerOptions& options = {});
Result<Socket> create_server(const Address& address, const ServerOptions& options,
                             std::nothrow_t) noexcept;

}  // namespace wire
