#include <fcntl.h>
#include <signal.h>

#include <thread>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

class SocketTest : public test::Test {};

namespace {

// Accepts one connection from `server` after a client connects to it.
struct Connected {
  Socket client;
  Socket server_side;
  Address client_address;
};

Connected connect_pair(Socket& listener) {
  Connected c;
  c.client = Socket(listener.family(), Type::stream);
  c.client.connect(listener.local_address());
  auto [conn, peer] = listener.accept();
  c.server_side = std::move(conn);
  c.client_address = peer;
  return c;
}

std::string recv_exactly(Socket& s, std::size_t n) {
  std::string out;
  char buffer[65536];
  while (out.size() < n) {
    std::size_t got = s.recv(std::span<char>(buffer, std::min(sizeof buffer, n - out.size())));
    if (got == 0) break;
    out.append(buffer, got);
  }
  return out;
}

bool has_cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

}  // namespace

TEST_F(SocketTest, IsAFileDescriptorOpenedCloseOnExec) {
  Socket s(Family::inet, Type::stream);
  EXPECT_GE(s.fileno(), 0);
  EXPECT_TRUE(has_cloexec(s.fileno()));
  EXPECT_TRUE(s.is_open());
  EXPECT_EQ(s.family(), Family::inet);
  EXPECT_EQ(s.type(), Type::stream);
}

TEST_F(SocketTest, TcpOverIpv4CarriesBytesBothWays) {
  Socket listener = test::loopback_listener();
  EXPECT_TRUE(has_cloexec(listener.fileno()));
  auto c = connect_pair(listener);
  EXPECT_TRUE(has_cloexec(c.server_side.fileno()));
  EXPECT_EQ(c.client_address, c.client.local_address());
  EXPECT_EQ(c.client.peer_address(), listener.local_address());
  c.client.send_all("hello server");
  EXPECT_EQ(recv_exactly(c.server_side, 12), "hello server");
  c.server_side.send_all("hello client");
  EXPECT_EQ(recv_exactly(c.client, 12), "hello client");
}

TEST_F(SocketTest, TcpOverIpv6CarriesBytesBothWays) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  Socket listener = create_server("tcp://[::1]:0");
  EXPECT_EQ(listener.family(), Family::inet6);
  auto c = connect_pair(listener);
  EXPECT_EQ(c.client_address.host(), "::1");
  c.client.send_all("over v6");
  EXPECT_EQ(recv_exactly(c.server_side, 7), "over v6");
}

TEST_F(SocketTest, UnixPathSocketCarriesBytes) {
  test::TempDir dir;
  Address address = Address::unix_path(dir.file("app.sock"));
  Socket listener(Family::local, Type::stream);
  listener.bind(address);
  listener.listen();
  EXPECT_EQ(listener.local_address(), address);
  Socket client(Family::local, Type::stream);
  client.connect(address);
  auto [conn, peer] = listener.accept();
  client.send_all("via the file system");
  EXPECT_EQ(recv_exactly(conn, 19), "via the file system");
}

TEST_F(SocketTest, AbstractUnixSocketCarriesBytes) {
  std::string name = "wire-test-" + std::to_string(::getpid());
  Address address = Address::abstract(name);
  Socket listener(Family::local, Type::stream);
  listener.bind(address);
  listener.listen();
  EXPECT_EQ(listener.local_address().to_string(), "unix:@" + name);
  Socket client(Family::local, Type::stream);
  client.connect(Address::parse("unix:@" + name));
  auto [conn, peer] = listener.accept();
  conn.send_all("no file at all");
  EXPECT_EQ(recv_exactly(client, 14), "no file at all");
}

TEST_F(SocketTest, UdpKeepsDatagramBoundaries) {
  Socket server(Family::inet, Type::dgram);
  server.bind(Address::parse("udp://127.0.0.1:0"));
  Address server_address = server.local_address();
  EXPECT_EQ(server_address.type(), Type::dgram);
  Socket client(Family::inet, Type::dgram);
  client.sendto("one", server_address);
  client.sendto(std::string(1000, 'x'), server_address);
  client.sendto("", server_address);
  client.sendto("three", server_address);

  server.set_timeout(5s);
  auto [first, from] = server.recvfrom(65536);
  EXPECT_EQ(first, "one");
  EXPECT_EQ(from.port(), client.local_address().port());  // the client autobound 0.0.0.0:port
  EXPECT_EQ(server.recvfrom(65536).data, std::string(1000, 'x'));
  EXPECT_EQ(server.recvfrom(65536).data, "");
  char small[3];
  auto received = server.recvfrom(std::span<char>(small));
  EXPECT_TRUE(received.truncated);
  EXPECT_EQ(received.size, 3u);
  EXPECT_EQ(std::string(small, 3), "thr");

  server.sendto("reply", from);
  EXPECT_EQ(client.recv(100), "reply");
}

