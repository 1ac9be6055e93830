#include "wire/process/peer_credentials.hpp"

#include <sys/socket.h>

#include <string>

// glibc 2.36 predates SO_PEERPIDFD (Linux 6.5). Its value is 77 on the architectures that use
// the generic socket options; elsewhere it stays undefined and peer_pidfd says ENOPROTOOPT.
#if !defined(SO_PEERPIDFD) && (defined(__x86_64__) || defined(__i386__) || defined(__aarch64__) || \
                               defined(__arm__) || defined(__riscv))
#define SO_PEERPIDFD 77
#endif

namespace wire {
namespace {

std::error_code check_unix(const Socket& socket) noexcept {
  if (!socket.is_open()) return errc::socket_closed;
  int domain = 0;
  ::socklen_t len = sizeof domain;
  if (::getsockopt(socket.fileno(), SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) {
    return detail::last_error();
  }
  if (domain != AF_UNIX) return std::make_error_code(std::errc::address_family_not_supported);
  return {};
}

// The reason in the message: "Address family not supported by protocol" alone does not say
// which family was wanted.
std::string reason(std::error_code ec) {
  if (ec == std::errc::address_family_not_supported) return "not a Unix domain socket";
  if (ec == std::errc::not_connected) return "not a connected Unix stream socket (no peer)";
  if (ec == std::errc::no_protocol_option) {
    return ec.message() + " (SO_PEERPIDFD needs Linux 6.5 or later)";
  }
  return ec.message();
}

}  // namespace

Result<Credentials> peer_credentials(const Socket& unix_socket, std::nothrow_t) noexcept {
  if (auto ec = check_unix(unix_socket)) return ec;
  ::ucred cred{};
  ::socklen_t len = sizeof cred;
  if (::getsockopt(unix_socket.fileno(), SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    return detail::last_error();
  }
  // The kernel answers an unconnected socket too, with pid 0 and the overflow ids.
  if (cred.pid == 0) return std::make_error_code(std::errc::not_connected);
  return Credentials{cred.pid, cred.uid, cred.gid};
}

Credentials peer_credentials(const Socket& unix_socket) {
  auto credentials = peer_credentials(unix_socket, std::nothrow);
  if (!credentials) {
    throw Error(credentials.error(), "peer_credentials", unix_socket.describe(),
                reason(credentials.error()));
  }
  return *credentials;
}

Result<OwnedFd> peer_pidfd(const Socket& unix_socket, std::nothrow_t) noexcept {
  if (auto ec = check_unix(unix_socket)) return ec;
#ifdef SO_PEERPIDFD
  int pidfd = -1;
  ::socklen_t len = sizeof pidfd;
  if (::getsockopt(unix_socket.fileno(), SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) {
    // ENODATA: the socket has no peer process recorded.
    if (errno == ENODATA) return std::make_error_code(std::errc::not_connected);
    return detail::last_error();
  }
  return OwnedFd(pidfd);
#else
  return std::make_error_code(std::errc::no_protocol_option);
#endif
}

OwnedFd peer_pidfd(const Socket& unix_socket) {
  auto pidfd = peer_pidfd(unix_socket, std::nothrow);
  if (!pidfd) {
    throw Error(pidfd.error(), "peer_pidfd", unix_socket.describe(), reason(pidfd.error()));
  }
  return std::move(*pidfd);
}

}  // namespace wire
