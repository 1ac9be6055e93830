// The hostile-peer suite: peers that vanish, stall, flood or lie, against `wire serve` (as a
// process, with 1 and 4 workers) and against the library's servers in this process. Each
// case is a real peer over loopback, bounded in time. What must hold: no signal kills a
// process because a peer went away, no fd or CLOSE_WAIT is left behind, memory and CPU stay
// bounded, slow-but-moving transfers finish while stalled ones are cut, a response that
// ends the connection reaches the client, every failure is reported, and stopping is
// bounded whatever the handlers wait on.
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <sstream>

#include "support.hpp"
#include "wire/http/client.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"

namespace wire::test {
namespace {

using namespace std::chrono_literals;

// SIGPIPE's default action kills: a test that survives with it in place proves nothing
// raised it (gtest runs each test in its own process, see tests/CMakeLists.txt).
void default_sigpipe() {
  ::signal(SIGPIPE, SIG_DFL);
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

long proc_status_kib(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field) + 1));
  }
  return -1;
}

double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// The process's socket fds (files it keeps open by design, such as a worker's inotify fd
// made on its first cached file, are not what leaks when a peer misbehaves).
int socket_count(pid_t pid) {
  int count = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(it->path(), link_ec).string().rfind("socket:", 0) == 0) {
      ++count;
    }
  }
  return count;
}

// Waits up to `limit` for `done()`; true if it came.
template <class Done>
bool eventually(Done done, std::chrono::milliseconds limit = 5000ms) {
  for (auto end = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(20ms)) {
    if (done()) return true;
  }
  return done();
}