TEST_F(SocketTest, UnixDatagramsKeepBoundaries) {
  test::TempDir dir;
  Address server_address = Address::unix_path(dir.file("log.sock"), Type::dgram);
  Socket server = create_server(server_address);
  Address client_address = Address::unix_path(dir.file("client.sock"), Type::dgram);
  Socket client(Family::local, Type::dgram);
  client.bind(client_address);
  client.sendto("a", server_address);
  client.sendto("bb", server_address);
  auto [data, from] = server.recvfrom(100);
  EXPECT_EQ(data, "a");
  EXPECT_EQ(from.to_string(), "unixgram:" + dir.file("client.sock"));
  EXPECT_EQ(server.recvfrom(100).data, "bb");
}

TEST_F(SocketTest, SocketPairIsConnected) {
  auto [a, b] = Socket::pair();
  EXPECT_TRUE(has_cloexec(a.fileno()));
  a.send_all("ping");
  EXPECT_EQ(recv_exactly(b, 4), "ping");
  auto [x, y] = Socket::pair(Type::dgram);
  x.send("d1");
  x.send("d2");
  EXPECT_EQ(y.recv(100), "d1");
  EXPECT_EQ(y.recv(100), "d2");
}

TEST_F(SocketTest, RecvReturnsEmptyWhenPeerCloses) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.client.send_all("last words");
  c.client.close();
  EXPECT_EQ(recv_exactly(c.server_side, 10), "last words");
  EXPECT_EQ(c.server_side.recv(100), "");
  char buf[10];
  EXPECT_EQ(c.server_side.recv(std::span<char>(buf)), 0u);
}

TEST_F(SocketTest, ShutdownWriteHalfClosesAndTheOtherWayStillWorks) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.client.send_all("request");
  c.client.shutdown(Shutdown::write);
  EXPECT_EQ(recv_exactly(c.server_side, 7), "request");
  EXPECT_EQ(c.server_side.recv(10), "");
  c.server_side.send_all("response");
  c.server_side.close();
  EXPECT_EQ(recv_exactly(c.client, 8), "response");
  EXPECT_EQ(c.client.recv(10), "");
}

TEST_F(SocketTest, RecvFromSilentPeerTimesOut) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.server_side.set_timeout(100ms);
  EXPECT_EQ(c.server_side.timeout(), std::chrono::nanoseconds(100ms));
  auto start = std::chrono::steady_clock::now();
  try {
    (void)c.server_side.recv(10);
    ADD_FAILURE() << "recv returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::timed_out);
    EXPECT_EQ(e.code(), std::errc::timed_out);
    EXPECT_EQ(std::string(e.what()), "recv " + c.client_address.to_string() + ": timed out");
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
  // The socket still works after a timeout.
  c.client.send_all("late");
  EXPECT_EQ(recv_exactly(c.server_side, 4), "late");
}

TEST_F(SocketTest, AcceptTimesOut) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(50ms);
  auto r = listener.accept(std::nothrow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timed_out);
}

TEST_F(SocketTest, AcceptedSocketInheritsTimeout) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(2s);
  auto c = connect_pair(listener);
  EXPECT_EQ(c.server_side.timeout(), std::chrono::nanoseconds(2s));
}

TEST_F(SocketTest, ConnectToFullBacklogTimesOut) {
  test::Blackhole blackhole;
  Socket s(Family::inet, Type::stream);
  s.set_timeout(150ms);
  auto start = std::chrono::steady_clock::now();
  auto r = s.connect(blackhole.address(), std::nothrow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 150ms);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(SocketTest, NonBlockingCallsFailWithWouldBlock) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.server_side.set_blocking(false);
  EXPECT_EQ(c.server_side.timeout(), std::chrono::nanoseconds(0));
  auto r = c.server_side.recv(10, std::nothrow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), std::errc::resource_unavailable_try_again);
  listener.set_blocking(false);
  EXPECT_EQ(listener.accept(std::nothrow).error(), std::errc::resource_unavailable_try_again);
  c.server_side.set_blocking(true);
  EXPECT_EQ(c.server_side.timeout(), std::nullopt);
  EXPECT_FALSE(c.server_side.set_timeout(-1s, std::nothrow));
}

TEST_F(SocketTest, SendIsPartialWhenTheKernelIsFullAndSendAllIsNot) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.client.set_option(option::send_buffer_size, 4096);
  c.client.set_blocking(false);
  const std::string big(4 << 20, 'p');
  std::size_t sent = c.client.send(big);
  EXPECT_GT(sent, 0u);
  EXPECT_LT(sent, big.size());

  // Drain in another thread while send_all pushes a payload many times the send buffer.
  std::string payload(2 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31 % 251);
  std::string received;
  std::thread reader([&] { received = recv_exactly(c.server_side, sent + payload.size()); });
  c.client.set_blocking(true);
  c.client.send_all(payload);
  reader.join();
  ASSERT_EQ(received.size(), sent + payload.size());
  EXPECT_EQ(received.substr(0, sent), big.substr(0, sent));
  EXPECT_TRUE(received.substr(sent) == payload);
}

