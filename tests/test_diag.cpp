// wire::diag::fd_table and `wire fds`: real fds of this process (and a child), checked
// against what the kernel says through /proc and through `ss`.
#include "wire/diag.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include "support.hpp"
#include "wire/error.hpp"

using namespace wire;
using diag::FdInfo;
using diag::FdKind;
using test::Child;

namespace {

// One fd this test opened, closed at destruction.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {
    if (fd_ < 0 && fd != -1) throw std::runtime_error("bad fd");
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

Fd checked(int fd, const char* what) {
  if (fd < 0) throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
  return Fd(fd);
}

std::uint16_t port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

Fd tcp_listener(int flags = SOCK_CLOEXEC) {
  Fd s = checked(::socket(AF_INET, SOCK_STREAM | flags, 0), "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(s.get(), 8) != 0)
    throw std::runtime_error("bind/listen");
  return s;
}

Fd tcp_connect(std::uint16_t port) {
  Fd s = checked(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect");
  return s;
}

Fd unix_listener(const std::string& name, bool abstract) {
  Fd s = checked(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path + (abstract ? 1 : 0), name.data(), name.size());
  const auto len =
      static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (abstract ? 1 : 0));
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(s.get(), 8) != 0)
    throw std::runtime_error("unix bind/listen");
  return s;
}

const FdInfo& row_of(const std::vector<FdInfo>& table, int fd) {
  for (const auto& row : table) {
    if (row.fd == fd) return row;
  }
  throw std::runtime_error("fd " + std::to_string(fd) + " not in the table");
}

std::string loopback(std::uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

// Whether pid 1's fds are closed to us (a container, no CAP_SYS_PTRACE): the listing, or the
// links in it (checked one by one against ptrace rights), refuse with EACCES.
bool init_fds_denied() {
  DIR* dir = ::opendir("/proc/1/fd");
  if (dir == nullptr) return errno == EACCES;
  bool denied = false;
  while (const ::dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    char link[256];
    const std::string path = std::string("/proc/1/fd/") + entry->d_name;
    denied = ::readlink(path.c_str(), link, sizeof link) < 0 && errno == EACCES;
    break;
  }
  ::closedir(dir);
  return denied;
}

// The inode of a socket or any fd, as its /proc/PID/fd link names it.
std::uint64_t inode_of(int fd) {
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) throw std::runtime_error("fstat");
  return st.st_ino;
}

// An abstract Unix name any local user may bind: a newline, then a whole /proc/net/unix row
// as af_unix.c prints one, claiming that `inode` is a listening Unix socket.
std::string forged_name(std::uint64_t inode) {
  return "forge-" + std::to_string(::getpid()) +
         "\n0000000000000000: 00000002 00000000 00010000 0001 01 " + std::to_string(inode) +
         " /run/EVIL<script>.sock";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class DiagTest : public test::Test {};

}  // namespace

TEST_F(DiagTest, EveryKindOfFdIsNamedWithItsTargetAndState) {
  test::TempDir dir;
  Fd listener = tcp_listener();
  const auto port = port_of(listener.get());
  Fd client = tcp_connect(port);
  Fd accepted = checked(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept");
  const auto client_port = port_of(client.get());
  // A udp socket is in /proc/net/udp once bound (an unbound one is just "socket").
  Fd udp = checked(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), "udp");
  {
    sockaddr_in at{};
    at.sin_family = AF_INET;
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(udp.get(), reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  }
  Fd named = unix_listener(dir.file("s.sock"), false);
  Fd unix_client = checked(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket");
  {
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::strcpy(to.sun_path, dir.file("s.sock").c_str());
    ASSERT_EQ(::connect(unix_client.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    ASSERT_EQ(::send(unix_client.get(), "hello", 5, MSG_NOSIGNAL), 5);
  }
  Fd unix_accepted = checked(::accept4(named.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept");
  const std::string abstract_name = "wire-diag-" + std::to_string(::getpid());
  Fd abstract = unix_listener(abstract_name, true);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair), 0);
  Fd pair0(pair[0]), pair1(pair[1]);
  int pipes[2];
  ASSERT_EQ(::pipe2(pipes, O_CLOEXEC), 0);
  Fd pipe_read(pipes[0]), pipe_write(pipes[1]);
  Fd event = checked(::eventfd(0, EFD_CLOEXEC), "eventfd");
  Fd epoll = checked(::epoll_create1(EPOLL_CLOEXEC), "epoll");
  Fd timer = checked(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), "timerfd");
  std::FILE* f = std::fopen(dir.file("plain").c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  Fd file = checked(::open(dir.file("plain").c_str(), O_RDONLY | O_CLOEXEC), "open");
  Fd directory = checked(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), "open /");
  std::optional<Fd> v6;
  std::uint16_t v6_port = 0;
  if (test::ipv6_loopback_available()) {
    v6.emplace(checked(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket6"));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    ASSERT_EQ(::bind(v6->get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(v6->get(), 4), 0);
    v6_port = port_of(v6->get());
  }

  const auto table = diag::fd_table();
  EXPECT_TRUE(std::is_sorted(table.begin(), table.end(),
                             [](const FdInfo& a, const FdInfo& b) { return a.fd < b.fd; }));
  const FdInfo& l = row_of(table, listener.get());
  EXPECT_EQ(l.kind, FdKind::tcp);
  EXPECT_EQ(l.state, "LISTEN");
  EXPECT_EQ(l.target, loopback(port));
  EXPECT_EQ(l.peer, "");
  EXPECT_TRUE(l.is_socket());
  const FdInfo& c = row_of(table, client.get());
  EXPECT_EQ(c.state, "ESTAB");
  EXPECT_EQ(c.target, loopback(client_port) + " <- " + loopback(port));
  const FdInfo& a = row_of(table, accepted.get());
  EXPECT_EQ(a.state, "ESTAB");
  EXPECT_EQ(a.local, loopback(port));
  EXPECT_EQ(a.peer, loopback(client_port));
  const FdInfo& u = row_of(table, udp.get());
  EXPECT_EQ(u.kind, FdKind::udp);
  EXPECT_EQ(u.state, "UNCONN");
  EXPECT_EQ(u.target, loopback(port_of(udp.get())));
  const FdInfo& n = row_of(table, named.get());
  EXPECT_EQ(n.kind, FdKind::unix_stream);
  EXPECT_EQ(n.state, "LISTEN");
  EXPECT_EQ(n.target, dir.file("s.sock"));
  const FdInfo& uc = row_of(table, unix_client.get());
  const FdInfo& ua = row_of(table, unix_accepted.get());
  EXPECT_EQ(uc.peer, dir.file("s.sock"));  // the accepted end carries the listener's name
  EXPECT_EQ(uc.peer_inode, ua.inode);
  EXPECT_EQ(uc.target, "* <- " + dir.file("s.sock"));
  EXPECT_EQ(ua.peer, "* " + std::to_string(uc.inode));
  EXPECT_EQ(ua.recv_queue, 5u);
  EXPECT_EQ(ua.target, dir.file("s.sock") + " <- * " + std::to_string(uc.inode));
  const FdInfo& ab = row_of(table, abstract.get());
  EXPECT_EQ(ab.kind, FdKind::unix_stream);
  EXPECT_EQ(ab.target, "@" + abstract_name);
  // Unix peers and queues come from sock_diag: an unnamed peer as ss shows it ("* INODE").
  for (const auto& [end, other] : {std::pair{&pair0, &pair1}, std::pair{&pair1, &pair0}}) {
    const FdInfo& p = row_of(table, end->get());
    const FdInfo& o = row_of(table, other->get());
    EXPECT_EQ(p.kind, FdKind::unix_dgram);
    EXPECT_EQ(p.state, "ESTAB");
    EXPECT_EQ(p.peer_inode, o.inode);
    EXPECT_EQ(p.peer, "* " + std::to_string(o.inode));
    EXPECT_EQ(p.target, "* <- * " + std::to_string(o.inode));
  }
  EXPECT_EQ(row_of(table, named.get()).peer, "");
  EXPECT_EQ(row_of(table, named.get()).peer_inode, 0u);
  EXPECT_EQ(row_of(table, named.get()).send_queue, 8u);  // a listener's backlog limit, as ss
  EXPECT_EQ(row_of(table, pipe_read.get()).kind, FdKind::pipe);
  EXPECT_EQ(row_of(table, pipe_write.get()).inode, row_of(table, pipe_read.get()).inode);
  EXPECT_NE(row_of(table, pipe_read.get()).inode, 0u);
  EXPECT_EQ(row_of(table, event.get()).kind, FdKind::eventfd);
  EXPECT_EQ(row_of(table, epoll.get()).kind, FdKind::epoll);
  EXPECT_EQ(row_of(table, timer.get()).kind, FdKind::timerfd);
  EXPECT_EQ(row_of(table, file.get()).kind, FdKind::regular_file);
  EXPECT_EQ(row_of(table, file.get()).target, dir.file("plain"));
  EXPECT_EQ(row_of(table, directory.get()).kind, FdKind::directory);
  EXPECT_EQ(row_of(table, directory.get()).target, "/");
  if (v6) {
    const FdInfo& six = row_of(table, v6->get());
    EXPECT_EQ(six.kind, FdKind::tcp6);
    EXPECT_EQ(six.state, "LISTEN");
    EXPECT_EQ(six.target, "[::1]:" + std::to_string(v6_port));
  }
  for (const auto& row : table) EXPECT_NE(row.kind, FdKind::other) << row.fd << " " << row.target;

  // The seed's zombie: the client goes, the accepted side sits in CLOSE-WAIT.
  client.reset();
  bool close_wait = false;
  for (int i = 0; i < 200 && !close_wait; ++i) {
    close_wait = row_of(diag::fd_table(), accepted.get()).state == "CLOSE-WAIT";
    if (!close_wait) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(close_wait);
}

TEST_F(DiagTest, NetlinkFifoSignalfdAndPidfd) {
  test::TempDir dir;
  Fd netlink = checked(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "netlink");
  sockaddr_nl at{};
  at.nl_family = AF_NETLINK;  // portid 0: the kernel picks one, and lists the socket
  ASSERT_EQ(::bind(netlink.get(), reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::mkfifo(dir.file("fifo").c_str(), 0600), 0);
  Fd fifo = checked(::open(dir.file("fifo").c_str(), O_RDWR | O_CLOEXEC), "fifo");
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR2);
  Fd signals = checked(::signalfd(-1, &mask, SFD_CLOEXEC), "signalfd");
  const int raw_pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
  std::optional<Fd> pidfd;
  if (raw_pidfd >= 0) pidfd.emplace(raw_pidfd);

  const auto table = diag::fd_table();
  const FdInfo& nl = row_of(table, netlink.get());
  EXPECT_EQ(nl.kind, FdKind::netlink);
  EXPECT_TRUE(nl.is_socket());
  EXPECT_EQ(nl.target.rfind("route portid ", 0), 0u) << nl.target;
  EXPECT_EQ(row_of(table, fifo.get()).kind, FdKind::fifo);
  EXPECT_EQ(row_of(table, fifo.get()).target, dir.file("fifo"));
  EXPECT_EQ(row_of(table, signals.get()).kind, FdKind::signalfd);
  if (pidfd) {
    EXPECT_EQ(row_of(table, pidfd->get()).kind, FdKind::pidfd);
  }
  EXPECT_EQ(row_of(table, 0).fd, 0);
}

TEST_F(DiagTest, FlagsComeFromFdinfo) {
  Fd plain = checked(::socket(AF_INET, SOCK_STREAM, 0), "socket");
  Fd both = checked(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), "socket");
  Fd nonblock = checked(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), "socket");
  const auto table = diag::fd_table();
  EXPECT_FALSE(row_of(table, plain.get()).cloexec);
  EXPECT_FALSE(row_of(table, plain.get()).nonblock);
  EXPECT_TRUE(row_of(table, both.get()).cloexec);
  EXPECT_TRUE(row_of(table, both.get()).nonblock);
  EXPECT_FALSE(row_of(table, nonblock.get()).cloexec);
  EXPECT_TRUE(row_of(table, nonblock.get()).nonblock);
  // An unbound socket is in no /proc/net table yet: a plain "socket" with its inode.
  EXPECT_EQ(row_of(table, plain.get()).kind, FdKind::socket);
  EXPECT_EQ(row_of(table, plain.get()).target,
            "socket:[" + std::to_string(row_of(table, plain.get()).inode) + "]");
  EXPECT_NE(row_of(table, plain.get()).inode, 0u);
}

TEST_F(DiagTest, TcpRowsAgreeWithSs) {
  if (!test::have_program("ss")) GTEST_SKIP() << "no ss";
  Fd listener = tcp_listener();
  const auto port = port_of(listener.get());
  Fd client = tcp_connect(port);
  Fd accepted = checked(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC), "accept");
  const auto table = diag::fd_table();
  Child ss(
      {"ss", "-tanH", "sport = :" + std::to_string(port) + " or dport = :" + std::to_string(port)});
  const std::string out = ss.read_all();
  ASSERT_EQ(ss.wait(), 0);
  // ss: State Recv-Q Send-Q Local Peer
  std::istringstream lines(out);
  int matched = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string state, recvq, sendq, local, peer;
    if (!(fields >> state >> recvq >> sendq >> local >> peer)) continue;
    for (const Fd* fd : {&listener, &client, &accepted}) {
      const FdInfo& row = row_of(table, fd->get());
      const std::string row_peer = row.peer.empty() ? "0.0.0.0:*" : row.peer;
      if (row.local == local && row_peer == peer) {
        EXPECT_EQ(row.state, state) << line;
        ++matched;
      }
    }
  }
  EXPECT_EQ(matched, 3) << out;
}

TEST_F(DiagTest, AnotherProcessAndMissingOnes) {
  Child child({"sleep", "5"});
  const auto table = diag::fd_table(child.pid());
  // sleep's stdout is the pipe this test reads.
  EXPECT_EQ(row_of(table, 1).kind, FdKind::pipe);
  EXPECT_EQ(row_of(table, 0).target, "/dev/null");
  const pid_t gone = child.pid();
  child.signal(SIGKILL);
  (void)child.wait();  // reaped: its /proc entry is gone
  try {
    (void)diag::fd_table(gone);
    ADD_FAILURE() << "no error for a process that is gone";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_process) << e.what();
  }
  try {
    (void)diag::fd_table(0x7ffffff0);
    ADD_FAILURE() << "no error for a pid that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_process);
    EXPECT_EQ(std::string(e.what()), "fds 2147483632: No such process");
  }
  // pid 1's fds: readable to us or not, the library must say the same as the kernel does,
  // and an unreadable table is an error, never an empty one.
  if (init_fds_denied()) {
    try {
      (void)diag::fd_table(1);
      ADD_FAILURE() << "pid 1's fds read without permission";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), std::errc::permission_denied) << e.what();
      EXPECT_EQ(std::string(e.what()), "fds 1: Permission denied");
    }
  } else {
    EXPECT_NO_THROW((void)diag::fd_table(1));
  }
}

