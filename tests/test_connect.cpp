#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

class ConnectTest : public test::Test {};

namespace {

Address refused_address(Socket& holder) {
  holder = Socket(Family::inet, Type::stream);
  holder.bind(Address::parse("127.0.0.1:0"));  // bound, not listening: connects are refused
  return holder.local_address();
}

}  // namespace

TEST_F(ConnectTest, ConnectsByNameWithinDeadline) {
  Socket listener = test::loopback_listener();
  std::string target = "tcp://localhost:" + std::to_string(listener.local_address().port());
  // localhost may resolve to ::1 first, where nothing listens: the v4 attempt must win.
  Socket s = create_connection(target, 5s);
  EXPECT_EQ(s.peer_address(), listener.local_address());
  EXPECT_EQ(s.timeout(), std::nullopt);
  auto [conn, peer] = listener.accept();
  s.send_all("hi");
  EXPECT_EQ(conn.recv(2), "hi");
}

TEST_F(ConnectTest, InterleavesFamiliesStartingWithTheFirst) {
  std::vector<Address> in = {Address::parse("[::1]:1"), Address::parse("[::1]:2"),
                             Address::parse("[::1]:3"), Address::parse("127.0.0.1:4"),
                             Address::parse("127.0.0.1:5")};
  std::vector<std::uint16_t> ports;
  for (const auto& a : interleave_families(in)) ports.push_back(a.port());
  EXPECT_EQ(ports, (std::vector<std::uint16_t>{1, 4, 2, 5, 3}));
}

TEST_F(ConnectTest, BlackholedFirstAddressStillConnectsThroughTheSecond) {
  test::Blackhole blackhole;
  Socket listener = test::loopback_listener();
  auto start = std::chrono::steady_clock::now();
  Socket s = create_connection({blackhole.address(), listener.local_address()}, 3s);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(s.peer_address(), listener.local_address());
  // The second attempt starts after the attempt delay, not after the first gives up.
  EXPECT_GE(took, connection_attempt_delay);
  EXPECT_LT(took, 2s);
}

TEST_F(ConnectTest, RefusedAddressFallsThroughAtOnce) {
  Socket holder;
  Address refused = refused_address(holder);
  Socket listener = test::loopback_listener();
  auto start = std::chrono::steady_clock::now();
  Socket s = create_connection({refused, listener.local_address()}, 3s);
  EXPECT_LT(std::chrono::steady_clock::now() - start, connection_attempt_delay);
  EXPECT_EQ(s.peer_address(), listener.local_address());
}

TEST_F(ConnectTest, TotalDeadlineHoldsAcrossSeveralDeadAddresses) {
  test::Blackhole a, b, c;
  auto start = std::chrono::steady_clock::now();
  try {
    (void)create_connection({a.address(), b.address(), c.address()}, 600ms);
    ADD_FAILURE() << "connected to a blackhole";
  } catch (const Error& e) {
    auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 600ms);
    EXPECT_LT(took, 1500ms) << "the deadline is for the whole call, not per address";
    EXPECT_EQ(e.code(), errc::timed_out);
    const std::string what = e.what();
    for (const auto* bh : {&a, &b, &c}) {
      EXPECT_NE(what.find(bh->address().to_string() + ": timed out"), std::string::npos) << what;
    }
  }
}

TEST_F(ConnectTest, ErrorNamesEveryAddressAndWhyItFailed) {
  Socket h1, h2;
  Address r1 = refused_address(h1);
  Address r2 = refused_address(h2);
  try {
    (void)create_connection({r1, r2}, 2s);
    ADD_FAILURE() << "connected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::connection_refused);
    EXPECT_EQ(std::string(e.what()), "connect " + r1.to_string() + ", " + r2.to_string() + ": " +
                                         r1.to_string() + ": Connection refused; " +
                                         r2.to_string() + ": Connection refused");
  }
  auto r = create_connection(std::vector<Address>{r1}, 2s, std::nothrow);
  EXPECT_EQ(r.error(), std::errc::connection_refused);
  EXPECT_FALSE(create_connection(std::vector<Address>{}, 1s, std::nothrow));
}

TEST_F(ConnectTest, BadAddressTextIsAnErrorBeforeAnyConnect) {
  try {
    (void)create_connection("tcp://127.0.0.1:70000", 1s);
    ADD_FAILURE() << "connected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_address);
    EXPECT_NE(std::string(e.what()).find("70000"), std::string::npos);
  }
}

