#include <sys/resource.h>

#include <random>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

class LoopTest : public test::Test {};

namespace {

Task<int> immediate(int value) {
  co_return value;
}

Task<long> sum_of_immediates(int count) {
  long sum = 0;
  for (int i = 0; i < count; ++i) sum += co_await immediate(i);
  co_return sum;
}

Task<void> nested(int depth, int& reached) {
  if (depth == 0) {
    reached = 1;
    co_return;
  }
  co_await nested(depth - 1, reached);
}

}  // namespace

// g++ 12 lacks reliable symmetric transfer (docs/design/awaitables.md): a million awaits that
// finish at once must not grow the stack. Runs in every preset, ASan included.
TEST_F(LoopTest, MillionImmediatelyCompletingAwaits) {
  EventLoop loop;
  const int count = 1'000'000;
  EXPECT_EQ(loop.run_until_complete(sum_of_immediates(count)),
            static_cast<long>(count) * (count - 1) / 2);
  int reached = 0;
  loop.run_until_complete(nested(10'000, reached));
  EXPECT_EQ(reached, 1);
}

TEST_F(LoopTest, ImmediatelyReadyIoDoesNotSuspend) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket reader(loop, std::move(b));
  auto body = [](Socket& writer, AsyncSocket& reader) -> Task<int> {
    int rounds = 0;
    char byte;
    for (int i = 0; i < 100'000; ++i) {
      writer.send_all("x");
      rounds += static_cast<int>(co_await reader.recv(std::span<char>(&byte, 1)));
    }
    co_return rounds;
  };
  EXPECT_EQ(loop.run_until_complete(body(a, reader)), 100'000);
}

TEST_F(LoopTest, TimersFireInDeadlineOrderAndCancelledOnesDoNot) {
  EventLoop loop;
  std::vector<int> order;
  // Taken before the timers are armed: their deadlines count from then (slow under TSan,
  // a start taken after arming made the wait look 0.3 ms short of 30 ms).
  const auto start = std::chrono::steady_clock::now();
  loop.call_later(30ms, [&] { order.push_back(30); });
  loop.call_later(10ms, [&] { order.push_back(10); });
  auto cancelled = loop.call_later(20ms, [&] { order.push_back(20); });
  loop.call_later(10ms, [&] { order.push_back(11); });  // same deadline: first armed first
  loop.call_soon([&] { order.push_back(0); });
  EXPECT_TRUE(loop.cancel(cancelled));
  EXPECT_FALSE(loop.cancel(cancelled));
  loop.run();  // returns when nothing is left
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_EQ(order, (std::vector<int>{0, 10, 11, 30}));
}

// The heap under many timers, many ties and cancellations from its middle: each group fires
// in the order it was armed, groups by deadline, and no cancelled timer fires.
TEST_F(LoopTest, ManyTimersWithTiesAndCancellationsFireInOrder) {
  EventLoop loop;
  std::vector<int> fired;
  std::vector<EventLoop::TimerId> ids;
  const std::chrono::milliseconds delays[] = {200ms, 0ms, 100ms};
  for (int i = 0; i < 1200; ++i) {
    ids.push_back(loop.call_later(delays[i % 3], [&fired, i] { fired.push_back(i); }));
  }
  std::mt19937 random(1234);
  std::vector<bool> cancelled(ids.size(), false);
  for (int k = 0; k < 400; ++k) {
    const std::size_t victim = random() % ids.size();
    EXPECT_EQ(loop.cancel(ids[victim]), !cancelled[victim]);
    cancelled[victim] = true;
  }
  loop.run();
  std::vector<int> expected;
  for (int group : {1, 2, 0}) {
    for (int i = group; i < 1200; i += 3) {
      if (!cancelled[i]) expected.push_back(i);
    }
  }
  EXPECT_EQ(fired, expected);
}

TEST_F(LoopTest, SleepWaitsAndStopEndsRun) {
  EventLoop loop;
  auto sleeper = [](EventLoop& loop, bool& woke) -> Task<void> {
    co_await loop.sleep(30ms);
    woke = true;
  };
  bool woke = false;
  auto start = std::chrono::steady_clock::now();
  loop.run_until_complete(sleeper(loop, woke));
  EXPECT_TRUE(woke);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);

  bool never = false;
  loop.spawn(sleeper(loop, never));
  loop.call_later(5ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_FALSE(never);
  EXPECT_EQ(loop.task_count(), 1u);  // still suspended; destroyed with the loop
}

TEST_F(LoopTest, StopFromAnotherThreadWakesTheLoop) {
  EventLoop loop;
  auto forever = [](EventLoop& loop) -> Task<void> { co_await loop.sleep(1h); };
  loop.spawn(forever(loop));
  std::thread stopper([&] {
    std::this_thread::sleep_for(20ms);
    loop.stop();
  });
  auto start = std::chrono::steady_clock::now();
  loop.run();
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

namespace {

Task<void> echo_connection(AsyncSocket conn) {
  char buffer[4096];
  for (;;) {
    std::size_t n = co_await conn.recv(buffer);
    if (n == 0) co_return;
    co_await conn.send_all({buffer, n});
  }
}

Task<void> accept_n(EventLoop& loop, AsyncSocket& listener, int count) {
  for (int i = 0; i < count; ++i) {
    auto [conn, peer] = co_await listener.accept();
    loop.spawn(echo_connection(std::move(conn)));
  }
}

struct ClientTally {
  int ok = 0;
  int finished = 0;
  int expected = 0;
  EventLoop::TimerId watchdog = 0;
};

Task<void> echo_client(EventLoop& loop, Address server, int id, ClientTally& tally) {
  AsyncSocket client(loop, Socket(server.family(), Type::stream));
  co_await client.connect(server);
  std::string message = "message " + std::to_string(id) + std::string(50, '.');
  co_await client.send_all(message);
  std::string reply;
  char buffer[256];
  while (reply.size() < message.size()) {
    std::size_t n = co_await client.recv(buffer);
    if (n == 0) break;
    reply.append(buffer, n);
  }
  if (reply == message) ++tally.ok;
  if (++tally.finished == tally.expected) loop.cancel(tally.watchdog);
}

void raise_fd_limit(::rlim_t wanted) {
  ::rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min(wanted, limit.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

class LoopBackendTest : public LoopTest, public ::testing::WithParamInterface<SelectorKind> {};

TEST_P(LoopBackendTest, ThousandConcurrentEchoClientsGetTheirBytes) {
  const int clients = GetParam() == SelectorKind::select ? 200 : 1000;  // select: < FD_SETSIZE
  raise_fd_limit(4 * clients + 64);
  EventLoop loop(GetParam());
  AsyncSocket listener(loop, create_server("tcp://127.0.0.1:0", ServerOptions{.backlog = 4096}));
  const Address address = listener.socket().local_address();
  ClientTally tally;
  tally.expected = clients;
  // Bounds a failing run; the last client to finish cancels it.
  tally.watchdog = loop.call_later(30s, [&] { loop.stop(); });
  loop.spawn(accept_n(loop, listener, clients));
  for (int i = 0; i < clients; ++i) loop.spawn(echo_client(loop, address, i, tally));
  loop.run();  // returns once every task has ended and nothing waits
  EXPECT_EQ(tally.finished, clients);
  EXPECT_EQ(tally.ok, clients);
  EXPECT_EQ(loop.task_count(), 0u) << "every connection task ended when its client closed";
  listener.close();
  EXPECT_EQ(loop.selector().size(), 1u) << "only the loop's own wakeup fd stays registered";
}

INSTANTIATE_TEST_SUITE_P(Selectors, LoopBackendTest,
                         ::testing::Values(SelectorKind::epoll, SelectorKind::poll,
                                           SelectorKind::select),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST_F(LoopTest, WithTimeoutCancelsTheWaitAndWithdrawsTheFd) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket silent(loop, std::move(b));
  auto body = [](AsyncSocket& s) -> Task<std::error_code> {
    char buffer[16];
    try {
      co_await with_timeout(50ms, s.recv(buffer));
    } catch (const Error& e) {
      co_return e.code();
    }
    co_return std::error_code();
  };
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(loop.run_until_complete(body(silent)), errc::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  // The cancelled recv left no waiter; its interest goes at the next report. Data arriving
  // now is read by a fresh recv.
  a.send_all("after");
  auto read = [](AsyncSocket& s) -> Task<std::size_t> {
    char buffer[16];
    co_return co_await with_timeout(1s, s.recv(buffer));
  };
  EXPECT_EQ(loop.run_until_complete(read(silent)), 5u);
}

TEST_F(LoopTest, DestroyingAWaitingTaskRemovesItsRegistration) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket silent(loop, std::move(b));
  auto waiter = [](AsyncSocket& s) -> Task<void> {
    char buffer[16];
    (void)co_await s.recv(buffer);
  };
  {
    Task<void> task = waiter(silent);
    auto starter = [](Task<void>& t) -> Task<void> { co_await with_timeout(20ms, std::move(t)); };
    EXPECT_THROW(loop.run_until_complete(starter(task)), Error);
  }
  EXPECT_EQ(loop.task_count(), 0u);
  // Nothing waits any more, so run() returns at once instead of hanging on the fd.
  auto start = std::chrono::steady_clock::now();
  loop.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST_F(LoopTest, ConnectWithTimeoutToAFullBacklog) {
  test::Blackhole blackhole;
  EventLoop loop;
  auto body = [](EventLoop& loop, Address to) -> Task<std::error_code> {
    AsyncSocket s(loop, Socket(Family::inet, Type::stream));
    auto r = co_await with_timeout(100ms, s.connect(to, std::nothrow));
    co_return r.error();
  };
  try {
    (void)loop.run_until_complete(body(loop, blackhole.address()));
    ADD_FAILURE() << "connected to a blackhole";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::timed_out);
  }
}

TEST_F(LoopTest, ConnectRefusedAndResetArriveAsWireErrors) {
  EventLoop loop;
  Socket holder(Family::inet, Type::stream);
  holder.bind(Address::parse("127.0.0.1:0"));
  const Address refused = holder.local_address();
  auto connect = [](EventLoop& loop, Address to) -> Task<std::string> {
    AsyncSocket s(loop, Socket(Family::inet, Type::stream));
    try {
      co_await s.connect(to);
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_NE(loop.run_until_complete(connect(loop, refused)).find("Connection refused"),
            std::string::npos);

  Socket listener = test::loopback_listener();
  Socket client(Family::inet, Type::stream);
  client.connect(listener.local_address());
  auto [conn, peer] = listener.accept();
  client.set_option(option::linger, std::chrono::seconds(0));
  client.close();
  AsyncSocket server_side(loop, std::move(conn));
  auto recv = [](AsyncSocket& s) -> Task<std::string> {
    char buffer[16];
    try {
      (void)co_await s.recv(buffer);
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(loop.run_until_complete(recv(server_side)),
            "recv " + peer.to_string() + ": Connection reset by peer");
}

TEST_F(LoopTest, SendAllWaitsForASlowReaderWithoutBuffering) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket writer(loop, std::move(a));
  b.set_timeout(5s);
  const std::string payload(8 << 20, 'w');
  std::size_t received = 0;
  std::thread reader([&] {
    char buffer[65536];
    while (received < payload.size()) {
      std::size_t n = b.recv(std::span<char>(buffer));
      if (n == 0) break;
      received += n;
    }
  });
  auto body = [](AsyncSocket& w, const std::string& data) -> Task<void> {
    co_await w.send_all(data);
  };
  loop.run_until_complete(body(writer, payload));
  reader.join();
  EXPECT_EQ(received, payload.size());
}

TEST_F(LoopTest, SecondReaderOnOneSocketIsBusy) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket s(loop, std::move(b));
  auto first = [](AsyncSocket& s) -> Task<void> {
    char buffer[4];
    (void)co_await s.recv(buffer);
  };
  auto second = [](AsyncSocket& s, std::error_code& out) -> Task<void> {
    char buffer[4];
    out = (co_await s.recv(buffer, std::nothrow)).error();
  };
  std::error_code second_error;
  loop.spawn(first(s));
  loop.spawn(second(s, second_error));
  loop.call_later(20ms, [&] { a.send_all("x"); });
  loop.run();
  EXPECT_EQ(second_error, std::errc::device_or_resource_busy);
}

TEST_F(LoopTest, ClosingASocketWakesItsWaiter) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket s(loop, std::move(b));
  std::error_code error;
  auto waiter = [](AsyncSocket& s, std::error_code& out) -> Task<void> {
    char buffer[4];
    out = (co_await s.recv(buffer, std::nothrow)).error();
  };
  loop.spawn(waiter(s, error));
  loop.call_later(10ms, [&] { s.close(); });
  loop.run();
  EXPECT_EQ(error, errc::socket_closed);
}

// A reader and a writer wait on one socket; closing it wakes the reader first, and the
// reader cancels the writer's task (as a relay or a task group does when one side fails).
// The writer's waiter is gone by then: the loop must not touch it (ASan: use after free).
TEST_F(LoopTest, ClosingWakesTheReaderWhichMayEndTheWritersTask) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket s(loop, std::move(b));
  std::coroutine_handle<> writer_handle;
  bool writer_cancelled_by_reader = false;
  std::error_code read_error;
  auto writer = [](AsyncSocket& s) -> Task<void> {
    const std::string big(16 << 20, 'w');  // far beyond the socket buffers: it waits
    (void)co_await s.send_all(big, std::nothrow);
  };
  auto reader = [&](AsyncSocket& s) -> Task<void> {
    char buffer[4];
    read_error = (co_await s.recv(buffer, std::nothrow)).error();
    writer_cancelled_by_reader = loop.cancel_task(writer_handle);
  };
  Task<void> w = writer(s);
  writer_handle = w.handle();
  loop.spawn(reader(s));
  loop.spawn(std::move(w), nullptr, nullptr);  // w itself is the loop's task: cancel_task finds it
  loop.call_later(50ms, [&] { s.close(); });
  loop.run();
  EXPECT_EQ(read_error, errc::socket_closed);
  EXPECT_TRUE(writer_cancelled_by_reader) << "the writer ended before the reader woke";
  EXPECT_EQ(loop.task_count(), 0u);
}

TEST_F(LoopTest, ExceptionsInSpawnedTasksGoToTheHandler) {
  EventLoop loop;
  std::string seen;
  loop.set_exception_handler([&](std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      seen = ex.what();
    }
  });
  auto thrower = []() -> Task<void> {
    throw std::runtime_error("boom");
    co_return;
  };
  loop.spawn(thrower());
  loop.run();
  EXPECT_EQ(seen, "boom");
  auto failing = []() -> Task<int> {
    throw std::runtime_error("from run_until_complete");
    co_return 0;
  };
  EXPECT_THROW((void)loop.run_until_complete(failing()), std::runtime_error);
}

TEST_F(LoopTest, UdpThroughTheLoop) {
  EventLoop loop;
  AsyncSocket server(loop, create_server("udp://127.0.0.1:0"));
  AsyncSocket client(loop, Socket(Family::inet, Type::dgram));
  const Address to = server.socket().local_address();
  auto body = [](AsyncSocket& server, AsyncSocket& client, Address to) -> Task<std::string> {
    co_await client.sendto("datagram", to);
    char buffer[64];
    auto got = co_await server.recvfrom(buffer);
    co_await server.sendto(std::string_view(buffer, got.size), got.from);
    std::size_t n = co_await client.recv(buffer);
    co_return std::string(buffer, n);
  };
  EXPECT_EQ(loop.run_until_complete(body(server, client, to)), "datagram");
}

TEST_F(LoopTest, SocketTimeoutBoundsEveryWait) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket s(loop, std::move(b));
  s.set_timeout(30ms);
  auto body = [](AsyncSocket& s, Socket& peer) -> Task<std::string> {
    char buffer[16];
    auto first = co_await s.recv(buffer, std::nothrow);
    if (first.error() != errc::timed_out) co_return "first wait did not time out";
    peer.send_all("ok");
    std::size_t n = co_await s.recv(buffer);  // data is there: no wait, no timeout
    co_return std::string(buffer, n);
  };
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(loop.run_until_complete(body(s, a)), "ok");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
}

TEST_F(LoopTest, RecvPooledLendsABufferOnlyWhenDataIsThere) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket s(loop, std::move(b));
  auto body = [](EventLoop& loop, AsyncSocket& s, Socket& peer) -> Task<std::string> {
    std::string got;
    loop.call_later(10ms, [&peer] { peer.send_all("pooled"); });
    {
      Buffer data = co_await s.recv_pooled();  // waits: no block taken while waiting
      got = std::string(data.view());
      if (loop.buffer_pool().cached() != 0) co_return "a block was cached while lent";
    }
    if (loop.buffer_pool().cached() != 1) co_return "the block did not come back";
    peer.close();
    Buffer end = co_await s.recv_pooled();
    if (!end.empty()) co_return "expected end of stream";
    co_return got;
  };
  EXPECT_EQ(loop.run_until_complete(body(loop, s, a)), "pooled");
  EXPECT_EQ(loop.buffer_pool().cached(), 1u) << "one block, reused, never more";
}

TEST_F(LoopTest, SendNowTakesWhatFitsWithoutWaiting) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  a.set_option(option::send_buffer_size, 4096);
  AsyncSocket s(loop, std::move(a));
  const std::string big(1 << 20, 's');
  const std::size_t first = s.send_now(big);
  EXPECT_GT(first, 0u);
  EXPECT_LT(first, big.size()) << "the kernel cannot take 1 MiB at once here";
  std::size_t more = 0;
  for (int i = 0; i < 10; ++i) more += s.send_now(big);  // full: 0, never blocks
  EXPECT_LT(more, big.size());
  b.close();
  std::size_t after_close = 0;
  EXPECT_THROW(for (int i = 0; i < 100; ++i) after_close += s.send_now(big), Error)
      << "a vanished peer is an error, not SIGPIPE";
}

TEST_F(LoopTest, NowIsTheTimeTheEventsCameAfterALongWait) {
  // A handler woken by I/O after the loop slept must not see the time from before the
  // sleep (caches and deadlines built on now() would be off by the whole wait).
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket reader(loop, std::move(b));
  std::thread writer([&a] {
    std::this_thread::sleep_for(100ms);
    a.send_all("x");
  });
  auto body = [](EventLoop& loop, AsyncSocket& s) -> Task<std::chrono::nanoseconds> {
    const auto before = loop.now();
    char buffer[4];
    (void)co_await s.recv(buffer);
    co_return loop.now() - before;
  };
  const auto waited = loop.run_until_complete(body(loop, reader));
  writer.join();
  EXPECT_GE(waited, 90ms);
}