TEST_F(SocketTest, PeerResetSurfacesAsErrorNamingThePeer) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.client.set_option(option::linger, std::chrono::seconds(0));
  EXPECT_EQ(c.client.get_option(option::linger), std::chrono::seconds(0));
  c.client.close();  // linger 0: RST instead of FIN
  try {
    (void)c.server_side.recv(10);
    ADD_FAILURE() << "recv returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::connection_reset);
    EXPECT_EQ(e.address(), c.client_address.to_string());
    EXPECT_EQ(std::string(e.what()),
              "recv " + c.client_address.to_string() + ": Connection reset by peer");
  }
}

TEST_F(SocketTest, WritingToAClosedPeerIsAnErrorNotSigpipe) {
  // SIGPIPE's default action would kill this process; it must never be raised.
  ::signal(SIGPIPE, SIG_DFL);
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  c.client.close();
  std::error_code error;
  for (int i = 0; i < 100 && !error; ++i) {
    auto r = c.server_side.send(std::string(65536, 'x'), std::nothrow);
    if (!r) error = r.error();
  }
  EXPECT_TRUE(error == std::errc::broken_pipe || error == std::errc::connection_reset)
      << error.message();
  try {
    c.server_side.send_all("more");
    ADD_FAILURE() << "send_all succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.address(), c.client_address.to_string());
  }
}

TEST_F(SocketTest, DetachAndAdoptRoundTrip) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  const int fd = c.server_side.detach();
  EXPECT_FALSE(c.server_side.is_open());
  EXPECT_GE(::fcntl(fd, F_GETFD), 0) << "detach must not close the fd";
  Socket adopted = Socket::adopt(fd);
  EXPECT_EQ(adopted.fileno(), fd);
  EXPECT_EQ(adopted.family(), Family::inet);
  EXPECT_EQ(adopted.type(), Type::stream);
  c.client.send_all("still here");
  EXPECT_EQ(recv_exactly(adopted, 10), "still here");

  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  auto not_a_socket = Socket::adopt(pipe_fds[0], std::nothrow);
  EXPECT_EQ(not_a_socket.error(), std::errc::not_a_socket);
  ::close(pipe_fds[0]);  // adopt failed, so the fd is still ours
  ::close(pipe_fds[1]);
}

TEST_F(SocketTest, EveryCallOnAClosedOrDetachedSocketFailsClearly) {
  Socket s(Family::inet, Type::stream);
  const int old_fd = s.fileno();
  s.close();
  s.close();  // idempotent
  // Someone else now gets the same fd number; the closed Socket must not touch it.
  auto [a, b] = Socket::pair();
  ASSERT_TRUE(a.fileno() == old_fd || b.fileno() == old_fd);
  try {
    (void)s.send("x");
    ADD_FAILURE() << "send on a closed socket";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::socket_closed);
    EXPECT_EQ(std::string(e.what()), "send (closed socket): socket is closed or detached");
  }
  EXPECT_THROW((void)s.fileno(), Error);
  EXPECT_THROW((void)s.recv(1), Error);
  EXPECT_THROW((void)s.detach(), Error);
  EXPECT_THROW(s.connect(Address::parse("127.0.0.1:1")), Error);
  EXPECT_THROW((void)s.makefile(), Error);
  EXPECT_EQ(s.accept(std::nothrow).error(), errc::socket_closed);
  EXPECT_EQ(s.set_option(option::tcp_nodelay, true, std::nothrow).error(), errc::socket_closed);
  a.set_blocking(false);
  EXPECT_FALSE(a.recv(1, std::nothrow)) << "nothing was written to the new owner of the fd";

  Socket moved_from(Family::inet, Type::stream);
  Socket moved_to = std::move(moved_from);
  EXPECT_FALSE(moved_from.is_open());  // NOLINT: checking the moved-from state on purpose
  EXPECT_TRUE(moved_to.is_open());
}

TEST_F(SocketTest, ConnectRefusedNamesTheAddress) {
  // A bound socket that does not listen keeps the port: connects to it are refused.
  Socket holder(Family::inet, Type::stream);
  holder.bind(Address::parse("127.0.0.1:0"));
  Address refused = holder.local_address();
  Socket s(Family::inet, Type::stream);
  auto r = s.connect(refused, std::nothrow);
  EXPECT_EQ(r.error(), std::errc::connection_refused);
  Socket t(Family::inet, Type::stream);
  try {
    t.connect(refused);
    ADD_FAILURE() << "connected";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "connect " + refused.to_string() + ": Connection refused");
    EXPECT_EQ(e.operation(), "connect");
  }
}

