// wire::diag::sockets and `wire sockets`: live sockets of this process on loopback, in every
// state the seed's zombies go through, compared with what ss and lsof say of the same sockets.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "support.hpp"
#include "wire/diag.hpp"

using namespace wire;
using diag::Protocol;
using diag::SocketFilter;
using diag::SocketInfo;
using diag::SocketList;
using diag::Source;
using test::Child;

namespace {

std::uint64_t inode_of(const Socket& s) {
  struct ::stat st {};
  if (::fstat(s.fileno(), &st) != 0) throw std::runtime_error("fstat");
  return st.st_ino;
}

// Waits up to 5 s for `done`; false when it never came.
template <class Done>
bool eventually(Done&& done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The state code (hex, as /proc/net/tcp prints it) of the TCP socket from local_port to
// peer_port on loopback, "" when there is none. Both ports: other tests run in parallel on
// loopback, and a client port number is reused towards other peers.
std::string tcp_state(bool v6, std::uint16_t local_port, std::uint16_t peer_port) {
  std::FILE* f = std::fopen(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", "r");
  if (f == nullptr) return {};
  char line[512];
  std::string state;
  std::fgets(line, sizeof line, f);  // header
  while (state.empty() && std::fgets(line, sizeof line, f) != nullptr) {
    char local[128], remote[128], code[8];
    if (std::sscanf(line, "%*d: %127s %127s %7s", local, remote, code) != 3) continue;
    const char* l = std::strrchr(local, ':');
    const char* r = std::strrchr(remote, ':');
    if (l != nullptr && r != nullptr && std::strtoul(l + 1, nullptr, 16) == local_port &&
        std::strtoul(r + 1, nullptr, 16) == peer_port) {
      state = code;
    }
  }
  std::fclose(f);
  return state;
}

std::uint16_t port_of(const std::string& address) {
  const auto colon = address.rfind(':');
  return colon == std::string::npos || address.back() == '*'
             ? 0
             : static_cast<std::uint16_t>(std::stoi(address.substr(colon + 1)));
}

// What one row says, in a form both ss and wire can be brought to.
using Row = std::tuple<std::string, std::string, std::string>;  // local, peer, state

std::string inet(const std::string& host, std::uint16_t port, bool v6) {
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// TCP on one family: a listener, an established pair, a pair whose client shut down its
// side (FIN-WAIT-2 / CLOSE-WAIT, the seed's zombie), one whose client closed (an orphan
// FIN-WAIT-2, which the kernel keeps as a timewait socket) and a pair closed by both
// (TIME-WAIT).
struct TcpScene {
  bool v6;
  std::string host;
  Socket listener;
  Socket client, accepted;        // ESTAB, ESTAB
  Socket half_client, half_peer;  // FIN-WAIT-2, CLOSE-WAIT
  Socket orphan_peer;             // CLOSE-WAIT; its client is closed
  std::uint16_t port = 0, client_port = 0, half_client_port = 0, orphan_port = 0, timed_port = 0;

  explicit TcpScene(bool ipv6) : v6(ipv6), host(ipv6 ? "::1" : "127.0.0.1") {
    const std::string base = ipv6 ? "tcp://[::1]:" : "tcp://127.0.0.1:";
    listener = create_server(base + "0");
    port = listener.local_address().port();
    client = create_connection(base + std::to_string(port), std::chrono::seconds(2));
    accepted = std::move(listener.accept().socket);
    client_port = client.local_address().port();
    half_client = create_connection(base + std::to_string(port), std::chrono::seconds(2));
    half_peer = std::move(listener.accept().socket);
    half_client_port = half_client.local_address().port();
    half_client.shutdown(Shutdown::write);
    {
      Socket orphan = create_connection(base + std::to_string(port), std::chrono::seconds(2));
      orphan_peer = std::move(listener.accept().socket);
      orphan_port = orphan.local_address().port();
    }
    {
      Socket timed = create_connection(base + std::to_string(port), std::chrono::seconds(2));
      Socket timed_peer = std::move(listener.accept().socket);
      timed_port = timed.local_address().port();
      timed.close();  // the active closer ends in TIME-WAIT once the peer closes too
      if (!eventually([&] { return tcp_state(v6, port, timed_port) == "08"; }))
        throw std::runtime_error("no CLOSE-WAIT");
    }
    if (!eventually([&] {
          return tcp_state(v6, timed_port, port) == "06" &&
                 tcp_state(v6, half_client_port, port) == "05" &&
                 tcp_state(v6, orphan_port, port) == "05" &&
                 tcp_state(v6, port, half_client_port) == "08" &&
                 tcp_state(v6, port, orphan_port) == "08";
        })) {
      throw std::runtime_error("no TIME-WAIT / FIN-WAIT-2");
    }
  }

  std::set<std::uint16_t> ports() const {
    return {port, client_port, half_client_port, orphan_port, timed_port};
  }
  std::set<Row> expected() const {
    return {
        {inet(host, port, v6), "", "LISTEN"},
        {inet(host, client_port, v6), inet(host, port, v6), "ESTAB"},
        {inet(host, port, v6), inet(host, client_port, v6), "ESTAB"},
        {inet(host, half_client_port, v6), inet(host, port, v6), "FIN-WAIT-2"},
        {inet(host, port, v6), inet(host, half_client_port, v6), "CLOSE-WAIT"},
        {inet(host, orphan_port, v6), inet(host, port, v6), "FIN-WAIT-2"},
        {inet(host, port, v6), inet(host, orphan_port, v6), "CLOSE-WAIT"},
        {inet(host, timed_port, v6), inet(host, port, v6), "TIME-WAIT"},
    };
  }
};

// UDP: a bound socket (UNCONN) and one connected to it (ESTAB).
struct UdpScene {
  bool v6;
  std::string host;
  Socket bound, connected;
  std::uint16_t port = 0, connected_port = 0;

  explicit UdpScene(bool ipv6) : v6(ipv6), host(ipv6 ? "::1" : "127.0.0.1") {
    bound = Socket(ipv6 ? Family::inet6 : Family::inet, Type::dgram);
    bound.bind(Address::inet(host, 0, Type::dgram));
    port = bound.local_address().port();
    connected = Socket(ipv6 ? Family::inet6 : Family::inet, Type::dgram);
    connected.connect(Address::inet(host, port, Type::dgram));
    connected_port = connected.local_address().port();
  }
  std::set<std::uint16_t> ports() const { return {port, connected_port}; }
  std::set<Row> expected() const {
    return {{inet(host, port, v6), "", "UNCONN"},
            {inet(host, connected_port, v6), inet(host, port, v6), "ESTAB"}};
  }
};

// Unix: a listener on a path with a client and its accepted end, an abstract listener, a
// bound datagram socket.
struct UnixScene {
  test::TempDir dir;
  std::string path, abstract_name;
  Socket listener, client, accepted, abstract, datagram;

  UnixScene() {
    path = dir.file("s.sock");
    abstract_name = "wire-diag-sockets-" + std::to_string(::getpid());
    listener = create_server("unix:" + path);
    client = create_connection("unix:" + path, std::chrono::seconds(2));
    accepted = std::move(listener.accept().socket);
    abstract = create_server("unix:@" + abstract_name);
    datagram = Socket(Family::local, Type::dgram);
    datagram.bind(Address::unix_path(dir.file("d.sock"), Type::dgram));
  }
  std::map<std::uint64_t, const Socket*> by_inode() const {
    std::map<std::uint64_t, const Socket*> m;
    for (const Socket* s : {&listener, &client, &accepted, &abstract, &datagram}) {
      m[inode_of(*s)] = s;
    }
    return m;
  }
};

std::set<Row> rows_of(const SocketList& list, Protocol protocol, int family,
                      const std::set<std::uint16_t>& ports) {
  std::set<Row> rows;
  for (const auto& s : list.sockets) {
    if (s.protocol != protocol || s.family != family) continue;
    if (!ports.count(port_of(s.local)) || (!s.peer.empty() && !ports.count(port_of(s.peer))))
      continue;
    rows.insert({s.local, s.peer, s.state});
  }
  return rows;
}

// `ss -tanH` / `ss -uanH` rows between `ports` (the peer "" where ss writes "0.0.0.0:*" or
// "[::]:*"), as (local, peer, state). rows_of() selects wire's rows alike: both ends must be
// the test's own, as other tests run on loopback at the same time.
// `states`: an ss state or group ("connected"), which must select more than one state (ss
// leaves the State column out for one).
std::set<Row> ss_rows(const std::string& protocol_flag, const std::set<std::uint16_t>& ports,
                      const std::string& states = "") {
  std::string filter;
  for (const auto port : ports) {
    if (!filter.empty()) filter += " or ";
    filter += "sport = :" + std::to_string(port) + " or dport = :" + std::to_string(port);
  }
  std::vector<std::string> args{"ss", protocol_flag + "anH"};
  if (!states.empty()) args.insert(args.end(), {"state", states});
  args.insert(args.end(), {"(", filter, ")"});
  Child ss(std::move(args));
  const std::string out = ss.read_all();
  if (ss.wait() != 0) throw std::runtime_error("ss failed: " + out);
  std::set<Row> rows;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string state, recvq, sendq, local, peer;
    if (!(fields >> state >> recvq >> sendq >> local >> peer)) continue;
    if (peer.size() >= 2 && peer.compare(peer.size() - 2, 2, ":*") == 0) peer.clear();
    if (!ports.count(port_of(local)) || (!peer.empty() && !ports.count(port_of(peer)))) continue;
    rows.insert({local, peer, state});
  }
  return rows;
}

// `ss -xaH` rows of the given inodes: inode -> (local, state, peer inode).
std::map<std::uint64_t, std::tuple<std::string, std::string, std::uint64_t>> ss_unix(
    const std::map<std::uint64_t, const Socket*>& inodes) {
  Child ss({"ss", "-xaH"});
  const std::string out = ss.read_all();
  if (ss.wait() != 0) throw std::runtime_error("ss failed: " + out);
  std::map<std::uint64_t, std::tuple<std::string, std::string, std::uint64_t>> rows;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string netid, state, recvq, sendq, local, peer;
    std::uint64_t inode = 0, peer_inode = 0;
    if (!(fields >> netid >> state >> recvq >> sendq >> local >> inode >> peer >> peer_inode))
      continue;
    if (inodes.count(inode)) rows[inode] = {local == "*" ? "" : local, state, peer_inode};
  }
  return rows;
}

// Both backends, each forced: the same live sockets must come out of either.
std::set<Source> sources_here() {
  return {Source::netlink, Source::proc};
}

class DiagSocketsTest : public test::Test {};

}  // namespace

TEST_F(DiagSocketsTest, TcpRowsAreWhatSsSees) {
  std::vector<std::unique_ptr<TcpScene>> scenes;
  scenes.push_back(std::make_unique<TcpScene>(false));
  if (test::ipv6_loopback_available()) scenes.push_back(std::make_unique<TcpScene>(true));
  for (const Source source : sources_here()) {
    SocketFilter filter;
    filter.tcp = true;
    filter.source = source;
    const SocketList list = diag::sockets(filter);
    EXPECT_EQ(list.source, source);
    for (const auto& scene : scenes) {
      const std::set<std::uint16_t> ports = scene->ports();
      const int family = scene->v6 ? AF_INET6 : AF_INET;
      const auto wire_rows = rows_of(list, Protocol::tcp, family, ports);
      EXPECT_EQ(wire_rows, scene->expected()) << diag::source_name(source);
      std::set<Row> ss_family;
      for (const auto& row : ss_rows("-t", ports)) {
        if ((std::get<0>(row)[0] == '[') == scene->v6) ss_family.insert(row);
      }
      EXPECT_EQ(wire_rows, ss_family) << diag::source_name(source);
    }
  }
}

TEST_F(DiagSocketsTest, UdpRowsAreWhatSsSees) {
  std::vector<std::unique_ptr<UdpScene>> scenes;
  scenes.push_back(std::make_unique<UdpScene>(false));
  if (test::ipv6_loopback_available()) scenes.push_back(std::make_unique<UdpScene>(true));
  for (const Source source : sources_here()) {
    SocketFilter filter;
    filter.udp = true;
    filter.source = source;
    const SocketList list = diag::sockets(filter);
    for (const auto& scene : scenes) {
      const std::set<std::uint16_t> ports = scene->ports();
      const auto wire_rows = rows_of(list, Protocol::udp, scene->v6 ? AF_INET6 : AF_INET, ports);
      EXPECT_EQ(wire_rows, scene->expected()) << diag::source_name(source);
      std::set<Row> ss_family;
      for (const auto& row : ss_rows("-u", ports)) {
        if ((std::get<0>(row)[0] == '[') == scene->v6) ss_family.insert(row);
      }
      EXPECT_EQ(wire_rows, ss_family) << diag::source_name(source);
    }
    // No TCP row when only UDP is asked for.
    for (const auto& s : list.sockets) EXPECT_EQ(s.protocol, Protocol::udp);
  }
}

TEST_F(DiagSocketsTest, UnixRowsAreWhatSsSees) {
  UnixScene scene;
  const auto inodes = scene.by_inode();
  const auto ss = ss_unix(inodes);
  ASSERT_EQ(ss.size(), inodes.size());
  for (const Source source : sources_here()) {
    SocketFilter filter;
    filter.unix_sockets = true;
    filter.source = source;
    const SocketList list = diag::sockets(filter);
    std::size_t found = 0;
    for (const auto& s : list.sockets) {
      EXPECT_TRUE(s.family == AF_UNIX) << s.local;
      const auto row = ss.find(s.inode);
      if (row == ss.end()) continue;
      ++found;
      const auto& [local, state, peer_inode] = row->second;
      EXPECT_EQ(s.local, local) << s.inode;
      EXPECT_EQ(s.state, state) << s.inode << " " << s.local;
      if (source == Source::netlink) {
        EXPECT_EQ(s.peer_inode, peer_inode) << s.inode;
      }
    }
    EXPECT_EQ(found, inodes.size()) << diag::source_name(source);
    const auto row = [&](const Socket& socket) -> const SocketInfo& {
      for (const auto& s : list.sockets) {
        if (s.inode == inode_of(socket)) return s;
      }
      throw std::runtime_error("socket not listed");
    };
    EXPECT_EQ(row(scene.listener).local, scene.path);
    EXPECT_EQ(row(scene.listener).state, "LISTEN");
    EXPECT_EQ(row(scene.listener).protocol, Protocol::unix_stream);
    EXPECT_EQ(row(scene.abstract).local, "@" + scene.abstract_name);
    EXPECT_EQ(row(scene.accepted).local, scene.path);  // accept() gives the listener's name
    EXPECT_EQ(row(scene.client).local, "");
    EXPECT_EQ(row(scene.client).state, "ESTAB");
    EXPECT_EQ(row(scene.datagram).protocol, Protocol::unix_dgram);
  }
}

TEST_F(DiagSocketsTest, FiltersByStateListeningAndPort) {
  TcpScene tcp(false);
  UdpScene udp(false);
  const std::set<std::uint16_t> ports = tcp.ports();
  for (const Source source : sources_here()) {
    SocketFilter close_wait;
    close_wait.states = {"close-wait"};
    close_wait.source = source;
    const auto zombies = diag::sockets(close_wait);
    for (const auto& s : zombies.sockets) EXPECT_EQ(s.state, "CLOSE-WAIT");
    EXPECT_EQ(rows_of(zombies, Protocol::tcp, AF_INET, ports),
              (std::set<Row>{{inet(tcp.host, tcp.port, false),
                              inet(tcp.host, tcp.half_client_port, false), "CLOSE-WAIT"},
                             {inet(tcp.host, tcp.port, false),
                              inet(tcp.host, tcp.orphan_port, false), "CLOSE-WAIT"}}));

    // A closed client's FIN-WAIT-2 is a timewait socket to the kernel: asked for by its
    // state, it comes all the same, and TIME-WAIT does not come with it.
    SocketFilter fin_wait;
    fin_wait.states = {"fin-wait-2"};
    fin_wait.source = source;
    EXPECT_EQ(rows_of(diag::sockets(fin_wait), Protocol::tcp, AF_INET, ports),
              (std::set<Row>{{inet(tcp.host, tcp.half_client_port, false),
                              inet(tcp.host, tcp.port, false), "FIN-WAIT-2"},
                             {inet(tcp.host, tcp.orphan_port, false),
                              inet(tcp.host, tcp.port, false), "FIN-WAIT-2"}}));

    SocketFilter several;
    several.states = {"ESTAB", "Fin_Wait-2", "established"};
    several.source = source;
    std::set<std::string> states;
    for (const auto& row : rows_of(diag::sockets(several), Protocol::tcp, AF_INET, ports)) {
      states.insert(std::get<2>(row));
    }
    EXPECT_EQ(states, (std::set<std::string>{"ESTAB", "FIN-WAIT-2"}));

    // -l: listening TCP and unconnected UDP, as ss -l shows them.
    SocketFilter listening;
    listening.listening = true;
    listening.source = source;
    const auto listeners = diag::sockets(listening);
    for (const auto& s : listeners.sockets) {
      EXPECT_TRUE(s.state == "LISTEN" || s.state == "UNCONN") << s.local << " " << s.state;
    }
    EXPECT_EQ(rows_of(listeners, Protocol::tcp, AF_INET, ports),
              (std::set<Row>{{inet(tcp.host, tcp.port, false), "", "LISTEN"}}));
    EXPECT_EQ(rows_of(listeners, Protocol::udp, AF_INET, udp.ports()),
              (std::set<Row>{{inet(udp.host, udp.port, false), "", "UNCONN"}}));

    // ss's groups of states select what ss selects with them.
    for (const char* group : {"all", "connected", "synchronized", "bucket", "big"}) {
      SocketFilter grouped;
      grouped.states = {group};
      grouped.source = source;
      EXPECT_EQ(rows_of(diag::sockets(grouped), Protocol::tcp, AF_INET, ports),
                ss_rows("-t", ports, group))
          << group;
    }

    // A port: every row has it on one side; no Unix socket (they have no port).
    SocketFilter by_port;
    by_port.port = tcp.port;
    by_port.source = source;
    const auto on_port = diag::sockets(by_port);
    EXPECT_EQ(rows_of(on_port, Protocol::tcp, AF_INET, ports), tcp.expected());
    for (const auto& s : on_port.sockets) {
      EXPECT_TRUE(s.local == inet(tcp.host, tcp.port, false) ||
                  s.peer == inet(tcp.host, tcp.port, false))
          << s.local << " " << s.peer;
    }
  }
}

TEST_F(DiagSocketsTest, OwnersAreTheProcessAndFd) {
  TcpScene tcp(false);
  UnixScene unix_scene;
  SocketFilter filter;
  filter.owners = true;
  const auto list = diag::sockets(filter);
  std::map<std::uint64_t, const SocketInfo*> by_inode;
  for (const auto& s : list.sockets) by_inode[s.inode] = &s;
  for (const Socket* socket : {&tcp.listener, &tcp.client, &tcp.accepted, &tcp.half_client,
                               &tcp.half_peer, &unix_scene.listener, &unix_scene.client}) {
    const auto found = by_inode.find(inode_of(*socket));
    ASSERT_NE(found, by_inode.end()) << socket->fileno();
    const auto& owners = found->second->owners;
    ASSERT_EQ(owners.size(), 1u) << found->second->local;
    EXPECT_EQ(owners[0].pid, ::getpid());
    EXPECT_EQ(owners[0].fd, socket->fileno());
    EXPECT_FALSE(owners[0].name.empty());
  }
  // TIME-WAIT has no socket file any more: no inode, no owner.
  for (const auto& s : list.sockets) {
    if (s.state == "TIME-WAIT") {
      EXPECT_TRUE(s.owners.empty());
    }
  }
  EXPECT_TRUE(std::is_sorted(list.unreadable.begin(), list.unreadable.end()));
}

TEST_F(DiagSocketsTest, PidFilterIsThatProcessOnly) {
  TcpScene tcp(false);
  // A child holding a listener of its own: its socket, not ours, is what --pid shows.
  Child nc({"nc", "-l", "127.0.0.1", "0"});
  SocketFilter mine;
  mine.pid = ::getpid();
  mine.tcp = true;
  std::set<std::uint64_t> ours;
  for (const Socket* s : {&tcp.listener, &tcp.client, &tcp.accepted, &tcp.half_client,
                          &tcp.half_peer, &tcp.orphan_peer}) {
    ours.insert(inode_of(*s));
  }
  std::set<std::uint64_t> listed;
  for (const auto& s : diag::sockets(mine).sockets) {
    listed.insert(s.inode);
    ASSERT_EQ(s.owners.size(), 1u);
    EXPECT_EQ(s.owners[0].pid, ::getpid());
  }
  EXPECT_EQ(listed, ours);

  SocketFilter theirs;
  theirs.pid = nc.pid();
  theirs.tcp = true;
  theirs.listening = true;
  SocketList child_list;
  ASSERT_TRUE(eventually([&] {
    child_list = diag::sockets(theirs);
    return !child_list.sockets.empty();
  }));
  ASSERT_EQ(child_list.sockets.size(), 1u);
  EXPECT_EQ(child_list.sockets[0].owners.at(0).pid, nc.pid());
  EXPECT_EQ(child_list.sockets[0].owners.at(0).name, "nc");
  EXPECT_EQ(child_list.sockets[0].state, "LISTEN");

  const pid_t gone = nc.pid();
  nc.signal(SIGKILL);
  (void)nc.wait();
  for (const pid_t pid : {gone, pid_t{0x7ffffff0}, pid_t{0}}) {
    SocketFilter missing;
    missing.pid = pid;
    try {
      (void)diag::sockets(missing);
      ADD_FAILURE() << "no error for pid " << pid;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), std::errc::no_such_process) << e.what();
      EXPECT_EQ(std::string(e.what()), "sockets pid " + std::to_string(pid) + ": No such process");
    }
  }
}

