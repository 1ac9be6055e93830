// relay_between and serve_relay through real sockets: the relay runs on a loop in one
// thread, its two peers are blocking sockets driven by others.
#include <fcntl.h>
#include <poll.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>

#include "support.hpp"
#include "wire/relay_between.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::announced;

namespace {

// Two connected sockets: `outside` is the test's peer, `inside` goes to the relay.
struct Link {
  Socket outside;
  Socket inside;
};

Link tcp_link() {
  Socket listener = test::loopback_listener();
  Socket outside = create_connection(listener.local_address().to_string(), 5s);
  auto accepted = listener.accept();
  return {std::move(outside), std::move(accepted.socket)};
}

Link unix_link(Type type = Type::stream) {
  auto [x, y] = Socket::pair(type);
  return {std::move(x), std::move(y)};
}

Link make_link(const std::string& kind) {
  return kind == "tcp" ? tcp_link() : unix_link();
}

// A stream of `size` bytes that differs per `seed` and per block: block i is a random block
// with i written over its first bytes, so a reordered, lost or repeated block shows.
class Pattern {
 public:
  static constexpr std::size_t block = 1 << 16;
  explicit Pattern(std::uint32_t seed) : data_(block, '\0') {
    std::uint32_t x = seed * 2654435761u + 1;
    for (auto& c : data_) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      c = static_cast<char>(x);
    }
  }
  std::string_view block_view(std::uint64_t index) {
    std::memcpy(data_.data(), &index, sizeof index);
    return data_;
  }

 private:
  std::string data_;
};

void send_pattern(Socket& s, std::uint32_t seed, std::size_t size) {
  Pattern p(seed);
  for (std::uint64_t i = 0; i * Pattern::block < size; ++i) {
    auto chunk = p.block_view(i).substr(0, std::min(Pattern::block, size - i * Pattern::block));
    s.send_all(chunk);
  }
}

// Reads until EOF; true if exactly the pattern came.
bool receive_pattern(Socket& s, std::uint32_t seed, std::size_t size) {
  Pattern p(seed);
  std::string got(Pattern::block, '\0');
  std::size_t total = 0;
  for (std::uint64_t i = 0;; ++i) {
    std::size_t filled = 0;
    while (filled < Pattern::block) {
      std::size_t n = s.recv(std::span<char>(got.data() + filled, Pattern::block - filled));
      if (n == 0) break;
      filled += n;
    }
    total += filled;
    if (filled == 0) return total == size;
    if (total > size) return false;
    if (std::memcmp(got.data(), p.block_view(i).data(), filled) != 0) return false;
    if (filled < Pattern::block) return total == size && s.recv(1).empty();
  }
}

// The relay on its own loop and thread; the result once it ends.
class RelayThread {
 public:
  RelayThread(Socket a, Socket b, RelayBetweenOptions options = {}) {
    result_ =
        std::async(std::launch::async, [a = std::move(a), b = std::move(b), options]() mutable {
          EventLoop loop;
          AsyncSocket left(loop, std::move(a));
          AsyncSocket right(loop, std::move(b));
          return loop.run_until_complete(relay_between(left, right, options));
        });
  }
  // The stats if the relay ended within `limit`.
  std::optional<RelayBetweenStats> wait(std::chrono::milliseconds limit = 5000ms) {
    if (result_.wait_for(limit) != std::future_status::ready) return std::nullopt;
    return result_.get();
  }

 private:
  std::future<RelayBetweenStats> result_;
};

}  // namespace

class RelayBetweenTest : public test::Test, public ::testing::WithParamInterface<std::string> {};

INSTANTIATE_TEST_SUITE_P(RelayBetween, RelayBetweenTest, ::testing::Values("tcp", "unix"),
                         [](const auto& info) { return info.param; });

// Both ways at once, each side sending `up` / `down` bytes then a FIN, while reading what
// the other sends until EOF: true if every byte arrived, in order, both ways.
bool exchange(Socket& client, Socket& server, std::size_t up, std::size_t down) {
  auto send_then_fin = [](Socket& s, std::uint32_t seed, std::size_t size) {
    send_pattern(s, seed, size);
    s.shutdown(Shutdown::write);
  };
  auto upload = std::async(std::launch::async, send_then_fin, std::ref(client), 1, up);
  auto download = std::async(std::launch::async, send_then_fin, std::ref(server), 2, down);
  auto server_got = std::async(std::launch::async, receive_pattern, std::ref(server), 1, up);
  const bool client_ok = receive_pattern(client, 2, down);
  const bool server_ok = server_got.get();
  upload.get();
  download.get();
  EXPECT_TRUE(client_ok) << "client side: bytes differ";
  EXPECT_TRUE(server_ok) << "server side: bytes differ";
  return client_ok && server_ok;
}

TEST_P(RelayBetweenTest, MovesBytesBothWaysAtOnceBySplice) {
  constexpr std::size_t size = 32 << 20;
  Link client = make_link(GetParam());
  Link server = make_link(GetParam());
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(10s);
  RelayThread relay(std::move(client.inside), std::move(server.inside));
  EXPECT_TRUE(exchange(client.outside, server.outside, size, size));
  auto stats = relay.wait();
  ASSERT_TRUE(stats) << "the relay did not end after both FINs";
  EXPECT_EQ(stats->end, RelayEnd::closed);
  EXPECT_EQ(stats->a_to_b, size);
  EXPECT_EQ(stats->b_to_a, size);
  EXPECT_TRUE(stats->a_to_b_spliced);
  EXPECT_TRUE(stats->b_to_a_spliced);
}

