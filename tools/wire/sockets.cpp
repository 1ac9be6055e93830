// wire sockets [-t] [-u] [-x] [-l] [-p] [--state STATE]... [--pid PID] [--port N] [--json]
//              [--check-close-wait] [--source auto|netlink|proc]
// Every socket of the machine as `ss -tuxanp` shows it; --check-close-wait for scripts.
#include <unistd.h>

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
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
// name holding any of ( ) , " \\ a space or an unprintable byte is quoted. Inside, the
// quote and the backslash are escaped and the rest goes through printable(), so a name with a
// newline (\x0a) and one that spells "\x0a" stay two names.
std::string owner_name(const std::string& comm) {
  const std::string name = detail::printable(comm);
  if (!name.empty() && name == comm && name.find_first_of("(),\"\\ ") == std::string::npos) {
    return name;
  }
  std::string quoted = "\"";
  std::size_t from = 0;
  for (std::size_t at = comm.find_first_of("\"\\"); at != std::string::npos;
       from = at + 1, at = comm.find_first_of("\"\\", from)) {
    quoted += detail::printable(std::string_view(comm).substr(from, at - from));
    quoted += '\\';
    quoted += comm[at];
  }
  quoted += detail::printable(std::string_view(comm).substr(from));
  return quoted + "\"";
}

// Owner cells are measured, then written straight into the table: a string per row was
// 20,000 allocations and 600 fresh pages (perf, bench/sockets.sh). Names are made once per
// process.
class OwnerCells {
 public:
  std::size_t width(const diag::SocketInfo& s) {
    std::size_t size = s.owners.empty() ? 0 : s.owners.size() - 1;  // the commas
    for (const auto& owner : s.owners) {
      size += shown(owner).size() + digits(static_cast<std::uint64_t>(owner.pid)) +
              digits(static_cast<std::uint64_t>(owner.fd)) + 3;
    }
    return size;
  }

  void append(std::string& out, const diag::SocketInfo& s) {
    char number[24];
    for (std::size_t i = 0; i < s.owners.size(); ++i) {
      const auto& owner = s.owners[i];
      if (i > 0) out += ',';
      out += shown(owner);
      out += '(';
      out.append(number, std::to_chars(number, number + sizeof number, owner.pid).ptr);
      out += ',';
      out.append(number, std::to_chars(number, number + sizeof number, owner.fd).ptr);
      out += ')';
    }
  }

  static std::size_t digits(std::uint64_t n) {
    std::size_t count = 1;
    while (n >= 10) n /= 10, ++count;
    return count;
  }

 private:
  const std::string& shown(const diag::SocketOwner& owner) {
    if (owner.pid != last_pid_ || !last_) {
      auto [at, added] = names_.try_emplace(owner.pid);
      if (added) at->second = owner_name(owner.name);
      last_pid_ = owner.pid;
      last_ = &at->second;
    }
    return *last_;
  }

  std::unordered_map<pid_t, std::string> names_;
  pid_t last_pid_ = 0;
  const std::string* last_ = nullptr;
};

