// The server lifecycle: no CLOSE_WAIT, limits, idle timeout, EMFILE, graceful stop, workers.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>

#include <atomic>
#include <future>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::BackgroundServer;

class ServerTest : public test::Test {};

namespace {

// Polls `condition` every 10 ms for up to `limit`.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

std::string echo_once(const Address& address, const std::string& message) {
  Socket s = create_connection(std::vector<Address>{address}, 5s);
  s.set_timeout(5s);
  s.send_all(message);
  return s.makefile().read_exact(message.size());
}

}  // namespace

TEST_F(ServerTest, ClientsThatCloseResetOrVanishLeaveNoCloseWait) {
  const int fds_idle = test::open_fd_count();
  {
    BackgroundServer server("tcp://127.0.0.1:0", echo_connection);
    const std::uint16_t port = server.address().port();
    std::vector<Socket> lingering;
    for (int i = 0; i < 150; ++i) {
      Socket s = create_connection(std::vector<Address>{server.address()}, 5s);
      s.send_all("half a mess");  // a message cut short, then:
      switch (i % 3) {
        case 0:  // FIN, reading nothing back
          s.close();
          break;
        case 1:  // reset
          s.set_option(option::linger, std::chrono::seconds(0));
          s.close();
          break;
        case 2:  // half-close and keep the socket
          s.shutdown(Shutdown::write);
          lingering.push_back(std::move(s));
          break;
      }
    }
    // Every server-side socket must be closed promptly: nothing in CLOSE_WAIT, and no
    // server socket left ESTABLISHED once our half-closed ones are gone too.
    EXPECT_TRUE(eventually([&] { return test::sockets_in_state(port, "08") == 0; }))
        << test::sockets_in_state(port, "08") << " sockets in CLOSE_WAIT";
    lingering.clear();
    EXPECT_TRUE(eventually([&] {
      return test::sockets_in_state(port, "08") == 0 && test::sockets_in_state(port, "01") == 0;
    }));
    EXPECT_EQ(echo_once(server.address(), "still serving"), "still serving");
    EXPECT_EQ(server.stop(), 0);
  }
  EXPECT_EQ(test::open_fd_count(), fds_idle) << "the server's fds are all released";
}

TEST_F(ServerTest, MaxConnectionsLeavesExcessClientsInTheBacklog) {
  ServeOptions options;
  options.limits.max_connections = 2;
  BackgroundServer server("tcp://127.0.0.1:0", echo_connection, options);
  Socket a = create_connection(std::vector<Address>{server.address()}, 5s);
  Socket b = create_connection(std::vector<Address>{server.address()}, 5s);
  a.send_all("a");
  EXPECT_EQ(a.recv(1), "a");
  b.send_all("b");
  EXPECT_EQ(b.recv(1), "b");
  Socket c = create_connection(std::vector<Address>{server.address()}, 5s);  // in the backlog
  c.set_timeout(200ms);
  c.send_all("c");
  EXPECT_EQ(c.recv(1, std::nothrow).error(), errc::timed_out) << "a third connection was served";
  a.close();  // frees a slot: c is accepted now
  c.set_timeout(5s);
  EXPECT_EQ(c.recv(1), "c");
}

TEST_F(ServerTest, IdleConnectionsAreClosedAfterTheIdleTimeout) {
  ServeOptions options;
  options.limits.idle_timeout = 100ms;
  BackgroundServer server("tcp://127.0.0.1:0", echo_connection, options);
  Socket s = create_connection(std::vector<Address>{server.address()}, 5s);
  s.send_all("x");
  EXPECT_EQ(s.recv(1), "x");
  s.set_timeout(5s);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(s.recv(1), "") << "the server closes an idle connection";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 90ms);
}

