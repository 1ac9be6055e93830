// open_connection: name lookup off the loop's thread, Happy Eyeballs on the loop, one
// deadline, and nothing left behind (fds, registrations) by losers or cancellation. Real
// listeners on 127.0.0.1 and ::1 only. Runs under TSan (the lookup runs on a worker).
//
// getaddrinfo is wrapped below (the real one still answers): the wrapper notes which thread
// called it and can make it slow, which is the only way to have a slow lookup without a
// DNS server. The resolver's "hosts: files dns" here sends any name missing from /etc/hosts
// to a DNS server on another machine, so the only names looked up are "localhost" (in
// /etc/hosts) and one glibc refuses before any query (see UnknownHostFailsWithoutTheNetwork).
#include <dirent.h>
#include <dlfcn.h>
#include <netdb.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "wire/async.hpp"

using namespace wire;
using namespace std::chrono_literals;

namespace {

std::atomic<int> lookup_delay_ms{0};
std::atomic<int> lookups{0};
std::atomic<int> lookups_in_flight{0};
std::atomic<int> most_lookups_in_flight{0};
std::mutex lookup_mutex;
std::thread::id lookup_thread;  // of the last getaddrinfo call

}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const ::addrinfo* hints,
                           ::addrinfo** result) {
  using Real = int (*)(const char*, const char*, const ::addrinfo*, ::addrinfo**);
  static const Real real = reinterpret_cast<Real>(::dlsym(RTLD_NEXT, "getaddrinfo"));
  {
    std::lock_guard lock(lookup_mutex);
    lookup_thread = std::this_thread::get_id();
  }
  lookups.fetch_add(1);
  const int now = lookups_in_flight.fetch_add(1) + 1;
  for (int most = most_lookups_in_flight.load();
       now > most && !most_lookups_in_flight.compare_exchange_weak(most, now);) {
  }
  if (int delay = lookup_delay_ms.load(); delay > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  const int answer = real(node, service, hints, result);
  lookups_in_flight.fetch_sub(1);
  return answer;
}

namespace {

using Clock = std::chrono::steady_clock;

std::thread::id last_lookup_thread() {
  std::lock_guard lock(lookup_mutex);
  return lookup_thread;
}

int thread_count() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/task")) {
    while (::readdir(dir) != nullptr) ++count;
    ::closedir(dir);
  }
  return count - 2;  // . and ..
}

bool localhost_has(Family family) {
  auto all = resolve("tcp://localhost:1", std::nullopt, std::nothrow);
  if (!all) return false;
  for (const auto& a : *all) {
    if (a.family() == family) return true;
  }
  return false;
}

// Something at `at` that refuses connections: a socket bound there, not listening.
Socket refusing(const Address& at) {
  Socket s(at.family(), Type::stream);
  s.bind(at);
  return s;
}

// A listener at `at` that never accepts, its backlog full: a connect to it hangs.
using Hanging = test::Blackhole;

// A listener on 127.0.0.1 and, at the same port on ::1, whatever `make_v6` builds (both
// families of "localhost:PORT" share the port). Tries other ports while ::1's is taken.
template <class V6>
std::pair<Socket, V6> v4_listener_with_v6(V6 (*make_v6)(const Address&)) {
  for (int i = 0;; ++i) {
    Socket listener = test::loopback_listener();
    try {
      V6 other = make_v6(Address::inet("::1", listener.local_address().port()));
      return {std::move(listener), std::move(other)};
    } catch (const Error& e) {
      if (e.code() != std::errc::address_in_use || i == 20) throw;
    }
  }
}

// What a coroutine of these tests reports back.
struct Opened {
  Address peer;
  Address local;
  EventLoop* loop = nullptr;
  Clock::duration took{};
  int fds_after = 0;  // while the winner is still open
};

Task<Opened> open_and_check(std::vector<Address> candidates, Timeout timeout) {
  const auto start = Clock::now();
  AsyncSocket conn = co_await open_connection(std::move(candidates), timeout);
  Opened out{conn.peer_address(), conn.local_address(), conn.loop(), Clock::now() - start,
             test::open_fd_count()};
  co_return out;
}

Task<Opened> open_by_name(std::string text, Timeout timeout) {
  const auto start = Clock::now();
  AsyncSocket conn = co_await open_connection(text, timeout);
  Opened out{conn.peer_address(), conn.local_address(), conn.loop(), Clock::now() - start,
             test::open_fd_count()};
  co_await conn.send_all("ping");
  co_return out;
}

