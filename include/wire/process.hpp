// wire/process.hpp — the process layer: sockets and fds across process boundaries. It uses the
// core only (Socket, AsyncSocket for the awaitable forms).
//
//   wire/process/fd_passing.hpp        send_fds / recv_fds over a Unix socket (SCM_RIGHTS)
//   wire/process/peer_credentials.hpp  who is at the other end (SO_PEERCRED, SO_PEERPIDFD)
//   wire/process/inheritable.hpp       set_inheritable: FD_CLOEXEC on or off
//   wire/process/spawn.hpp             spawn a program with exactly the fds chosen (pass_fds)
//   wire/process/socket_activation.hpp listeners from systemd (LISTEN_FDS), and to a child
#pragma once

#include "wire/owned_fd.hpp"
#include "wire/process/fd_passing.hpp"
#include "wire/process/inheritable.hpp"
#include "wire/process/peer_credentials.hpp"
#include "wire/process/socket_activation.hpp"
#include "wire/process/spawn.hpp"