// `wire serve DIR` as its own process, its log in a file (a pipe nobody reads would fill).
class ServeProcess {
 public:
  ServeProcess(const std::string& root, int workers, const std::string& log_path)
      : log_path_(log_path),
        child_({WIRE_CLI, "serve", root, "--bind", "tcp://127.0.0.1:0", "--workers",
                std::to_string(workers), "--quiet"},
               [&] {
                 auto o = Child::Options::files("/dev/null", log_path);
                 o.stderr_to_stdout = true;
                 return o;
               }()) {
    const bool up = eventually([&] { return log().find("Serving ") != std::string::npos; });
    if (!up) throw std::runtime_error("wire serve did not start: " + log());
    const std::string text = log();
    const auto at = text.find("http://127.0.0.1:");
    port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + 17)));
  }
  std::string log() const {
    std::ifstream in(log_path_);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  pid_t pid() const { return child_.pid(); }
  std::uint16_t port() const { return port_; }
  Address address() const { return Address::inet("127.0.0.1", port_); }
  // Running, and not a zombie (looked up without reaping it: wait() does that).
  bool alive() const {
    std::ifstream in("/proc/" + std::to_string(child_.pid()) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z';
  }
  int stop(int sig = SIGTERM) {
    child_.signal(sig);
    return child_.wait();
  }
  Child& child() { return child_; }

 private:
  std::string log_path_;
  Child child_;
  std::uint16_t port_ = 0;
};

// One request on a fresh connection, the whole response back (until the server closes).
std::string round_trip(const Address& to, const std::string& request,
                       std::chrono::milliseconds timeout = 5000ms) {
  Socket s = create_connection(to.to_string(), timeout);
  s.set_timeout(timeout);
  s.send_all(request);
  std::string all;
  for (std::string chunk; !(chunk = s.recv(65536)).empty();) all += chunk;
  return all;
}

std::string get(const Address& to, const std::string& path) {
  return round_trip(to, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

class HostilePeers : public Test, public ::testing::WithParamInterface<int> {
 protected:
  void SetUp() override {
    Test::SetUp();
    default_sigpipe();
    write_file(dir_.file("big.bin"), pattern(2 << 20));
    write_file(dir_.file("small.txt"), "small\n");
  }
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Workers, HostilePeers, ::testing::Values(1, 4),
                         [](const auto& info) { return std::to_string(info.param) + "_workers"; });

// A browser that cancels a download: the client asks for a large file and vanishes, with a
// FIN or with a reset, after reading nothing or a little. 1,200 of them; the server answers
// the next request and leaves no fd and no CLOSE_WAIT behind.
TEST_P(HostilePeers, ClientsThatVanishMidDownloadLeaveNothingBehind) {
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  ASSERT_NE(get(server.address(), "/small.txt").find("200 OK"), std::string::npos);
  std::this_thread::sleep_for(300ms);  // that connection's lingering close is over
  const int sockets_before = socket_count(server.pid());
  const std::string request = "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 1200; ++i) {
    Socket s = create_connection(server.address().to_string(), 5000ms);
    s.send_all(request);
    if (i % 3 == 1) (void)s.recv(1000);
    if (i % 2 == 1) s.set_option(option::linger, std::chrono::seconds(0));  // RST
    s.close();
  }
  ASSERT_TRUE(server.alive()) << server.log();
  const std::string answer = get(server.address(), "/small.txt");
  EXPECT_NE(answer.find("200 OK"), std::string::npos) << answer;
  EXPECT_TRUE(eventually([&] { return socket_count(server.pid()) == sockets_before; }))
      << socket_count(server.pid()) << " sockets vs " << sockets_before << " before";
  EXPECT_TRUE(eventually([&] { return sockets_in_state(server.port(), "08") == 0; }))
      << "sockets left in CLOSE_WAIT";
  EXPECT_EQ(server.stop(), 0) << server.log();
}

// A flood of empty lines where a request line should be: answered 400 once it passes the
// request line's limit, with the server's memory and CPU bounded (before: one connection
// grew to ~40 MB and rescanned its whole buffer on every read).
TEST_P(HostilePeers, CrlfFloodIsRefusedWithBoundedMemoryAndCpu) {
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  const long rss_before = proc_status_kib(server.pid(), "VmRSS:");
  const double cpu_before = cpu_seconds(server.pid());
  std::vector<std::string> answers;
  for (int round = 0; round < 4; ++round) {
    Socket s = create_connection(server.address().to_string(), 5000ms);
    s.set_timeout(5000ms);
    std::string flood;
    for (std::size_t i = 0; i < 32 * 1024; ++i) flood += "\r\n";
    std::size_t sent = 0;
    // Up to 40 MB, until the server has answered and closed (the send then fails).
    while (sent < (40u << 20)) {
      auto r = s.send(flood, std::nothrow);
      if (!r) break;
      sent += *r;
    }
    std::string answer;
    for (;;) {
      auto chunk = s.recv(65536, std::nothrow);
      if (!chunk || chunk->empty()) break;
      answer += *chunk;
    }
    answers.push_back(answer);
  }
  // Each flood got its 400 as soon as it passed the limit; what the client sent after that
  // was read and dropped by the lingering close (bounded in time, never buffered).
  for (const auto& answer : answers) {
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << answer.substr(0, 80);
    EXPECT_NE(answer.find("too many empty lines before a request"), std::string::npos);
  }
  const long rss_after = proc_status_kib(server.pid(), "VmRSS:");
  EXPECT_LT(rss_after - rss_before, 16 * 1024)
      << "RSS grew by " << rss_after - rss_before << " KiB";
  // A generous bound: the quadratic parser burnt minutes on this.
  EXPECT_LT(cpu_seconds(server.pid()) - cpu_before, 2.0);
  ASSERT_TRUE(server.alive());
  EXPECT_EQ(server.stop(), 0);
}

// Connection: close, then (50 ms later) another request on the same connection: the first
// response still arrives whole (the server drains instead of closing on unread bytes, which
// would reset the connection and drop the response in the client's kernel).
TEST_P(HostilePeers, ConnectionCloseThenPipelinedRequestGetsTheWholeFirstResponse) {
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  for (int i = 0; i < 5; ++i) {
    Socket s = create_connection(server.address().to_string(), 5000ms);
    s.set_timeout(5000ms);
    s.send_all("GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    std::this_thread::sleep_for(50ms);
    s.send_all("GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string all;
    for (;;) {
      auto chunk = s.recv(1 << 16, std::nothrow);
      ASSERT_TRUE(chunk) << "after " << all.size() << " bytes: " << chunk.error().message();
      if (chunk->empty()) break;
      all += *chunk;
    }
    const auto body = all.find("\r\n\r\n");
    ASSERT_NE(body, std::string::npos);
    EXPECT_EQ(all.size() - body - 4, std::size_t(2) << 20) << "the first response was cut";
  }
  EXPECT_EQ(server.stop(), 0);
}

// A body over the limit: the client, which sends all 5 MiB before reading, gets the 413
// (before: "Broken pipe", the server having closed on the unread body).
TEST_P(HostilePeers, BodyOverTheLimitGetsA413TheClientCanRead) {
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  http::Client client;
  const std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/small.txt";
  for (int i = 0; i < 3; ++i) {
    auto response = client.request("POST", url, {}, std::string(5 << 20, 'x'));
    EXPECT_EQ(response.status, 413);
  }
  EXPECT_EQ(server.stop(), 0);
}

// `wire get` writing to a pipe whose reader goes away: an error exit, not death by SIGPIPE.
TEST_P(HostilePeers, WireGetIntoAVanishingPipeIsNotKilled) {
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  pid_t pid = -1;
  ::posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  ::posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  std::string url = "http://127.0.0.1:" + std::to_string(server.port()) + "/big.bin";
  std::vector<std::string> args = {WIRE_CLI, "get", url};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ASSERT_EQ(::posix_spawn(&pid, WIRE_CLI, &actions, nullptr, argv.data(), environ), 0);
  ::posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  char some[1000];
  ASSERT_GT(::read(out[0], some, sizeof some), 0);
  ::close(out[0]);  // the reader is gone while wire get still has most of 2 MiB to write
  int status = 0;
  ASSERT_TRUE(eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }));
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_EQ(server.stop(), 0);
}

// The first SIGINT starts a graceful stop and says so; a second one ends it at once.
TEST_P(HostilePeers, SecondSignalStopsAtOnce) {
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  // A download that does not move: a client that never reads holds its connection open
  // through the whole grace (5 s by default). 16 MiB: more than the kernel buffers hold.
  write_file(dir_.file("huge.bin"), pattern(16 << 20));
  Socket stalled(Family::inet, Type::stream);
  stalled.set_option(option::receive_buffer_size, 4096);
  stalled.connect(server.address());
  stalled.send_all("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(100ms);
  server.child().signal(SIGINT);
  ASSERT_TRUE(eventually([&] { return server.log().find("Stopping") != std::string::npos; }));
  EXPECT_TRUE(server.alive()) << "the grace period is still running";
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server.stop(SIGINT), 0) << server.log();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s) << "the second signal waited";
}

// A FIFO, a character device and a socket file under the root: each gets a prompt 404, and
// the same worker (one of one) answers the next request (before: a FIFO froze the worker
// until someone wrote to it).
TEST_P(HostilePeers, SpecialFilesUnderTheRootNeverBlockAWorker) {
  ASSERT_EQ(::mkfifo(dir_.file("fifo").c_str(), 0644), 0);
  const bool have_device = ::mknod(dir_.file("null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0;
  Socket unix_listener = create_server("unix:" + dir_.file("sock"));
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  std::vector<std::string> names = {"/fifo", "/sock"};
  if (have_device) names.push_back("/null");
  for (const auto& name : names) {
    for (int i = 0; i < 3; ++i) {
      const std::string answer = round_trip(server.address(),
                                            "GET " + name +
                                                " HTTP/1.1\r\nHost: x\r\n\r\n"
                                                "GET /small.txt HTTP/1.1\r\nHost: x\r\n"
                                                "Connection: close\r\n\r\n",
                                            3000ms);
      EXPECT_EQ(answer.rfind("HTTP/1.1 404 ", 0), 0u) << name << ": " << answer.substr(0, 80);
      EXPECT_NE(answer.find("small\n"), std::string::npos) << name << ": the worker froze";
    }
  }
  EXPECT_EQ(server.stop(), 0);
}

// A folder swapped for a symlink to a secret outside the root, over and over, while clients
// ask for a file through it: the secret is never served.
TEST_P(HostilePeers, SymlinkSwappedDuringRequestsNeverLeavesTheRoot) {
  TempDir outside;
  write_file(outside.file("secret.txt"), "TOP-SECRET\n");
  ASSERT_EQ(::mkdir(dir_.file("swap").c_str(), 0755), 0);
  write_file(dir_.file("swap/secret.txt"), "inside\n");
  ASSERT_EQ(::symlink(outside.file("").c_str(), dir_.file("parked").c_str()), 0);
  ServeProcess server(dir_.file(""), GetParam(), dir_.file("log"));
  std::atomic<bool> done{false};
  std::thread swapper([&] {
    const std::string a = dir_.file("swap"), b = dir_.file("parked");
    while (!done.load()) ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE);
  });
  int inside = 0, leaked = 0;
  const auto end = std::chrono::steady_clock::now() + 1500ms;
  while (std::chrono::steady_clock::now() < end) {
    const std::string answer = get(server.address(), "/swap/secret.txt");
    if (answer.find("TOP-SECRET") != std::string::npos) ++leaked;
    if (answer.find("inside") != std::string::npos) ++inside;
  }
  done = true;
  swapper.join();
  EXPECT_EQ(leaked, 0) << "the file outside the root was served";
  EXPECT_GT(inside, 0) << "the file inside was never served: the test proved nothing";
  EXPECT_EQ(server.stop(), 0);
}

// ---- Library servers in this process, where a case needs its own handler or timeouts ----

struct Recorded {
  std::mutex mutex;
  std::vector<std::string> errors;
  void add(std::string_view message) {
    std::lock_guard lock(mutex);
    errors.emplace_back(message);
  }
  std::string joined() {
    std::lock_guard lock(mutex);
    std::string all;
    for (auto& e : errors) all += e + "\n";
    return all;
  }
};

class HostileLibrary : public Test {
 protected:
  void SetUp() override {
    Test::SetUp();
    default_sigpipe();
  }
  TempDir dir_;
};

// A client with a 64 KiB window that sends `request` and then reads 64 KiB every 20 ms
// (3.2 MB/s), until the server closes or fails: everything it got.
std::string read_slowly(const Address& server, const std::string& request) {
  Socket s(Family::inet, Type::stream);
  s.set_option(option::receive_buffer_size, 65536);
  s.connect(server);
  s.set_timeout(5000ms);
  s.send_all(request);
  std::string all;
  for (;;) {
    auto chunk = s.recv(65536, std::nothrow);
    if (!chunk || chunk->empty()) return all;
    all += *chunk;
    std::this_thread::sleep_for(20ms);
  }
}

// A download slower than every timeout that still moves finishes; one that stops moving is
// cut after the idle timeout and reported with the bytes that went out.
TEST_F(HostileLibrary, SlowDownloadsFinishAndStalledOnesAreCut) {
  write_file(dir_.file("big.bin"), pattern(8 << 20));
  auto recorded = std::make_shared<Recorded>();
  http::Options options;
  options.body_timeout = 300ms;
  options.on_error = [recorded](const AsyncSocket&, std::string_view m) { recorded->add(m); };
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(http::static_files(dir_.file("")), options));
  // Slow but steady: 64 KiB every 20 ms, about 2.6 s for 8 MiB (> 300 ms). The server's
  // socket turns writable again only once about half of its megabytes of buffer drained,
  // which takes this reader longer than the idle timeout: the peer's reading must count as
  // progress too.
  const std::string all = read_slowly(
      server.address(), "GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const auto body = all.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(all.size() - body - 4, std::size_t(8) << 20) << recorded->joined();
  // Stalled: never reads. The server gives up after the idle timeout and says how far it got
  // (16 MiB: more than the kernel's buffers on both sides hold).
  write_file(dir_.file("huge.bin"), pattern(16 << 20));
  Socket stalled(Family::inet, Type::stream);
  stalled.set_option(option::receive_buffer_size, 4096);
  stalled.connect(server.address());
  stalled.send_all("GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(eventually([&] { return recorded->joined().find("aborted") != std::string::npos; }));
  const std::string report = recorded->joined();
  EXPECT_NE(report.find("GET /huge.bin: response aborted after "), std::string::npos) << report;
  EXPECT_NE(report.find("of 16777216 body bytes: timed out"), std::string::npos) << report;
}

// The optional total deadline cuts a response that keeps moving but takes too long in all
// (the idle timeout alone never would).
TEST_F(HostileLibrary, ResponseDeadlineCutsEvenAMovingDownload) {
  write_file(dir_.file("big.bin"), pattern(8 << 20));
  auto recorded = std::make_shared<Recorded>();
  http::Options options;
  options.body_timeout = 5s;
  options.response_deadline = 400ms;
  options.on_error = [recorded](const AsyncSocket&, std::string_view m) { recorded->add(m); };
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(http::static_files(dir_.file("")), options));
  // About 2.6 s for the whole file at this pace: the 400 ms deadline comes first.
  const std::size_t got =
      read_slowly(server.address(), "GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n").size();
  EXPECT_LT(got, std::size_t(8) << 20) << "the deadline did not cut the response";
  ASSERT_TRUE(eventually([&] { return recorded->joined().find("aborted") != std::string::npos; }));
  EXPECT_NE(recorded->joined().find("of 8388608 body bytes: timed out"), std::string::npos)
      << recorded->joined();
}

// A handler whose upstream fails (a wire::Error: connect refused, with_timeout expired) gets
// its client a 500, is reported, and costs only that connection.
TEST_F(HostileLibrary, HandlerThrowingWireErrorGetsA500AndIsReported) {
  auto recorded = std::make_shared<Recorded>();
  http::Options options;
  options.on_error = [recorded](const AsyncSocket&, std::string_view m) { recorded->add(m); };
  http::Router router;
  router.add("GET", "/upstream", [](http::Request&) -> Task<http::Response> {
    co_await with_timeout(1ms, EventLoop::current()->sleep(1s));
    co_return http::Response::text(200, "unreachable\n");
  });
  router.add("GET", "/split", [](http::Request&) -> Task<http::Response> {
    http::Response r = http::Response::text(200, "x\n");
    r.header("X-Evil", "a\r\nSet-Cookie: stolen=1");
    co_return r;
  });
  router.add("GET", "/ok", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "fine\n");
  });
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(router.handler(), options));
  const std::string answer = get(server.address(), "/upstream");
  EXPECT_EQ(answer.rfind("HTTP/1.1 500 ", 0), 0u) << answer;
  EXPECT_NE(recorded->joined().find("GET /upstream: handler failed: with_timeout"),
            std::string::npos)
      << recorded->joined();
  const std::string split = get(server.address(), "/split");
  EXPECT_EQ(split.rfind("HTTP/1.1 500 ", 0), 0u) << split;
  EXPECT_EQ(split.find("stolen"), std::string::npos) << "a header with CRLF was sent: " << split;
  EXPECT_NE(recorded->joined().find("invalid response header set by the handler: X-Evil"),
            std::string::npos);
  EXPECT_NE(get(server.address(), "/ok").find("fine"), std::string::npos);
}