// The error an open_connection by `text` throws, and how long it took.
struct Failed {
  std::error_code code;
  std::string what;
  Clock::duration took{};
};

Task<Failed> failing(std::string text, Timeout timeout) {
  const auto start = Clock::now();
  try {
    co_await open_connection(text, timeout);
  } catch (const Error& e) {
    co_return Failed{e.code(), e.what(), Clock::now() - start};
  }
  co_return Failed{{}, "(connected)", Clock::now() - start};
}

Task<Failed> failing_candidates(std::vector<Address> candidates, Timeout timeout) {
  const auto start = Clock::now();
  try {
    co_await open_connection(std::move(candidates), timeout);
  } catch (const Error& e) {
    co_return Failed{e.code(), e.what(), Clock::now() - start};
  }
  co_return Failed{{}, "(connected)", Clock::now() - start};
}

}  // namespace

class OpenConnectionTest : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    lookup_delay_ms = 0;
  }
  void TearDown() override {
    lookup_delay_ms = 0;
    test::Test::TearDown();
  }
};

TEST_F(OpenConnectionTest, ConnectsToLocalhostByNameWhenOnlyIpv4Listens) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  // ::1 at the port refuses, so if localhost names ::1 too (it does on most machines; not
  // in this one's /etc/hosts) the refusal moves on at once: no 250 ms wait.
  auto [listener, refuser] = v4_listener_with_v6<Socket>(&refusing);
  const std::uint16_t port = listener.local_address().port();
  EventLoop loop;
  Opened got = loop.run_until_complete(open_by_name("tcp://localhost:" + std::to_string(port), 5s));
  EXPECT_EQ(got.peer, listener.local_address());
  EXPECT_EQ(got.loop, &loop) << "on the loop running the awaiting coroutine";
  EXPECT_LT(got.took, connection_attempt_delay);
  listener.set_timeout(5s);
  auto [conn, peer] = listener.accept();
  EXPECT_EQ(peer, got.local);
  EXPECT_EQ(conn.recv(4), "ping");
}

TEST_F(OpenConnectionTest, RefusedIpv6MovesOnToIpv4AtOnce) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  auto [listener, refuser] = v4_listener_with_v6<Socket>(&refusing);
  EventLoop loop;
  Opened got = loop.run_until_complete(
      open_and_check({refuser.local_address(), listener.local_address()}, 5s));
  EXPECT_EQ(got.peer, listener.local_address());
  EXPECT_LT(got.took, connection_attempt_delay) << "a refusal starts the next attempt at once";
}

TEST_F(OpenConnectionTest, ReachesAListenerOnlyOnIpv6) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  Socket listener = test::loopback_listener("tcp://[::1]:0");
  const std::uint16_t port = listener.local_address().port();
  std::optional<Socket> refuser;
  try {
    refuser = refusing(Address::inet("127.0.0.1", port));
  } catch (const Error&) {
    // 127.0.0.1 at that port is someone else's: the test below still holds.
  }
  EventLoop loop;
  // As localhost's lookup orders them on most machines with ::1: IPv4 first, refused.
  Opened got = loop.run_until_complete(
      open_and_check({Address::inet("127.0.0.1", port), listener.local_address()}, 5s));
  EXPECT_EQ(got.peer, listener.local_address());
  EXPECT_EQ(got.local.family(), Family::inet6);
  EXPECT_LT(got.took, connection_attempt_delay);
}

TEST_F(OpenConnectionTest, ReachesAnIpv6OnlyListenerByName) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  if (!localhost_has(Family::inet6)) {
    GTEST_SKIP() << "localhost does not resolve to ::1 here (/etc/hosts); "
                    "ReachesAListenerOnlyOnIpv6 covers the connect";
  }
  Socket listener = test::loopback_listener("tcp://[::1]:0");
  const std::uint16_t port = listener.local_address().port();
  EventLoop loop;
  Opened got = loop.run_until_complete(open_by_name("tcp://localhost:" + std::to_string(port), 5s));
  EXPECT_EQ(got.peer, listener.local_address());
}