TEST_F(ConnectTest, ConnectsToUnixAddresses) {
  test::TempDir dir;
  std::string path = dir.file("srv.sock");
  Socket server = create_server("unix:" + path);
  Socket client = create_connection("unix:" + path, 1s);
  auto [conn, peer] = server.accept();
  client.send_all("u");
  EXPECT_EQ(conn.recv(1), "u");
}

TEST_F(ConnectTest, ServerOnUnixPathSetsModeAndReplacesOnlyStaleFiles) {
  test::TempDir dir;
  std::string path = dir.file("app.sock");
  {
    Socket first = create_server("unix:" + path);
    struct ::stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    // Something listens: refuse, and leave its file alone.
    try {
      (void)create_server("unix:" + path);
      ADD_FAILURE() << "took over a live socket";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), std::errc::address_in_use);
      EXPECT_NE(std::string(e.what()).find("another process listens on it"), std::string::npos);
    }
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
  }
  // The listener closed, its file stayed: stale, so it is replaced.
  Socket second = create_server("unix:" + path, ServerOptions{.unix_mode = 0660});
  struct ::stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  Socket client = create_connection("unix:" + path);
  auto accepted = second.accept();
  EXPECT_TRUE(accepted.socket.is_open());
}

TEST_F(ConnectTest, ServerDoesNotDeleteARegularFile) {
  test::TempDir dir;
  std::string path = dir.file("not-a-socket");
  {
    std::FILE* f = std::fopen(path.c_str(), "w");
    std::fclose(f);
  }
  auto r = create_server(Address::unix_path(path), {}, std::nothrow);
  EXPECT_EQ(r.error(), std::errc::address_in_use);
  try {
    (void)create_server("unix:" + path);
    ADD_FAILURE() << "bound over a regular file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exists and is not a socket"), std::string::npos)
        << e.what();
  }
  struct ::stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST_F(ConnectTest, ServerReusePortAllowsTwoListeners) {
  Socket a = create_server("tcp://127.0.0.1:0", ServerOptions{.reuse_port = true});
  Socket b = create_server(a.local_address(), ServerOptions{.reuse_port = true});
  EXPECT_EQ(a.local_address(), b.local_address());
  EXPECT_THROW((void)create_server(a.local_address()), Error);
}

TEST_F(ConnectTest, DualStackServerAcceptsIpv4) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  Socket server = create_server("tcp://[::]:0", ServerOptions{.dual_stack = true});
  EXPECT_FALSE(server.get_option(option::v6_only));
  Socket client =
      create_connection("tcp://127.0.0.1:" + std::to_string(server.local_address().port()), 2s);
  auto [conn, peer] = server.accept();
  EXPECT_EQ(peer.host(), "::ffff:127.0.0.1");
}

TEST_F(ConnectTest, UdpServerIsBound) {
  Socket server = create_server("udp://127.0.0.1:0");
  EXPECT_EQ(server.type(), Type::dgram);
  Socket client(Family::inet, Type::dgram);
  client.connect(server.local_address());
  client.send("dgram");
  EXPECT_EQ(server.recvfrom(100).data, "dgram");
}

// ConnectOptions: the source address and port are bound before connecting; the family
// filter keeps only addresses of that family, and says so when none is left.
TEST_F(ConnectTest, ConnectOptionsBindTheSourceAndFilterTheFamily) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  const std::string target = listener.local_address().to_string();
  Socket client =
      create_connection(target, ConnectOptions{.timeout = 5s, .source_host = "127.0.0.1"});
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(peer, client.local_address());
  std::uint16_t port = client.local_address().port();
  conn.close();  // first, so that TIME_WAIT stays on the server's side
  client.close();
  // The same source port at once (reuse_address), with the host left to the kernel.
  Socket again = create_connection(target, ConnectOptions{.timeout = 5s, .source_port = port});
  EXPECT_EQ(again.local_address().port(), port);
  (void)listener.accept();

  auto v4 = create_connection("tcp://localhost:" + std::to_string(listener.local_address().port()),
                              ConnectOptions{.timeout = 5s, .family = Family::inet}, std::nothrow);
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->peer_address().family(), Family::inet);
  (void)listener.accept();
  try {
    (void)create_connection(target, ConnectOptions{.timeout = 5s, .family = Family::inet6});
    ADD_FAILURE() << "connected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_address);
    EXPECT_EQ(std::string(e.what()), "connect " + target + ": no IPv6 address among " + target);
  }
  auto bad = create_connection(target, ConnectOptions{.source_host = "not-an-ip"}, std::nothrow);
  EXPECT_EQ(bad.error(), errc::invalid_address);
  test::TempDir dir;
  Socket unix_server = create_server("unix:" + dir.file("s.sock"));
  EXPECT_EQ(create_connection("unix:" + dir.file("s.sock"), ConnectOptions{.source_port = 1},
                              std::nothrow)
                .error(),
            errc::invalid_address)
      << "a source applies to IP only";
}