TEST_P(RelayBetweenTest, CopiesThroughABufferWhenZeroCopyIsOff) {
  constexpr std::size_t size = 4 << 20;
  Link client = make_link(GetParam());
  Link server = make_link(GetParam());
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(10s);
  RelayThread relay(std::move(client.inside), std::move(server.inside),
                    {.idle_timeout = std::nullopt, .zero_copy = false});
  EXPECT_TRUE(exchange(client.outside, server.outside, size, size + 1));
  auto stats = relay.wait();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->end, RelayEnd::closed);
  EXPECT_EQ(stats->a_to_b, size);
  EXPECT_EQ(stats->b_to_a, size + 1);
  EXPECT_FALSE(stats->a_to_b_spliced);
  EXPECT_FALSE(stats->b_to_a_spliced);
}

// The client's FIN reaches the server while the server still has its answer to send: the
// server reads to EOF first, then answers, and the client reads the whole answer.
TEST_P(RelayBetweenTest, PassesHalfCloseThrough) {
  Link client = make_link(GetParam());
  Link server = make_link(GetParam());
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(5s);
  RelayThread relay(std::move(client.inside), std::move(server.inside));
  client.outside.send_all("the whole request");
  client.outside.shutdown(Shutdown::write);
  std::string request;
  for (std::string chunk; !(chunk = server.outside.recv(4096)).empty();) request += chunk;
  EXPECT_EQ(request, "the whole request") << "the FIN came through after every byte";
  auto answer = std::async(std::launch::async, [&] {
    send_pattern(server.outside, 5, 3 << 20);
    server.outside.close();
  });
  EXPECT_TRUE(receive_pattern(client.outside, 5, 3 << 20));
  answer.get();
  auto stats = relay.wait();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->end, RelayEnd::closed);
  EXPECT_EQ(stats->a_to_b, request.size());
}

// A reset on one side cuts the other (with a reset too), whichever side it comes from.
TEST(RelayBetweenReset, OnEitherSideEndsBoth) {
  for (bool client_resets : {true, false}) {
    SCOPED_TRACE(client_resets ? "client resets" : "server resets");
    const int fds_before = test::open_fd_count();
    {
      Link client = tcp_link();
      Link server = tcp_link();
      for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(5s);
      RelayThread relay(std::move(client.inside), std::move(server.inside));
      client.outside.send_all("ping");
      EXPECT_EQ(server.outside.recv(16), "ping");
      server.outside.send_all("pong");
      EXPECT_EQ(client.outside.recv(16), "pong");
      Socket& resetting = client_resets ? client.outside : server.outside;
      Socket& other = client_resets ? server.outside : client.outside;
      resetting.set_option(option::linger, 0s);
      resetting.close();
      auto got = other.recv(16, std::nothrow);
      ASSERT_FALSE(got) << "the survivor saw " << (got ? "\"" + *got + "\"" : "");
      EXPECT_EQ(got.error(), std::errc::connection_reset) << got.error().message();
      auto stats = relay.wait();
      ASSERT_TRUE(stats);
      EXPECT_EQ(stats->end, client_resets ? RelayEnd::a_failed : RelayEnd::b_failed);
      EXPECT_EQ(stats->error, std::errc::connection_reset) << stats->error.message();
    }
    EXPECT_EQ(test::open_fd_count(), fds_before);
  }
}

// The server stops reading, so the pipe and both kernels' buffers fill up, then resets:
// the bytes stuck in the pipe must not keep the relay waiting.
TEST(RelayBetweenReset, DestinationFailingWithBytesInThePipeEndsTheRelay) {
  Link client = tcp_link();
  Link server = tcp_link();
  client.outside.set_timeout(5s);
  RelayThread relay(std::move(client.inside), std::move(server.inside));
  auto flood = std::async(std::launch::async, [&] {
    Pattern p(6);
    for (std::uint64_t i = 0; i < 4096; ++i) {
      if (!client.outside.send_all(p.block_view(i), std::nothrow)) return true;  // cut: good
    }
    return false;
  });
  // Until the client's sends stall: everything between is full.
  std::this_thread::sleep_for(300ms);
  server.outside.set_option(option::linger, 0s);
  server.outside.close();
  auto stats = relay.wait();
  ASSERT_TRUE(stats) << "the relay hung on the bytes it held";
  EXPECT_EQ(stats->end, RelayEnd::b_failed);
  EXPECT_TRUE(flood.get()) << "the client's sends were not cut";
  EXPECT_GT(stats->a_to_b, 0u);
}

TEST_P(RelayBetweenTest, IdleTimeoutClosesBothSides) {
  Link client = make_link(GetParam());
  Link server = make_link(GetParam());
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(5s);
  RelayThread relay(std::move(client.inside), std::move(server.inside), {.idle_timeout = 200ms});
  client.outside.send_all("x");
  EXPECT_EQ(server.outside.recv(4), "x");
  EXPECT_EQ(client.outside.recv(4), "") << "closed (EOF) once idle";
  EXPECT_EQ(server.outside.recv(4), "");
  auto stats = relay.wait();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->end, RelayEnd::idle_timeout);
  EXPECT_EQ(stats->error, errc::timed_out);
}