// glibc will not put a label over 63 bytes into a DNS query (RFC 1035 cannot encode it), so
// this name fails inside the process: checked with strace in a network namespace, where
// "x.invalid" did try the DNS server in /etc/resolv.conf (on another machine) and this one tried
// nothing. A name under .invalid is never registered, so no server could answer it anyway.
TEST_F(OpenConnectionTest, UnknownHostFailsWithoutTheNetwork) {
  const std::string name = std::string(64, 'a') + ".invalid";
  const std::string text = "tcp://" + name + ":80";
  EventLoop loop;
  const int before = lookups.load();
  Failed failed = loop.run_until_complete(failing(text, 5s));
  EXPECT_EQ(lookups.load(), before + 1) << "looked up by getaddrinfo";
  EXPECT_EQ(failed.code.category(), resolver_category()) << failed.what;
  EXPECT_EQ(failed.what.rfind("resolve " + text + ": ", 0), 0u) << failed.what;

  auto nothrow = [](std::string text) -> Task<std::error_code> {
    auto conn = co_await open_connection(text, 5s, std::nothrow);
    co_return conn ? std::error_code() : conn.error();
  };
  EXPECT_EQ(loop.run_until_complete(nothrow(text)).category(), resolver_category());
}

TEST_F(OpenConnectionTest, BadTextFailsBeforeAnyLookup) {
  EventLoop loop;
  const int before = lookups.load();
  Failed failed = loop.run_until_complete(failing("tcp://127.0.0.1:70000", 1s));
  EXPECT_EQ(failed.code, errc::invalid_address);
  EXPECT_NE(failed.what.find("70000"), std::string::npos) << failed.what;
  EXPECT_EQ(lookups.load(), before);
}

// The loop runs the lookup on a worker: the connections it serves go on meanwhile.
TEST_F(OpenConnectionTest, TheLookupRunsOnAWorkerWhileTheLoopServes) {
  Socket listener = test::loopback_listener();
  const std::string text = "tcp://localhost:" + std::to_string(listener.local_address().port());
  auto [a, b] = Socket::pair();
  EventLoop loop;
  AsyncSocket near(loop, std::move(a));
  AsyncSocket far(loop, std::move(b));
  struct Tally {
    std::thread::id loop_thread;
    int round_trips_during_lookup = 0;
    bool opened = false;
  } tally;
  auto echo = [](AsyncSocket& conn) -> Task<void> {
    char buffer[16];
    for (;;) {
      const std::size_t n = co_await conn.recv(std::span<char>(buffer, sizeof buffer));
      if (n == 0) co_return;
      co_await conn.send_all(std::string_view(buffer, n));
    }
  };
  auto pinger = [](AsyncSocket& conn, Tally& tally) -> Task<void> {
    char buffer[4];
    while (!tally.opened) {
      co_await conn.send_all("ping");
      std::size_t got = 0;
      while (got < 4) got += co_await conn.recv(std::span<char>(buffer + got, 4 - got));
      ++tally.round_trips_during_lookup;
    }
    conn.shutdown(Shutdown::write);
  };
  auto opener = [](std::string text, Tally& tally) -> Task<Address> {
    tally.loop_thread = std::this_thread::get_id();
    AsyncSocket conn = co_await open_connection(text, 5s);
    tally.opened = true;
    co_return conn.peer_address();
  };
  lookup_delay_ms = 300;  // a slow resolver
  auto serving = loop.spawn(echo(far));
  auto pinging = loop.spawn(pinger(near, tally));
  Address peer = loop.run_until_complete(opener(text, tally));
  EXPECT_EQ(peer, listener.local_address());
  EXPECT_NE(last_lookup_thread(), tally.loop_thread) << "getaddrinfo ran on the loop's thread";
  // Round trips on a socket pair take microseconds: a loop blocked for the 300 ms lookup
  // would have made none.
  EXPECT_GT(tally.round_trips_during_lookup, 20);
  loop.run();  // the pinger and the echo end
  EXPECT_TRUE(serving.done());
  EXPECT_TRUE(pinging.done());
}

