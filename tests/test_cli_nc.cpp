// `wire connect` / `wire listen` against what nc (netcat-openbsd) does, with nc, socat and
// wire's own sockets as the other side: -z, -w, -q, -v, -C, -4/-6, -s/-p, service names,
// UDP and unixgram datagrams both ways, closed stdin, error messages and socket files.
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::announced;
using test::Child;
using test::exists;
using test::random_bytes;
using test::slurp;
using test::wait_for_socket;

namespace {

const std::string wire_binary = WIRE_CLI;

void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

// FNV-1a, so that a failure shows two short numbers rather than two 200 KB strings.
std::uint64_t checksum(std::string_view data) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : data) h = (h ^ c) * 1099511628211ull;
  return h;
}

// A FIFO that a child reads as stdin; the test writes it. Opened read-write so that
// spawning the child never blocks and the child's stdin stays open until close().
class Fifo {
 public:
  explicit Fifo(std::string path) : path_(std::move(path)) {
    if (::mkfifo(path_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo");
    fd_ = ::open(path_.c_str(), O_RDWR | O_CLOEXEC);
  }
  ~Fifo() { close(); }
  const std::string& path() const { return path_; }
  void write(std::string_view data) {
    while (!data.empty()) {
      ::ssize_t n = ::write(fd_, data.data(), data.size());
      if (n <= 0) throw std::runtime_error("write to fifo");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// Datagrams on `socket` until `total` bytes came or 5 s passed with none.
std::vector<std::string> receive_datagrams(Socket& socket, std::size_t total) {
  std::vector<std::string> got;
  std::size_t bytes = 0;
  socket.set_timeout(5s);
  while (bytes < total) {
    auto datagram = socket.recvfrom(std::size_t{1} << 18, std::nothrow);
    if (!datagram) break;
    bytes += datagram->data.size();
    got.push_back(std::move(datagram->data));
  }
  return got;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string all;
  for (const auto& p : parts) all += p;
  return all;
}

std::vector<std::size_t> sizes(const std::vector<std::string>& parts) {
  std::vector<std::size_t> out;
  for (const auto& p : parts) out.push_back(p.size());
  return out;
}

// A loopback port nobody listens on: bound, never listening, so connects are refused.
struct ClosedPort {
  Socket holder{Family::inet, Type::stream};
  ClosedPort() { holder.bind(Address::parse("127.0.0.1:0")); }
  std::uint16_t port() const { return holder.local_address().port(); }
};

}  // namespace

class NcTest : public test::Test {};

// -z: exit 0 when every port is open, 1 otherwise; nc -z gives the same verdicts.
TEST_F(NcTest, ProbeSaysWhetherPortsAreOpenAsNcDoes) {
  Socket listener = test::loopback_listener();
  const std::string open = std::to_string(listener.local_address().port());
  ClosedPort closed_port;
  const std::string closed = std::to_string(closed_port.port());
  struct Case {
    std::vector<std::string> args;
    int code;
  };
  const Case cases[] = {
      {{"127.0.0.1", open}, 0},
      {{"127.0.0.1", closed}, 1},
      {{"127.0.0.1", open, closed}, 1},
      {{"127.0.0.1", open, open}, 0},
      {{"127.0.0.1", open + "-" + open}, 0},
      {{"127.0.0.1", closed + "-" + closed}, 1},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {wire_binary, "connect", "-z"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    Child wire(args, Child::Options::merged());
    EXPECT_EQ(wire.read_all(), "") << "-z without -v is silent";
    EXPECT_EQ(wire.wait(), c.code) << args.back();
    if (test::have_program("nc")) {
      std::vector<std::string> nc_args = {"nc", "-z"};
      nc_args.insert(nc_args.end(), c.args.begin(), c.args.end());
      Child nc(nc_args, Child::Options::merged());
      (void)nc.read_all();
      // nc exits 0 when any port answered; wire when every one did. Same for one port.
      if (c.args.size() == 2 && c.args[1].find('-') == std::string::npos) {
        EXPECT_EQ(nc.wait(), c.code) << "nc disagrees on " << args.back();
      } else {
        (void)nc.wait();
      }
    }
  }
  // The URL form, and -v naming what it found.
  Child url({wire_binary, "connect", "-z", "-v", "tcp://127.0.0.1:" + open},
            Child::Options::merged());
  EXPECT_EQ(url.read_all(), "wire: tcp://127.0.0.1:" + open + " open\n");
  EXPECT_EQ(url.wait(), 0);
  Child verbose({wire_binary, "connect", "-zv", "127.0.0.1", closed}, Child::Options::merged());
  EXPECT_EQ(verbose.read_all(),
            "wire: connect tcp://127.0.0.1:" + closed + ": Connection refused\n");
  EXPECT_EQ(verbose.wait(), 1);
  // The listener saw a connection that closed without a byte.
  listener.set_timeout(5s);
  auto [conn, peer] = listener.accept();
  conn.set_timeout(5s);
  EXPECT_EQ(conn.recv(10), "");
}

TEST_F(NcTest, ProbeOverUdpHearsTheRefusal) {
  Socket open(Family::inet, Type::dgram);
  open.bind(Address::parse("udp://127.0.0.1:0"));
  Socket closed_holder(Family::inet, Type::dgram);
  closed_holder.bind(Address::parse("udp://127.0.0.1:0"));
  const Address closed = closed_holder.local_address();
  closed_holder.close();  // nobody there now: the kernel answers port unreachable
  Child yes({wire_binary, "connect", "-z", open.local_address().to_string()});
  EXPECT_EQ(yes.wait(), 0);
  // The kernel rate-limits its port-unreachable answers (icmp_msgs_per_sec, shared by every
  // test running at once): a probe that heard nothing says open, as nc does. The closed port
  // must be heard as closed within a few tries, a token bucket refilling meanwhile.
  int said_closed = 0;
  for (int attempt = 0; attempt < 5 && said_closed != 1; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(200ms);
    Child no({wire_binary, "connect", "-z", closed.to_string()});
    said_closed = no.wait();
  }
  EXPECT_EQ(said_closed, 1);
  open.set_timeout(5s);
  EXPECT_EQ(open.recvfrom(16).data, "") << "the probe is one empty datagram";
}

TEST_F(NcTest, BadPortRangesAndArgumentsAreErrors) {
  Child backwards({wire_binary, "connect", "-z", "127.0.0.1", "9-8"}, Child::Options::merged());
  EXPECT_NE(backwards.read_all().find("runs backwards"), std::string::npos);
  EXPECT_EQ(backwards.wait(), 2) << "a usage error";
  Child two({wire_binary, "connect", "127.0.0.1", "8", "9"}, Child::Options::merged());
  EXPECT_EQ(two.read_all(), "wire: connect takes one PORT (several only with -z)\n");
  EXPECT_EQ(two.wait(), 2);
  Child both({wire_binary, "connect", "-4", "-6", "127.0.0.1:1"}, Child::Options::merged());
  (void)both.read_all();
  EXPECT_EQ(both.wait(), 2);
  Child service({wire_binary, "connect", "127.0.0.1:no-such-service"}, Child::Options::merged());
  EXPECT_NE(service.read_all().find("unknown service 'no-such-service' for tcp"),
            std::string::npos);
  EXPECT_EQ(service.wait(), 2) << "a name not in /etc/services: a usage error";
}

// What the user typed wrong is a usage error: exit 2 (docs/design/cli.md), one `wire:` line
// that names the mistake, nothing connected. Every SECONDS option refuses NaN, infinities,
// negatives, 0 where it means nothing and values whose nanoseconds overflow (`-w 1e10` timed
// out at once).
TEST_F(NcTest, UsageErrorsExitTwoWithTheirReason) {
  struct Case {
    std::vector<std::string> args;
    std::string said;
  };
  const Case cases[] = {
      {{"connect", "127.0.0.1:65536"}, "out of range 0-65535"},
      {{"connect", "-z", "127.0.0.1", "10-1"}, "runs backwards"},
      {{"connect", "-z", "127.0.0.1:1-99999"}, "ports run from 0 to 65535"},
      {{"connect", "-z", "127.0.0.1:70000"}, "out of range 0-65535"},
      {{"connect", "-s", "localhost", "127.0.0.1", "1"}, "is not a numeric IPv4 or IPv6"},
      {{"connect", "-p", "5", "unix:/x"}, "applies to tcp:// and udp:// only"},
      {{"connect", "-w", "0", "127.0.0.1:1"}, "above 0, at most 10000000, not '0'"},
      {{"connect", "-w", "nan", "127.0.0.1:1"}, "not 'nan'"},
      {{"connect", "-w", "1e10", "127.0.0.1:1"}, "not '1e10'"},
      {{"connect", "-z", "-w", "inf", "127.0.0.1:1"}, "not 'inf'"},
      {{"connect", "-q", "-1", "127.0.0.1:1"}, "from 0 to 10000000, not '-1'"},
      {{"connect", "--linger", "1e300", "127.0.0.1:1"}, "not '1e300'"},
      {{"listen", "-w", "-inf", "tcp://127.0.0.1:0"}, "not '-inf'"},
      {{"listen", "tcp://127.0.0.1:99999"}, "out of range 0-65535"},
      {{"echo", "--idle-timeout", "nan", "tcp://127.0.0.1:0"}, "not 'nan'"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv = {wire_binary};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::string line;
    for (const auto& arg : c.args) line += arg + " ";
    SCOPED_TRACE(line);
    Child wire(argv, Child::Options::merged());
    const std::string said = wire.read_all();
    EXPECT_EQ(wire.wait(), 2) << said;
    EXPECT_NE(said.find(c.said), std::string::npos) << said;
    EXPECT_EQ(said.rfind("wire: ", 0), 0u) << said;
    EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 1) << said;
  }
}

// Service names work in both forms; "http" is port 80 whatever listens there.
TEST_F(NcTest, ServiceNamesResolve) {
  for (auto args : std::vector<std::vector<std::string>>{
           {wire_binary, "connect", "-zv", "-w", "2", "127.0.0.1:http"},
           {wire_binary, "connect", "-zv", "-w", "2", "tcp://127.0.0.1:http"},
           {wire_binary, "connect", "-zv", "-w", "2", "127.0.0.1", "http"}}) {
    Child wire(args, Child::Options::merged());
    const std::string said = wire.read_all();
    EXPECT_NE(said.find("tcp://127.0.0.1:80"), std::string::npos) << said;
    (void)wire.wait();
  }
}

TEST_F(NcTest, VerboseSaysWhereItConnectedFromWhere) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  Child wire({wire_binary, "connect", "-v", listener.local_address().to_string()},
             Child::Options::merged());
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(wire.read_line(), "wire: connected to " + listener.local_address().to_string() +
                                  " from " + peer.to_string() + "\n");
  conn.close();
  EXPECT_EQ(wire.wait(), 0);
}

TEST_F(NcTest, SourceAddressAndPortAndFamily) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  const std::string target = listener.local_address().to_string();
  // A port free a moment ago; SO_REUSEADDR lets wire take it even from TIME_WAIT.
  std::uint16_t source_port = 0;
  {
    Socket probe(Family::inet, Type::stream);
    probe.bind(Address::parse("127.0.0.1:0"));
    source_port = probe.local_address().port();
  }
  Child wire(
      {wire_binary, "connect", "-s", "127.0.0.1", "-p", std::to_string(source_port), target});
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(peer.port(), source_port);
  EXPECT_EQ(peer.host(), "127.0.0.1");
  conn.close();
  EXPECT_EQ(wire.wait(), 0);

  Child v4({wire_binary, "connect", "-4", "-z", "localhost",
            std::to_string(listener.local_address().port())});
  EXPECT_EQ(v4.wait(), 0);
  (void)listener.accept();
  Child v6({wire_binary, "connect", "-6", "-z", "-v", target}, Child::Options::merged());
  EXPECT_NE(v6.read_all().find("no IPv6 address among " + target), std::string::npos);
  EXPECT_EQ(v6.wait(), 2) << "-6 with an IPv4 address: a usage error";
  Child mismatch({wire_binary, "connect", "-s", "::1", target}, Child::Options::merged());
  EXPECT_NE(mismatch.read_all().find("no IPv6 address"), std::string::npos);
  EXPECT_EQ(mismatch.wait(), 2);
}

// -w: once connected, SECONDS without traffic either way end the connection (exit 0, as
// nc); traffic keeps it going. Before that, it bounds the connect.
TEST_F(NcTest, WaitEndsAnIdleConnection) {
  test::TempDir dir;
  Fifo stdin_fifo(dir.file("stdin"));  // open and silent
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  Child::Options options = Child::Options::merged();
  options.stdin_path = stdin_fifo.path();
  Child wire({wire_binary, "connect", "-v", "-w", "1", listener.local_address().to_string()},
             options);
  auto [conn, peer] = listener.accept();
  EXPECT_NE(wire.read_line().find("connected to"), std::string::npos);
  conn.send_all("ping\n");
  EXPECT_EQ(wire.read_line(), "ping\n");
  stdin_fifo.write("pong\n");
  conn.set_timeout(5s);
  EXPECT_EQ(conn.recv(10), "pong\n");
  std::optional<int> code = wire.wait_at_most(5s);
  ASSERT_TRUE(code) << "an idle connection was not cut";
  EXPECT_EQ(*code, 0);
  EXPECT_NE(wire.read_all().find("idle for 1 s: closed"), std::string::npos);
  EXPECT_EQ(conn.recv(10), "") << "wire closed the connection";

  test::Blackhole blackhole;
  Child slow({wire_binary, "connect", "-w", "0.3", blackhole.address().to_string()},
             Child::Options::merged());
  EXPECT_NE(slow.read_all().find("timed out"), std::string::npos);
  EXPECT_EQ(slow.wait(), 1);
}

// -q: after stdin ends, quit SECONDS later even though the peer stays; without it wire
// waits for the peer's close (today's behaviour, kept). nc -l on a Unix socket is the peer.
TEST_F(NcTest, QuitAfterStdinEnds) {
  if (!test::have_program("nc")) GTEST_SKIP() << "nc is not installed";
  test::TempDir dir;
  write_file(dir.file("in.txt"), "to nc\n");
  const std::string path = dir.file("nc.sock");
  Fifo nc_stdin(dir.file("nc-stdin"));  // nc never ends its side
  Child::Options nc_options;
  nc_options.stdin_path = nc_stdin.path();
  Child nc({"nc", "-l", "-U", path}, nc_options);
  ASSERT_TRUE(wait_for_socket(path));
  Child wire({wire_binary, "connect", "-q", "0.2", "unix:" + path},
             Child::Options::files(dir.file("in.txt"), dir.file("out.txt")));
  EXPECT_EQ(nc.read_line(), "to nc\n");
  std::optional<int> code = wire.wait_at_most(5s);
  ASSERT_TRUE(code) << "wire connect -q did not quit";
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(nc.read_all(), "") << "wire's exit closed the connection";
  (void)nc.wait();

  // Without -q the peer decides: wire is still there after its stdin ended, until the
  // peer closes (nc -l would close at wire's EOF, so wire's own listener plays the peer).
  Socket listener = create_server("unix:" + dir.file("peer.sock"));
  listener.set_timeout(5s);
  Child waits({wire_binary, "connect", "unix:" + dir.file("peer.sock")},
              Child::Options::files(dir.file("in.txt"), dir.file("out2.txt")));
  auto [conn, peer] = listener.accept();
  conn.set_timeout(5s);
  EXPECT_EQ(conn.recv(100), "to nc\n");
  EXPECT_EQ(conn.recv(100), "") << "wire half-closed at its EOF";
  EXPECT_FALSE(waits.wait_at_most(500ms)) << "wire quit before the peer closed";
  conn.send_all("from the peer\n");
  conn.close();
  EXPECT_EQ(waits.wait(), 0);
  EXPECT_EQ(slurp(dir.file("out2.txt")), "from the peer\n");
}

// -C sends the same bytes as nc -C, checked against what a socat server wrote to a file:
// an LF becomes CR LF unless a CR is there already. Across reads too, where nc, which
// decides per read, may double a CR; wire carries the last byte over.
TEST_F(NcTest, CrlfMatchesNcByteForByte) {
  if (!test::have_program("socat") || !test::have_program("nc")) {
    GTEST_SKIP() << "socat and nc are needed";
  }
  test::TempDir dir;
  int round = 0;
  auto server_got = [&](std::vector<std::string> client, const std::string& input) {
    const std::string name = std::to_string(round++);
    write_file(dir.file(name + ".in"), input);
    const std::string path = dir.file(name + ".sock");
    Child socat({"socat", "-u", "UNIX-LISTEN:" + path, "CREATE:" + dir.file(name + ".out")});
    if (!wait_for_socket(path)) return std::string("(socat did not start)");
    client.back() += path;
    Child sender(client, Child::Options::files(dir.file(name + ".in"), dir.file(name + ".echo")));
    EXPECT_EQ(sender.wait(), 0) << client[0];
    EXPECT_EQ(socat.wait(), 0) << client[0];
    return slurp(dir.file(name + ".out"));
  };
  const std::vector<std::string> wire_client = {wire_binary, "connect", "-C", "unix:"};
  const std::string lines = "plain\nalready\r\nlone\rcr\n\n\r\r\nend\n";
  const std::string by_wire = server_got(wire_client, lines);
  EXPECT_EQ(by_wire, "plain\r\nalready\r\nlone\rcr\r\n\r\n\r\r\nend\r\n");
  // wire takes unix:PATH in one argument; nc takes -U PATH.
  EXPECT_EQ(by_wire, server_got({"nc", "-N", "-C", "-U", ""}, lines));

  const std::string big = std::string(70000, 'x') + "\n" + std::string(65535, 'y') + "\r\n";
  const std::string expected = std::string(70000, 'x') + "\r\n" + std::string(65535, 'y') + "\r\n";
  EXPECT_TRUE(server_got(wire_client, big) == expected);
}

// A read of 64 KiB from a file becomes datagrams the path takes: the kernel's EMSGSIZE
// tells the limit (65,507 for IPv4, 65,527 for IPv6; a Unix socket takes 64 KiB whole).
TEST_F(NcTest, UdpSplitsReadsIntoDatagramsThatFit) {
  test::TempDir dir;
  const std::string data = random_bytes(65536);
  write_file(dir.file("in.bin"), data);
  struct Case {
    std::string bind;
    std::vector<std::size_t> expected;
  };
  std::vector<Case> cases = {{"udp://127.0.0.1:0", {65507, 29}},
                             {"unixgram:" + dir.file("r.sock"), {65536}}};
  if (test::ipv6_loopback_available()) cases.push_back({"udp://[::1]:0", {65527, 9}});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.bind);
    Socket receiver = create_server(c.bind);
    Child::Options options = Child::Options::merged();
    options.stdin_path = dir.file("in.bin");
    Child wire({wire_binary, "connect", "-q", "0", receiver.local_address().to_string()}, options);
    std::vector<std::string> got = receive_datagrams(receiver, data.size());
    EXPECT_EQ(sizes(got), c.expected);
    EXPECT_TRUE(joined(got) == data);
    EXPECT_EQ(wire.read_all(), "");
    EXPECT_EQ(wire.wait(), 0);
  }
}

// Reads of 64 KiB against 65,507-byte datagrams left a 29-byte stub each: [65507, 29, 65507,
// 29...]. The tail of a read now waits briefly for the next read to fill it, so every datagram
// but the last is full; when input pauses, the tail goes without waiting for more.
TEST_F(NcTest, UdpPacksInputIntoFullDatagrams) {
  test::TempDir dir;
  const std::string data = random_bytes(200000, 3);
  write_file(dir.file("in.bin"), data);
  struct Case {
    std::string bind;
    std::size_t full;
  };
  std::vector<Case> cases = {{"udp://127.0.0.1:0", 65507}};
  if (test::ipv6_loopback_available()) cases.push_back({"udp://[::1]:0", 65527});
  for (const auto& c : cases) {
    SCOPED_TRACE(c.bind);
    Socket receiver = create_server(c.bind);
    receiver.set_option(option::receive_buffer_size, 1 << 21);  // room for all of it
    Child::Options options = Child::Options::merged();
    options.stdin_path = dir.file("in.bin");
    Child wire({wire_binary, "connect", "-q", "0", receiver.local_address().to_string()}, options);
    std::vector<std::string> got = receive_datagrams(receiver, data.size());
    const std::vector<std::size_t> expected = {c.full, c.full, c.full, data.size() - 3 * c.full};
    EXPECT_EQ(sizes(got), expected);
    EXPECT_TRUE(joined(got) == data);
    EXPECT_EQ(wire.read_all(), "");
    EXPECT_EQ(wire.wait(), 0);
  }
  // Input that pauses: the tail is sent while stdin stays open.
  Socket receiver = create_server("udp://127.0.0.1:0");
  Fifo input(dir.file("paused"));
  Child::Options options;
  options.stdin_path = input.path();
  Child wire({wire_binary, "connect", receiver.local_address().to_string()}, options);
  const std::string burst = random_bytes(70000, 4);
  input.write(burst);
  std::vector<std::string> got = receive_datagrams(receiver, burst.size());
  EXPECT_TRUE(joined(got) == burst) << "the tail waited for more input";
  input.close();
  EXPECT_EQ(wire.wait(), 0);
}

// 200 KB through UDP, checksummed: wire connect -> wire listen, and nc -u -> wire listen.
// UDP drops what a busy receiver has no room for, so the input is fed in slices, each once
// the last has arrived; then every byte must arrive, in order.
TEST_F(NcTest, TwoHundredKilobytesThroughUdp) {
  test::TempDir dir;
  const std::string data = random_bytes(200000, 7);
  std::vector<std::vector<std::string>> senders = {{wire_binary, "connect"}};
  if (test::have_program("nc")) senders.push_back({"nc", "-u", "-q", "0"});
  int round = 0;
  for (auto sender : senders) {
    SCOPED_TRACE(sender[0]);
    Child listener({wire_binary, "listen", "udp://127.0.0.1:0"}, Child::Options::merged());
    const Address address = announced(listener);
    Fifo input(dir.file("in" + std::to_string(round++)));
    if (sender[0] == "nc") {
      sender.push_back(address.host());
      sender.push_back(std::to_string(address.port()));
    } else {
      sender.push_back(address.to_string());
    }
    Child::Options options;
    options.stdin_path = input.path();
    Child client(sender, options);
    std::string got;
    constexpr std::size_t slice = 20000;
    for (std::size_t at = 0; at < data.size(); at += slice) {
      const std::string_view part = std::string_view(data).substr(at, slice);
      input.write(part);
      got += listener.read_exactly(part.size());
    }
    EXPECT_EQ(checksum(got), checksum(data));
    EXPECT_TRUE(got == data);
    input.close();
    EXPECT_EQ(client.wait(), 0);
    listener.signal(SIGTERM);
    (void)listener.wait();
  }
}

// A UDP listener keeps listening after its stdin ended (it used to quit a second after the
// last datagram). Without -k it hears the first sender only; with -k every sender, and -v
// says who sent.
TEST_F(NcTest, UdpListenerKeepsListeningAndWithKHearsEverySender) {
  {
    Child listener({wire_binary, "listen", "udp://127.0.0.1:0"}, Child::Options::merged());
    const Address address = announced(listener);
    Socket first(Family::inet, Type::dgram), second(Family::inet, Type::dgram);
    first.sendto("one\n", address);
    EXPECT_EQ(listener.read_line(), "one\n");
    EXPECT_FALSE(listener.wait_at_most(1500ms)) << "the listener quit";
    second.sendto("ignored\n", address);  // not the first sender: as nc -u -l, not heard
    first.sendto("two\n", address);
    EXPECT_EQ(listener.read_line(), "two\n");
    listener.signal(SIGTERM);
    (void)listener.wait();
  }
  Child listener({wire_binary, "listen", "-k", "-v", "udp://127.0.0.1:0"},
                 Child::Options::merged());
  const Address address = announced(listener);
  Socket a(Family::inet, Type::dgram), b(Family::inet, Type::dgram);
  a.bind(Address::parse("udp://127.0.0.1:0"));
  b.bind(Address::parse("udp://127.0.0.1:0"));
  a.sendto("from a\n", address);
  EXPECT_EQ(listener.read_line(), "wire: datagram from " + a.local_address().to_string() + "\n");
  EXPECT_EQ(listener.read_line(), "from a\n");
  b.sendto("from b\n", address);
  EXPECT_EQ(listener.read_line(), "wire: datagram from " + b.local_address().to_string() + "\n");
  EXPECT_EQ(listener.read_line(), "from b\n");
  listener.signal(SIGTERM);
  (void)listener.wait();
}

// unixgram works both ways with wire on both ends: the client autobinds a name the server
// answers to. The listener holds its stdin until someone has sent (nobody to send it to
// before), and removes its socket file when stopped.
TEST_F(NcTest, UnixgramRoundTripBetweenTwoWires) {
  test::TempDir dir;
  const std::string path = dir.file("dgram.sock");
  write_file(dir.file("reply.txt"), "from listener\n");
  write_file(dir.file("request.txt"), "from client\n");
  Child listener({wire_binary, "listen", "-v", "unixgram:" + path},
                 Child::Options::files(dir.file("reply.txt"), dir.file("listener.out")));
  ASSERT_TRUE(wait_for_socket(path));
  Child client({wire_binary, "connect", "unixgram:" + path},
               Child::Options::files(dir.file("request.txt"), dir.file("client.out")));
  EXPECT_EQ(client.wait(), 0);
  EXPECT_EQ(slurp(dir.file("client.out")), "from listener\n");
  EXPECT_EQ(slurp(dir.file("listener.out")), "from client\n");
  listener.signal(SIGTERM);
  EXPECT_EQ(listener.wait(), 0);
  EXPECT_FALSE(exists(path)) << "the socket file stayed";
}

TEST_F(NcTest, UnixgramWithSocatOnTheOtherEnd) {
  if (!test::have_program("socat")) GTEST_SKIP() << "socat is not installed";
  test::TempDir dir;
  // socat serves: it answers (echoes) the one datagram it receives, to its sender.
  const std::string echo_path = dir.file("socat-echo.sock");
  Child socat_server({"socat", "UNIX-RECVFROM:" + echo_path, "EXEC:cat"});
  ASSERT_TRUE(wait_for_socket(echo_path));
  write_file(dir.file("ping.txt"), "ping\n");
  Child client({wire_binary, "connect", "unixgram:" + echo_path},
               Child::Options::files(dir.file("ping.txt"), dir.file("pong.txt")));
  EXPECT_EQ(client.wait(), 0);
  EXPECT_EQ(slurp(dir.file("pong.txt")), "ping\n");
  (void)socat_server.wait();

  // socat is the client, bound to a path so it can be answered.
  const std::string path = dir.file("wire.sock");
  write_file(dir.file("answer.txt"), "answer\n");
  Child listener({wire_binary, "listen", "unixgram:" + path},
                 Child::Options::files(dir.file("answer.txt"), dir.file("listener.out")));
  ASSERT_TRUE(wait_for_socket(path));
  Fifo socat_stdin(dir.file("socat-stdin"));
  Child::Options options;
  options.stdin_path = socat_stdin.path();
  Child socat({"socat", "-", "UNIX-SENDTO:" + path + ",bind=" + dir.file("socat.sock")}, options);
  socat_stdin.write("question\n");
  EXPECT_EQ(socat.read_line(), "answer\n");
  EXPECT_EQ(slurp(dir.file("listener.out")), "question\n");
  socat_stdin.close();
  (void)socat.wait();
  listener.signal(SIGINT);
  EXPECT_EQ(listener.wait(), 130) << "Ctrl-C exits as a shell reports it";
  EXPECT_FALSE(exists(path));
}

// A Unix peer chooses its own abstract name, bytes and all: ESC, CR, newline, NUL could
// forge a "wire: ..." line or drive the terminal. -v shows them escaped, on one line.
TEST_F(NcTest, PeerChosenNamesArePrintedEscaped) {
  const std::string evil("evil\x1b[2K\rwire: FAKE LINE\n\0end", 29);
  const std::string shown = "unix:@evil\\x1b[2K\\x0dwire: FAKE LINE\\x0a\\x00end";
  const std::string name = "wire-test-evil-" + std::to_string(::getpid());
  {
    Child listener({wire_binary, "listen", "-v", "unix:@" + name}, Child::Options::merged());
    EXPECT_EQ(listener.read_line(), "wire: listening on unix:@" + name + "\n");
    Socket client(Family::local, Type::stream);
    client.bind(Address::abstract(evil));
    client.connect(Address::abstract(name));
    EXPECT_EQ(listener.read_line(), "wire: connection from " + shown + " to unix:@" + name + "\n");
    client.close();
    EXPECT_EQ(listener.read_all(), "");
    EXPECT_EQ(listener.wait(), 0);
  }
  {
    Child listener({wire_binary, "listen", "-v", "unixgram:@" + name}, Child::Options::merged());
    EXPECT_EQ(listener.read_line(), "wire: listening on unixgram:@" + name + "\n");
    Socket client(Family::local, Type::dgram);
    client.bind(Address::abstract(evil, Type::dgram));
    client.sendto("hi\n", Address::abstract(name, Type::dgram));
    EXPECT_EQ(listener.read_line(), "wire: datagram from unixgram:@" + shown.substr(6) + "\n");
    EXPECT_EQ(listener.read_line(), "hi\n");
    listener.signal(SIGTERM);
    (void)listener.wait();  // no file to remove: SIGTERM kills it
  }
}

// Socket files wire listen made go when it ends: normally, on SIGTERM, on SIGINT.
TEST_F(NcTest, ListenRemovesItsSocketFile) {
  test::TempDir dir;
  const std::string path = dir.file("s.sock");
  {
    Child listener({wire_binary, "listen", "--quiet", "unix:" + path});
    ASSERT_TRUE(wait_for_socket(path));
    Socket s = create_connection("unix:" + path, 5s);
    s.close();
    EXPECT_EQ(listener.wait(), 0);
    EXPECT_FALSE(exists(path)) << "after a normal end";
  }
  for (int signal : {SIGTERM, SIGINT}) {
    Child listener({wire_binary, "listen", "--quiet", "-k", "unix:" + path});
    ASSERT_TRUE(wait_for_socket(path));
    Socket s = create_connection("unix:" + path, 5s);  // in the relay when the signal comes
    s.send_all("x\n");
    EXPECT_EQ(listener.read_line(), "x\n");
    listener.signal(signal);
    EXPECT_EQ(listener.wait(), signal == SIGINT ? 130 : 0);
    EXPECT_FALSE(exists(path)) << strsignal(signal);
  }
}

// `wire connect ... <&-`: the socket took fd 0 and the relay failed with an internal error.
// A closed stdin is empty input now.
TEST_F(NcTest, ClosedStdinIsEmptyInput) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  Child wire({"/bin/sh", "-c", "exec \"$0\" connect \"$1\" <&-", wire_binary,
              listener.local_address().to_string()},
             Child::Options::merged());
  auto [conn, peer] = listener.accept();
  conn.set_timeout(5s);
  EXPECT_EQ(conn.recv(10), "") << "no input: wire half-closed at once";
  conn.send_all("bye\n");
  conn.close();
  EXPECT_EQ(wire.read_all(), "bye\n");
  EXPECT_EQ(wire.wait(), 0);
}

// When the peer goes away mid-send, the error names the peer, not our own ephemeral port.
TEST_F(NcTest, SendErrorNamesThePeer) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  const std::string server = listener.local_address().to_string();
  Child::Options options = Child::Options::merged();
  options.stdin_path = "/dev/zero";  // never ends
  Child wire({wire_binary, "connect", server}, options);
  auto [conn, peer] = listener.accept();
  conn.set_timeout(5s);
  EXPECT_EQ(conn.recv(1).size(), 1u) << "wire is sending";
  conn.set_option(option::linger, 0s);
  conn.close();  // a reset while wire sends
  const std::string said = wire.read_all();
  EXPECT_EQ(wire.wait(), 1);
  EXPECT_NE(said.find(" " + server + ": "), std::string::npos) << said;
  EXPECT_EQ(said.find("peer of"), std::string::npos) << said;
  EXPECT_EQ(said.find(":" + std::to_string(peer.port())), std::string::npos) << said;
}