// Traffic one way only keeps the relay alive: idle means nothing in either direction.
TEST(RelayBetweenIdle, OneWayTrafficIsNotIdle) {
  Link client = tcp_link();
  Link server = tcp_link();
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(5s);
  RelayThread relay(std::move(client.inside), std::move(server.inside), {.idle_timeout = 300ms});
  for (int i = 0; i < 8; ++i) {  // 1.2 s of a trickle, four times the idle timeout
    server.outside.send_all("t");
    EXPECT_EQ(client.outside.recv(4), "t") << "cut after " << i << " bytes";
    std::this_thread::sleep_for(150ms);
  }
  EXPECT_EQ(client.outside.recv(4), "") << "idle once the trickle stops";
  auto stats = relay.wait();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->end, RelayEnd::idle_timeout);
  EXPECT_EQ(stats->b_to_a, 8u);
}

// Cancelling the task mid-transfer (the server not reading, so the pipe holds bytes)
// closes its pipes and leaves the sockets with their owner.
TEST(RelayBetweenCancel, MidTransferLeaksNoFd) {
  Link client = tcp_link();
  Link server = tcp_link();
  const int fds_with_sockets = test::open_fd_count();
  client.outside.set_timeout(5s);
  auto flood = std::async(std::launch::async, [&] {
    Pattern p(7);
    for (std::uint64_t i = 0; i < 1024; ++i) {
      if (!client.outside.send_all(p.block_view(i), std::nothrow)) return;
    }
  });
  {
    EventLoop loop;
    AsyncSocket a(loop, std::move(client.inside));
    AsyncSocket b(loop, std::move(server.inside));
    const int fds_with_loop = test::open_fd_count();
    Task<RelayBetweenStats> task = relay_between(a, b);
    auto driver = [](Task<RelayBetweenStats>& relay) -> Task<void> { (void)co_await relay; };
    TaskHandle<void> handle = loop.spawn(driver(task));
    loop.call_later(300ms, [&] { loop.stop(); });
    loop.run();
    EXPECT_EQ(test::open_fd_count(), fds_with_loop + 4) << "two pipes while relaying";
    EXPECT_TRUE(handle.cancel());  // outside run(): the task is destroyed at once
    EXPECT_TRUE(handle.cancelled());
    task.reset();
    EXPECT_EQ(test::open_fd_count(), fds_with_loop) << "a pipe outlived the cancelled relay";
    EXPECT_TRUE(a.is_open() && b.is_open()) << "the sockets stay with their owner";
  }
  // Ends the flood if the reset from closing the inside has not (closing would race).
  (void)client.outside.shutdown(Shutdown::both, std::nothrow);
  flood.get();
  client.outside.close();
  EXPECT_EQ(test::open_fd_count(), fds_with_sockets - 3);  // client.outside, and both insides
}

// with_timeout cancels the same way: at whatever suspension the relay is.
TEST(RelayBetweenCancel, ByWithTimeoutLeaksNoFd) {
  Link client = tcp_link();
  Link server = tcp_link();
  EventLoop loop;
  AsyncSocket a(loop, std::move(client.inside));
  AsyncSocket b(loop, std::move(server.inside));
  const int fds = test::open_fd_count();
  client.outside.send_all("forwarded before the cut");
  auto outcome = loop.run_until_complete([](AsyncSocket& a, AsyncSocket& b) -> Task<bool> {
    try {
      (void)co_await with_timeout(200ms, relay_between(a, b));
    } catch (const Error& e) {
      co_return e.code() == errc::timed_out;
    }
    co_return false;
  }(a, b));
  EXPECT_TRUE(outcome) << "with_timeout did not cut the relay";
  EXPECT_EQ(test::open_fd_count(), fds);
  server.outside.set_timeout(2s);
  EXPECT_EQ(server.outside.recv(64), "forwarded before the cut");
}

// Connected datagram sockets: each datagram arrives whole and alone, empty ones too.
TEST(RelayBetweenDatagrams, KeepTheirBoundaries) {
  Link client = unix_link(Type::dgram);
  Link server = unix_link(Type::dgram);
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(5s);
  RelayThread relay(std::move(client.inside), std::move(server.inside), {.idle_timeout = 300ms});
  const std::vector<std::string> sent{"one", std::string(60000, 'x'), "", "three"};
  for (const auto& d : sent) client.outside.send(d);
  for (const auto& d : sent) {
    char buffer[65536];
    EXPECT_EQ(server.outside.recv(std::span<char>(buffer)), d.size());
  }
  server.outside.send("reply");
  EXPECT_EQ(client.outside.recv(64), "reply");
  auto stats = relay.wait();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->end, RelayEnd::idle_timeout);
  EXPECT_EQ(stats->a_to_b, 60008u);
  EXPECT_EQ(stats->b_to_a, 5u);
}

TEST(RelayBetweenMisuse, SocketsOfDifferentKindsOrLoopsAreRefused) {
  EventLoop one, two;
  auto streams = Socket::pair(Type::stream);
  auto datagrams = Socket::pair(Type::dgram);
  AsyncSocket s(one, std::move(streams.first));
  AsyncSocket d(one, std::move(datagrams.first));
  AsyncSocket elsewhere(two, std::move(streams.second));
  EXPECT_THROW(one.run_until_complete(relay_between(s, d)), Error);
  EXPECT_THROW(one.run_until_complete(relay_between(s, elsewhere)), Error);
}

