// The socket tables of /proc/PID/net (tcp, tcp6, udp, udp6, unix, netlink): what fd_table()
// describes a process's sockets with, and what sockets() falls back to when sock_diag
// netlink is refused. They are the tables of that process's network namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "wire/diag/fd_table.hpp"
#include "wire/diag/sockets.hpp"

namespace wire::diag::internal {

struct ProcNetRow {
  FdKind kind = FdKind::socket;  // tcp, tcp6, udp, udp6, unix_*, netlink
  unsigned state = 0;            // a TcpState code (unix: from its socket state and flags)
  std::string local;             // "127.0.0.1:80", "[::1]:80"; unix: path, "@name", ""
  std::string peer;              // inet: "" when unconnected; unix: always "" (not in the table)
  std::uint16_t local_port = 0;  // inet only
  std::uint16_t peer_port = 0;
  std::uint64_t recv_queue = 0;  // unix: 0 (not in the table); netlink: rmem
  std::uint64_t send_queue = 0;  // netlink: wmem
  std::uint64_t inode = 0;
  uid_t uid = unknown_uid;    // unix: unknown (not in the table)
  int netlink_protocol = -1;  // netlink: NETLINK_ROUTE...; `local` is the portid
};

enum ProcNetTables : unsigned {
  proc_tcp = 1,
  proc_tcp6 = 2,
  proc_udp = 4,
  proc_udp6 = 8,
  proc_unix = 16,
  proc_netlink = 32,
  proc_all = 63,
};

// The rows of the `tables` under `net_dir` ("/proc/PID/net", "/proc/self/net"). A table
// that does not exist (no IPv6) has no rows; a line this kernel formats differently is
// skipped rather than guessed at. A Unix name can forge a whole row (a newline, then a row
// naming any inode): callers keep the first row of an inode, reading inet tables first.
std::vector<ProcNetRow> read_proc_net(const std::string& net_dir, unsigned tables = proc_all);

}  // namespace wire::diag::internal