TEST_F(DiagSocketsTest, BadFiltersAreInvalidArguments) {
  SocketFilter unknown;
  unknown.states = {"established", "half-open"};
  try {
    (void)diag::sockets(unknown);
    ADD_FAILURE() << "an unknown state was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    const std::string message = e.what();
    EXPECT_NE(message.find("'half-open'"), std::string::npos) << message;
    for (const char* name : {"ESTAB", "CLOSE-WAIT", "TIME-WAIT", "LISTEN", "UNCONN"}) {
      EXPECT_NE(message.find(name), std::string::npos) << message;
    }
  }
  SocketFilter port_zero;
  port_zero.port = 0;
  EXPECT_THROW((void)diag::sockets(port_zero), Error);
}

TEST_F(DiagSocketsTest, JsonIsParsedByPython) {
  TcpScene tcp(false);
  SocketFilter filter;
  filter.port = tcp.port;
  filter.owners = true;
  const auto list = diag::sockets(filter);
  const std::string json = diag::to_json(list);
  test::TempDir dir;
  std::FILE* out = std::fopen(dir.file("s.json").c_str(), "w");
  ASSERT_NE(out, nullptr);
  std::fputs(json.c_str(), out);
  std::fclose(out);
  Child check({"/usr/bin/python3", "-c",
               "import json,sys; d=json.load(open(sys.argv[1])); "
               "r=[s for s in d['sockets'] if s['state']=='LISTEN'][0]; "
               "print(d['source'], len([s for s in d['sockets'] if s['state']=='LISTEN']), "
               "r['protocol'], r['family'], r['local'], "
               "r['owners'][0]['pid'], r['owners'][0]['fd'])",
               dir.file("s.json")});
  EXPECT_EQ(check.read_all(), std::string(diag::source_name(list.source)) + " 1 tcp inet " +
                                  inet(tcp.host, tcp.port, false) + " " +
                                  std::to_string(::getpid()) + " " +
                                  std::to_string(tcp.listener.fileno()) + "\n")
      << json;
  EXPECT_EQ(check.wait(), 0);

  SocketList odd;
  odd.source = Source::proc;
  SocketInfo s;
  s.protocol = Protocol::unix_dgram;
  s.family = AF_UNIX;
  s.local = std::string("@a\"b\n\x01", 6);
  s.owners.push_back({42, "x\x1b", 3});
  odd.sockets.push_back(s);
  odd.unreadable = {1, 2};
  EXPECT_EQ(diag::to_json(odd),
            "{\"source\": \"proc\", \"unreadable\": [1, 2], \"sockets\": [\n"
            "  {\"protocol\": \"unix-dgram\", \"family\": \"unix\", \"state\": \"\", "
            "\"recv_queue\": 0, \"send_queue\": 0, \"local\": \"@a\\\"b\\u000a\\u0001\", "
            "\"peer\": \"\", \"inode\": 0, \"peer_inode\": 0, \"uid\": null, \"owners\": "
            "[{\"pid\": 42, \"name\": \"x\\u001b\", \"fd\": 3}]}\n]}\n");
}