// The widths come from all rows before anything is written, and the table is built in one
// string written at once, straight from the list: with 20,000 sockets, a copy of every cell
// and a printf per line cost more than the kernel's dump (bench/sockets.sh). Only the cells
// that are not already strings in the list (queues, unix ends, owners) are made here.
void print_table(const diag::SocketList& list, bool with_owners) {
  const std::size_t columns = with_owners ? 7 : 6;
  const std::array<std::string_view, 7> titles = {"Netid", "State", "Recv-Q", "Send-Q",
                                                  "Local", "Peer",  "Process"};
  struct Made {
    std::string local, peer;
  };
  // Made cells exist only where a row has one (unix rows): most rows of a busy host are TCP,
  // and 20,000 empty Made would be 1 MB of fresh pages for nothing.
  const bool any_unix = std::any_of(list.sockets.begin(), list.sockets.end(),
                                    [](const diag::SocketInfo& s) { return s.family == AF_UNIX; });
  std::vector<Made> made(any_unix ? list.sockets.size() : 0);
  std::array<std::size_t, 7> width{};
  for (std::size_t i = 0; i < columns; ++i) width[i] = titles[i].size();
  const auto digits = OwnerCells::digits;
  for (std::size_t r = 0; r < made.size(); ++r) {
    const auto& s = list.sockets[r];
    if (s.family == AF_UNIX) {
      made[r].local = unix_end(s.local, s.inode);
      made[r].peer = unix_end(s.peer, s.peer_inode);
    }
  }
  OwnerCells owner_cells;
  const auto local_of = [&](std::size_t r) -> const std::string& {
    return list.sockets[r].family == AF_UNIX ? made[r].local : list.sockets[r].local;
  };
  const auto peer_of = [&](std::size_t r) -> std::string_view {
    const auto& s = list.sockets[r];
    if (s.family == AF_UNIX) return made[r].peer;
    return s.peer.empty() ? std::string_view("*") : std::string_view(s.peer);
  };
  std::size_t total = 0;
  for (std::size_t r = 0; r < list.sockets.size(); ++r) {
    const auto& s = list.sockets[r];
    const std::size_t sizes[7] = {diag::protocol_name(s.protocol).size(),
                                  s.state.size(),
                                  digits(s.recv_queue),
                                  digits(s.send_queue),
                                  local_of(r).size(),
                                  peer_of(r).size(),
                                  with_owners ? owner_cells.width(s) : 0};
    for (std::size_t i = 0; i < columns; ++i) width[i] = std::max(width[i], sizes[i]);
  }
  for (std::size_t i = 0; i < columns; ++i) total += width[i] + 2;
  // Written in pieces of about 64 KiB: the same pages again and again, not one fresh page
  // per 4 KiB of a table held whole.
  constexpr std::size_t piece = 64 * 1024;
  std::string out;
  out.reserve(piece + total);
  const auto cell = [&](std::size_t i, std::string_view text) {
    out += text;
    if (i + 1 < columns) out.append(width[i] - text.size() + 2, ' ');
  };
  const auto end_line = [&] {
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  for (std::size_t i = 0; i < columns; ++i) cell(i, titles[i]);
  end_line();
  char number[24];
  for (std::size_t r = 0; r < list.sockets.size(); ++r) {
    const auto& s = list.sockets[r];
    cell(0, diag::protocol_name(s.protocol));
    cell(1, s.state);
    cell(2, std::string_view(
                number, std::to_chars(number, number + sizeof number, s.recv_queue).ptr - number));
    cell(3, std::string_view(
                number, std::to_chars(number, number + sizeof number, s.send_queue).ptr - number));
    cell(4, local_of(r));
    cell(5, peer_of(r));
    if (with_owners) owner_cells.append(out, s);  // the last column: no padding
    end_line();
    if (out.size() >= piece) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
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
                                "LISTEN... or ss's names (established, close-wait...) and groups "
                                "(connected, synchronized, bucket, big, all)");
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
    if (filter.pid && list.source == diag::Source::proc && !list.netlink_error &&
        filter.source != diag::Source::proc) {
      std::fprintf(stderr,
                   "wire: pid %d is in another network namespace: its sockets were read from "
                   "/proc/%d/net\n",
                   *filter.pid, *filter.pid);
    }
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
    // Unreadable processes matter only when a socket shown has no owner: with every socket
    // accounted for, naming them (every kernel thread, to a user who is not root) is noise.
    const bool unowned = std::any_of(list.sockets.begin(), list.sockets.end(),
                                     [](const diag::SocketInfo& s) { return s.owners.empty(); });
    if (!list.unreadable.empty() && unowned) print_unreadable(list.unreadable);
    if (args->check_close_wait && !list.sockets.empty()) {
      std::fprintf(stderr, "wire: %zu %s in CLOSE-WAIT: their peer closed, they did not\n",
                   list.sockets.size(), list.sockets.size() == 1 ? "socket" : "sockets");
      return 1;
    }
    return 0;
  };
}

}  // namespace wire::cli
