// wire/process/peer_credentials.hpp — who is at the other end of a Unix socket, as the kernel
// saw it (SO_PEERCRED, SO_PEERPIDFD), not as the peer claims.
//
//   auto [conn, peer] = listener.accept();              // a unix: listener
//   wire::Credentials who = wire::peer_credentials(conn);
//   if (who.uid != ::getuid()) conn.close();            // only our own user may talk to us
//   std::printf("client pid %d uid %d gid %d\n", int(who.pid), int(who.uid), int(who.gid));
//
//   wire::OwnedFd pidfd = wire::peer_pidfd(conn);       // Linux 6.5+: that very process,
//   // usable with poll (readable when it exits) and pidfd_send_signal, immune to pid reuse.
//
// The credentials are those of the process that called connect() (for the accepting side) or
// listen() (for the connecting side), or socketpair(), at that moment: they do not change if
// the fd is later passed to another process. A connected stream socket only: a datagram or
// unconnected socket has none (ENOTCONN), a TCP socket neither (EAFNOSUPPORT).
//
// peer_pidfd needs SO_PEERPIDFD: Linux 6.5 and later. Older kernels refuse it with
// ENOPROTOOPT ("Protocol not available"); peer_credentials' pid is then the fallback, with the
// usual race of a pid that may be reused once that process exits.
#pragma once

#include <sys/types.h>

#include "wire/error.hpp"
#include "wire/owned_fd.hpp"
#include "wire/socket.hpp"

namespace wire {

struct Credentials {
  ::pid_t pid = 0;
  ::uid_t uid = 0;
  ::gid_t gid = 0;
};

Credentials peer_credentials(const Socket& unix_socket);
Result<Credentials> peer_credentials(const Socket& unix_socket, std::nothrow_t) noexcept;

// A pidfd (close-on-exec) for the peer process; fails when it has already exited.
OwnedFd peer_pidfd(const Socket& unix_socket);
Result<OwnedFd> peer_pidfd(const Socket& unix_socket, std::nothrow_t) noexcept;

}  // namespace wire