TEST_F(DiagTest, JsonEscapesControlBytes) {
  FdInfo row;
  row.fd = 7;
  row.kind = FdKind::unix_stream;
  row.target = std::string("@a\"b\\c\n\x01", 8);
  EXPECT_EQ(
      diag::to_json({row}),
      "[\n  {\"fd\": 7, \"kind\": \"unix-stream\", \"target\": \"@a\\\"b\\\\c\\u000a\\u0001\", "
      "\"local\": \"\", \"peer\": \"\", \"inode\": 0, \"peer_inode\": 0, \"cloexec\": false, "
      "\"nonblock\": "
      "false, \"state\": \"\", \"recv_queue\": 0, \"send_queue\": 0}\n]\n");
  EXPECT_EQ(diag::to_json(std::vector<FdInfo>{}), "[]\n");

  // Not UTF-8 (a file named with stray bytes): U+FFFD, so strict parsers still read it;
  // real UTF-8 passes; < > & are escaped for pages that inline the JSON.
  row.target = "/tmp/bad\xff\xfe\xc3(\xed\xa0\x80-caf\xc3\xa9-<&>";
  const std::string json = diag::to_json({row});
  EXPECT_NE(json.find("\"target\": \"/tmp/bad\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd("
                      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd-caf\xc3\xa9-\\u003c\\u0026\\u003e\""),
            std::string::npos)
      << json;
}