namespace {

// Runs `body` in a forked child whose socket(AF_NETLINK, ...) the kernel refuses with
// EACCES (a seccomp filter, as some sandboxes install); returns what it wrote to the fd it
// is given, with its exit code. No mock: the refusal is the kernel's.
template <class Body>
std::pair<std::string, int> without_netlink(Body&& body) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork");
  if (pid == 0) {
    sock_filter program[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_NETLINK, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog filter{static_cast<unsigned short>(std::size(program)), program};
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter) != 0) {
      ::_exit(99);
    }
    ::_exit(body(out[1]));
  }
  ::close(out[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = ::read(out[0], buffer, sizeof buffer)) > 0;) text.append(buffer, n);
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {text, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)};
}

void write_all(int fd, const std::string& text) {
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

TEST_F(DiagSocketsTest, RefusedNetlinkFallsBackToProcAndSaysSo) {
  TcpScene tcp(false);
  const auto [text, code] = without_netlink([&](int out) {
    SocketFilter filter;
    filter.port = tcp.port;
    const SocketList list = diag::sockets(filter);
    std::string report =
        std::string(diag::source_name(list.source)) + " " + list.netlink_error.message() + " " +
        std::to_string(rows_of(list, Protocol::tcp, AF_INET, tcp.ports()) == tcp.expected());
    filter.source = Source::netlink;
    try {
      (void)diag::sockets(filter);
      report += " forced: no error";
    } catch (const Error& e) {
      report += std::string(" forced: ") + e.what();
    }
    write_all(out, report);
    return 0;
  });
  ASSERT_EQ(code, 0) << text;
  EXPECT_EQ(text, "proc Permission denied 1 forced: sock_diag socket: Permission denied");
}

namespace {

// An abstract Unix name any local user may bind: a newline, then a whole /proc/net/unix row
// as af_unix.c prints one, claiming that `inode` is a listening Unix socket.
std::string forged_name(std::uint64_t inode) {
  return "forge-" + std::to_string(::getpid()) +
         "\n0000000000000000: 00000002 00000000 00010000 0001 01 " + std::to_string(inode) +
         " /run/EVIL<script>.sock";
}

// A TCP listener, a Unix socket whose abstract name forges a row for the listener's inode,
// and a Unix listener on a path with a newline in it.
struct ForgeScene {
  test::TempDir dir;
  Socket listener = create_server("tcp://127.0.0.1:0");
  std::uint16_t port = listener.local_address().port();
  std::uint64_t inode = inode_of(listener);
  std::string name = forged_name(inode);
  Socket forger = create_server(Address::abstract(name));
  std::string path = dir.file("a\nb.sock");
  Socket newline = create_server(Address::unix_path(path));
};

// The rows of `list` with `inode`.
std::vector<const SocketInfo*> with_inode(const SocketList& list, std::uint64_t inode) {
  std::vector<const SocketInfo*> rows;
  for (const auto& s : list.sockets) {
    if (s.inode == inode) rows.push_back(&s);
  }
  return rows;
}

}  // namespace

TEST_F(DiagSocketsTest, AUnixNameCannotForgeAnotherSocketsRow) {
  ForgeScene scene;
  for (const Source source : {Source::automatic, Source::netlink, Source::proc}) {
    SCOPED_TRACE(std::string(diag::source_name(source)));
    SocketFilter all;
    all.source = source;
    const SocketList list = diag::sockets(all);
    const auto tcp = with_inode(list, scene.inode);
    ASSERT_EQ(tcp.size(), 1u);
    EXPECT_EQ(tcp[0]->protocol, Protocol::tcp);
    EXPECT_EQ(tcp[0]->state, "LISTEN");
    EXPECT_EQ(tcp[0]->local, "127.0.0.1:" + std::to_string(scene.port));
    const auto forger = with_inode(list, inode_of(scene.forger));
    ASSERT_EQ(forger.size(), 1u);
    // /proc/net/unix cannot tell the forged row from a real one: there the name ends at
    // the newline (docs/design/diag.md); netlink gives it whole.
    EXPECT_EQ(forger[0]->local, list.source == Source::netlink
                                    ? "@" + scene.name
                                    : "@" + scene.name.substr(0, scene.name.find('\n')));
    // A line that is no row is the rest of a name: the path is whole through either source.
    const auto newline = with_inode(list, inode_of(scene.newline));
    ASSERT_EQ(newline.size(), 1u);
    EXPECT_EQ(newline[0]->local, scene.path);
    EXPECT_EQ(newline[0]->state, "LISTEN");
    // Asking for Unix sockets only, the forged row is still known for what it is.
    SocketFilter unix_only = all;
    unix_only.unix_sockets = true;
    EXPECT_TRUE(with_inode(diag::sockets(unix_only), scene.inode).empty());
  }
  const std::string json = diag::to_json(diag::sockets());
  std::string escaped = "@" + scene.name;
  escaped.replace(escaped.find('\n'), 1, "\\u000a");
  for (const auto& [c, code] : {std::pair<char, const char*>{'<', "\\u003c"}, {'>', "\\u003e"}}) {
    for (auto at = escaped.find(c); at != std::string::npos; at = escaped.find(c))
      escaped.replace(at, 1, code);
  }
  EXPECT_NE(json.find("\"local\": \"" + escaped + "\""), std::string::npos);
}

// Without netlink fd_table() reads /proc/self/net/unix, and the forged row still replaces
// nothing.
TEST_F(DiagSocketsTest, FdTableWithoutNetlinkIsNotFooledByAForgedRow) {
  ForgeScene scene;
  const auto [text, code] = without_netlink([&](int out) {
    std::string report;
    for (const auto& fd : diag::fd_table()) {
      if (fd.fd == scene.listener.fileno() || fd.fd == scene.newline.fileno()) {
        report += std::string(diag::kind_name(fd.kind)) + " " + fd.state + " " + fd.target + ";";
      }
    }
    write_all(out, report);
    return 0;
  });
  ASSERT_EQ(code, 0) << text;
  EXPECT_EQ(text, "tcp LISTEN 127.0.0.1:" + std::to_string(scene.port) + ";unix-stream LISTEN " +
                      scene.path + ";");
}

TEST_F(DiagSocketsTest, OwnersOfLsofAreOwnersOfWire) {
  if (!test::have_program("lsof")) GTEST_SKIP() << "no lsof";
  TcpScene v4(false);
  UnixScene unix_scene;
  const std::string pid = std::to_string(::getpid());
  // lsof: "COMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME"; TCP NAME is
  // "LOCAL->PEER (STATE)" or "LOCAL (LISTEN)"; the socket's inode is DEVICE for inet, NODE
  // for unix. Both as (fd, inode, what).
  const auto lsof = [&](const std::vector<std::string>& selection) {
    std::vector<std::string> args{"lsof", "-nP", "-w", "-a", "-p", pid};
    args.insert(args.end(), selection.begin(), selection.end());
    Child child(args);
    const std::string out = child.read_all();
    (void)child.wait();
    std::set<std::tuple<int, std::uint64_t, std::string>> rows;
    std::istringstream lines(out);
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string command, owner, user, fd, type, device, offset, node, name, rest;
      if (!(fields >> command >> owner >> user >> fd >> type >> device >> offset >> node)) continue;
      std::getline(fields, rest);
      rest = rest.substr(rest.find_first_not_of(' '));
      const bool is_unix = type == "unix";
      rows.insert({std::stoi(fd), std::stoull(is_unix ? node : device), rest});
    }
    return rows;
  };
  SocketFilter filter;
  filter.pid = ::getpid();
  const SocketList list = diag::sockets(filter);
  std::set<std::tuple<int, std::uint64_t, std::string>> tcp_rows, unix_rows;
  for (const auto& s : list.sockets) {
    ASSERT_EQ(s.owners.size(), 1u);
    const int fd = s.owners[0].fd;
    if (s.protocol == Protocol::tcp) {
      if (s.local.rfind("127.0.0.1:", 0) != 0) continue;
      std::string state = s.state == "ESTAB"        ? "ESTABLISHED"
                          : s.state == "CLOSE-WAIT" ? "CLOSE_WAIT"
                          : s.state == "FIN-WAIT-2" ? "FIN_WAIT2"
                                                    : s.state;
      tcp_rows.insert(
          {fd, s.inode, (s.peer.empty() ? s.local : s.local + "->" + s.peer) + " (" + state + ")"});
    } else if (s.family == AF_UNIX) {
      const std::string type = s.protocol == Protocol::unix_dgram ? "DGRAM" : "STREAM";
      const std::string state = s.state == "LISTEN"   ? "LISTEN"
                                : s.state == "UNCONN" ? "UNCONNECTED"
                                                      : "CONNECTED";
      unix_rows.insert(
          {fd, s.inode,
           (s.local.empty() ? "" : s.local + " ") + "type=" + type + " (" + state + ")"});
    }
  }
  std::set<std::tuple<int, std::uint64_t, std::string>> lsof_tcp;
  for (const auto& row : lsof({"-i", "TCP@127.0.0.1"})) lsof_tcp.insert(row);
  EXPECT_EQ(tcp_rows, lsof_tcp);
  EXPECT_EQ(tcp_rows.size(), 6u);  // no TIME-WAIT or orphan: they have no fd
  EXPECT_EQ(unix_rows, lsof({"-U"}));
  EXPECT_EQ(unix_rows.size(), 5u);
}

