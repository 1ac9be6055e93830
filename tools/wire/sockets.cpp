// wire sockets [-t] [-u] [-x] [-l] [-p] [--state STATE]... [--pid PID] [--port N] [--json]
//              [--check-close-wait] [--source auto|netlink|proc]
// Every socket of the machine as `ss -tuxanp` shows it; --check-close-wait for scripts.
#include <unistd.h>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "wire/diag.hpp"

namespace wire::cli {
namespace {

// Processes whose fds could not be read: named, so the table is never taken as complete.
// Root is refused too in some places (pid 1 in a container, another user namespace), so
// "run as root" is advice only for those who are not.
void print_unreadable(const std::vector<pid_t>& pids) {
  std::string named;
  for (std::size_t i = 0; i < pids.size() && i < 5; ++i) {
    named += (i == 0 ? "" : ", ") + std::to_string(pids[i]);
  }
  if (pids.size() > 5) named += ", ...";
  std::fprintf(stderr, "wire: %zu %s could not be read (pid %s): their sockets show no owner%s\n",
               pids.size(), pids.size() == 1 ? "process" : "processes", named.c_str(),
               ::geteuid() == 0 ? "" : "; run as root to see them");
}

// A Unix end as ss writes it: its name ("*" when unnamed) and its inode.
std::string unix_end(const std::string& name, std::uint64_t inode) {
  return (name.empty() ? "*" : detail::printable(name)) + " " + std::to_string(inode);
}

// A process names itself (prctl PR_SET_NAME): "sshd(1,3),x" would read as two owners. A
// name holding any of ( ) , " \\ or a space is quoted, with " and \\ escaped inside.
std::string owner_name(const std::string& comm) {
  const std::string name = detail::printable(comm);
  if (name.find_first_of("(),\"\\ ") == std::string::npos && !name.empty()) return name;
  std::string quoted = "\"";
  for (const char c : name) {
    if (c == '"' || c == '\\') quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

std::string owners_text(const diag::SocketInfo& s) {
  std::string text;
  for (const auto& owner : s.owners) {
    if (!text.empty()) text += ",";
    text += owner_name(owner.name) + "(" + std::to_string(owner.pid) + "," +
            std::to_string(owner.fd) + ")";
  }
  return text;
}

void print_table(const diag::SocketList& list, bool with_owners) {
  std::vector<std::vector<std::string>> rows{
      {"Netid", "State", "Recv-Q", "Send-Q", "Local", "Peer"}};
  if (with_owners) rows.front().push_back("Process");
  for (const auto& s : list.sockets) {
    const bool is_unix = s.family == AF_UNIX;
    rows.push_back({std::string(diag::protocol_name(s.protocol)), s.state,
                    std::to_string(s.recv_queue), std::to_string(s.send_queue),
                    is_unix ? unix_end(s.local, s.inode) : s.local,
                    is_unix ? unix_end(s.peer, s.peer_inode) : (s.peer.empty() ? "*" : s.peer)});
    if (with_owners) rows.back().push_back(owners_text(s));
  }
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

Command add_sockets(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "sockets",
      "Every TCP, UDP and Unix socket with its state, queues, addresses and owners (ss -tuxanp)");
  struct Args {
    bool tcp = false, udp = false, unix_sockets = false, listening = false, owners = false;
    std::vector<std::string> states;
    pid_t pid = 0;
    int port = 0;
    bool json = false, check_close_wait = false;
    std::string source = "auto";
  };
  auto args = std::make_shared<Args>();
  sub->add_flag("-t,--tcp", args->tcp, "TCP sockets");
  sub->add_flag("-u,--udp", args->udp, "UDP sockets");
  sub->add_flag("-x,--unix", args->unix_sockets, "Unix sockets (none of -t -u -x: all three)");
  auto* listening = sub->add_flag("-l,--listening", args->listening,
                                  "only listening (and unconnected) sockets, as ss -l");
  sub->add_flag("-p,--processes", args->owners, "the processes holding each socket (ss -p)");
  auto* state = sub->add_option("--state", args->states,
                                "only this state (repeatable): ESTAB, CLOSE-WAIT, TIME-WAIT, "
                                "LISTEN... or ss's names (established, close-wait...)");
  sub->add_option("--pid", args->pid, "only the sockets this process holds (implies -p)")
      ->check(number_between("a process id", 1, 0x7fffffff));
  sub->add_option("--port", args->port, "only inet sockets with this local or peer port")
      ->check(number_between("a port", 1, 65535));
  sub->add_flag("--json", args->json, "one JSON object: source, unreadable, sockets");
  sub->add_flag("--check-close-wait", args->check_close_wait,
                "print the CLOSE-WAIT sockets with their owners; exit 1 if there is any")
      ->excludes(state)
      ->excludes(listening);
  // ss -l with a state filter means only that state; here the two would have to be read as a
  // union or an intersection, and either surprises someone: refuse the pair.
  listening->excludes(state);
  sub->add_option("--source", args->source,
                  "auto (netlink, or /proc/net if refused), netlink or proc")
      ->check(CLI::IsMember({"auto", "netlink", "proc"}));
  return [args] {
    diag::SocketFilter filter;
    filter.tcp = args->tcp;
    filter.udp = args->udp;
    filter.unix_sockets = args->unix_sockets;
    filter.listening = args->listening;
    filter.states = args->states;
    filter.owners = args->owners || args->check_close_wait;
    if (args->pid > 0) filter.pid = args->pid;
    if (args->port > 0 && args->unix_sockets && !args->tcp && !args->udp) {
      throw CLI::ValidationError("--port", "Unix sockets have no port: use it with -t or -u");
    }
    if (args->port > 0) filter.port = static_cast<std::uint16_t>(args->port);
    if (args->check_close_wait) filter.states = {"CLOSE-WAIT"};
    filter.source = args->source == "netlink" ? diag::Source::netlink
                    : args->source == "proc"  ? diag::Source::proc
                                              : diag::Source::automatic;
    const auto list = as_usage_error([&] { return diag::sockets(filter); });
    if (list.netlink_error) {
      std::fprintf(stderr, "wire: netlink sock_diag refused (%s): read /proc/net instead\n",
                   list.netlink_error.message().c_str());
    }
    if (args->json) {
      std::fputs(diag::to_json(list).c_str(), stdout);
    } else if (!args->check_close_wait || !list.sockets.empty()) {
      print_table(list, filter.owners || filter.pid);
    }
    // A reader that stopped early does not change the verdict of --check-close-wait.
    flush_listing("sockets");
    if (!list.unreadable.empty()) print_unreadable(list.unreadable);
    if (args->check_close_wait && !list.sockets.empty()) {
      std::fprintf(stderr, "wire: %zu %s in CLOSE-WAIT: their peer closed, they did not\n",
                   list.sockets.size(), list.sockets.size() == 1 ? "socket" : "sockets");
      return 1;
    }
    return 0;
  };
}

}  // namespace wire::cli
