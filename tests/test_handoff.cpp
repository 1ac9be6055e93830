// Handing a running server's listeners to a successor (wire/handoff.hpp), in one process:
// two serve() calls on their own threads, real sockets on loopback and in a TempDir.
#include <sys/stat.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>

#include "http_reader.hpp"
#include "support.hpp"
#include "wire/handoff.hpp"
#include "wire/http/server.hpp"

using namespace wire;
using namespace std::chrono_literals;

class HandoffTest : public test::Test {};

namespace {

// Echoes each read with `tag` in front: which server answered.
Task<void> tagged_echo(AsyncSocket& conn, std::string tag) {
  for (;;) {
    Buffer data = co_await conn.recv_pooled();
    if (data.empty()) co_return;
    co_await conn.send_all(tag + std::string(data.view()));
  }
}
ConnectionHandler tagged(std::string tag) {
  return [tag](AsyncSocket& conn) { return tagged_echo(conn, tag); };
}

ConnectionHandler http_saying(std::string body) {
  http::Router router;
  router.add("GET", "/", [body](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, body);
  });
  return http::connection_handler(router.handler());
}

std::string ask(Socket& s, const std::string& message) {
  s.send_all(message);
  return s.recv(4096);
}
std::string ask_once(const Address& address, const std::string& message) {
  Socket s = create_connection(std::vector<Address>{address}, 5s);
  s.set_timeout(5s);
  return ask(s, message);
}

// The handoff events one server reported, waited for by their first words.
class Events {
 public:
  void add(const std::string& line) {
    std::lock_guard lock(mutex_);
    lines_.push_back(line);
    changed_.notify_all();
  }
  bool wait_for(const std::string& start, std::chrono::milliseconds limit = 5000ms) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, limit, [&] {
      for (const auto& line : lines_) {
        if (line.rfind(start, 0) == 0) return true;
      }
      return false;
    });
  }
  std::string all() {
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& line : lines_) out += line + "\n";
    return out;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

// serve() on a thread: its address once listening, its result (or error) once it returns.
class Serving {
 public:
  template <class Where>
  Serving(Where where, ConnectionHandler handler, ServeOptions options) {
    options.handle_signals = false;
    auto bound = std::make_shared<std::promise<Address>>();
    auto bound_future = bound->get_future();
    options.on_listening = [bound, before = options.on_listening](const Address& a) {
      if (before) before(a);
      bound->set_value(a);
    };
    options.on_handoff = [this](const std::string& line) { events.add(line); };
    result_ = std::async(std::launch::async,
                         [where = std::move(where), handler, options]() mutable -> std::string {
                           try {
                             return std::to_string(serve(std::move(where), handler, options));
                           } catch (const std::exception& e) {
                             return e.what();
                           }
                         });
    if (bound_future.wait_for(5s) != std::future_status::ready) {
      throw std::runtime_error("did not start: " + result_.get());
    }
    address = bound_future.get();
  }
  ~Serving() {
    if (result_.valid()) {
      stop_serving();
      result_.wait();
    }
  }
  // What serve() returned ("0") or threw, if it ended within `limit`.
  std::optional<std::string> result_within(std::chrono::milliseconds limit) {
    if (result_.wait_for(limit) != std::future_status::ready) return std::nullopt;
    return result_.get();
  }

  Address address;
  Events events;

 private:
  std::future<std::string> result_;
};

ServeOptions with_control(const std::string& path) {
  ServeOptions options;
  options.control = path;
  return options;
}

::mode_t mode_of(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : 0;
}

