// wire/diag/sockets.hpp — every TCP, UDP and Unix socket of the machine (of this network
// namespace), with its state, queues, addresses and, when asked, the processes holding it:
// `ss -tuxanp` for a library.
//
//   wire::diag::SocketFilter filter;
//   filter.tcp = true;
//   filter.states = {"close-wait"};
//   filter.owners = true;
//   for (const auto& s : wire::diag::sockets(filter).sockets) {
//     for (const auto& owner : s.owners) {
//       std::printf("%s <- %s held by %s(%d) fd %d\n", s.local.c_str(), s.peer.c_str(),
//                   owner.name.c_str(), owner.pid, owner.fd);
//     }
//   }
//   // 127.0.0.1:8000 <- 127.0.0.1:51234 held by server(4242) fd 7
//
// The sockets come from sock_diag netlink (what ss uses): one dump per family and protocol,
// filtered by the kernel. Where netlink is refused (a sandbox, a kernel without sock_diag),
// the /proc/net tables are read instead and the list says so (`source`). Owners come from a
// scan of /proc/*/fd, made only when the filter asks for them.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace wire::diag {

enum class Protocol { tcp, udp, unix_stream, unix_dgram, unix_seqpacket };

// "tcp", "udp", "unix-stream", "unix-dgram", "unix-seqpacket": the words `wire fds` uses.
std::string_view protocol_name(Protocol protocol) noexcept;

struct SocketOwner {
  pid_t pid = 0;
  std::string name;  // the process's comm (15 bytes at most, chosen by the process: untrusted)
  int fd = -1;
};

// A uid not known: /proc/net/unix has none (the netlink dump has).
inline constexpr uid_t unknown_uid = static_cast<uid_t>(-1);

struct SocketInfo {
  Protocol protocol = Protocol::tcp;
  int family = 0;  // AF_INET, AF_INET6, AF_UNIX
  // As ss spells it: LISTEN ESTAB SYN-SENT SYN-RECV FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT UNCONN
  // CLOSE-WAIT LAST-ACK CLOSING.
  std::string state;
  // LISTEN: the connections waiting for accept() and (netlink only) the backlog's limit, as
  // ss shows them. Otherwise the bytes not yet read, and not yet sent or acknowledged.
  std::uint64_t recv_queue = 0, send_queue = 0;
  // "127.0.0.1:8000", "[::1]:8000"; "" for an unconnected peer. Unix: the path, "@name" for
  // an abstract name (NULs in it as '@', as ss shows them), "" when unnamed. A Unix peer is
  // the name of the socket at the other end (netlink only: /proc/net/unix has no peers).
  std::string local, peer;
  std::uint64_t inode = 0;
  std::uint64_t peer_inode = 0;     // Unix, netlink only: the other end's inode (0: none)
  uid_t uid = unknown_uid;          // the socket's owner
  std::vector<SocketOwner> owners;  // filled only when the filter asks for owners
};

enum class Source { automatic, netlink, proc };

// "automatic", "netlink", "proc".
std::string_view source_name(Source source) noexcept;

struct SocketFilter {
  bool tcp = false, udp = false, unix_sockets = false;  // none set: all three
  // Only LISTEN and UNCONN sockets (ss -l); with `states`, those states as well.
  bool listening = false;
  // Names as ss prints them or as its `state` filter takes them, in any case, '-' or '_':
  // "established", "ESTAB", "close-wait", "CLOSE_WAIT", "listening", "closed"..., or ss's
  // groups: all, connected (all but LISTEN and UNCONN), synchronized (connected but
  // SYN-SENT), bucket (SYN-RECV, TIME-WAIT), big (all but bucket). An unknown name throws
  // wire::Error with EINVAL naming the valid ones.
  std::vector<std::string> states;
  // Only the sockets this process holds; implies owners (of that process only). A process
  // that does not exist throws ESRCH, one whose fds may not be read throws EACCES. A thread
  // id stands for its process. A process in another network namespace has its sockets read
  // from /proc/PID/net (`source` proc; Source::netlink forced throws EINVAL).
  std::optional<pid_t> pid;
  // Only inet sockets with this local or peer port (1-65535; 0 throws EINVAL).
  std::optional<std::uint16_t> port;
  bool owners = false;  // find the processes holding each socket (ss -p)
  // automatic: netlink, or /proc/net when netlink is refused. netlink: refused is an error.
  Source source = Source::automatic;
};

struct SocketList {
  std::vector<SocketInfo> sockets;
  Source source = Source::automatic;  // what was used: netlink, or proc after a refusal
  // Processes whose fds could not be read (another user's, without root): their sockets
  // are listed without those owners. Sorted; empty unless owners were asked for.
  std::vector<pid_t> unreadable;
  // Why netlink was not used when `source` is proc after an automatic choice (EACCES...).
  std::error_code netlink_error;
};

// The sockets the filter selects, ordered by protocol, then local and peer address. Throws
// wire::Error for a bad filter (EINVAL), a pid that cannot be read (ESRCH, EACCES: operation
// "sockets"), and netlink failing ("sock_diag"): when forced, or for a reason other than a
// refusal. The /proc fallback has no Unix peers nor uids, and LISTEN's Send-Q is 0 there.
SocketList sockets(const SocketFilter& filter = {});

// {"source": "netlink", "unreadable": [pids], "sockets": [{"protocol", "family", "state",
// "recv_queue", "send_queue", "local", "peer", "inode", "peer_inode", "uid" (null when
// unknown), "owners": [{"pid", "name", "fd"}]}]}; strings escaped, control bytes as \u00XX.
std::string to_json(const SocketList& list);

}  // namespace wire::diag
