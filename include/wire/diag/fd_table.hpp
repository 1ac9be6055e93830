// wire/diag/fd_table.hpp — what a process holds open: every fd, what it is, and for a socket its
// addresses, state and queues. `ls -l /proc/PID/fd` and `ss -p` in one table, for a library.
//
//   for (const auto& fd : wire::diag::fd_table()) {
//     std::printf("%d %s %s %s\n", fd.fd, std::string(wire::diag::kind_name(fd.kind)).c_str(),
//                 fd.state.c_str(), fd.target.c_str());
//   }
//   // 3 tcp LISTEN 127.0.0.1:8000
//   // 4 tcp CLOSE-WAIT 127.0.0.1:8000 <- 127.0.0.1:51234
//
// Everything is read from /proc: /proc/PID/fd (the links), /proc/PID/fdinfo (the flags) and
// /proc/PID/net/* (inet and netlink sockets, in the network namespace of that process). Unix
// sockets come from sock_diag netlink, with their names exact, peers and queues, when the
// process is in this one's namespace; otherwise, or where netlink is refused, from
// /proc/PID/net/unix (no peers; a name with a newline followed by a whole row is cut there,
// and that row is never let replace another socket's). Nothing is asked of the sockets
// themselves, so another process's fds are described as well as our own.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wire::diag {

enum class FdKind {
  regular_file,
  directory,
  pipe,
  fifo,
  tcp,
  tcp6,
  udp,
  udp6,
  unix_stream,
  unix_dgram,
  unix_seqpacket,
  netlink,
  socket,  // a socket in none of the /proc/net tables this reads (packet, raw, sctp...)
  epoll,
  eventfd,
  timerfd,
  signalfd,
  pidfd,
  io_uring,
  anon_inode,  // any other anon_inode: (inotify, fanotify, userfaultfd...)
  char_device,
  block_device,
  other,
};

// "tcp", "unix-stream", "eventfd", "char-device"...: one word, as `wire fds` prints it.
std::string_view kind_name(FdKind kind) noexcept;

struct FdInfo {
  int fd = -1;
  FdKind kind = FdKind::other;
  // A path for files, directories, fifos and devices; "LOCAL" or "LOCAL <- PEER" for
  // sockets ("127.0.0.1:8000", "[::1]:8000"; a unix socket's path, "@name" when abstract,
  // "*" when unnamed and connected, "" when unnamed and not); otherwise the link text
  // ("pipe:[1234]", "anon_inode:[eventfd]").
  std::string target;
  std::string local;  // sockets: the local address; "" otherwise
  // Sockets: the peer, "" when unconnected. Unix: the name of the socket at the other end,
  // or "* INODE" (as ss shows it) when that one has no name.
  std::string peer;
  std::uint64_t inode = 0;       // sockets and pipes: the inode in the link text; 0 otherwise
  std::uint64_t peer_inode = 0;  // unix sockets: the other end's inode; 0 otherwise
  bool cloexec = false;
  bool nonblock = false;
  std::uint32_t open_flags = 0;  // the octal `flags:` of /proc/PID/fdinfo/N, as a number
  // Sockets: as `ss` spells it: LISTEN, ESTAB, SYN-SENT, CLOSE-WAIT, TIME-WAIT, FIN-WAIT-2...;
  // UNCONN for an unconnected udp or unix socket. "" for anything else.
  std::string state;
  // Bytes not yet read and not yet sent (or acknowledged); for LISTEN, connections waiting
  // for accept() (and for unix the backlog's limit in send_queue, as ss shows it).
  std::uint64_t recv_queue = 0;
  std::uint64_t send_queue = 0;
  bool is_socket() const noexcept;
};

// Every fd of `pid` (default: this process), ordered by fd number. An fd that closes while
// the table is read is left out. Throws wire::Error: operation "fds", address the pid;
// ESRCH ("No such process") when there is no such process, EACCES ("Permission denied")
// when its fds may not be read; never an empty table in place of an error. Netlink failing
// for a reason other than a refusal throws too (operation "sock_diag").
std::vector<FdInfo> fd_table(pid_t pid = ::getpid());

// The table as a JSON array of objects (fd, kind, target, local, peer, inode, peer_inode, cloexec,
// nonblock, state, recv_queue, send_queue); strings escaped, control bytes as \u00XX.
std::string to_json(const std::vector<FdInfo>& table);

}  // namespace wire::diag