// create_connection's socket names its peer in errors even after a reset (the connect that
// finished through poll used not to remember it: the message named our own port).
TEST_F(ConnectTest, ErrorsAfterAResetNameThePeer) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  Socket client = create_connection(listener.local_address().to_string(), 5s);
  auto [conn, peer] = listener.accept();
  conn.set_option(option::linger, 0s);
  conn.close();
  client.set_timeout(5s);
  try {
    for (int i = 0; i < 100; ++i) {
      client.send_all(std::string(65536, 'x'));
      (void)client.recv(1);
    }
    ADD_FAILURE() << "no error after the reset";
  } catch (const Error& e) {
    EXPECT_EQ(e.address(), listener.local_address().to_string()) << e.what();
  }
}

// A unixgram client is autobound, so a server can answer it; an unbound one is described as
// "peer of" its server's address rather than as the server itself.
TEST_F(ConnectTest, UnixgramClientIsAutoboundSoTheServerCanReply) {
  test::TempDir dir;
  Socket server = create_server("unixgram:" + dir.file("d.sock"));
  server.set_timeout(5s);
  Socket client = create_connection("unixgram:" + dir.file("d.sock"), 5s);
  EXPECT_TRUE(client.local_address().is_abstract());
  client.send_all("ping");
  auto [data, from] = server.recvfrom(16);
  EXPECT_EQ(data, "ping");
  EXPECT_EQ(from, client.local_address());
  server.sendto("pong", from);
  client.set_timeout(5s);
  EXPECT_EQ(client.recv(16), "pong");

  Socket listener = create_server("unix:" + dir.file("s.sock"));
  Socket unbound(Family::local, Type::stream);
  unbound.connect(Address::parse("unix:" + dir.file("s.sock")));
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(conn.describe(), "peer of unix:" + dir.file("s.sock"));
}

TEST_F(ConnectTest, ExpandsPortRanges) {
  EXPECT_EQ(
      expand_port_range("tcp://127.0.0.1:80-82"),
      (std::vector<std::string>{"tcp://127.0.0.1:80", "tcp://127.0.0.1:81", "tcp://127.0.0.1:82"}));
  EXPECT_EQ(expand_port_range("[::1]:7-7"), std::vector<std::string>{"[::1]:7"});
  EXPECT_EQ(expand_port_range("localhost:http-alt"),
            std::vector<std::string>{"localhost:http-alt"});
  EXPECT_EQ(expand_port_range("unix:/tmp/a:1-2"), std::vector<std::string>{"unix:/tmp/a:1-2"});
  EXPECT_EQ(expand_port_range("127.0.0.1:65535-65535").size(), 1u);
  for (const char* bad : {"127.0.0.1:9-8", "127.0.0.1:1-70000", "127.0.0.1:1-", "127.0.0.1:-3"}) {
    SCOPED_TRACE(bad);
    try {
      (void)expand_port_range(bad);
      ADD_FAILURE() << "expanded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::invalid_address);
    }
  }
}

TEST_F(ConnectTest, ProbeTellsOpenFromClosed) {
  Socket listener = test::loopback_listener();
  Socket holder;
  const Address refused = refused_address(holder);
  ProbeResult open = probe(listener.local_address().to_string(), {.timeout = 5s});
  EXPECT_TRUE(open.open());
  EXPECT_EQ(open.address, listener.local_address());
  ProbeResult closed = probe(refused.to_string(), {.timeout = 5s});
  EXPECT_FALSE(closed.open());
  EXPECT_EQ(closed.error, std::errc::connection_refused);
  EXPECT_EQ(closed.message, "connect " + refused.to_string() + ": Connection refused");
  ProbeResult bad = probe("tcp://127.0.0.1:99999");
  EXPECT_EQ(bad.error, errc::invalid_address);

  Socket udp_open = create_server("udp://127.0.0.1:0");
  EXPECT_TRUE(probe(udp_open.local_address().to_string(), {.timeout = 5s}, 200ms).open());
  Address udp_closed = udp_open.local_address();
  udp_open.close();
  EXPECT_EQ(probe(udp_closed.to_string(), {.timeout = 5s}, 5s).error,
            std::errc::connection_refused);
}