// serve_relay on a thread, stopped at destruction.
class RelayServer {
 public:
  RelayServer(std::string from, std::string to, RelayServeOptions options = {}) {
    options.serve.handle_signals = false;
    std::promise<Address> bound;
    auto bound_future = bound.get_future();
    options.serve.on_listening = [&bound](const Address& a) { bound.set_value(a); };
    options.log = [this](std::string_view line, bool failure) {
      std::lock_guard lock(mutex_);
      lines_.push_back((failure ? "! " : "  ") + std::string(line));
    };
    thread_ = std::thread([from, to, options]() mutable {
      try {
        (void)serve_relay(from, to, options);
      } catch (...) {
      }
    });
    if (bound_future.wait_for(10s) != std::future_status::ready) {
      stop_serving();
      thread_.join();
      throw std::runtime_error("serve_relay did not start");
    }
    address_ = bound_future.get();
  }
  ~RelayServer() {
    stop_serving();
    thread_.join();
  }
  const Address& address() const { return address_; }
  // The log so far, one line each ("! " marks failures), once `count` lines are there.
  std::vector<std::string> log(std::size_t count) {
    for (int i = 0; i < 500; ++i) {
      {
        std::lock_guard lock(mutex_);
        if (lines_.size() >= count) return lines_;
      }
      std::this_thread::sleep_for(10ms);
    }
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  std::thread thread_;
  Address address_;
  std::mutex mutex_;
  std::vector<std::string> lines_;
};

class ServeRelayTest : public test::Test {};

TEST_F(ServeRelayTest, RelaysEachClientToTheTarget) {
  test::TempDir dir;
  const std::string path = dir.file("echo.sock");
  test::BackgroundServer echo("unix:" + path, echo_connection);
  RelayServeOptions options;
  options.verbose = true;
  RelayServer relay("tcp://127.0.0.1:0", "unix:" + path, options);
  for (int i = 0; i < 3; ++i) {
    Socket s = create_connection(relay.address().to_string(), 5s);
    s.set_timeout(5s);
    s.send_all("hello " + std::to_string(i));
    s.shutdown(Shutdown::write);
    EXPECT_EQ(s.recv(64), "hello " + std::to_string(i));
    EXPECT_EQ(s.recv(64), "");
  }
  auto lines = relay.log(6);
  ASSERT_EQ(lines.size(), 6u);
  int opened = 0, closed = 0;
  for (const auto& line : lines) {
    opened += line.find(" -> unix:" + path + ": open") != std::string::npos;
    closed += line.find(": closed, 7 bytes sent, 7 bytes back (splice)") != std::string::npos;
  }
  EXPECT_EQ(opened, 3);
  EXPECT_EQ(closed, 3);
}

// A TO that refuses: the client sees a clean close (EOF, not a reset or a hang) and the
// failure is logged with both addresses.
TEST_F(ServeRelayTest, ATargetThatRefusesClosesTheClientAndIsLogged) {
  Socket holder(Family::inet, Type::stream);
  holder.bind(Address::parse("127.0.0.1:0"));  // bound, not listening: refused
  const std::string refused = holder.local_address().to_string();
  RelayServer relay("tcp://127.0.0.1:0", refused);
  Socket s = create_connection(relay.address().to_string(), 5s);
  s.set_timeout(5s);
  EXPECT_EQ(s.recv(64), "") << "a clean close (FIN), not a reset or a hang";
  auto lines = relay.log(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "! relay " + s.local_address().to_string() + " -> " + refused +
                          ": connect: Connection refused");
}

TEST_F(ServeRelayTest, ATargetThatNeverAnswersTimesOut) {
  test::Blackhole blackhole;
  RelayServeOptions options;
  options.connect_timeout = 300ms;
  RelayServer relay("tcp://127.0.0.1:0", blackhole.address().to_string(), options);
  Socket s = create_connection(relay.address().to_string(), 5s);
  s.set_timeout(5s);
  EXPECT_EQ(s.recv(64), "");
  auto lines = relay.log(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(": connect: "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("timed out"), std::string::npos) << lines[0];
}

// Datagrams: one association per client, each datagram forwarded whole, replies back to
// the client that sent.
TEST_F(ServeRelayTest, DatagramsGetAnAssociationPerClient) {
  Socket echo_socket = create_server("udp://127.0.0.1:0");
  const Address echo_address = echo_socket.local_address();
  std::atomic<bool> done{false};
  auto echo = std::async(std::launch::async, [&] {
    char buffer[65536];
    echo_socket.set_timeout(50ms);
    while (!done) {
      auto got = echo_socket.recvfrom(std::span<char>(buffer), std::nothrow);
      if (got) (void)echo_socket.sendto({buffer, got->size}, got->from, std::nothrow);
    }
  });
  RelayServeOptions options;
  options.verbose = true;
  options.datagram_idle_timeout = 200ms;
  RelayServer relay("udp://127.0.0.1:0", echo_address.to_string(), options);
  Socket one(Family::inet, Type::dgram), two(Family::inet, Type::dgram);
  for (Socket* s : {&one, &two}) s->set_timeout(5s);
  one.sendto("from one", relay.address());
  two.sendto(std::string(40000, '2'), relay.address());
  one.sendto("again one", relay.address());
  EXPECT_EQ(one.recvfrom(100).data, "from one");
  EXPECT_EQ(one.recvfrom(100).data, "again one");
  EXPECT_EQ(two.recvfrom(65536).data, std::string(40000, '2'));
  auto lines = relay.log(4);  // two opens, two idle ends
  ASSERT_EQ(lines.size(), 4u);
  int opened = 0, ended = 0;
  for (const auto& line : lines) {
    opened += line.find(": open") != std::string::npos;
    ended += line.find(": idle timeout") != std::string::npos;
  }
  EXPECT_EQ(opened, 2);
  EXPECT_EQ(ended, 2);
  done = true;
  echo.get();
}

#ifdef WIRE_CLI
// `wire relay FROM TO` run as a user would, against wire echo and the test's own peers.
namespace {

std::string wire_binary() {
  return WIRE_CLI;
}

int fds_of(pid_t pid) {
  int count = 0;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir)) ++count;
  return count;
}

// The fds of a relay that has just announced itself, once its workers' loops are set up
// (the announcement comes before): the count stays put for 100 ms.
int baseline_fds(pid_t pid) {
  int last = fds_of(pid);
  for (int same = 0, i = 0; same < 5 && i < 200; ++i) {
    std::this_thread::sleep_for(20ms);
    const int now = fds_of(pid);
    same = now == last ? same + 1 : 0;
    last = now;
  }
  return last;
}

// Waits (up to 5 s) for the process to hold `expected` fds again: connections end a moment
// after their peers see them end.
int settled_fds(pid_t pid, int expected) {
  int now = fds_of(pid);
  for (int i = 0; i < 500 && now != expected; ++i) {
    std::this_thread::sleep_for(10ms);
    now = fds_of(pid);
  }
  return now;
}

// TCP sockets whose remote port is `port` in `state` ("08": CLOSE_WAIT).
int sockets_to_port_in_state(std::uint16_t port, const char* state) {
  int count = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, st;
      fields >> slot >> local >> remote >> st;
      auto colon = remote.rfind(':');
      if (colon != std::string::npos && std::stoul(remote.substr(colon + 1), nullptr, 16) == port &&
          st == state) {
        ++count;
      }
    }
  }
  return count;
}

}  // namespace

