// Which processes hold which sockets: the scan of /proc/*/fd that `ss -p` and `lsof` make.
// It costs a readdir and a readlink per fd of every process, so it is made only when asked.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "wire/diag/sockets.hpp"

namespace wire::diag::internal {

// One socket fd of one process.
struct HeldSocket {
  std::uint64_t inode = 0;
  pid_t pid = 0;
  int fd = 0;
  friend auto operator<=>(const HeldSocket&, const HeldSocket&) = default;
};

// Flat and sorted rather than a map of vectors: with 20,000 sockets, a node and a vector per
// socket were 2,000 fresh pages, and a page fault costs 5 us on a VM (perf, bench/sockets.sh).
struct SocketOwners {
  std::vector<HeldSocket> held;                      // sorted by inode, pid, fd
  std::vector<std::pair<pid_t, std::string>> names;  // the comm of each pid in `held`, sorted
  std::vector<pid_t> unreadable;                     // sorted

  // The fds that hold `inode`, in pid and fd order.
  std::span<const HeldSocket> holding(std::uint64_t inode) const;
  // The comm of `pid`, "" when it had gone before it could be read.
  const std::string& name_of(pid_t pid) const;
};

// The owners of every socket among every process of /proc. A process that exits during the
// scan is skipped; one whose fds may not be read (another user's, without CAP_SYS_PTRACE)
// is listed in `unreadable`. Safe to run on another thread while the sockets are dumped.
SocketOwners scan_socket_owners();

// Every socket `pid` holds. Throws wire::Error (operation "sockets", address "pid N"):
// ESRCH when there is no such process (or it exits during the scan), EACCES when its fds
// may not be read.
SocketOwners scan_socket_owners_of(pid_t pid);

}  // namespace wire::diag::internal