// The file goes when the SocketFile does, unless someone else's file took its place; the
// signal variant is exercised through `wire listen` in test_cli_nc.cpp.
TEST_F(ConnectTest, SocketFileRemovesOnlyItsOwnFile) {
  test::TempDir dir;
  const std::string path = dir.file("f.sock");
  {
    Socket server = create_server("unix:" + path);
    SocketFile file(server.local_address());
    EXPECT_EQ(file.path(), path);
  }
  struct ::stat st {};
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "the file stayed";
  {
    Socket server = create_server("unix:" + path);
    SocketFile file(server.local_address());
    server.close();
    ::unlink(path.c_str());
    Socket replacement = create_server("unix:" + path);  // another server's file now
    (void)replacement;
  }
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << "removed a file that was not its own";
  SocketFile abstract(Address::abstract("wire-test-none"));
  EXPECT_EQ(abstract.path(), "");
}

// A live listener whose backlog is full does not answer a connect at once: the probe for a
// stale file must not wait for it (it would block until that process exits, then take the
// path over), but say at once that someone listens.
TEST_F(ConnectTest, ServerRefusesAtOnceWhenALiveListenersBacklogIsFull) {
  test::TempDir dir;
  std::string path = dir.file("busy.sock");
  Socket busy = create_server("unix:" + path, ServerOptions{.backlog = 0});
  std::vector<Socket> waiting;
  for (int i = 0; i < 64; ++i) {  // fill the backlog: never accepted
    Socket client(Family::local, Type::stream);
    client.set_blocking(false);
    auto r = client.connect(Address::unix_path(path), std::nothrow);
    if (!r) {
      ASSERT_EQ(r.error(), std::errc::resource_unavailable_try_again) << r.error().message();
      break;
    }
    waiting.push_back(std::move(client));
  }
  auto attempt = std::async(std::launch::async, [&] {
    return create_server(Address::unix_path(path), {}, std::nothrow).error();
  });
  if (attempt.wait_for(3s) != std::future_status::ready) {
    ADD_FAILURE() << "the stale-socket probe blocked on a live listener";
    busy.close();  // lets the blocked probe go on, so the test ends
  }
  EXPECT_EQ(attempt.get(), std::errc::address_in_use);
  struct ::stat st {};
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

// A stale socket file this user may not connect to is a permission problem, not "in use".
// Run as an unprivileged user in a child: root bypasses the file's permissions.
TEST_F(ConnectTest, ServerSaysPermissionDeniedOnASocketFileItCannotProbe) {
  test::TempDir dir;
  ASSERT_EQ(::chmod(dir.file("").c_str(), 0777), 0);
  std::string path = dir.file("theirs.sock");
  { Socket stale = create_server("unix:" + path); }  // closed: its file stays, mode 0600
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to another user";
  ASSERT_EQ(::chown(path.c_str(), 0, 0), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(3);
    try {
      (void)create_server("unix:" + path);
      ::_exit(4);
    } catch (const Error& e) {
      const std::string what = e.what();
      ::_exit(e.code() == std::errc::permission_denied &&
                      what.find("permission denied") != std::string::npos &&
                      what.find(path) != std::string::npos
                  ? 0
                  : 5);
    } catch (...) {
      ::_exit(6);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  struct ::stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);  // not removed
}

// An error about a peer's name shows its control bytes escaped: what() goes to terminals.
TEST_F(ConnectTest, ErrorsShowControlBytesInNamesEscaped) {
  const std::string evil("nobody\x1b[2K\nwire: FAKE\0", 22);
  try {
    (void)create_connection(std::vector<Address>{Address::abstract(evil)}, 2s);
    ADD_FAILURE() << "connected to nobody";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::connection_refused);
    EXPECT_EQ(std::string(e.what()),
              "connect unix:@nobody\\x1b[2K\\x0awire: FAKE\\x00: Connection refused");
    EXPECT_EQ(e.address(), "unix:@" + evil) << "the raw name stays available";
  }
}