// Many lookups at once share the loop's few workers; each still connects.
TEST_F(OpenConnectionTest, ManyConcurrentOpensByName) {
  Socket listener = create_server("tcp://127.0.0.1:0", ServerOptions{.backlog = 64});
  const std::string text = "tcp://localhost:" + std::to_string(listener.local_address().port());
  EventLoop loop;
  auto one = [](std::string text) -> Task<bool> {
    AsyncSocket conn = co_await open_connection(text, 5s);
    co_return conn.is_open();
  };
  auto all = [](std::string text, decltype(one) make) -> Task<int> {
    TaskGroup group;
    std::vector<TaskHandle<bool>> handles;
    for (int i = 0; i < 16; ++i) handles.push_back(group.spawn(make(text)));
    co_await group.join();
    int opened = 0;
    for (auto& h : handles) opened += h.result() ? 1 : 0;
    co_return opened;
  };
  lookup_delay_ms = 20;
  most_lookups_in_flight = 0;
  EXPECT_EQ(loop.run_until_complete(all(text, one)), 16);
  // Counted in the lookups themselves, not in /proc/self/task: a sanitizer's own threads
  // come and go there (TSan's background thread made this test see 5).
  EXPECT_LE(most_lookups_in_flight.load(), static_cast<int>(EventLoop::max_worker_threads));
  EXPECT_GE(most_lookups_in_flight.load(), 2) << "the lookups ran side by side";
}

TEST_F(OpenConnectionTest, NumericAndUnixAddressesNeverLeaveTheLoopThread) {
  Socket listener = test::loopback_listener();
  test::TempDir dir;
  const std::string path = dir.file("app.sock");
  Socket unix_listener = create_server("unix:" + path);
  EventLoop loop;
  const int threads_before = thread_count();
  const int lookups_before = lookups.load();
  auto both = [](std::string tcp, std::string unix_path) -> Task<bool> {
    AsyncSocket a = co_await open_connection(tcp, 2s);
    AsyncSocket b = co_await open_connection(unix_path, 2s);
    co_await b.send_all("u");
    co_return a.is_open() && b.is_open();
  };
  EXPECT_TRUE(loop.run_until_complete(both(listener.local_address().to_string(), "unix:" + path)));
#if defined(__SANITIZE_THREAD__)
  // TSan may start its background thread meanwhile: one more is its, not a worker.
  EXPECT_LE(thread_count(), threads_before + 1) << "no worker was started";
#else
  EXPECT_EQ(thread_count(), threads_before) << "no worker was started";
#endif
  EXPECT_EQ(lookups.load(), lookups_before);
  auto [conn, peer] = unix_listener.accept();
  EXPECT_EQ(conn.recv(1), "u");
}

TEST_F(OpenConnectionTest, TimeoutDuringTheLookupNamesTheHostAndDropsTheLateAnswer) {
  Socket listener = test::loopback_listener();
  const std::string text = "tcp://localhost:" + std::to_string(listener.local_address().port());
  EventLoop loop;
  lookup_delay_ms = 600;
  Failed failed = loop.run_until_complete(failing(text, 150ms));
  EXPECT_EQ(failed.code, errc::timed_out);
  EXPECT_EQ(failed.what, "resolve " + text + ": timed out after 150 ms");
  EXPECT_GE(failed.took, 150ms);
  EXPECT_LT(failed.took, 500ms) << "the deadline covers the lookup";
  // The answer comes later, on the worker, and is dropped: the loop goes on undisturbed.
  auto linger = [](EventLoop& loop) -> Task<void> { co_await loop.sleep(700ms); };
  loop.run_until_complete(linger(loop));
  lookup_delay_ms = 0;
  Failed later = loop.run_until_complete(failing(listener.local_address().to_string(), 1s));
  EXPECT_EQ(later.what, "(connected)");
}

TEST_F(OpenConnectionTest, AHangingIpv6CandidateLosesToIpv4AfterTheAttemptDelay) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  auto [listener, hanging] =
      v4_listener_with_v6<Hanging>([](const Address& at) { return Hanging(at); });
  EventLoop loop;
  const int fds_before = test::open_fd_count();
  // IPv6 first, as localhost's lookup gives it on machines that list ::1.
  Opened got =
      loop.run_until_complete(open_and_check({hanging.address(), listener.local_address()}, 5s));
  EXPECT_EQ(got.peer, listener.local_address());
  EXPECT_GE(got.took, connection_attempt_delay);
  EXPECT_LT(got.took, 2s);
  EXPECT_EQ(got.fds_after, fds_before + 1) << "the hanging attempt's socket was closed";
}