#ifdef WIRE_CLI
namespace {

std::pair<std::string, int> run_wire(std::vector<std::string> args,
                                     const std::string& binary = WIRE_CLI,
                                     std::vector<std::string> prefix = {}) {
  args.insert(args.begin(), binary);
  args.insert(args.begin(), prefix.begin(), prefix.end());
  Child child(std::move(args), Child::Options::merged());
  std::string out = child.read_all();
  const std::optional<int> code = child.wait_at_most(std::chrono::seconds(5));
  if (!code) return {"(still running after 5 s)", -1};
  return {out, *code};
}

// `setpriv` running a command as nobody, and a copy of wire in `dir` that nobody may run
// (the build tree may be closed to it).
const std::vector<std::string> as_nobody{"setpriv", "--reuid=nobody", "--regid=nogroup",
                                         "--clear-groups"};
std::string wire_for_nobody(test::TempDir& dir) {
  if (::chmod(dir.file("").c_str(), 0755) != 0) throw std::runtime_error("chmod");
  const std::string wire = dir.file("wire");
  std::filesystem::copy_file(WIRE_CLI, wire);
  if (::chmod(wire.c_str(), 0755) != 0) throw std::runtime_error("chmod");
  return wire;
}

// A table's lines as words.
std::vector<std::vector<std::string>> words_of(const std::string& table) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("wire: ", 0) == 0) continue;  // a note on stderr, merged in
    std::istringstream fields(line);
    rows.emplace_back();
    for (std::string field; fields >> field;) rows.back().push_back(field);
  }
  return rows;
}

