// Which processes hold which sockets: the scan of /proc/*/fd that `ss -p` and `lsof` make.
// It costs a readdir and a readlink per fd of every process, so it is made only when asked.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "wire/diag/sockets.hpp"

namespace wire::diag::internal {

struct SocketOwners {
  std::unordered_map<std::uint64_t, std::vector<SocketOwner>> by_inode;
  std::vector<pid_t> unreadable;  // sorted
};

// The owners of the sockets in `wanted` (inodes; every socket when null) among every process
// of /proc. A process that exits during the scan is skipped; one whose fds may not be read
// (another user's, without CAP_SYS_PTRACE) is listed in `unreadable`. Safe to run on another
// thread while the sockets are dumped.
SocketOwners scan_socket_owners(const std::unordered_set<std::uint64_t>* wanted);

// Every socket `pid` holds. Throws wire::Error (operation "sockets", address "pid N"):
// ESRCH when there is no such process (or it exits during the scan), EACCES when its fds
// may not be read.
SocketOwners scan_socket_owners_of(pid_t pid);

}  // namespace wire::diag::internal