TEST_F(DiagTest, AUnixNameCannotForgeAnotherSocketsRow) {
  Fd listener = tcp_listener();
  const auto port = port_of(listener.get());
  const std::string name = forged_name(inode_of(listener.get()));
  Fd forger = unix_listener(name, true);
  // The attack is real here: /proc/net/unix carries a line that is the forged row.
  const std::string forged_line = name.substr(name.find('\n'));
  ASSERT_NE(read_file("/proc/self/net/unix").find(forged_line + "\n"), std::string::npos);

  const auto table = diag::fd_table();
  const FdInfo& l = row_of(table, listener.get());
  EXPECT_EQ(l.kind, FdKind::tcp);
  EXPECT_EQ(l.state, "LISTEN");
  EXPECT_EQ(l.local, loopback(port));
  EXPECT_EQ(l.target, loopback(port));
  const FdInfo& f = row_of(table, forger.get());
  EXPECT_EQ(f.kind, FdKind::unix_stream);
  EXPECT_EQ(f.state, "LISTEN");
  EXPECT_EQ(f.local, "@" + name);  // whole, newline and all
  EXPECT_EQ(f.target, "@" + name);
  std::string escaped = "@" + name;
  escaped.replace(escaped.find('\n'), 1, "\\u000a");
  for (const auto& [c, code] : {std::pair<char, const char*>{'<', "\\u003c"}, {'>', "\\u003e"}}) {
    for (auto at = escaped.find(c); at != std::string::npos; at = escaped.find(c))
      escaped.replace(at, 1, code);
  }
  EXPECT_NE(diag::to_json(table).find("\"target\": \"" + escaped + "\""), std::string::npos);
}