class CliRelayTest : public test::Test {};

TEST_F(CliRelayTest, UsageAndKindErrors) {
  test::Child missing({wire_binary(), "relay", "tcp://127.0.0.1:0"},
                      test::Child::Options::merged());
  (void)missing.read_all();
  EXPECT_EQ(missing.wait(), 2);
  test::Child help({wire_binary(), "relay", "--help"}, test::Child::Options::merged());
  EXPECT_NE(help.read_all().find("FROM"), std::string::npos);
  EXPECT_EQ(help.wait(), 0);
  test::Child mixed({wire_binary(), "relay", "tcp://127.0.0.1:0", "udp://127.0.0.1:9"},
                    test::Child::Options::merged());
  EXPECT_EQ(mixed.read_all(),
            "wire: relay udp://127.0.0.1:9: FROM is a stream address, TO is not\n");
  EXPECT_EQ(mixed.wait(), 1);
}

// 100 MB each way at once, tcp:// in front of a unix: server, checked byte for byte.
TEST_F(CliRelayTest, HundredMegabytesBothWaysAtOnce) {
  test::TempDir dir;
  const std::string path = dir.file("server.sock");
  Socket backend = create_server("unix:" + path);
  backend.set_timeout(5s);
  test::Child relay({wire_binary(), "relay", "-v", "tcp://127.0.0.1:0", "unix:" + path},
                    test::Child::Options::merged());
  const Address front = announced(relay);
  const int relay_fds = baseline_fds(relay.pid());
  Socket client = create_connection(front.to_string(), 5s);
  auto [server, peer] = backend.accept();
  for (Socket* s : {&client, &server}) s->set_timeout(10s);
  constexpr std::size_t size = 100 << 20;
  EXPECT_TRUE(exchange(client, server, size, size));
  client.close();
  server.close();
  EXPECT_NE(relay.read_line().find(": open"), std::string::npos);
  EXPECT_NE(relay.read_line().find(": closed, 104857600 bytes sent, 104857600 bytes back (splice)"),
            std::string::npos);
  EXPECT_EQ(settled_fds(relay.pid(), relay_fds), relay_fds);
  relay.signal(SIGTERM);
  EXPECT_EQ(relay.wait(), 0);
}

// 200 clients at once through the relay (two workers, at most 64 connections each) to
// wire echo: each sends its own bytes, half-closes, and reads all of them back.
TEST_F(CliRelayTest, TwoHundredConcurrentClientsGetTheirOwnBytesBack) {
  test::TempDir dir;
  const std::string path = dir.file("echo.sock");
  test::Child echo({wire_binary(), "echo", "unix:" + path}, test::Child::Options::merged());
  (void)announced(echo);
  test::Child relay({wire_binary(), "relay", "--workers", "2", "--max-connections", "64",
                     "tcp://127.0.0.1:0", "unix:" + path},
                    test::Child::Options::merged());
  const Address front = announced(relay);
  const int relay_fds = baseline_fds(relay.pid());
  constexpr int clients = 200;
  int ok = 0, done = 0;
  EventLoop loop;
  auto one = [](EventLoop& loop, Address to, int i, int& ok, int& done) -> Task<void> {
    try {
      AsyncSocket s(loop, Socket(Family::inet, Type::stream));
      co_await s.connect(to);
      Pattern p(100 + i);
      const std::string data(p.block_view(i).substr(0, 30000 + i));
      co_await s.send_all(data);
      s.shutdown(Shutdown::write);
      std::string got;
      char buffer[16384];
      while (std::size_t n = co_await s.recv(buffer)) got.append(buffer, n);
      if (got == data) ++ok;
    } catch (const Error& e) {
      ADD_FAILURE() << "client " << i << ": " << e.what();
    }
    if (++done == clients) loop.stop();
  };
  for (int i = 0; i < clients; ++i) loop.spawn(one(loop, front, i, ok, done));
  const auto guard = loop.call_later(10s, [&] { loop.stop(); });
  loop.run();
  loop.cancel(guard);
  EXPECT_EQ(done, clients) << "clients hung";
  EXPECT_EQ(ok, clients) << "clients got bytes that were not theirs";
  EXPECT_EQ(settled_fds(relay.pid(), relay_fds), relay_fds) << "the relay leaked fds";
  EXPECT_EQ(test::sockets_in_state(front.port(), "08"), 0) << "CLOSE_WAIT in the relay";
  relay.signal(SIGTERM);
  EXPECT_EQ(relay.wait(), 0);
  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0);
}