TEST_F(ServerTest, GracefulStopFinishesInFlightConnectionsThenClosesTheRest) {
  ServeOptions options;
  options.limits.shutdown_grace = 300ms;
  auto server = std::make_unique<BackgroundServer>("tcp://127.0.0.1:0", echo_connection, options);
  const Address address = server->address();
  Socket busy = create_connection(std::vector<Address>{address}, 5s);
  busy.send_all("1");
  EXPECT_EQ(busy.recv(1), "1");
  auto stopped = std::async(std::launch::async, [&] { return server->stop(); });
  // While stopping: the in-flight connection is still served...
  std::this_thread::sleep_for(50ms);
  busy.send_all("2");
  busy.set_timeout(5s);
  EXPECT_EQ(busy.recv(1), "2");
  // ...no new connection is accepted...
  auto refused = create_connection(std::vector<Address>{address}, 1s, std::nothrow);
  EXPECT_FALSE(refused) << "accepted a connection while stopping";
  // ...and after the grace period the server closes what is left and returns 0.
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(stopped.get(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  auto last = busy.recv(1, std::nothrow);
  EXPECT_TRUE(!last || last->empty()) << "the server closed the connection left open";
}

TEST_F(ServerTest, WorkersShareOnePortAndEachClientIsServed) {
  ServeOptions options;
  options.workers = 2;
  BackgroundServer server("tcp://127.0.0.1:0", echo_connection, options);
  for (int i = 0; i < 50; ++i) {
    std::string m = "client " + std::to_string(i);
    EXPECT_EQ(echo_once(server.address(), m), m);
  }
}

TEST_F(ServerTest, UnixSocketServerWithWorkers) {
  test::TempDir dir;
  ServeOptions options;
  options.workers = 2;
  BackgroundServer server("unix:" + dir.file("echo.sock"), echo_connection, options);
  EXPECT_EQ(echo_once(server.address(), "over unix"), "over unix");
}

TEST_F(ServerTest, DatagramEcho) {
  std::promise<Address> bound;
  auto bound_future = bound.get_future();
  ServeOptions options;
  options.handle_signals = false;
  options.on_listening = [&](const Address& a) { bound.set_value(a); };
  std::thread t([&] { serve_datagrams("udp://127.0.0.1:0", echo_datagrams, options); });
  ASSERT_EQ(bound_future.wait_for(5s), std::future_status::ready);
  Address address = bound_future.get();
  Socket client(Family::inet, Type::dgram);
  client.set_timeout(5s);
  client.sendto("ping", address);
  EXPECT_EQ(client.recvfrom(100).data, "ping");
  stop_serving();
  t.join();
}

// fd exhaustion, in a child process whose RLIMIT_NOFILE is tiny: the server keeps serving the
// connections it has, does not spin, and accepts again once fds free up.
TEST_F(ServerTest, SurvivesFdExhaustionWithoutSpinningAndRecovers) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan/UBSan the sanitizer runtime needs fds of its own, so starving "
                  "the process of fds tests the runtime, not wire (runs in the dev preset)";
#endif
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "StarvedServer forks; under TSan a forked child can hang in the runtime "
                  "before it accepts (runs in the dev preset)";
#endif
  ServeOptions options;
  options.limits.max_connections = 1000;  // beyond the fd limit on purpose: meet EMFILE
  options.limits.accept_retry_delay = 50ms;
  test::StarvedServer server(24, echo_connection, options);
  const pid_t child = server.pid();
  const Address address = server.address();

  std::vector<Socket> clients;
  for (int i = 0; i < 80; ++i) {  // more than the child has fds for
    clients.push_back(create_connection(std::vector<Address>{address}, 5s));
  }
  // The first clients were accepted before the fds ran out and are still served.
  clients[0].set_timeout(5s);
  clients[0].send_all("early");
  EXPECT_EQ(clients[0].makefile().read_exact(5), "early");

  auto cpu_seconds = [child] {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(child) + "/stat").c_str(), "r");
    if (f == nullptr) return -1.0;
    char buf[1024] = {};
    std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    const char* after = std::strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    std::sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  };
  const double cpu_before = cpu_seconds();
  std::this_thread::sleep_for(1s);
  const double cpu_during = cpu_seconds() - cpu_before;
  EXPECT_LT(cpu_during, 0.3) << "the server spins while out of fds";

  // Free fds (every other client leaves): the one waiting in the backlog gets served.
  for (std::size_t i = 0; i + 1 < clients.size(); ++i) clients[i].close();
  Socket& late = clients.back();
  late.set_timeout(5s);
  late.send_all("late");
  EXPECT_EQ(late.makefile().read_exact(4), "late");

  clients.clear();
  EXPECT_EQ(server.stop(), 0) << "graceful stop on SIGTERM exits 0";
}