TEST_F(SocketTest, BindErrorsNameTheAddress) {
  Socket first = test::loopback_listener();
  Socket second(Family::inet, Type::stream);
  try {
    second.bind(first.local_address());
    ADD_FAILURE() << "bound twice";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::address_in_use);
    EXPECT_EQ(e.address(), first.local_address().to_string());
  }
}

TEST_F(SocketTest, OptionsByName) {
  Socket tcp(Family::inet, Type::stream);
  tcp.set_option(option::reuse_address, true);
  EXPECT_TRUE(tcp.get_option(option::reuse_address));
  tcp.set_option(option::reuse_port, true);
  EXPECT_TRUE(tcp.get_option(option::reuse_port));
  tcp.set_option(option::tcp_nodelay, true);
  EXPECT_TRUE(tcp.get_option(option::tcp_nodelay));
  tcp.set_option(option::tcp_nodelay, false);
  EXPECT_FALSE(tcp.get_option(option::tcp_nodelay));
  tcp.set_option(option::keepalive, true);
  EXPECT_TRUE(tcp.get_option(option::keepalive));
  tcp.set_option(option::receive_buffer_size, 65536);
  EXPECT_GE(tcp.get_option(option::receive_buffer_size), 65536);  // Linux doubles it
  tcp.set_option(option::send_buffer_size, 32768);
  EXPECT_GE(tcp.get_option(option::send_buffer_size), 32768);
  EXPECT_EQ(tcp.get_option(option::linger), std::nullopt);
  tcp.set_option(option::linger, std::chrono::seconds(3));
  EXPECT_EQ(tcp.get_option(option::linger), std::chrono::seconds(3));
  tcp.set_option(option::linger, std::nullopt);
  EXPECT_EQ(tcp.get_option(option::linger), std::nullopt);

  Socket udp(Family::inet, Type::dgram);
  udp.set_option(option::broadcast, true);
  EXPECT_TRUE(udp.get_option(option::broadcast));

  Socket v6(Family::inet6, Type::stream);
  v6.set_option(option::v6_only, true);
  EXPECT_TRUE(v6.get_option(option::v6_only));

  auto r = udp.set_option(option::tcp_nodelay, true, std::nothrow);
  EXPECT_FALSE(r) << "TCP_NODELAY on a UDP socket must fail";
  try {
    udp.set_option(option::tcp_nodelay, true);
  } catch (const Error& e) {
    EXPECT_EQ(e.operation(), "set_option tcp_nodelay");
  }
}

TEST_F(SocketTest, NothrowOverloadsReturnValues) {
  auto s = Socket::create(Family::inet, Type::stream, std::nothrow);
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->bind(Address::parse("127.0.0.1:0"), std::nothrow));
  ASSERT_TRUE(s->listen(8, std::nothrow));
  auto local = s->local_address(std::nothrow);
  ASSERT_TRUE(local);
  Socket client(Family::inet, Type::stream);
  ASSERT_TRUE(client.connect(*local, std::nothrow));
  auto accepted = s->accept(std::nothrow);
  ASSERT_TRUE(accepted);
  auto sent = client.send("abc", std::nothrow);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, 3u);
  auto got = accepted->socket.recv(3, std::nothrow);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, "abc");
  EXPECT_EQ(accepted->peer, client.local_address());
  auto peer = accepted->socket.peer_address(std::nothrow);
  ASSERT_TRUE(peer);
  EXPECT_EQ(*peer, client.local_address());
  EXPECT_FALSE(Socket::create(Family::unspecified, Type::stream, std::nothrow));
  EXPECT_THROW(Socket(Family::unspecified, Type::stream), Error);
}

TEST_F(SocketTest, OneReaderAndOneWriterThreadShareASocket) {
  Socket listener = test::loopback_listener();
  auto c = connect_pair(listener);
  constexpr int rounds = 2000;
  std::thread echo([&] {
    for (int i = 0; i < rounds; ++i) {
      std::string m = recv_exactly(c.server_side, 8);
      c.server_side.send_all(m);
    }
  });
  std::string received;
  std::thread reader([&] { received = recv_exactly(c.client, rounds * 8); });
  for (int i = 0; i < rounds; ++i) {
    std::string m = std::to_string(i);
    c.client.send_all(std::string(8 - m.size(), '0') + m);
  }
  reader.join();
  echo.join();
  ASSERT_EQ(received.size(), rounds * 8u);
  EXPECT_EQ(received.substr(8 * 1234, 8), "00001234");
}