bool is_socket(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// How many sockets /proc/net/unix shows with `path` as their name: a listener, the server
// ends it accepted, and the connections still waiting in its queue.
int unix_sockets_named(const std::string& path) {
  std::ifstream table("/proc/net/unix");
  std::string line;
  int count = 0;
  while (std::getline(table, line)) {
    if (line.size() > path.size() &&
        line.compare(line.size() - path.size(), path.size(), path) == 0 &&
        line[line.size() - path.size() - 1] == ' ') {
      ++count;
    }
  }
  return count;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The error of a serve() that must fail before serving; should it serve instead, it is
// stopped after a while, and says so.
template <class Where>
std::string serve_error(Where where, ServeOptions options) {
  options.handle_signals = false;
  auto result = std::async(std::launch::async, [&] {
    return test::error_of([&] { serve(std::move(where), tagged("new:"), options); });
  });
  if (result.wait_for(3s) == std::future_status::ready) return result.get();
  stop_serving();
  return "it served: " + result.get();
}

// A successor takes `old` over through `control`: old hands over and returns 0, and the
// successor answers on the same address.
void expect_a_successor_takes_over(Serving& old, const std::string& control) {
  Serving successor(take_over(control), tagged("new:"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over")) << old.events.all();
  EXPECT_EQ(old.result_within(3000ms), "0");
  EXPECT_EQ(ask_once(old.address, "y"), "new:y");
}

}  // namespace

TEST_F(HandoffTest, SuccessorGetsTheListenerAndThePredecessorFinishesItsConnections) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  auto old = std::make_unique<Serving>("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  EXPECT_EQ(mode_of(control), 0600u);
  Socket open_before = create_connection(std::vector<Address>{old->address}, 5s);
  open_before.set_timeout(5s);
  EXPECT_EQ(ask(open_before, "a"), "old:a");

  Takeover takeover = take_over(control, 5000ms);
  ASSERT_EQ(takeover.listeners.size(), 1u);
  EXPECT_EQ(takeover.previous_pid, ::getpid());
  EXPECT_EQ(takeover.listeners.front().local_address(), old->address);
  Serving successor(std::move(takeover), tagged("new:"), ServeOptions{});
  ASSERT_TRUE(old->events.wait_for("handed over to pid")) << old->events.all();

  // New clients reach the successor, on the same port; the open connection is still the
  // old server's, served until its client is done.
  EXPECT_EQ(successor.address, old->address);
  EXPECT_EQ(ask_once(old->address, "b"), "new:b");
  EXPECT_EQ(ask(open_before, "c"), "old:c");
  EXPECT_FALSE(old->result_within(0ms));
  open_before.close();
  EXPECT_EQ(old->result_within(3000ms), "0");
  // The control path is the successor's now (the predecessor left it alone): 0600 again.
  EXPECT_EQ(mode_of(control), 0600u);
  EXPECT_EQ(ask_once(old->address, "d"), "new:d");
  old.reset();
}

TEST_F(HandoffTest, AnIdleKeepAliveConnectionIsAnsweredOnceMoreWithConnectionClose) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", http_saying("old"), with_control(control));
  Socket idle = test::connect_to(old.address);
  test::Reader reader(idle);
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  idle.send_all(request);
  test::Reply first = reader.next();
  EXPECT_EQ(first.body, "old");
  EXPECT_FALSE(first.closed);

  Serving successor(take_over(control), http_saying("new"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over"));
  // Closing it now could cross a request already on its way: instead the request is
  // answered, and the answer says the connection ends.
  idle.send_all(request);
  test::Reply last = reader.next();
  EXPECT_EQ(last.body, "old");
  EXPECT_EQ(last.headers["connection"], "close");
  EXPECT_EQ(idle.recv(16), "");  // then it closes
  idle.close();  // as a client does (the server lingers for that, up to linger_timeout)
  EXPECT_EQ(old.result_within(3000ms), "0");

  Socket fresh = test::connect_to(old.address);
  test::Reader fresh_reader(fresh);
  fresh.send_all(request);
  EXPECT_EQ(fresh_reader.next().body, "new");
}

TEST_F(HandoffTest, EveryListenerOfAReusePortGroupMoves) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  ServeOptions options = with_control(control);
  options.workers = 2;  // two SO_REUSEPORT listeners
  Serving old("tcp://127.0.0.1:0", tagged("old:"), options);
  Takeover takeover = take_over(control);
  ASSERT_EQ(takeover.listeners.size(), 2u);
  Serving successor(std::move(takeover), tagged("new:"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over"));
  EXPECT_EQ(old.result_within(3000ms), "0");
  // The kernel spreads clients over both listeners: each must be served by the successor.
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(ask_once(old.address, std::to_string(i)), "new:" + std::to_string(i));
  }
}

TEST_F(HandoffTest, AUnixListenerMovesAndItsFileStays) {
  test::TempDir dir;
  const std::string path = dir.file("server.sock");
  const std::string control = dir.file("control");
  Serving old("unix:" + path, tagged("old:"), with_control(control));
  Serving successor(take_over(control), tagged("new:"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over"));
  EXPECT_EQ(old.result_within(3000ms), "0");
  // The predecessor made the file, but does not remove what its successor serves.
  EXPECT_EQ(ask_once(Address::unix_path(path), "u"), "new:u");
}

TEST_F(HandoffTest, ASuccessorThatNeverSaysReadyLeavesTheServerServing) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  ServeOptions options = with_control(control);
  options.handoff_timeout = 200ms;
  Serving old("tcp://127.0.0.1:0", tagged("old:"), options);
  {
    // Takes the listeners, then says nothing: the server gives up on it.
    Takeover silent = take_over(control);
    ASSERT_TRUE(old.events.wait_for("handoff to pid", 3000ms)) << old.events.all();
    EXPECT_NE(old.events.all().find("did not say ready within 200 ms; still serving"),
              std::string::npos)
        << old.events.all();
    EXPECT_THROW(silent.ready(1000ms), Error);  // too late: it is told so
  }
  EXPECT_EQ(ask_once(old.address, "x"), "old:x");
  // And a later successor succeeds.
  expect_a_successor_takes_over(old, control);
}

TEST_F(HandoffTest, ALookerWhoSaysNothingIsNotGivenAnything) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  {
    Socket looker(Family::local, Type::stream);
    looker.connect(Address::unix_path(control));
    looker.set_timeout(150ms);
    // No request: no header, no fds (a read times out instead).
    EXPECT_THROW(looker.recv(64), Error);
  }
  EXPECT_EQ(ask_once(old.address, "still"), "old:still");
  EXPECT_FALSE(old.result_within(0ms));
}

TEST_F(HandoffTest, AnotherUserIsRefusedAndReported) {
  if (::geteuid() != 0 || !test::have_program("/usr/bin/python3")) {
    GTEST_SKIP() << "needs root, to connect as another user";
  }
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  // nobody (its effective uid is what SO_PEERCRED reports), keeping root's file access
  // (fsuid) only to reach the socket inside the private folder.
  const std::string script =
      "import ctypes, os, socket, sys\n"
      "os.seteuid(65534)\n"
      "ctypes.CDLL(None).setfsuid(0)\n"
      "s = socket.socket(socket.AF_UNIX)\n"
      "s.settimeout(5)\n"
      "s.connect(sys.argv[1])\n"
      "try:\n"
      "    s.sendall(b'wire-handoff take\\n')\n"
      "    data, fds, flags, addr = socket.recv_fds(s, 64, 8)\n"
      "except (ConnectionResetError, BrokenPipeError):\n"
      "    data, fds = b'', []\n"
      "print(len(data), len(fds))\n";
  test::Child python({"/usr/bin/python3", "-c", script, control}, test::Child::Options::merged());
  const std::string said = python.read_all();
  EXPECT_EQ(said, "0 0\n") << said;  // closed (or reset): no header, no fds
  EXPECT_EQ(python.wait(), 0);
  ASSERT_TRUE(old.events.wait_for("refused a takeover by pid"));
  EXPECT_NE(old.events.all().find("it runs as uid 65534"), std::string::npos) << old.events.all();
  EXPECT_EQ(ask_once(old.address, "z"), "old:z");
}

TEST_F(HandoffTest, NothingToTakeOverIsAClearError) {
  test::TempDir dir;
  const std::string missing = dir.file("nobody-here");
  const std::string said = test::error_of([&] { (void)take_over(missing, 200ms); });
  EXPECT_NE(said.find(missing), std::string::npos) << said;
  EXPECT_NE(said.find("nothing to take over"), std::string::npos) << said;

  // A control socket whose server is gone: refused, said so.
  const std::string stale = dir.file("stale");
  { Socket gone = create_server("unix:" + stale); }
  const std::string stale_said = test::error_of([&] { (void)take_over(stale, 100ms); });
  EXPECT_NE(stale_said.find("stale"), std::string::npos) << stale_said;
}

TEST_F(HandoffTest, AFolderThatIsNotPrivateIsRefused) {
  test::TempDir dir;
  const std::string open_folder = dir.file("open");
  ASSERT_EQ(::mkdir(open_folder.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(open_folder.c_str(), 0755), 0);
  const std::string control = open_folder + "/control";
  const std::string served = test::error_of([&] {
    ServeOptions options = with_control(control);
    options.handle_signals = false;
    serve("tcp://127.0.0.1:0", tagged("x"), options);
  });
  EXPECT_NE(served.find("not private"), std::string::npos) << served;
  EXPECT_NE(served.find("0755"), std::string::npos) << served;
  const std::string taken = test::error_of([&] { (void)take_over(control, 100ms); });
  EXPECT_NE(taken.find("not private"), std::string::npos) << taken;

  // A missing folder is made, private.
  const std::string made = dir.file("made");
  {
    Serving server("tcp://127.0.0.1:0", tagged("m:"), with_control(made + "/control"));
    EXPECT_EQ(mode_of(made), 0700u);
    EXPECT_EQ(mode_of(made + "/control"), 0600u);
  }
  EXPECT_EQ(mode_of(made + "/control"), 0u) << "removed when serving stopped";
}

TEST_F(HandoffTest, TwoServersCannotShareAControlPath) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving first("tcp://127.0.0.1:0", tagged("1:"), with_control(control));
  const std::string said = test::error_of([&] {
    ServeOptions options = with_control(control);
    options.handle_signals = false;
    serve("tcp://127.0.0.1:0", tagged("2:"), options);
  });
  EXPECT_NE(said.find("another server answers"), std::string::npos) << said;
  EXPECT_EQ(ask_once(first.address, "f"), "1:f");
}

TEST_F(HandoffTest, DefaultControlPathsAreOnePerAddressInAPrivateFolder) {
  const Address a = Address::inet("127.0.0.1", 8000);
  const Address b = Address::inet("127.0.0.1", 8001);
  EXPECT_NE(default_control_path(a), default_control_path(b));
  EXPECT_EQ(default_control_path(a).rfind(control_folder() + "/", 0), 0u);
  const Address long_path = Address::unix_path("/" + std::string(90, 'x') + "/server.sock");
  EXPECT_LT(default_control_path(long_path).size(), 108u);
}

TEST_F(HandoffTest, TheRestartPathComesFromTheEnvironmentOnce) {
  ::setenv("WIRE_HANDOFF", "/run/user/1000/wire/tcp-127.0.0.1-8000", 1);
  EXPECT_EQ(handoff_path_from_environment(), "/run/user/1000/wire/tcp-127.0.0.1-8000");
  EXPECT_EQ(::getenv("WIRE_HANDOFF"), nullptr);  // not passed on to what we start
  EXPECT_EQ(handoff_path_from_environment(), std::nullopt);
}

// The successor takes the listeners and dies before saying ready (its fds close as a dead
// process's do): the server says so and serves on; a later successor still succeeds.
TEST_F(HandoffTest, ASuccessorThatDiesWithTheListenersLeavesTheServerServing) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  {
    Takeover dying = take_over(control);
    EXPECT_EQ(dying.listeners.size(), 1u);
  }  // gone: its connection and its copies of the listeners close
  ASSERT_TRUE(old.events.wait_for("handoff to pid", 3000ms)) << old.events.all();
  EXPECT_NE(old.events.all().find("closed the control connection before saying ready; still "
                                  "serving"),
            std::string::npos)
      << old.events.all();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(ask_once(old.address, "x"), "old:x");
  expect_a_successor_takes_over(old, control);
}

// Whatever arrives on the control socket that is not the request gets nothing, and is said;
// the server serves on and can still hand over.
TEST_F(HandoffTest, GarbageOnTheControlSocketIsIgnored) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  const std::vector<std::string> garbage{
      "ready\n",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string("wire-handoff take\0\n", 19),
      "wire-handoff take extra\n",
      std::string(300, 'A'),  // no newline within the bound
      std::string("\xff\xfe\x00\x01\n", 5),
      "wire-handoff 1 999999999999\n\n",
  };
  for (const std::string& bytes : garbage) {
    Socket s(Family::local, Type::stream);
    s.connect(Address::unix_path(control));
    s.set_timeout(3s);
    s.send_all(bytes);
    // The server hangs up: no header, no fds.
    EXPECT_EQ(s.recv(64), "") << detail::printable(bytes);
  }
  EXPECT_TRUE(old.events.wait_for("ignored pid")) << old.events.all();
  EXPECT_EQ(ask_once(old.address, "still"), "old:still");
  EXPECT_FALSE(old.result_within(0ms));
  Serving successor(take_over(control), tagged("new:"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over"));
  EXPECT_EQ(old.result_within(3000ms), "0");
}

// Everything that could stop a successor from publishing its control socket is checked
// before it says ready: after "ready" its predecessor stops, and a successor failing then
// would leave the port to nobody.
TEST_F(HandoffTest, ASuccessorThatCannotUseTheControlPathFailsBeforeSayingReady) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  Takeover takeover = take_over(control);
  // The path is no longer a socket it may replace (here: a folder).
  ASSERT_EQ(::unlink(control.c_str()), 0);
  ASSERT_EQ(::mkdir(control.c_str(), 0700), 0);
  const std::string said = serve_error(std::move(takeover), with_control(control));
  EXPECT_NE(said.find("exists and is not a socket"), std::string::npos) << said;
  ASSERT_TRUE(old.events.wait_for("handoff to pid")) << old.events.all();
  EXPECT_EQ(ask_once(old.address, "x"), "old:x");
  EXPECT_FALSE(old.result_within(0ms));
}

// Should publishing fail all the same after "ready" (someone changed the path meanwhile),
// the successor says so and serves on, without a control socket.
TEST_F(HandoffTest, ASuccessorThatCannotPublishAfterReadyServesOnAndSaysSo) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  ServeOptions options = with_control(control);
  options.on_listening = [control](const Address&) {
    // Between the successor's checks and its "ready": the path becomes a folder.
    ::unlink(control.c_str());
    ::mkdir(control.c_str(), 0700);
  };
  Serving successor(take_over(control), tagged("new:"), options);
  ASSERT_TRUE(old.events.wait_for("handed over"));
  EXPECT_EQ(old.result_within(3000ms), "0");
  ASSERT_TRUE(successor.events.wait_for("took over from pid")) << successor.events.all();
  EXPECT_NE(successor.events.all().find("serving without a control socket"), std::string::npos)
      << successor.events.all();
  EXPECT_FALSE(successor.result_within(0ms)) << "stopped serving";
  EXPECT_EQ(ask_once(old.address, "y"), "new:y");
  EXPECT_TRUE(::access((control + ".new." + std::to_string(::getpid())).c_str(), F_OK) != 0)
      << "the unpublished socket is left behind";
}

// A control path names a socket we may replace, or nothing: a file or a symlink there is
// someone's, and neither a server nor a successor replaces (or follows) it.
TEST_F(HandoffTest, AControlPathThatIsNotASocketIsNeverReplaced) {
  test::TempDir dir;
  const std::string file = dir.file("control-file");
  { std::ofstream(file) << "precious"; }
  const std::string target = dir.file("target.sock");
  Socket target_server = create_server("unix:" + target);
  const std::string link = dir.file("control-link");
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  for (const std::string& control : {file, link}) {
    const std::string said = serve_error("tcp://127.0.0.1:0", with_control(control));
    EXPECT_NE(said.find(control), std::string::npos) << said;
    EXPECT_NE(said.find("exists and is not a socket: not replaced"), std::string::npos) << said;
  }
  EXPECT_EQ(read_file(file), "precious");
  struct ::stat st {};
  ASSERT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_TRUE(is_socket(target));

  // Nor does a successor told to use such a path.
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  const std::string said = serve_error(take_over(control), with_control(file));
  EXPECT_NE(said.find("not replaced"), std::string::npos) << said;
  EXPECT_EQ(read_file(file), "precious");
  ASSERT_TRUE(old.events.wait_for("handoff to pid")) << old.events.all();
  EXPECT_EQ(ask_once(old.address, "x"), "old:x");
}

TEST_F(HandoffTest, EveryUnixAddressHasADefaultControlPathOfItsOwn) {
  EXPECT_EQ(default_control_path(Address::inet("127.0.0.1", 8000)),
            control_folder() + "/tcp-127.0.0.1-8000");
  auto path_of = [](const std::string& unix_path) {
    return default_control_path(Address::unix_path(unix_path));
  };
  EXPECT_NE(path_of("/run/a/b.sock"), path_of("/run/a_b.sock"));
  EXPECT_NE(path_of("/run/a-b.sock"), path_of("/run/a_b.sock"));
  EXPECT_NE(default_control_path(Address::abstract("a/b")),
            default_control_path(Address::abstract("a_b")));
  // A relative path is the socket in the working folder.
  char cwd[4096];
  ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
  EXPECT_EQ(path_of("app.sock"), path_of(std::string(cwd) + "/app.sock"));
  EXPECT_NE(path_of("app.sock"), path_of("/elsewhere/app.sock"));
  EXPECT_LT(path_of("/" + std::string(90, 'x') + "/s.sock").size(), 108u);
}

// After a handoff the open connections run on for drain_grace, not shutdown_grace (which
// only a stop uses): a download longer than a few seconds is not cut.
TEST_F(HandoffTest, OpenConnectionsRunOnForTheDrainGrace) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  ServeOptions options = with_control(control);
  options.limits.shutdown_grace = 100ms;
  options.drain_grace = 3s;
  Serving old("tcp://127.0.0.1:0", tagged("old:"), options);
  Socket open_before = create_connection(std::vector<Address>{old.address}, 5s);
  open_before.set_timeout(5s);
  EXPECT_EQ(ask(open_before, "a"), "old:a");
  Serving successor(take_over(control), tagged("new:"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over"));
  // Well past shutdown_grace, the old server still serves it.
  EXPECT_FALSE(old.result_within(500ms));
  EXPECT_EQ(ask(open_before, "late"), "old:late");
  open_before.close();
  EXPECT_EQ(old.result_within(3000ms), "0");
}

TEST_F(HandoffTest, TheDrainEndsAfterItsGraceOrAtOnceOnAStop) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  {
    ServeOptions options = with_control(control);
    options.drain_grace = 200ms;
    Serving old("tcp://127.0.0.1:0", tagged("old:"), options);
    Socket lingering = create_connection(std::vector<Address>{old.address}, 5s);
    lingering.set_timeout(5s);
    EXPECT_EQ(ask(lingering, "a"), "old:a");
    Serving successor(take_over(control), tagged("new:"), ServeOptions{});
    ASSERT_TRUE(old.events.wait_for("handed over"));
    EXPECT_EQ(old.result_within(3000ms), "0");
    EXPECT_EQ(lingering.recv(16), "") << "closed at the end of the drain";
  }
  {
    // The default grace is a minute: a stop request ends it at once.
    Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
    Socket lingering = create_connection(std::vector<Address>{old.address}, 5s);
    lingering.set_timeout(5s);
    EXPECT_EQ(ask(lingering, "a"), "old:a");
    Serving successor(take_over(control), tagged("new:"), ServeOptions{});
    ASSERT_TRUE(old.events.wait_for("handed over"));
    stop_serving();
    EXPECT_EQ(old.result_within(3000ms), "0");
    EXPECT_EQ(successor.result_within(3000ms), "0");
  }
}

// One peer that connects and says nothing must not hold up the successors behind it.
TEST_F(HandoffTest, ASilentPeerIsDroppedSoATakeoverBehindItGoesThrough) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));  // handoff_timeout 10 s
  Socket silent(Family::local, Type::stream);
  silent.connect(Address::unix_path(control));
  Takeover takeover = take_over(control, 4000ms);
  EXPECT_EQ(takeover.listeners.size(), 1u);
  EXPECT_TRUE(old.events.wait_for("dropped pid")) << old.events.all();
}