TEST_F(DiagTest, AUnixPathWithANewlineIsShownWhole) {
  test::TempDir dir;
  const std::string path = dir.file("a\nb.sock");
  Fd named = unix_listener(path, false);
  const auto table = diag::fd_table();
  const FdInfo& n = row_of(table, named.get());
  EXPECT_EQ(n.kind, FdKind::unix_stream);
  EXPECT_EQ(n.state, "LISTEN");
  EXPECT_EQ(n.local, path);
  EXPECT_EQ(n.target, path);
}

#ifdef WIRE_CLI
static std::pair<std::string, int> run_wire(std::vector<std::string> args) {
  args.insert(args.begin(), WIRE_CLI);
  Child child(std::move(args), Child::Options::merged());
  const std::optional<int> code = child.wait_at_most(std::chrono::seconds(5));
  if (!code) return {"(still running after 5 s)", -1};
  return {child.read_all(), *code};
}

TEST_F(DiagTest, WireFdsShowsOurListener) {
  Fd listener = tcp_listener(SOCK_CLOEXEC | SOCK_NONBLOCK);
  const auto port = port_of(listener.get());
  const std::string pid = std::to_string(::getpid());
  const auto [table, code] = run_wire({"fds", pid});
  EXPECT_EQ(code, 0) << table;
  // The row as words (columns are padded with spaces), and the header's columns in order.
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(table);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    rows.emplace_back();
    for (std::string field; fields >> field;) rows.back().push_back(field);
  }
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows.front(), (std::vector<std::string>{"FD", "KIND", "FLAGS", "STATE", "TARGET"}));
  const std::vector<std::string> expected{std::to_string(listener.get()), "tcp", "cloexec,nonblock",
                                          "LISTEN", loopback(port)};
  EXPECT_EQ(std::count(rows.begin(), rows.end(), expected), 1) << table;
  // Aligned: in every line the STATE column starts where the header's does.
  const auto state_column = table.find("STATE");
  std::istringstream again(table);
  for (std::string line; std::getline(again, line);) {
    std::size_t at = 0;
    for (int column = 0; column < 3; ++column) {
      at = line.find_first_not_of(' ', line.find(' ', at));
    }
    EXPECT_EQ(at, state_column) << line;
  }
  EXPECT_EQ(table.rfind("FD ", 0), 0u) << table;

  const auto [json, json_code] = run_wire({"fds", pid, "--json"});
  EXPECT_EQ(json_code, 0) << json;
  const std::string object = "{\"fd\": " + std::to_string(listener.get()) +
                             ", \"kind\": \"tcp\", \"target\": \"" + loopback(port) + "\"";
  EXPECT_NE(json.find(object), std::string::npos) << json;
  if (test::have_program("python3")) {
    test::TempDir dir;
    std::FILE* out = std::fopen(dir.file("fds.json").c_str(), "w");
    std::fputs(json.c_str(), out);
    std::fclose(out);
    Child check({"/usr/bin/python3", "-c",
                 "import json,sys; rows=json.load(open(sys.argv[1])); "
                 "r=[x for x in rows if x['fd']==int(sys.argv[2])][0]; "
                 "print(r['kind'], r['state'], r['local'], r['cloexec'], r['nonblock'])",
                 dir.file("fds.json"), std::to_string(listener.get())});
    EXPECT_EQ(check.read_all(), "tcp LISTEN " + loopback(port) + " True True\n");
    EXPECT_EQ(check.wait(), 0);
  }
}

