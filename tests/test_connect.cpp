#include <sys/stat.h>

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