// What ends a relay, on one relay process (unix:@abstract in front of tcp://): a TO that
// refuses, an idle timeout, a reset from either side. Afterwards the process holds no more
// fds than at start and no socket in CLOSE_WAIT.
TEST_F(CliRelayTest, RefusalsIdleCutsAndResetsLeaveNothingBehind) {
  Socket backend = test::loopback_listener();
  backend.set_timeout(5s);
  const std::uint16_t backend_port = backend.local_address().port();
  const std::string front = "unix:@wire-test-relay-" + std::to_string(::getpid());
  test::Child relay(
      {wire_binary(), "relay", "--idle-timeout", "0.3", front, backend.local_address().to_string()},
      test::Child::Options::merged());
  (void)announced(relay);
  const int relay_fds = baseline_fds(relay.pid());

  // A reset from the client reaches the server as a reset, and the reverse (a unix client
  // sees the end: unix sockets have no reset to send).
  for (bool client_resets : {true, false}) {
    SCOPED_TRACE(client_resets ? "client resets" : "server resets");
    Socket client = create_connection(front, 5s);
    client.set_timeout(5s);
    auto [server, peer] = backend.accept();
    server.set_timeout(5s);
    client.send_all("ping");
    EXPECT_EQ(server.recv(16), "ping");
    // A unix socket closed with bytes unread is its reset (the peer gets ECONNRESET): the
    // client leaves one byte unread.
    server.send_all("pong!");
    EXPECT_EQ(client.recv(4), "pong");
    Socket& resetting = client_resets ? client : server;
    Socket& other = client_resets ? server : client;
    resetting.set_option(option::linger, 0s);
    resetting.close();
    auto got = other.recv(16, std::nothrow);
    if (client_resets) {  // the server (tcp) gets a reset too: the stream was cut
      ASSERT_FALSE(got) << "the server was not cut";
      EXPECT_EQ(got.error(), std::errc::connection_reset) << got.error().message();
    } else {
      if (got && *got == "!") got = other.recv(16, std::nothrow);  // left unread above
      EXPECT_TRUE(!got || got->empty()) << "the client was not cut: " << *got;
    }
  }

  // Idle for the timeout: both sides see EOF.
  {
    Socket client = create_connection(front, 5s);
    client.set_timeout(5s);
    auto [server, peer] = backend.accept();
    server.set_timeout(5s);
    server.send_all("hello");
    EXPECT_EQ(client.recv(16), "hello");
    EXPECT_EQ(client.recv(16), "") << "not cut when idle";
    EXPECT_EQ(server.recv(16), "");
  }

  // The backend stops listening: the next client is closed cleanly, and the log names both.
  const std::string backend_text = backend.local_address().to_string();
  backend.close();
  {
    Socket client = create_connection(front, 5s);
    client.set_timeout(5s);
    EXPECT_EQ(client.recv(16), "") << "a clean close (FIN), not a reset or a hang";
    std::string line = relay.read_line();
    EXPECT_NE(line.find("wire: relay unix:"), std::string::npos) << line;
    EXPECT_NE(line.find(" -> " + backend_text + ": connect: Connection refused"), std::string::npos)
        << line;
  }
  EXPECT_EQ(settled_fds(relay.pid(), relay_fds), relay_fds) << "the relay leaked fds";
  EXPECT_EQ(sockets_to_port_in_state(backend_port, "08"), 0) << "CLOSE_WAIT towards TO";
  relay.signal(SIGINT);
  EXPECT_EQ(relay.wait(), 0);
}

TEST_F(CliRelayTest, UdpDatagramsGoThroughOneByOne) {
  test::Child echo({wire_binary(), "echo", "udp://127.0.0.1:0"}, test::Child::Options::merged());
  const Address backend = announced(echo);
  test::Child relay({wire_binary(), "relay", "-v", "udp://127.0.0.1:0", backend.to_string()},
                    test::Child::Options::merged());
  const Address front = announced(relay);
  Socket client(Family::inet, Type::dgram);
  client.set_timeout(5s);
  for (const std::string& d : {std::string("one"), std::string(50000, 'x'), std::string("3")}) {
    client.sendto(d, front);
    EXPECT_EQ(client.recvfrom(65536).data, d);
  }
  EXPECT_NE(relay.read_line().find(": open"), std::string::npos);
  relay.signal(SIGTERM);
  EXPECT_EQ(relay.wait(), 0);
  echo.signal(SIGTERM);
  EXPECT_EQ(echo.wait(), 0);
}
#endif  // WIRE_CLI

// ---- What the hostile review of `wire relay` found, each through real sockets ----