std::string own_comm() {
  std::string name = test::slurp("/proc/self/comm");
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

}  // namespace

TEST_F(DiagSocketsTest, WireSocketsTableWithOwners) {
  TcpScene tcp(false);
  const auto [table, code] = run_wire({"sockets", "-tp", "--port", std::to_string(tcp.port)});
  ASSERT_EQ(code, 0) << table;
  const auto rows = words_of(table);
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.front(), (std::vector<std::string>{"Netid", "State", "Recv-Q", "Send-Q", "Local",
                                                    "Peer", "Process"}));
  const std::string owner = own_comm() + "(" + std::to_string(::getpid()) + ",";
  const std::string here = inet(tcp.host, tcp.port, false);
  const auto has = [&](const std::string& state, const std::string& local, const std::string& peer,
                       const std::string& process) {
    for (const auto& row : rows) {
      if (row.size() >= 6 && row[0] == "tcp" && row[1] == state && row[4] == local &&
          row[5] == peer &&
          (process.empty() ? row.size() == 6 : row.size() == 7 && row[6] == process)) {
        return true;
      }
    }
    return false;
  };
  EXPECT_TRUE(has("LISTEN", here, "*", owner + std::to_string(tcp.listener.fileno()) + ")"))
      << table;
  EXPECT_TRUE(has("CLOSE-WAIT", here, inet(tcp.host, tcp.half_client_port, false),
                  owner + std::to_string(tcp.half_peer.fileno()) + ")"))
      << table;
  EXPECT_TRUE(has("TIME-WAIT", inet(tcp.host, tcp.timed_port, false), here, "")) << table;
  const auto ports = tcp.ports();
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(),
                          [&](const std::vector<std::string>& row) {
                            return row.size() >= 6 && ports.count(port_of(row[4])) &&
                                   (row[5] == "*" || ports.count(port_of(row[5])));
                          }),
            8)
      << table;  // the scene's 8 sockets
  // Aligned: every line's Local column starts where the header's does.
  const auto local_column = table.find("Local");
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("wire: ", 0) == 0) continue;
    std::size_t at = 0;
    for (int column = 0; column < 4; ++column) at = line.find_first_not_of(' ', line.find(' ', at));
    EXPECT_EQ(at, local_column) << line;
  }

  const auto [json, json_code] =
      run_wire({"sockets", "--json", "--port", std::to_string(tcp.port)});
  EXPECT_EQ(json_code, 0) << json;
  EXPECT_EQ(json.rfind("{\"source\": \"netlink\"", 0), 0u) << json;
  EXPECT_NE(json.find("\"local\": \"" + here + "\", \"peer\": \"\""), std::string::npos) << json;
}

