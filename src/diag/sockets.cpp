#include "wire/diag/sockets.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <system_error>
#include <tuple>
#include <unordered_set>

#include "../json_string.hpp"
#include "proc_net.hpp"
#include "sock_diag.hpp"
#include "socket_owners.hpp"
#include "socket_query.hpp"
#include "socket_state.hpp"
#include "wire/error.hpp"

namespace wire::diag {
namespace {

[[noreturn]] void invalid(const std::string& what, const std::string& why) {
  throw Error(std::make_error_code(std::errc::invalid_argument), "sockets", what, why);
}

internal::SocketQuery make_query(const SocketFilter& filter) {
  internal::SocketQuery query;
  if (filter.tcp || filter.udp || filter.unix_sockets) {
    query.tcp = filter.tcp;
    query.udp = filter.udp;
    query.unix_sockets = filter.unix_sockets;
  }
  std::uint32_t states = 0;
  if (filter.listening) {
    states |= internal::state_bit(internal::tcp_listen) | internal::state_bit(internal::tcp_close);
  }
  for (const auto& name : filter.states) {
    const auto mask = internal::parse_states(name);
    if (!mask) {
      invalid("state '" + name + "'", "unknown state; one of " + internal::state_names());
    }
    states |= *mask;
  }
  if (states != 0) query.states = states;
  if (filter.port) {
    if (*filter.port == 0) invalid("port 0", "a port from 1 to 65535");
    query.port = filter.port;
  }
  return query;
}

Protocol protocol_of(FdKind kind) {
  switch (kind) {
    case FdKind::tcp:
    case FdKind::tcp6:
      return Protocol::tcp;
    case FdKind::udp:
    case FdKind::udp6:
      return Protocol::udp;
    case FdKind::unix_dgram:
      return Protocol::unix_dgram;
    case FdKind::unix_seqpacket:
      return Protocol::unix_seqpacket;
    default:
      return Protocol::unix_stream;
  }
}

int family_of(FdKind kind) {
  switch (kind) {
    case FdKind::tcp:
    case FdKind::udp:
      return AF_INET;
    case FdKind::tcp6:
    case FdKind::udp6:
      return AF_INET6;
    default:
      return AF_UNIX;
  }
}

std::vector<SocketInfo> from_proc(const internal::SocketQuery& query,
                                  const std::string& net_dir = "/proc/self/net") {
  unsigned tables = 0;
  if (query.tcp) tables |= internal::proc_tcp | internal::proc_tcp6;
  if (query.udp) tables |= internal::proc_udp | internal::proc_udp6;
  // The inet tables come first and are read even when only Unix is asked for: a name in
  // /proc/net/unix can forge a whole row, and one naming an inet socket's inode is known
  // for what it is only when that socket's own row was seen first.
  if (query.wants(Protocol::unix_stream)) tables |= internal::proc_all & ~internal::proc_netlink;
  std::vector<SocketInfo> list;
  std::unordered_set<std::uint64_t> seen;
  for (auto& row : internal::read_proc_net(net_dir, tables)) {
    // One socket, one row: a second row for an inode is dropped (0 is no inode: TIME-WAIT).
    if (row.inode != 0 && !seen.insert(row.inode).second) continue;
    if (row.kind == FdKind::socket) continue;  // a unix type this does not know
    const Protocol protocol = protocol_of(row.kind);
    // A request socket (SYN-RECV) is shown by sock_diag as SYN-RECV, as here.
    const unsigned state =
        row.state == internal::tcp_new_syn_recv ? internal::tcp_syn_recv : row.state;
    if (!query.wants(protocol) || !query.wants_state(state) ||
        (family_of(row.kind) != AF_UNIX && !query.wants_ports(row.local_port, row.peer_port))) {
      continue;
    }
    SocketInfo info;
    info.protocol = protocol;
    info.family = family_of(row.kind);
    info.state = std::string(internal::state_name(state));
    info.recv_queue = row.recv_queue;
    info.send_queue = row.send_queue;
    info.local = std::move(row.local);
    info.peer = std::move(row.peer);
    info.inode = row.inode;
    info.uid = row.uid;
    list.push_back(std::move(info));
  }
  return list;
}

void add_owners(SocketList& list, internal::SocketOwners owners) {
  for (auto& socket : list.sockets) {
    const auto holding = owners.holding(socket.inode);
    if (holding.empty()) continue;
    socket.owners.reserve(holding.size());
    for (const auto& held : holding) {
      socket.owners.push_back(SocketOwner{held.pid, owners.name_of(held.pid), held.fd});
    }
  }
  list.unreadable = std::move(owners.unreadable);
}

// Sorted through pointers, then moved once: a SocketInfo is large, and sorting 20,000 of
// them in place moved more bytes than the kernel's dump took to make (perf, bench/sockets.sh).
void sort_sockets(std::vector<SocketInfo>& sockets) {
  std::vector<SocketInfo*> order;
  order.reserve(sockets.size());
  for (auto& s : sockets) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const SocketInfo* a, const SocketInfo* b) {
    return std::tie(a->protocol, a->family, a->local, a->peer, a->inode) <
           std::tie(b->protocol, b->family, b->local, b->peer, b->inode);
  });
  // The order is applied in place, cycle by cycle, so no second list is made: on a VM every
  // fresh page is a costly fault, and a second copy of 20,000 SocketInfos is 1,000 of them.
  std::vector<std::size_t> source(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    source[i] = static_cast<std::size_t>(order[i] - sockets.data());
  }
  for (std::size_t start = 0; start < source.size(); ++start) {
    if (source[start] == start) continue;
    SocketInfo held = std::move(sockets[start]);
    std::size_t at = start;
    while (source[at] != start) {
      sockets[at] = std::move(sockets[source[at]]);
      const std::size_t next = source[at];
      source[at] = at;
      at = next;
    }
    sockets[at] = std::move(held);
    source[at] = at;
  }
}

