// wire::diag::sockets and `wire sockets`: live sockets of this process on loopback, in every
// state the seed's zombies go through, compared with what ss and lsof say of the same sockets.
#include <sys/socket.h>
#include <sys/stat.h>
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
      if (!eventually([&] { return test::sockets_in_state(port, "08") == 3; }))
        throw std::runtime_error("no CLOSE-WAIT");
    }
    if (!eventually([&] {
          return test::sockets_in_state(timed_port, "06") == 1 &&
                 test::sockets_in_state(half_client_port, "05") == 1 &&
                 test::sockets_in_state(orphan_port, "05") == 1;
        })) {
      throw std::runtime_error("no TIME-WAIT / FIN-WAIT-2");
    }
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
    const auto port_of = [](const std::string& address) -> std::uint16_t {
      const auto colon = address.rfind(':');
      return colon == std::string::npos ? 0 : std::stoi(address.substr(colon + 1));
    };
    if (!ports.count(port_of(s.local)) && !ports.count(port_of(s.peer))) continue;
    rows.insert({s.local, s.peer, s.state});
  }
  return rows;
}

// `ss -tanH` / `ss -uanH` rows with any of `ports`, as (local, peer, state), the peer ""
// where ss writes "0.0.0.0:*" or "[::]:*".
std::set<Row> ss_rows(const std::string& protocol_flag, const std::set<std::uint16_t>& ports) {
  std::string filter;
  for (const auto port : ports) {
    if (!filter.empty()) filter += " or ";
    filter += "sport = :" + std::to_string(port) + " or dport = :" + std::to_string(port);
  }
  Child ss({"ss", protocol_flag + "anH", filter});
  const std::string out = ss.read_all();
  if (ss.wait() != 0) throw std::runtime_error("ss failed: " + out);
  std::set<Row> rows;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string state, recvq, sendq, local, peer;
    if (!(fields >> state >> recvq >> sendq >> local >> peer)) continue;
    if (peer.size() >= 2 && peer.compare(peer.size() - 2, 2, ":*") == 0) peer.clear();
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
      const std::set<std::uint16_t> ports{scene->port};
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
      const std::set<std::uint16_t> ports{scene->port};
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
  const std::set<std::uint16_t> ports{tcp.port};
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
    EXPECT_EQ(rows_of(listeners, Protocol::udp, AF_INET, {udp.port}),
              (std::set<Row>{{inet(udp.host, udp.port, false), "", "UNCONN"}}));

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
               "print(d['source'], len(d['sockets']), r['protocol'], r['family'], r['local'], "
               "r['owners'][0]['pid'], r['owners'][0]['fd'])",
               dir.file("s.json")});
  EXPECT_EQ(check.read_all(), std::string(diag::source_name(list.source)) + " 8 tcp inet " +
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