TEST_F(DiagSocketsTest, WireSocketsUnixLikeSs) {
  UnixScene scene;
  const auto [table, code] = run_wire({"sockets", "-x", "--state", "listen"});
  ASSERT_EQ(code, 0) << table;
  const auto rows = words_of(table);
  const std::vector<std::string> listener{"unix-stream", "LISTEN",
                                          "0",           std::to_string(SOMAXCONN),
                                          scene.path,    std::to_string(inode_of(scene.listener)),
                                          "*",           "0"};
  EXPECT_EQ(std::count(rows.begin(), rows.end(), listener), 1) << table;
  for (std::size_t i = 1; i < rows.size(); ++i) EXPECT_EQ(rows[i][1], "LISTEN") << table;
  // The client's peer is the accepted socket, named after the listener.
  const auto [all, all_code] = run_wire({"sockets", "-x"});
  const std::vector<std::string> client{"unix-stream", "ESTAB",
                                        "0",           "0",
                                        "*",           std::to_string(inode_of(scene.client)),
                                        scene.path,    std::to_string(inode_of(scene.accepted))};
  EXPECT_EQ(all_code, 0) << all;
  const auto all_rows = words_of(all);
  EXPECT_EQ(std::count(all_rows.begin(), all_rows.end(), client), 1) << all;
}

TEST_F(DiagSocketsTest, WireCheckCloseWait) {
  TcpScene tcp(false);
  const std::string pid = std::to_string(::getpid());
  const auto [zombies, code] = run_wire({"sockets", "--check-close-wait", "--pid", pid});
  EXPECT_EQ(code, 1) << zombies;
  const auto rows = words_of(zombies);
  int close_wait = 0;
  for (const auto& row : rows) {
    if (row.size() == 7 && row[1] == "CLOSE-WAIT") {
      ++close_wait;
      EXPECT_EQ(row[6].rfind(own_comm() + "(" + pid + ",", 0), 0u) << zombies;
    }
  }
  EXPECT_EQ(close_wait, 2) << zombies;
  EXPECT_NE(zombies.find("wire: 2 sockets in CLOSE-WAIT"), std::string::npos) << zombies;

  Child sleeper({"sleep", "5"});
  const auto [clean, clean_code] =
      run_wire({"sockets", "--check-close-wait", "--pid", std::to_string(sleeper.pid())});
  EXPECT_EQ(clean_code, 0) << clean;
  EXPECT_EQ(clean, "");
}

TEST_F(DiagSocketsTest, WireSocketsBadInput) {
  const auto [state, state_code] = run_wire({"sockets", "--state", "half-open"});
  EXPECT_EQ(state_code, 2);
  EXPECT_EQ(state.rfind("wire: sockets state 'half-open': unknown state; one of ESTAB", 0), 0u)
      << state;
  EXPECT_EQ(std::count(state.begin(), state.end(), '\n'), 1) << state;
  for (const char* port : {"70000", "http"}) {
    const auto [out, code] = run_wire({"sockets", "--port", port});
    EXPECT_EQ(code, 2) << port << ": " << out;
    EXPECT_EQ(out.rfind("wire: --port", 0), 0u) << out;
  }
  for (const char* pid : {"0", "junk"}) {
    const auto [out, code] = run_wire({"sockets", "--pid", pid});
    EXPECT_EQ(code, 2) << pid << ": " << out;
    EXPECT_EQ(out.rfind("wire: --pid: must be a process id", 0), 0u) << out;
  }
  const auto [missing, missing_code] = run_wire({"sockets", "--pid", "2147483632"});
  EXPECT_EQ(missing_code, 1);
  EXPECT_EQ(missing, "wire: sockets pid 2147483632: No such process\n");
  const auto [both, both_code] = run_wire({"sockets", "--check-close-wait", "--state", "listen"});
  EXPECT_EQ(both_code, 2) << both;
}

TEST_F(DiagSocketsTest, WireSocketsWithoutNetlinkSaysProc) {
  TcpScene tcp(false);
  const auto [out, code] = without_netlink([&](int fd) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const std::string port = std::to_string(tcp.port);
    ::execl(WIRE_CLI, WIRE_CLI, "sockets", "-t", "--port", port.c_str(), "--state", "listen",
            static_cast<char*>(nullptr));
    return 98;
  });
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(
      out.find("wire: netlink sock_diag refused (Permission denied): read /proc/net instead\n"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find(inet(tcp.host, tcp.port, false)), std::string::npos) << out;
  const auto [forced, forced_code] = without_netlink([&](int fd) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(WIRE_CLI, WIRE_CLI, "sockets", "--source", "netlink", static_cast<char*>(nullptr));
    return 98;
  });
  EXPECT_EQ(forced_code, 1);
  EXPECT_EQ(forced, "wire: sock_diag socket: Permission denied\n");
}

// As `nobody`, a root process's fds are closed: reported as unreadable, never as "no
// sockets". The binary is copied where nobody may run it (the build tree may be private).
TEST_F(DiagSocketsTest, NobodyIsToldWhatItCannotRead) {
  if (!test::have_program("setpriv") || ::geteuid() != 0) GTEST_SKIP() << "needs root and setpriv";
  TcpScene tcp(false);
  test::TempDir dir;
  const std::string wire = wire_for_nobody(dir);
  const std::string pid = std::to_string(::getpid());

  const auto [fds, fds_code] = run_wire({"fds", pid}, wire, as_nobody);
  EXPECT_EQ(fds_code, 1) << fds;
  EXPECT_EQ(fds, "wire: fds " + pid + ": Permission denied\n");

  const auto [mine, mine_code] = run_wire({"sockets", "-p", "--pid", pid}, wire, as_nobody);
  EXPECT_EQ(mine_code, 1) << mine;
  EXPECT_EQ(mine, "wire: sockets pid " + pid + ": Permission denied\n");

  // Every socket is still listed, without the owners nobody may not see, and it is said.
  const auto [all, all_code] =
      run_wire({"sockets", "-tp", "--port", std::to_string(tcp.port)}, wire, as_nobody);
  EXPECT_EQ(all_code, 0) << all;
  EXPECT_NE(all.find("processes could not be read (pid "), std::string::npos) << all;
  EXPECT_NE(all.find("): their sockets show no owner; run as root to see them"), std::string::npos)
      << all;
  EXPECT_NE(all.find(inet(tcp.host, tcp.port, false)), std::string::npos) << all;
  EXPECT_EQ(all.find(own_comm() + "("), std::string::npos) << all;
  const auto [json, json_code] =
      run_wire({"sockets", "-p", "--json", "--port", std::to_string(tcp.port)}, wire, as_nobody);
  EXPECT_EQ(json_code, 0) << json;
  const std::string listed = json.substr(0, json.find("\"sockets\""));
  const bool ours_unreadable = listed.find("[" + pid + "]") != std::string::npos ||
                               listed.find("[" + pid + ",") != std::string::npos ||
                               listed.find(" " + pid + ",") != std::string::npos ||
                               listed.find(" " + pid + "]") != std::string::npos;
  EXPECT_TRUE(ours_unreadable) << json;
}
#endif