// A successor queued behind another one's conversation is reset when that one takes over
// (the control socket it waited on closes): it asks again at the same path, where the new
// owner answers.
TEST_F(HandoffTest, ASuccessorQueuedBehindAnotherAsksItsSuccessorInstead) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  Takeover first = take_over(control);
  auto second = std::async(std::launch::async, [&] { return take_over(control, 4000ms); });
  // The listener, the first conversation, and the second waiting in the queue (the kernel
  // names them by where the listener was bound, beside the path).
  const std::string bound = control + ".new." + std::to_string(::getpid());
  for (int i = 0; i < 500 && unix_sockets_named(bound) < 3; ++i) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(unix_sockets_named(bound), 3);
  Serving first_serving(std::move(first), tagged("first:"), ServeOptions{});
  ASSERT_TRUE(old.events.wait_for("handed over"));
  ASSERT_EQ(second.wait_for(5s), std::future_status::ready);
  std::optional<Takeover> taken;
  const std::string said = test::error_of([&] { taken.emplace(second.get()); });
  ASSERT_TRUE(taken) << said;
  EXPECT_EQ(taken->listeners.size(), 1u);
  taken.reset();  // never says ready: the first successor serves on, and says so
  EXPECT_TRUE(first_serving.events.wait_for("handoff to pid")) << first_serving.events.all();
  EXPECT_EQ(ask_once(old.address, "z"), "first:z");
}

