// relay_between and serve_relay through real sockets: the relay runs on a loop in one
// thread, its two peers are blocking sockets driven by others.
#include <fcntl.h>

#include <cstring>
#include <future>
#include <mutex>

#include "support.hpp"
#include "wire/relay_between.hpp"

using namespace wire;
using namespace std::chrono_literals;

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

INSTANTIATE_TEST_SUITE_P(Kinds, RelayBetweenTest, ::testing::Values("tcp", "unix"),
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
    Task<void> running = driver(task);
    const auto handle = running.handle();
    loop.spawn(std::move(running));
    loop.call_later(300ms, [&] { loop.stop(); });
    loop.run();
    EXPECT_EQ(test::open_fd_count(), fds_with_loop + 4) << "two pipes while relaying";
    EXPECT_TRUE(loop.cancel_task(handle));
    task.reset();
    EXPECT_EQ(test::open_fd_count(), fds_with_loop) << "a pipe outlived the cancelled relay";
    EXPECT_TRUE(a.is_open() && b.is_open()) << "the sockets stay with their owner";
  }
  client.outside.close();  // ends the flood
  flood.get();
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
  s.send_all("anyone?");
  EXPECT_EQ(s.recv(64), "");
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