// `wire sockets | head -c 1` and friends: a reader that stops early ends the listing quietly
// (no "Broken pipe" error), and --check-close-wait still says what it found. The listings are
// made longer than a pipe's buffer (1,000 CLOSE-WAIT connections), so the writes do fail.
TEST(DiagSocketsCli, AReaderThatStopsEarlyEndsTheListingQuietly) {
  rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max < 2200) GTEST_SKIP() << "needs 2,200 fds";
  limit.rlim_cur = std::max<rlim_t>(limit.rlim_cur, 2200);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  wire::Socket listener = wire::create_server("tcp://127.0.0.1:0");
  const auto port = std::to_string(listener.local_address().port());
  std::vector<wire::Socket> close_wait;
  for (int i = 0; i < 1000; ++i) {
    wire::Socket client = wire::create_connection(
        std::vector<wire::Address>{listener.local_address()}, std::chrono::seconds(5));
    close_wait.push_back(listener.accept().socket);
    client.close();  // our accepted end is now in CLOSE-WAIT
  }
  const std::string pid = std::to_string(::getpid());
  const std::vector<std::pair<std::string, int>> cases = {
      {"sockets -t --port " + port, 0},
      {"fds " + pid, 0},
      {"tour", 0},
      {"sockets --check-close-wait --pid " + pid, 1},
  };
  for (const auto& [arguments, expected] : cases) {
    SCOPED_TRACE(arguments);
    const std::string shell = "set -o pipefail; exec 3>&1; " + std::string(WIRE_CLI) + " " +
                              arguments + " 2>&3 | head -c 1 >/dev/null";
    test::Child child({"/bin/bash", "-c", shell}, test::Child::Options::merged());
    const std::string said = child.read_all();
    EXPECT_EQ(child.wait(), expected) << said;
    EXPECT_EQ(said.find("Broken pipe"), std::string::npos) << said;
  }
}

// Careless and hostile use of the listing commands, each found by a review.
TEST(DiagSocketsCli, CarelessUseGetsAClearAnswer) {
  // A write that fails after the first buffer (a full disk) is an error, not exit 0.
  {
    Child child({"/bin/sh", "-c", std::string(WIRE_CLI) + " sockets --json > /dev/full"},
                Child::Options::merged());
    const std::string said = child.read_all();
    EXPECT_EQ(child.wait(), 1) << said;
    EXPECT_NE(said.find("No space left on device"), std::string::npos) << said;
  }
  // Started with stdout closed: no socket may take fd 1 and receive the tables.
  {
    Child child({"/bin/sh", "-c", std::string(WIRE_CLI) + " tour >&-"}, Child::Options::merged());
    const std::string said = child.read_all();
    EXPECT_EQ(child.wait(), 1) << said;
    EXPECT_NE(said.find("tour stdout: Bad file descriptor"), std::string::npos) << said;
  }
  EXPECT_EQ(run_wire({"sockets", "-l", "--state", "established"}).second, 2);
  EXPECT_EQ(run_wire({"sockets", "-x", "--port", "80"}).second, 2);
  const auto [port_said, port_code] = run_wire({"tour", "--port", "65536"});
  EXPECT_EQ(port_code, 2);
  EXPECT_NE(port_said.find("a number from 0 to 65535"), std::string::npos) << port_said;
  // A tour that fails midway prints no half of a JSON document.
  Socket taken = create_server("tcp://127.0.0.1:0");
  Child tour({WIRE_CLI, "tour", "--json", "--port", std::to_string(taken.local_address().port())});
  EXPECT_EQ(tour.read_all(), "");
  EXPECT_EQ(tour.wait(), 1);
}

// A process names itself: "s(1,3),x" must not read as two owners, one of them pid 1.
TEST(DiagSocketsCli, OwnerNamesThatLookLikeStructureAreQuoted) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::prctl(PR_SET_NAME, "s(1,3),x \"y\"");
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
        ::listen(fd, 1) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      ::_exit(1);
    }
    const std::uint16_t port = ntohs(address.sin_port);
    if (::write(ready[1], &port, sizeof port) != sizeof port) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  std::uint16_t port = 0;
  const bool got = ::read(ready[0], &port, sizeof port) == sizeof port;
  ::close(ready[0]);
  std::pair<std::string, int> result;
  if (got) result = run_wire({"sockets", "-tp", "--port", std::to_string(port)});
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(got);
  EXPECT_EQ(result.second, 0) << result.first;
  EXPECT_NE(result.first.find("\"s(1,3),x \\\"y\\\"\"(" + std::to_string(child) + ","),
            std::string::npos)
      << result.first;
}

// What the hostile review found: one odd fd, or a process that holds nothing, must neither
// hide a process's sockets nor send the user to run as root for nothing.
namespace {

// A python3 child that runs `script` and prints one line ("PID PORT"): read it.
struct PythonHolder {
  // `prefix` runs it (setpriv, unshare); `args` are its sys.argv[1:].
  explicit PythonHolder(const std::string& script, const std::vector<std::string>& args = {},
                        std::vector<std::string> prefix = {})
      : child([&] {
          prefix.insert(prefix.end(), {"/usr/bin/python3", "-c", script});
          prefix.insert(prefix.end(), args.begin(), args.end());
          return Child(std::move(prefix), Child::Options::merged());
        }()) {
    std::istringstream words(child.read_line());
    words >> pid >> port;
  }
  Child child;
  pid_t pid = 0;
  int port = 0;
};

}  // namespace

TEST(DiagSocketsCli, AFileWithAPathLongerThanPathMaxHidesNoSocket) {
  test::TempDir dir;
  const std::string root = dir.file("deep");
  std::pair<std::string, int> owners, by_pid, fds;
  {
    // 25 levels of 200-byte names: 5,000 bytes, beyond PATH_MAX, so readlink of that fd
    // fails with ENAMETOOLONG.
    PythonHolder holder(
        "import os, socket, sys, time\n"
        "os.mkdir(sys.argv[1]); fd = os.open(sys.argv[1], os.O_RDONLY)\n"
        "for i in range(25):\n"
        "    os.mkdir('d' * 200, dir_fd=fd)\n"
        "    n = os.open('d' * 200, os.O_RDONLY, dir_fd=fd); os.close(fd); fd = n\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(os.getpid(), s.getsockname()[1], flush=True); time.sleep(30)\n",
        {root});
    ASSERT_GT(holder.pid, 0);
    const std::string pid = std::to_string(holder.pid);
    owners = run_wire({"sockets", "-tp", "--port", std::to_string(holder.port)});
    by_pid = run_wire({"sockets", "--pid", pid});
    fds = run_wire({"fds", pid});
    EXPECT_EQ(owners.second, 0) << owners.first;
    EXPECT_NE(owners.first.find("(" + pid + ","), std::string::npos) << owners.first;
    EXPECT_EQ(owners.first.find("could not be read"), std::string::npos) << owners.first;
    EXPECT_EQ(by_pid.second, 0) << by_pid.first;
    EXPECT_NE(by_pid.first.find(":" + std::to_string(holder.port)), std::string::npos)
        << by_pid.first;
    EXPECT_EQ(fds.second, 0) << fds.first;
    EXPECT_NE(fds.first.find("(a path longer than PATH_MAX)"), std::string::npos) << fds.first;
    EXPECT_NE(fds.first.find("LISTEN"), std::string::npos) << fds.first;
  }
  // shutil.rmtree walks by fd: std::filesystem would trip over the length too.
  Child clean({"/usr/bin/python3", "-c", "import shutil, sys; shutil.rmtree(sys.argv[1])", root},
              Child::Options::merged());
  EXPECT_EQ(clean.wait(), 0) << clean.read_all();
}