// The successor owns the socket file it serves: removed when it stops, kept when it hands
// it on in turn.
TEST_F(HandoffTest, ASuccessorRemovesTheUnixSocketFileWhenItStops) {
  test::TempDir dir;
  const std::string path = dir.file("server.sock");
  const std::string control = dir.file("control");
  {
    Serving old("unix:" + path, tagged("old:"), with_control(control));
    Serving second(take_over(control), tagged("2:"), ServeOptions{});
    ASSERT_TRUE(old.events.wait_for("handed over"));
    EXPECT_EQ(old.result_within(3000ms), "0");
    ASSERT_TRUE(second.events.wait_for("took over"));
    Serving third(take_over(control), tagged("3:"), ServeOptions{});
    ASSERT_TRUE(second.events.wait_for("handed over"));
    EXPECT_EQ(second.result_within(3000ms), "0");
    EXPECT_EQ(ask_once(Address::unix_path(path), "u"), "3:u");
  }
  EXPECT_FALSE(is_socket(path)) << "left behind by the last server";
}

// A successor that died between binding PATH.new.PID and publishing it left that socket:
// the next control socket made in that folder removes it (and nothing else).
TEST_F(HandoffTest, StaleControlSocketsOfDeadSuccessorsAreRemoved) {
  test::TempDir dir;
  const std::string control = dir.file("control");
  const ::pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  const std::string stale = control + ".new." + std::to_string(dead);
  const std::string live = control + ".new." + std::to_string(::getppid());
  const std::string not_a_socket = control + ".new." + std::to_string(dead) + "0";
  { Socket gone = create_server("unix:" + stale); }
  { Socket gone = create_server("unix:" + live); }
  { std::ofstream(not_a_socket) << "keep"; }
  Serving old("tcp://127.0.0.1:0", tagged("old:"), with_control(control));
  EXPECT_FALSE(is_socket(stale));
  EXPECT_TRUE(is_socket(live));
  EXPECT_EQ(read_file(not_a_socket), "keep");
}