namespace {

// serve_relay(from, to) must refuse to start: the message of the wire::Error it throws
// ("" if it threw something else; a test failure if it started serving instead).
std::string refusal_of(const std::string& from, const std::string& to) {
  auto run = std::async(std::launch::async, [from, to]() -> std::string {
    RelayServeOptions options;
    options.serve.handle_signals = false;
    try {
      (void)serve_relay(from, to, options);
      return "(served)";
    } catch (const Error& e) {
      return e.what();
    } catch (...) {
      return "";
    }
  });
  if (run.wait_for(3s) != std::future_status::ready) {
    stop_serving();
    ADD_FAILURE() << "serve_relay(" << from << ", " << to << ") started serving";
  }
  return run.get();
}

// A port free on 127.0.0.1 a moment ago.
std::uint16_t free_port() {
  Socket s = test::loopback_listener();
  return s.local_address().port();
}

}  // namespace

// A relay to its own address connected to itself for every connection until no fd was
// left: refused at start, whether FROM names the address or a wildcard covers it.
TEST_F(ServeRelayTest, ATargetThatIsItsOwnAddressIsRefused) {
  const std::string port = std::to_string(free_port());
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"tcp://127.0.0.1:" + port, "tcp://127.0.0.1:" + port},
           {"tcp://0.0.0.0:" + port, "tcp://127.0.0.1:" + port},
           {"tcp://[::]:" + port, "tcp://127.0.0.1:" + port},
           {"udp://127.0.0.1:" + port, "udp://127.0.0.1:" + port}}) {
    SCOPED_TRACE(from + " -> " + to);
    EXPECT_NE(refusal_of(from, to).find("TO is FROM's own address"), std::string::npos);
  }
  // Another port, or another interface than the one listened on, is no loop.
  {
    Socket backend = test::loopback_listener();
    RelayServer relay("tcp://127.0.0.1:0", backend.local_address().to_string());
  }
  test::TempDir dir;
  const std::string path = "unix:" + dir.file("self.sock");
  EXPECT_NE(refusal_of(path, path).find("TO is FROM's own address"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("self.sock"))) << "the refused socket file stayed";
}

TEST_F(CliRelayTest, ARelayToItselfIsAUsageError) {
  const std::string self = "tcp://127.0.0.1:" + std::to_string(free_port());
  test::Child relay({wire_binary(), "relay", self, self}, test::Child::Options::merged());
  const auto code = relay.wait_at_most(3000ms);
  ASSERT_TRUE(code) << "the relay started, to connect to itself";
  EXPECT_EQ(*code, 2);
  EXPECT_NE(relay.read_all().find("TO is FROM's own address"), std::string::npos);
}

// Without a --max-connections, the limit comes from RLIMIT_NOFILE at ~6 fds a relay: with
// 64 fds, clients beyond it wait in the backlog and are all served in turn, none is
// accepted and then dropped for "Too many open files".
TEST_F(CliRelayTest, TheDefaultLimitKeepsClientsInTheBacklogNotOutOfFds) {
  Socket backend = test::loopback_listener();
  backend.set_timeout(5s);
  test::Child relay({"/bin/sh", "-c", "ulimit -n 64 && exec \"$0\" relay tcp://127.0.0.1:0 \"$1\"",
                     wire_binary(), backend.local_address().to_string()},
                    test::Child::Options::merged());
  const Address front = announced(relay);
  constexpr int clients = 24;  // 48 sockets and 96 pipe fds: far beyond 64
  std::vector<Socket> outside;
  for (int i = 0; i < clients; ++i) {
    outside.push_back(create_connection(front.to_string(), 5s));
    outside.back().set_timeout(5s);
    outside.back().send_all("c" + std::to_string(i) + ";");
  }
  // The relay's side of each client, as the backend accepts them (a few at a time): each
  // is answered, then both ends close, and a waiting client gets the slot.
  for (int served = 0; served < clients; ++served) {
    auto accepted = backend.accept(std::nothrow);
    ASSERT_TRUE(accepted) << "only " << served << " clients reached the backend";
    Socket inside = std::move(accepted->socket);
    inside.set_timeout(5s);
    const std::string got = inside.recv(16);
    ASSERT_TRUE(got.size() >= 3 && got[0] == 'c' && got.back() == ';') << got;
    inside.send_all(got);
    const auto index = static_cast<std::size_t>(std::stoi(got.substr(1)));
    ASSERT_LT(index, outside.size());
    EXPECT_EQ(outside[index].recv(16), got);
    outside[index].close();
    inside.close();
  }
  relay.signal(SIGTERM);
  const std::string output = relay.read_all();
  EXPECT_EQ(output.find("Too many open files"), std::string::npos) << output;
  (void)relay.wait();
}

// A full datagram relay drops what new clients send; the lines that say so are limited
// to one a second, the next one counting those left out.
TEST_F(ServeRelayTest, DatagramFailureLinesAreRateLimited) {
  Socket echo_socket = create_server("udp://127.0.0.1:0");
  RelayServeOptions options;
  options.serve.limits.max_connections = 2;
  RelayServer relay("udp://127.0.0.1:0", echo_socket.local_address().to_string(), options);
  std::vector<Socket> senders;
  for (int i = 0; i < 12; ++i) {
    senders.emplace_back(Family::inet, Type::dgram);
    senders.back().connect(relay.address());
    senders.back().send_all("x");
  }
  auto lines = relay.log(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("2 associations open, datagram dropped"), std::string::npos) << lines[0];
  std::this_thread::sleep_for(1100ms);
  senders.emplace_back(Family::inet, Type::dgram);
  senders.back().connect(relay.address());
  senders.back().send_all("x");
  lines = relay.log(2);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("(9 more like it in the last second not shown)"), std::string::npos)
      << lines[1];
}