// Under the select selector no connection may get an fd select() cannot watch: whatever
// RLIMIT_NOFILE allows, the default limit keeps connections below FD_SETSIZE (the excess
// waits in the backlog), and those it has are served.
TEST_F(ServerTest, OnTheSelectSelectorConnectionsStayBelowFdSetSize) {
  test::RaisedFdLimit fds(4 * FD_SETSIZE);
  if (!fds.ok()) GTEST_SKIP() << "hard RLIMIT_NOFILE below " << 4 * FD_SETSIZE;
  {
    EventLoop select_loop(SelectorKind::select);
    Server capped(select_loop, create_server("tcp://127.0.0.1:0"), echo_connection);
    EXPECT_LE(capped.max_connections(), static_cast<std::size_t>(FD_SETSIZE));
    EventLoop epoll_loop(SelectorKind::epoll);
    Server uncapped(epoll_loop, create_server("tcp://127.0.0.1:0"), echo_connection);
    EXPECT_GT(uncapped.max_connections(), static_cast<std::size_t>(FD_SETSIZE));
    capped.start();
    std::string got;
    std::thread client([&] {
      got = echo_once(capped.local_address(), "below");
      select_loop.call_soon_threadsafe([&] { select_loop.stop(); });
    });
    select_loop.run();
    client.join();
    EXPECT_EQ(got, "below");
  }
}

// Fds a handler holds (files being sent) can push a new connection's fd past FD_SETSIZE on
// a select loop: it moves to the lowest free number, or, with none below the limit, the
// client is refused at once (not left hanging) and the server says why, once.
TEST_F(ServerTest, OnTheSelectSelectorAHighFdMovesBelowTheLimitOrIsRefusedAndSaid) {
  test::RaisedFdLimit fds(4 * FD_SETSIZE);
  if (!fds.ok()) GTEST_SKIP() << "hard RLIMIT_NOFILE below " << 4 * FD_SETSIZE;
  {
    EventLoop loop(SelectorKind::select);
    std::vector<std::string> reports;
    loop.set_exception_handler([&](std::exception_ptr error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        reports.emplace_back(e.what());
      }
    });
    Server server(loop, create_server("tcp://127.0.0.1:0"), echo_connection);
    server.start();
    const Address address = server.local_address();
    std::vector<int> fillers;  // every number below the limit taken
    while (fillers.empty() || fillers.back() < FD_SETSIZE + 4) {
      const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      ASSERT_GE(fd, 0);
      fillers.push_back(fd);
    }
    std::string refused;
    std::string served;
    std::thread clients([&] {
      try {
        refused = echo_once(address, "first");
      } catch (const Error& e) {
        refused = "refused";  // the connection was closed under it: a reset or an early end
      }
      // Two numbers free up below the limit: this client's own socket takes one.
      const std::size_t middle = fillers.size() / 2;
      ::close(fillers[middle]);
      ::close(fillers[middle + 1]);
      try {
        served = echo_once(address, "second");
      } catch (const Error& e) {
        served = e.what();
      }
      loop.call_soon_threadsafe([&] { loop.stop(); });
    });
    loop.run();
    clients.join();
    for (std::size_t i = 0; i < fillers.size(); ++i) {
      if (i != fillers.size() / 2 && i != fillers.size() / 2 + 1) ::close(fillers[i]);
    }
    EXPECT_EQ(refused, "refused") << "the first client is refused at once, not left hanging";
    EXPECT_EQ(served, "second") << "moved below FD_SETSIZE and served";
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_NE(reports[0].find("use the poll or epoll selector"), std::string::npos) << reports[0];
    EXPECT_EQ(server.fd_exhaustion_count(), 1u);
  }
}