TEST_F(OpenConnectionTest, OneDeadlineWhenEverythingHangs) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  Hanging v6(Address::parse("tcp://[::1]:0"));
  Hanging v4a(Address::parse("tcp://127.0.0.1:0"));
  Hanging v4b(Address::parse("tcp://127.0.0.1:0"));
  EventLoop loop;
  const int fds_before = test::open_fd_count();
  Failed failed = loop.run_until_complete(
      failing_candidates({v6.address(), v4a.address(), v4b.address()}, 600ms));
  EXPECT_EQ(failed.code, errc::timed_out);
  EXPECT_GE(failed.took, 600ms);
  EXPECT_LT(failed.took, 1500ms) << "one deadline for the call, not one per address";
  for (const auto* h : {&v6, &v4a, &v4b}) {
    EXPECT_NE(failed.what.find(h->address().to_string() + ": timed out"), std::string::npos)
        << failed.what;
  }
  EXPECT_EQ(test::open_fd_count(), fds_before);
  EXPECT_EQ(loop.task_count(), 0u);
}

TEST_F(OpenConnectionTest, OneDeadlineByNameNamesTheHost) {
  // localhost at the port hangs in every family it resolves to.
  std::vector<Hanging> hanging;
  hanging.emplace_back(Address::parse("tcp://127.0.0.1:0"));
  const std::uint16_t port = hanging[0].address().port();
  if (localhost_has(Family::inet6)) {
    try {
      hanging.emplace_back(Address::inet("::1", port));
    } catch (const Error& e) {
      GTEST_SKIP() << "[::1]:" << port << " is taken: " << e.what();
    }
  }
  const std::string text = "tcp://localhost:" + std::to_string(port);
  EventLoop loop;
  Failed failed = loop.run_until_complete(failing(text, 500ms));
  EXPECT_EQ(failed.code, errc::timed_out);
  EXPECT_GE(failed.took, 500ms);
  EXPECT_LT(failed.took, 1500ms);
  EXPECT_EQ(failed.what.rfind("connect " + text + ": ", 0), 0u) << failed.what;
  EXPECT_NE(failed.what.find(hanging[0].address().to_string() + ": timed out"), std::string::npos)
      << failed.what;
}

TEST_F(OpenConnectionTest, ErrorNamesEveryAddressTriedAndWhy) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  auto [listener, refuser6] = v4_listener_with_v6<Socket>(&refusing);
  const Address v4 = listener.local_address();
  listener.close();
  Socket refuser4 = refusing(v4);
  const Address v6 = refuser6.local_address();
  EventLoop loop;
  Failed failed = loop.run_until_complete(failing_candidates({v4, v6}, 2s));
  EXPECT_EQ(failed.code, std::errc::connection_refused);
  // Interleaved from the first's family: IPv4, then IPv6.
  EXPECT_EQ(failed.what, "connect " + v4.to_string() + ", " + v6.to_string() + ": " +
                             v4.to_string() + ": Connection refused; " + v6.to_string() +
                             ": Connection refused");
  auto nothrow = [](std::vector<Address> candidates) -> Task<std::error_code> {
    auto conn = co_await open_connection(std::move(candidates), 2s, std::nothrow);
    co_return conn ? std::error_code() : conn.error();
  };
  EXPECT_EQ(loop.run_until_complete(nothrow({v4})), std::errc::connection_refused);
  EXPECT_EQ(loop.run_until_complete(nothrow({})), std::errc::invalid_argument);
  Failed one = loop.run_until_complete(failing(v4.to_string(), 2s));
  EXPECT_EQ(one.what, "connect " + v4.to_string() + ": Connection refused");
}

TEST_F(OpenConnectionTest, CancellingMidConnectClosesEveryAttempt) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  Hanging v6(Address::parse("tcp://[::1]:0"));
  Hanging v4(Address::parse("tcp://127.0.0.1:0"));
  EventLoop loop;
  const std::size_t registered_before = loop.selector().size();
  const int fds_before = test::open_fd_count();
  struct Seen {
    int fds_while_connecting = 0;
    std::size_t registered_while_connecting = 0;
  } seen;
  // The candidates come in a vector: g++ 12 cannot keep a braced list in a coroutine frame.
  auto attempt = [](std::vector<Address> candidates) -> Task<void> {
    co_await open_connection(std::move(candidates));  // no deadline: only cancellation ends it
  };
  auto cancel_later = [](EventLoop& loop, TaskHandle<void>& victim, Seen& seen) -> Task<void> {
    co_await loop.sleep(400ms);  // both attempts started (the second after 250 ms)
    seen.fds_while_connecting = test::open_fd_count();
    seen.registered_while_connecting = loop.selector().size();
    EXPECT_TRUE(victim.cancel());
    co_await loop.sleep(10ms);
  };
  TaskHandle<void> victim = loop.spawn(attempt({v6.address(), v4.address()}));
  loop.run_until_complete(cancel_later(loop, victim, seen));
  EXPECT_TRUE(victim.cancelled());
  EXPECT_EQ(seen.fds_while_connecting, fds_before + 2);
  EXPECT_EQ(seen.registered_while_connecting, registered_before + 2);
  EXPECT_EQ(test::open_fd_count(), fds_before);
  EXPECT_EQ(loop.selector().size(), registered_before);
  EXPECT_EQ(loop.task_count(), 0u);
}