// A client that half-closes and then resets: the reset must cut the server's side too, not
// leave it open forever in CLOSE_WAIT.
TEST(RelayBetweenReset, AfterAHalfCloseStillCutsBoth) {
  Link client = tcp_link();
  Link server = tcp_link();
  for (Socket* s : {&client.outside, &server.outside}) s->set_timeout(5s);
  RelayThread relay(std::move(client.inside), std::move(server.inside));
  client.outside.send_all("request");
  client.outside.shutdown(Shutdown::write);
  EXPECT_EQ(server.outside.recv(16), "request");
  EXPECT_EQ(server.outside.recv(16), "");  // the FIN came through
  client.outside.set_option(option::linger, 0s);
  client.outside.close();
  // The server's side ends with a reset (POLLHUP once it is closed), within the bound.
  ::pollfd watch{server.outside.fileno(), 0, 0};
  EXPECT_EQ(::poll(&watch, 1, 4000), 1) << "the server's side stayed open";
  EXPECT_NE(watch.revents & (POLLHUP | POLLERR), 0);
  server.outside.close();  // ends the relay even where it missed the reset
  auto stats = relay.wait();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->end, RelayEnd::a_failed);
}

// A stop whose grace runs out with a relay still open: both of its streams end with a
// reset, so neither peer takes the truncated stream for a complete one.
TEST_F(ServeRelayTest, AStopAfterTheGraceResetsBothSides) {
  Socket backend = test::loopback_listener();
  backend.set_timeout(5s);
  RelayServeOptions options;
  options.serve.limits.shutdown_grace = 200ms;
  RelayServer relay("tcp://127.0.0.1:0", backend.local_address().to_string(), options);
  Socket client = create_connection(relay.address().to_string(), 5s);
  client.set_timeout(5s);
  auto [server, peer] = backend.accept();
  server.set_timeout(5s);
  client.send_all("ping");
  EXPECT_EQ(server.recv(16), "ping");
  stop_serving();
  auto at_client = client.recv(16, std::nothrow);
  ASSERT_FALSE(at_client) << "the client saw \"" << *at_client << "\"";
  EXPECT_EQ(at_client.error(), std::errc::connection_reset) << at_client.error().message();
  auto at_server = server.recv(16, std::nothrow);
  ASSERT_FALSE(at_server) << "the server saw \"" << *at_server << "\"";
  EXPECT_EQ(at_server.error(), std::errc::connection_reset) << at_server.error().message();
}

// A TO that refuses: a client uploading megabytes still sees a clean close, not a reset
// once a byte budget ran out.
TEST_F(ServeRelayTest, ATargetThatRefusesDrainsALargeUploadAndClosesCleanly) {
  Socket holder(Family::inet, Type::stream);
  holder.bind(Address::parse("127.0.0.1:0"));  // bound, not listening: refused
  RelayServer relay("tcp://127.0.0.1:0", holder.local_address().to_string());
  Socket s = create_connection(relay.address().to_string(), 5s);
  s.set_timeout(5s);
  auto upload = std::async(std::launch::async, [&] {
    const std::string block(64 * 1024, 'u');
    for (int i = 0; i < 32; ++i) {  // 2 MiB
      if (!s.send_all(block, std::nothrow)) return false;
    }
    return s.shutdown(Shutdown::write, std::nothrow).has_value();
  });
  auto got = s.recv(64, std::nothrow);
  EXPECT_TRUE(upload.get()) << "the upload was cut";
  ASSERT_TRUE(got) << got.error().message();
  EXPECT_EQ(*got, "") << "a clean close (FIN)";
}

// unixgram: would need an autobound name per association: refused rather than half working.
TEST_F(ServeRelayTest, UnixDatagramsAreRefused) {
  test::TempDir dir;
  EXPECT_NE(refusal_of("unixgram:" + dir.file("a"), "udp://127.0.0.1:9").find("unixgram:"),
            std::string::npos);
  EXPECT_NE(refusal_of("udp://127.0.0.1:0", "unixgram:" + dir.file("b")).find("unixgram:"),
            std::string::npos);
}

// serve() made the socket file of FROM: it is gone once the relay stops.
TEST_F(ServeRelayTest, TheSocketFileGoesAwayWithTheRelay) {
  test::TempDir dir;
  Socket backend = test::loopback_listener();
  {
    RelayServer relay("unix:" + dir.file("front.sock"), backend.local_address().to_string());
    EXPECT_TRUE(std::filesystem::exists(dir.file("front.sock")));
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("front.sock")));
}

// A client's name is its own choice (an abstract name may hold ESC and newlines): the
// log shows it escaped, never raw.
TEST_F(ServeRelayTest, PeerNamesAreLoggedPrintable) {
  Socket backend = test::loopback_listener();
  RelayServeOptions options;
  options.verbose = true;
  const std::string front = "unix:@wire-test-names-" + std::to_string(::getpid());
  RelayServer relay(front, backend.local_address().to_string(), options);
  Socket client(Family::local, Type::stream);
  client.bind(Address::abstract(std::string("evil\x1b[2J\nforged line\0x", 22)));
  client.connect(Address::parse(front));
  auto lines = relay.log(1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].find_first_of(std::string("\x1b\n\0", 3)), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\\x1b"), std::string::npos) << lines[0];
}