// Whether `pid` lives in another network namespace than this process: sock_diag dumps only
// this one's sockets, so its own would all be missing.
bool in_other_network_namespace(pid_t pid) {
  struct ::stat ours {};
  struct ::stat theirs {};
  const std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::stat("/proc/self/ns/net", &ours) != 0 || ::stat(path.c_str(), &theirs) != 0) {
    return false;  // unknown: the dump is the best guess
  }
  return ours.st_ino != theirs.st_ino || ours.st_dev != theirs.st_dev;
}

}  // namespace

std::string_view protocol_name(Protocol protocol) noexcept {
  switch (protocol) {
    case Protocol::tcp:
      return "tcp";
    case Protocol::udp:
      return "udp";
    case Protocol::unix_stream:
      return "unix-stream";
    case Protocol::unix_dgram:
      return "unix-dgram";
    case Protocol::unix_seqpacket:
      return "unix-seqpacket";
  }
  return "tcp";
}

std::string_view source_name(Source source) noexcept {
  switch (source) {
    case Source::automatic:
      return "automatic";
    case Source::netlink:
      return "netlink";
    case Source::proc:
      return "proc";
  }
  return "automatic";
}

SocketList sockets(const SocketFilter& filter) {
  const internal::SocketQuery query = make_query(filter);
  // The process first: a pid that is not there is an error before any dump is made.
  std::optional<internal::SocketOwners> of_pid;
  if (filter.pid) of_pid = internal::scan_socket_owners_of(*filter.pid);
  // The owners of every socket are read while the kernel dumps the sockets: the scan (a
  // readlink per fd of the machine) and the dump take about as long, and use other cores.
  std::future<internal::SocketOwners> every_owner;
  if (filter.owners && !filter.pid) {
    every_owner = std::async(std::launch::async, [] { return internal::scan_socket_owners(); });
  }

  SocketList list;
  if (filter.pid && filter.source != Source::proc && in_other_network_namespace(*filter.pid)) {
    if (filter.source == Source::netlink) {
      invalid("pid " + std::to_string(*filter.pid),
              "it is in another network namespace, which netlink from here does not see; "
              "use the proc source");
    }
    // Its namespace's tables, as that process sees them.
    list.sockets = from_proc(query, "/proc/" + std::to_string(*filter.pid) + "/net");
    list.source = Source::proc;
  } else if (filter.source == Source::proc) {
    list.sockets = from_proc(query);
    list.source = Source::proc;
  } else {
    try {
      list.sockets = internal::sock_diag_sockets(query);
      list.source = Source::netlink;
    } catch (const Error& e) {
      if (filter.source == Source::netlink || !internal::is_refusal(e.code())) throw;
      list.netlink_error = e.code();
      list.sockets = from_proc(query);
      list.source = Source::proc;
    }
  }

  if (of_pid) {
    std::erase_if(list.sockets,
                  [&](const SocketInfo& s) { return of_pid->holding(s.inode).empty(); });
  }
  // Sorted while the owner scan may still run: it is the longer of the two.
  sort_sockets(list.sockets);
  if (of_pid) {
    add_owners(list, std::move(*of_pid));
  } else if (every_owner.valid()) {
    add_owners(list, every_owner.get());
  }
  return list;
}

std::string to_json(const SocketList& list) {
  std::string out = "{\"source\": ";
  wire::internal::append_json_string(out, source_name(list.source));
  out += ", \"unreadable\": [";
  for (std::size_t i = 0; i < list.unreadable.size(); ++i) {
    out += (i == 0 ? "" : ", ") + std::to_string(list.unreadable[i]);
  }
  out += "], \"sockets\": [";
  for (std::size_t i = 0; i < list.sockets.size(); ++i) {
    const SocketInfo& s = list.sockets[i];
    out += i == 0 ? "\n  {" : ",\n  {";
    out += "\"protocol\": ";
    wire::internal::append_json_string(out, protocol_name(s.protocol));
    out += ", \"family\": ";
    wire::internal::append_json_string(out, s.family == AF_INET    ? "inet"
                                            : s.family == AF_INET6 ? "inet6"
                                                                   : "unix");
    out += ", \"state\": ";
    wire::internal::append_json_string(out, s.state);
    out += ", \"recv_queue\": " + std::to_string(s.recv_queue);
    out += ", \"send_queue\": " + std::to_string(s.send_queue);
    out += ", \"local\": ";
    wire::internal::append_json_string(out, s.local);
    out += ", \"peer\": ";
    wire::internal::append_json_string(out, s.peer);
    out += ", \"inode\": " + std::to_string(s.inode);
    out += ", \"peer_inode\": " + std::to_string(s.peer_inode);
    out += ", \"uid\": " + (s.uid == unknown_uid ? std::string("null") : std::to_string(s.uid));
    out += ", \"owners\": [";
    for (std::size_t k = 0; k < s.owners.size(); ++k) {
      out += k == 0 ? "{\"pid\": " : ", {\"pid\": ";
      out += std::to_string(s.owners[k].pid) + ", \"name\": ";
      wire::internal::append_json_string(out, s.owners[k].name);
      out += ", \"fd\": " + std::to_string(s.owners[k].fd) + "}";
    }
    out += "]}";
  }
  out += list.sockets.empty() ? "]}\n" : "\n]}\n";
  return out;
}

}  // namespace wire::diag