TEST_F(DiagTest, WireFdsErrors) {
  const auto [missing, code] = run_wire({"fds", "2147483632"});
  EXPECT_EQ(code, 1);
  EXPECT_EQ(missing, "wire: fds 2147483632: No such process\n");
  for (const char* bad : {"abc", "0", "-5", "12x", "99999999999"}) {
    const auto [usage, usage_code] = run_wire({"fds", bad});
    EXPECT_EQ(usage_code, 2) << bad << ": " << usage;
    EXPECT_NE(usage.find("wire: PID: must be a process id"), std::string::npos)
        << bad << ": " << usage;
  }
  if (init_fds_denied()) {
    const auto [denied, denied_code] = run_wire({"fds", "1"});
    EXPECT_EQ(denied_code, 1);
    EXPECT_EQ(denied, "wire: fds 1: Permission denied\n");
  }
  const auto [self, self_code] = run_wire({"fds"});
  EXPECT_EQ(self_code, 0);
  EXPECT_NE(self.find("\n0 "), std::string::npos) << self;
}

// `wire fds PID` reads another process's table: the forged row changes nothing there either.
TEST_F(DiagTest, WireFdsIsNotFooledByAForgedUnixRow) {
  Fd listener = tcp_listener();
  const auto port = port_of(listener.get());
  const std::string name = forged_name(inode_of(listener.get()));
  Fd forger = unix_listener(name, true);
  const auto [table, code] = run_wire({"fds", std::to_string(::getpid())});
  ASSERT_EQ(code, 0) << table;
  std::istringstream lines(table);
  int listener_rows = 0, evil_rows = 0;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::vector<std::string> words;
    for (std::string word; fields >> word;) words.push_back(word);
    if (line.find("EVIL") != std::string::npos) {
      ++evil_rows;
      EXPECT_EQ(words.at(0), std::to_string(forger.get())) << line;
      EXPECT_NE(line.find("@" + detail::printable(name)), std::string::npos) << line;
    }
    if (!words.empty() && words[0] == std::to_string(listener.get())) {
      ++listener_rows;
      EXPECT_EQ(words, (std::vector<std::string>{std::to_string(listener.get()), "tcp", "cloexec",
                                                 "LISTEN", loopback(port)}));
    }
  }
  EXPECT_EQ(listener_rows, 1) << table;
  EXPECT_EQ(evil_rows, 1) << table;
}
#endif