// A handler that returns parkable leaves only the connection's record while it waits: no
// coroutine frame, no task. The connection keeps working when the peer speaks again.
TEST_F(ServerTest, IdleConnectionsAreParkedWithoutAFrame) {
  EventLoop loop;
  Server server(loop, create_server("tcp://127.0.0.1:0"), echo_connection);
  server.start();
  auto client = [](EventLoop& loop, Server& server, Address to) -> Task<std::string> {
    AsyncSocket s(loop, Socket(Family::inet, Type::stream));
    co_await s.connect(to);
    std::string log;
    for (const char* message : {"one", "two"}) {
      co_await s.send_all(message);
      char buffer[8];
      std::size_t n = co_await s.recv(buffer);
      log += std::string(buffer, n) + ":";
      co_await loop.sleep(park_after * 3);  // the server side parks meanwhile
      log +=
          std::to_string(loop.task_count()) + "/" + std::to_string(server.connection_count()) + " ";
    }
    co_return log;
  };
  // One task (this client) and one connection: the server's side is parked, not a task.
  EXPECT_EQ(loop.run_until_complete(client(loop, server, server.local_address())),
            "one:1/1 two:1/1 ");
}

// serve() on listeners made elsewhere (systemd's, or a predecessor's in a handoff).
TEST_F(ServerTest, ServesGivenListenersWithMoreWorkersThanListeners) {
  std::vector<Socket> listeners;
  listeners.push_back(create_server("tcp://127.0.0.1:0"));
  ServeOptions options;
  options.workers = 3;  // two of them share dups of the one listener
  BackgroundServer server(std::move(listeners), echo_connection, options);
  for (int i = 0; i < 30; ++i) {
    const std::string m = "given " + std::to_string(i);
    EXPECT_EQ(echo_once(server.address(), m), m);
  }
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, ServesEveryListenerOfAReusePortGroup) {
  // The kernel spreads connections over both listeners by hash: a listener left without a
  // worker would leave about half of these connections waiting forever.
  ServerOptions group;
  group.reuse_port = true;
  std::vector<Socket> listeners;
  listeners.push_back(create_server("tcp://127.0.0.1:0", group));
  listeners.push_back(create_server(listeners.front().local_address(), group));
  ServeOptions options;
  options.workers = 1;
  BackgroundServer server(std::move(listeners), echo_connection, options);
  for (int i = 0; i < 64; ++i) {
    const std::string m = "group " + std::to_string(i);
    EXPECT_EQ(echo_once(server.address(), m), m);
  }
  EXPECT_EQ(server.stop(), 0);
}

TEST_F(ServerTest, GivenUnixListenerKeepsItsFileWhenServingStops) {
  test::TempDir dir;
  const std::string path = dir.file("given.sock");
  {
    std::vector<Socket> listeners;
    listeners.push_back(create_server("unix:" + path));
    BackgroundServer server(std::move(listeners), echo_connection);
    EXPECT_EQ(echo_once(server.address(), "over unix"), "over unix");
    EXPECT_EQ(server.stop(), 0);
  }
  // serve() did not make the file, so it does not remove it: its maker does.
  EXPECT_EQ(::access(path.c_str(), F_OK), 0);
}

TEST_F(ServerTest, GivenSocketsThatAreNotListeningStreamSocketsAreRefused) {
  const auto refused = [](std::vector<Socket> listeners) {
    try {
      serve(std::move(listeners), echo_connection);
    } catch (const Error& e) {
      return e.code() == std::errc::invalid_argument;
    }
    return false;
  };
  EXPECT_TRUE(refused({}));
  std::vector<Socket> bound;
  bound.emplace_back(Family::inet, Type::stream);
  bound.back().bind(Address::parse("tcp://127.0.0.1:0"));  // bound, never listening
  EXPECT_TRUE(refused(std::move(bound)));
  std::vector<Socket> datagram;
  datagram.push_back(create_server("udp://127.0.0.1:0"));
  EXPECT_TRUE(refused(std::move(datagram)));
  std::vector<Socket> closed;
  closed.emplace_back();
  EXPECT_TRUE(refused(std::move(closed)));
}