TEST_F(OpenConnectionTest, WithTimeoutMidConnectClosesEveryAttempt) {
  if (!test::ipv6_loopback_available()) GTEST_SKIP() << "::1 cannot be bound on this machine";
  Hanging v6(Address::parse("tcp://[::1]:0"));
  Hanging v4(Address::parse("tcp://127.0.0.1:0"));
  EventLoop loop;
  const std::size_t registered_before = loop.selector().size();
  const int fds_before = test::open_fd_count();
  auto bounded = [](std::vector<Address> candidates) -> Task<std::string> {
    try {
      co_await with_timeout(400ms, open_connection(std::move(candidates)), "open_connection");
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return std::string("(connected)");
  };
  EXPECT_EQ(loop.run_until_complete(bounded({v6.address(), v4.address()})),
            "open_connection: timed out after 400 ms");
  EXPECT_EQ(test::open_fd_count(), fds_before);
  EXPECT_EQ(loop.selector().size(), registered_before);
}

// Cancelled during the lookup: the worker's answer is dropped when it comes.
TEST_F(OpenConnectionTest, WithTimeoutDuringTheLookupLeavesNothing) {
  Socket listener = test::loopback_listener();
  const std::string text = "tcp://localhost:" + std::to_string(listener.local_address().port());
  EventLoop loop;
  const int fds_before = test::open_fd_count();
  auto bounded = [](EventLoop& loop, std::string text) -> Task<std::error_code> {
    std::error_code code;
    try {
      co_await with_timeout(100ms, open_connection(text));
    } catch (const Error& e) {
      code = e.code();
    }
    co_await loop.sleep(500ms);  // the late answer arrives meanwhile
    co_return code;
  };
  lookup_delay_ms = 300;
  EXPECT_EQ(loop.run_until_complete(bounded(loop, text)), errc::timed_out);
  EXPECT_EQ(test::open_fd_count(), fds_before);
  EXPECT_EQ(loop.task_count(), 0u);
}

TEST_F(OpenConnectionTest, OnAGivenLoopWithOptions) {
  Socket listener = test::loopback_listener();
  const std::string text = listener.local_address().to_string();
  EventLoop loop;
  // The options are named, never braced inside the co_await: see the header (g++ 12).
  auto body = [](EventLoop& loop, std::string text) -> Task<std::string> {
    const ConnectOptions from_loopback{.timeout = 2s, .source_host = "127.0.0.1"};
    AsyncSocket conn = co_await open_connection(loop, text, from_loopback);
    EXPECT_EQ(conn.loop(), &loop);
    EXPECT_EQ(conn.local_address().host(), "127.0.0.1");
    auto plain = co_await open_connection(loop, text, 2s, std::nothrow);
    EXPECT_TRUE(plain);
    AsyncSocket on_loop = co_await open_connection(loop, text, 2s);
    EXPECT_EQ(on_loop.loop(), &loop);
    auto current = co_await open_connection(text, from_loopback, std::nothrow);
    EXPECT_TRUE(current && current->local_address().host() == "127.0.0.1");
    const ConnectOptions ipv6_only{.timeout = 2s, .family = Family::inet6};
    auto wrong = co_await open_connection(loop, text, ipv6_only, std::nothrow);
    EXPECT_EQ(wrong.error(), errc::invalid_address);
    try {
      co_await open_connection(text, ipv6_only);
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return std::string("(connected)");
  };
  EXPECT_EQ(loop.run_until_complete(body(loop, text)),
            "connect " + text + ": no IPv6 address among " + text);
}

TEST_F(OpenConnectionTest, NeedsARunningLoop) {
  Task<AsyncSocket> task = open_connection("tcp://127.0.0.1:1", 1s);
  task.handle().resume();  // runs until it fails: no loop to wait on
  ASSERT_TRUE(task.done());
  EXPECT_EQ(test::error_of([&] { task.handle().promise().take(); }),
            "open_connection tcp://127.0.0.1:1: no EventLoop is running on this thread");
}