#ifdef WIRE_CLI
// A zombie of nobody's own, and every kernel thread, hold no files: nobody is not told they
// "could not be read", and --pid of the zombie is an empty answer, as it is for root.
TEST(DiagSocketsCli, ProcessesThatHoldNoFilesAreNotUnreadable) {
  if (!test::have_program("setpriv") || ::geteuid() != 0) GTEST_SKIP() << "needs root and setpriv";
  test::TempDir dir;
  const std::string wire = wire_for_nobody(dir);
  PythonHolder holder(
      "import os, time\n"
      "child = os.fork()\n"
      "if child == 0: os._exit(0)\n"
      "while open('/proc/%d/stat' % child).read().rsplit(')', 1)[1].split()[0] != 'Z':\n"
      "    time.sleep(0.01)\n"
      "print(child, 0, flush=True); time.sleep(30)\n",
      {}, as_nobody);
  ASSERT_GT(holder.pid, 0);
  const std::string zombie = std::to_string(holder.pid);
  const auto [json, json_code] = run_wire({"sockets", "-p", "--json"}, wire, as_nobody);
  ASSERT_EQ(json_code, 0) << json;
  const std::string head = json.substr(0, json.find("\"sockets\""));
  const std::string listed = head.substr(head.find('['));
  for (const std::string& pid : {zombie, std::string("2")}) {  // 2: kthreadd
    EXPECT_EQ(listed.find("[" + pid + ","), std::string::npos) << pid << " in " << listed;
    EXPECT_EQ(listed.find(" " + pid + ","), std::string::npos) << pid << " in " << listed;
    EXPECT_EQ(listed.find(" " + pid + "]"), std::string::npos) << pid << " in " << listed;
    EXPECT_EQ(listed.find("[" + pid + "]"), std::string::npos) << pid << " in " << listed;
  }
  const auto [by_pid, by_pid_code] = run_wire({"sockets", "--pid", zombie}, wire, as_nobody);
  EXPECT_EQ(by_pid_code, 0) << by_pid;
  EXPECT_EQ(by_pid.find("Permission denied"), std::string::npos) << by_pid;
}
#endif

// Bound, neither listening nor connected: the kernel (6.7+) dumps it as CLOSE only when asked
// for a bit of its own; a state filter that asks for CLOSE must still find what the
// unfiltered list shows as UNCONN.
TEST_F(DiagSocketsTest, ABoundTcpSocketIsFoundByTheStateItIsShownIn) {
  Socket bound(Family::inet, Type::stream);
  bound.bind(Address::parse("tcp://127.0.0.1:0"));
  SocketFilter filter;
  filter.tcp = true;
  filter.port = bound.local_address().port();
  // Tests running at once may hold other sockets on this port (as a peer's port, or bound on
  // another address): only this socket's inode counts.
  const std::uint64_t inode = inode_of(bound);
  const auto found = [&](const SocketList& list) {
    return std::count_if(list.sockets.begin(), list.sockets.end(),
                         [&](const auto& s) { return s.inode == inode; });
  };
  const auto all = diag::sockets(filter);
  if (found(all) == 0) GTEST_SKIP() << "this kernel does not dump bound TCP sockets";
  ASSERT_EQ(found(all), 1);
  const auto it = std::find_if(all.sockets.begin(), all.sockets.end(),
                               [&](const auto& s) { return s.inode == inode; });
  EXPECT_EQ(it->state, "UNCONN");
  for (const char* state : {"UNCONN", "closed"}) {
    filter.states = {state};
    EXPECT_EQ(found(diag::sockets(filter)), 1) << state;
  }
}

// A thread's id names its process: the owner is the process, as in the unfiltered list.
TEST_F(DiagSocketsTest, APidFilterWithAThreadIdIsItsProcess) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  std::promise<pid_t> tid;
  std::promise<void> done;
  std::thread thread([&] {
    tid.set_value(static_cast<pid_t>(::syscall(SYS_gettid)));
    done.get_future().wait();
  });
  SocketFilter filter;
  filter.pid = tid.get_future().get();
  filter.port = listener.local_address().port();
  SocketList list;
  EXPECT_NO_THROW(list = diag::sockets(filter));
  done.set_value();
  thread.join();
  ASSERT_EQ(list.sockets.size(), 1u);
  ASSERT_EQ(list.sockets[0].owners.size(), 1u);
  EXPECT_EQ(list.sockets[0].owners[0].pid, ::getpid());
  EXPECT_EQ(list.sockets[0].owners[0].fd, listener.fileno());
}

#ifdef WIRE_CLI
// A process in a network namespace of its own: its sockets are not in this namespace's
// dump, so they come from its /proc/PID/net, and the user is told.
TEST(DiagSocketsCli, APidInAnotherNetworkNamespaceShowsItsSockets) {
  if (::geteuid() != 0 || !test::have_program("unshare")) GTEST_SKIP() << "needs root";
  PythonHolder holder(
      "import os, socket, time\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
      "print(os.getpid(), s.getsockname()[1], flush=True); time.sleep(30)\n",
      {}, {"unshare", "-n"});
  if (holder.pid <= 0) GTEST_SKIP() << "unshare -n refused here";
  const auto [said, code] = run_wire({"sockets", "--pid", std::to_string(holder.pid)});
  EXPECT_EQ(code, 0) << said;
  EXPECT_NE(said.find("127.0.0.1:" + std::to_string(holder.port)), std::string::npos) << said;
  EXPECT_NE(said.find("in another network namespace"), std::string::npos) << said;
  const auto [forced, forced_code] =
      run_wire({"sockets", "--pid", std::to_string(holder.pid), "--source", "netlink"});
  EXPECT_EQ(forced_code, 2) << forced;
}

// A name with a newline and a name that spells backslash-x-0-a are two names in the table.
TEST(DiagSocketsCli, OwnerNamesStayDistinctOnceEscaped) {
  const auto named = [](const char* name) {
    return PythonHolder(
        "import ctypes, os, socket, sys, time\n"
        "ctypes.CDLL(None).prctl(15, sys.argv[1].encode('latin-1'), 0, 0, 0)\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
        "print(os.getpid(), s.getsockname()[1], flush=True); time.sleep(30)\n",
        {name});
  };
  PythonHolder newline = named("a\nb");
  PythonHolder spelled = named("a\\x0ab");
  ASSERT_GT(newline.pid, 0);
  ASSERT_GT(spelled.pid, 0);
  const auto [one, one_code] = run_wire({"sockets", "-tp", "--port", std::to_string(newline.port)});
  const auto [two, two_code] = run_wire({"sockets", "-tp", "--port", std::to_string(spelled.port)});
  EXPECT_EQ(one_code, 0);
  EXPECT_EQ(two_code, 0);
  EXPECT_NE(one.find("\"a\\x0ab\"(" + std::to_string(newline.pid) + ","), std::string::npos) << one;
  EXPECT_NE(two.find("\"a\\\\x0ab\"(" + std::to_string(spelled.pid) + ","), std::string::npos)
      << two;
}
#endif

#ifdef WIRE_CLI
// The main thread exits (the raw exit syscall), another thread keeps the process and its
// sockets: the owners are found under that thread, where ss and lsof see nothing.
TEST(DiagSocketsCli, OwnersSurviveTheirMainThread) {
  PythonHolder holder(
      "import ctypes, os, socket, threading, time\n"
      "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
      "threading.Thread(target=time.sleep, args=(30,)).start()\n"
      "print(os.getpid(), s.getsockname()[1], flush=True)\n"
      "ctypes.CDLL(None).syscall(60, 0)\n");
  ASSERT_GT(holder.pid, 0);
  const std::string pid = std::to_string(holder.pid);
  // Wait until the main thread is a zombie, so the scan meets the case it is about.
  const std::string stat_path = "/proc/" + pid + "/stat";
  ASSERT_TRUE(eventually([&] {
    std::ifstream in(stat_path);
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return stat.size() > stat.rfind(')') + 2 && stat[stat.rfind(')') + 2] == 'Z';
  }));
  const auto [all, all_code] = run_wire({"sockets", "-tp", "--port", std::to_string(holder.port)});
  EXPECT_EQ(all_code, 0) << all;
  EXPECT_NE(all.find("(" + pid + ","), std::string::npos) << all;
  const auto [mine, mine_code] = run_wire({"sockets", "--pid", pid});
  EXPECT_EQ(mine_code, 0) << mine;
  EXPECT_NE(mine.find("127.0.0.1:" + std::to_string(holder.port)), std::string::npos) << mine;
}
#endif