// Graceful stop with a handler asleep on a timer for an hour: serve() returns within the
// grace plus a small bound, the sleeping frame destroyed.
TEST_F(HostileLibrary, GracefulStopIsBoundedWhateverHandlersWaitOn) {
  std::atomic<int> started{0};
  std::atomic<int> destroyed{0};
  http::Router router;
  router.add("GET", "/sleep", [&](http::Request&) -> Task<http::Response> {
    struct Witness {
      std::atomic<int>& count;
      ~Witness() { ++count; }
    } witness{destroyed};
    ++started;
    co_await EventLoop::current()->sleep(std::chrono::hours(1));
    co_return http::Response::text(200, "late\n");
  });
  ServeOptions serve_options;
  serve_options.limits.shutdown_grace = 300ms;
  serve_options.workers = 2;
  auto server = std::make_unique<BackgroundServer>(
      "tcp://127.0.0.1:0", http::connection_handler(router.handler()), serve_options);
  std::vector<Socket> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(create_connection(server->address().to_string(), 5000ms));
    clients.back().send_all("GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  ASSERT_TRUE(eventually([&] { return started.load() == 4; }));
  auto stopped = std::async(std::launch::async, [&] { return server->stop(); });
  ASSERT_EQ(stopped.wait_for(5s), std::future_status::ready) << "serve() did not return";
  EXPECT_EQ(stopped.get(), 0);
  EXPECT_EQ(destroyed.load(), 4) << "every sleeping handler frame was destroyed";
  for (auto& c : clients) {
    c.set_timeout(2000ms);
    auto r = c.recv(100, std::nothrow);
    EXPECT_TRUE(!r || r->empty()) << "the connection was closed";
  }
}

// A handler that throws at once when the server calls it for a parked connection: that
// connection ends (once: under ASan, ending it twice was a double delete), and the server
// keeps accepting and serving.
TEST_F(HostileLibrary, HandlerThrowingOnUnparkEndsOnlyItsConnection) {
  EventLoop loop;
  // Calls, in order: the first connection's first, its unpark (which throws), then the
  // second connection's (and, racing the end of the test, its unpark at close).
  auto calls = std::make_shared<int>(0);
  auto handler = [calls](AsyncSocket& conn) -> Task<void> {
    if (++*calls == 2) throw std::runtime_error("no second call");
    return [](AsyncSocket& c) -> Task<void> {
      auto data = co_await c.recv_pooled();
      if (data.empty()) co_return;
      co_await c.send_all(data);
      c.mark_parkable(true);  // park until the peer speaks again
    }(conn);
  };
  Server server(loop, loopback_listener(), handler);
  loop.set_exception_handler([](std::exception_ptr) {});
  server.start();
  const Address address = server.local_address();
  std::string echoed, after, fresh;
  std::thread client([&] {
    Socket a = create_connection(address.to_string(), 5000ms);
    a.set_timeout(5000ms);
    a.send_all("one");
    echoed = a.recv(10);
    std::this_thread::sleep_for(150ms);  // parked by now
    a.send_all("two");
    // Closed after the failed unpark ("two" unread, so a reset or an end of stream).
    auto r = a.recv(10, std::nothrow);
    after = r ? *r : "closed";
    if (after.empty()) after = "closed";
    Socket b = create_connection(address.to_string(), 5000ms);
    b.set_timeout(5000ms);
    b.send_all("three");
    fresh = b.recv(10);
    loop.stop();
  });
  loop.run();
  client.join();
  EXPECT_EQ(echoed, "one");
  EXPECT_EQ(after, "closed");
  EXPECT_EQ(fresh, "three");
  EXPECT_EQ(server.handler_failure_count(), 1u);
}

// A handler that throws before its first suspension costs its connection, not the accept
// loop (before: accepting stopped for good while clients waited in the backlog).
TEST_F(HostileLibrary, AcceptLoopSurvivesHandlersThatThrowAtOnce) {
  EventLoop loop;
  int n = 0;
  auto handler = [&n](AsyncSocket& conn) -> Task<void> {
    if (++n % 2 == 1) throw std::runtime_error("refused synchronously");
    return [](AsyncSocket& c) -> Task<void> { co_await c.send_all("hi"); }(conn);
  };
  Server server(loop, loopback_listener(), handler);
  std::atomic<int> reported{0};
  loop.set_exception_handler([&](std::exception_ptr) { ++reported; });
  server.start();
  const Address address = server.local_address();
  std::vector<std::string> got;
  std::thread client([&] {
    for (int i = 0; i < 6; ++i) {
      Socket s = create_connection(address.to_string(), 5000ms);
      s.set_timeout(5000ms);
      auto r = s.recv(10, std::nothrow);
      got.push_back(r ? *r : "error");
    }
    loop.stop();
  });
  loop.run();
  client.join();
  EXPECT_EQ(got, (std::vector<std::string>{"", "hi", "", "hi", "", "hi"}));
  EXPECT_EQ(server.handler_failure_count(), 3u);
  EXPECT_EQ(reported.load(), 3);
}

// run_until_complete stopped early cancels its runner: a later run() must not resume a
// coroutine that writes into the earlier call's (dead) stack frame (ASan: stack-use-after-
// return).
TEST_F(HostileLibrary, RunUntilCompleteStoppedEarlyLeavesNothingBehind) {
  EventLoop loop;
  auto slow = [](EventLoop& l) -> Task<int> {
    co_await l.sleep(200ms);
    co_return 1;
  };
  loop.call_later(10ms, [&] { loop.stop(); });
  EXPECT_THROW((void)loop.run_until_complete(slow(loop)), Error);
  EXPECT_EQ(loop.task_count(), 0u);
  EXPECT_EQ(loop.run_until_complete(slow(loop)), 1);
}

// Pipes: a reader that leaves while Stream writes (a partial write and SIGPIPE in one call)
// is an EPIPE error for the writer, and the process lives.
TEST_F(HostileLibrary, PipeReaderVanishingDuringStreamWrites) {
  for (int round = 0; round < 20; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    std::thread reader([fd = fds[0], round] {
      char buf[4096];
      for (int got = 0; got < 1000 * round;) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        got += static_cast<int>(n);
      }
      ::close(fd);
    });
    {
      Stream out(fds[1]);
      auto r = out.write(std::string(1 << 20, 'p'), std::nothrow);
      if (r) r = out.flush(std::nothrow);
      EXPECT_FALSE(r);
      if (!r) {
        EXPECT_EQ(r.error(), std::errc::broken_pipe);
      }
      reader.join();
    }
    ::close(fds[1]);
  }
}

// A Stream write on a blocking socket to a peer that never reads honours the timeout
// (before: blocked forever inside send(2)).
TEST_F(HostileLibrary, StreamWriteToAPeerThatNeverReadsTimesOut) {
  auto [a, b] = Socket::pair();
  Stream f(a.fileno());
  f.set_timeout(300ms);
  auto r = f.write(std::string(64 << 20, 'w'), std::nothrow);
  if (r) r = f.flush(std::nothrow);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::timed_out);
}

// sendfile to peers that leave mid-file, in this process with SIGPIPE's default action.
TEST_F(HostileLibrary, SendfileToVanishingPeersRaisesNoSignal) {
  write_file(dir_.file("big.bin"), pattern(2 << 20));
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(http::static_files(dir_.file(""))));
  for (int i = 0; i < 200; ++i) {
    Socket s = create_connection(server.address().to_string(), 5000ms);
    s.send_all("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    (void)s.recv(100);
    if (i % 2 == 0) s.set_option(option::linger, std::chrono::seconds(0));
    s.close();
  }
  EXPECT_NE(get(server.address(), "/").find("200 OK"), std::string::npos);
}

}  // namespace
}  // namespace wire::test
