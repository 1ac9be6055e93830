// The wire command line, run as a user would: exit codes, messages, and bytes piped through
// `wire connect` / `wire listen` against wire's own echo server and against socat.
#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::announced;
using test::Child;
using test::random_bytes;
using test::slurp;
using test::wait_for_socket;

class CliTest : public test::Test {
 protected:
  static std::string wire_binary() { return WIRE_CLI; }

  // Writes `size` pseudo-random bytes (every byte value present) to `path`.
  static std::string make_file(const std::string& path, std::size_t size) {
    std::string data = test::random_bytes(size);
    std::ofstream(path, std::ios::binary) << data;
    return data;
  }
};

TEST_F(CliTest, UsageErrorsExitTwoAndHelpExitsZero) {
  for (auto args : std::vector<std::vector<std::string>>{
           {wire_binary()},
           {wire_binary(), "bogus"},
           {wire_binary(), "connect"},
           {wire_binary(), "echo", "tcp://127.0.0.1:0", "--workers", "0"}}) {
    Child child(args, Child::Options::merged());
    (void)child.read_all();
    EXPECT_EQ(child.wait(), 2) << args.back();
  }
  for (const char* sub : {"echo", "connect", "listen"}) {
    Child child({wire_binary(), sub, "--help"}, Child::Options::merged());
    EXPECT_NE(child.read_all().find("ADDRESS"), std::string::npos);
    EXPECT_EQ(child.wait(), 0) << sub;
  }
}

// What `wire ARGS...` says (stdout and stderr together) and its exit code, within 5 s.
static std::pair<std::string, int> run_wire(std::vector<std::string> args) {
  args.insert(args.begin(), WIRE_CLI);
  Child child(std::move(args), Child::Options::merged());
  const std::optional<int> code = child.wait_at_most(std::chrono::seconds(5));
  if (!code) return {"(still running after 5 s)", -1};  // the destructor kills it
  return {child.read_all(), *code};
}

// Before: "A subcommand is required" for all of these, whatever was typed.
TEST_F(CliTest, NoCommandListsTheCommandsAndExitsTwo) {
  const auto [said, code] = run_wire({});
  EXPECT_EQ(code, 2);
  EXPECT_EQ(said.rfind("usage: wire COMMAND", 0), 0u) << said;
  for (const char* command : {"serve", "get", "echo", "connect", "listen"}) {
    EXPECT_NE(said.find("\n  " + std::string(command) + " "), std::string::npos) << command;
  }
  EXPECT_NE(said.find("python3 -m http.server"), std::string::npos) << said;
}

TEST_F(CliTest, AnUnknownCommandIsNamedWithTheNearestOne) {
  const std::pair<const char*, const char*> cases[] = {
      {"serv", "wire: unknown command 'serv'; did you mean 'serve'?\n"},
      {"sreve", "wire: unknown command 'sreve'; did you mean 'serve'?\n"},
      {"conect", "wire: unknown command 'conect'; did you mean 'connect'?\n"},
      {"lis", "wire: unknown command 'lis'; did you mean 'listen'?\n"},
      {"gte", "wire: unknown command 'gte'; did you mean 'get'?\n"},
      {"bogus",
       "wire: unknown command 'bogus'; the commands are serve, get, echo, connect, listen, "
       "relay, fds, sockets, tour\n"},
      {"x\x1b[2J",
       "wire: unknown command 'x\\x1b[2J'; the commands are serve, get, echo, "
       "connect, listen, relay, fds, sockets, tour\n"},
      {"--bogus", "wire: unknown option '--bogus' (wire --help lists the commands and options)\n"},
  };
  for (const auto& [typed, expected] : cases) {
    const auto [said, code] = run_wire({typed, "tcp://127.0.0.1:0"});
    EXPECT_EQ(said, expected);
    EXPECT_EQ(code, 2) << typed;
  }
  // Before the command or after it: an unknown word is never skipped.
  EXPECT_EQ(run_wire({"bogus", "echo", "tcp://127.0.0.1:0"}).second, 2);
  EXPECT_EQ(run_wire({"--bogus", "echo", "tcp://127.0.0.1:0"}).second, 2);
  EXPECT_EQ(run_wire({"echo", "tcp://127.0.0.1:0", "bogus"}).second, 2);
}

TEST_F(CliTest, VersionIsTheProjectVersion) {
  const auto [said, code] = run_wire({"--version"});
  EXPECT_EQ(said, "wire " WIRE_PROJECT_VERSION "\n");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(version(), WIRE_PROJECT_VERSION) << "the library says the same";
  const auto [help, help_code] = run_wire({"--help"});
  EXPECT_NE(help.find("--version"), std::string::npos) << help;
  EXPECT_EQ(help_code, 0);
}

// Before: WIRE_SELECTOR=bogus silently meant epoll.
TEST_F(CliTest, AnUnknownWireSelectorIsAUsageError) {
  struct Unset {
    ~Unset() { ::unsetenv("WIRE_SELECTOR"); }
  } unset;
  ::setenv("WIRE_SELECTOR", "bogus", 1);
  for (const char* command : {"echo", "serve"}) {
    SCOPED_TRACE(command);
    const auto [said, code] =
        run_wire({command, std::string(command) == "echo" ? "tcp://127.0.0.1:0" : "--bind=:0"});
    EXPECT_EQ(said, "wire: WIRE_SELECTOR=bogus: expected epoll, poll or select\n");
    EXPECT_EQ(code, 2);
  }
  ::setenv("WIRE_SELECTOR", "poll", 1);
  Child server({wire_binary(), "echo", "tcp://127.0.0.1:0"}, Child::Options::merged());
  Socket s = create_connection(announced(server).to_string(), 5s);
  s.send_all("polled\n");
  s.set_timeout(5s);
  EXPECT_EQ(s.recv(100), "polled\n") << "a valid name still works";
  s.close();  // else the graceful stop waits out its grace for it
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait(), 0);
}

// Before: a value only the command could check (-H without a colon) exited 1, a runtime
// error's code.
TEST_F(CliTest, AMalformedOptionValueFoundByTheCommandIsAUsageError) {
  Socket listener = test::loopback_listener();  // never reached: the value is refused first
  const std::string url = "http://" + listener.local_address().to_string() + "/";
  const auto [said, code] = run_wire({"get", "-H", "nocolon", url});
  EXPECT_EQ(said, "wire: --header: expected 'Name: value', got 'nocolon'\n");
  EXPECT_EQ(code, 2);
  const auto [serve_said, serve_code] = run_wire({"serve", "0", "--bind", "127.0.0.1:0"});
  EXPECT_EQ(serve_said.rfind("wire: PORT: 0 and --bind 127.0.0.1:0 both say", 0), 0u) << serve_said;
  EXPECT_EQ(serve_code, 2);
}

TEST_F(CliTest, RuntimeErrorsExitOneWithAMessage) {
  Socket holder(Family::inet, Type::stream);
  holder.bind(Address::parse("127.0.0.1:0"));  // bound, not listening: refused
  const std::string refused = holder.local_address().to_string();
  Child child({wire_binary(), "connect", refused}, Child::Options::merged());
  EXPECT_EQ(child.read_all(), "wire: connect " + refused + ": Connection refused\n");
  EXPECT_EQ(child.wait(), 1);

  Child bad({wire_binary(), "connect", "tcp://127.0.0.1:70000"}, Child::Options::merged());
  EXPECT_NE(bad.read_all().find("port '70000' out of range"), std::string::npos);
  EXPECT_EQ(bad.wait(), 2) << "a port the user typed wrong is a usage error";
}

TEST_F(CliTest, ConnectPipesAFileThroughTheEchoServerBitForBit) {
  test::TempDir dir;
  const std::string data = make_file(dir.file("in.bin"), 1 << 20);
  for (const char* kind : {"tcp", "unix"}) {
    SCOPED_TRACE(kind);
    std::string address =
        std::string(kind) == "tcp" ? "tcp://127.0.0.1:0" : "unix:" + dir.file("echo.sock");
    Child server({wire_binary(), "echo", address}, Child::Options::merged());
    Address bound = announced(server);
    Child client({wire_binary(), "connect", bound.to_string()},
                 Child::Options::files(dir.file("in.bin"), dir.file("out.bin")));
    EXPECT_EQ(client.wait(), 0);
    EXPECT_TRUE(slurp(dir.file("out.bin")) == data) << "bytes differ";
    server.signal(SIGTERM);
    EXPECT_EQ(server.wait(), 0) << "graceful stop exits 0";
  }
}

// The peer sends, half-closes (FIN), then resets (RST) while stdin is a pipe that stays
// open and silent. wire connect used to spin at 100 % CPU here: the relay watched the
// socket for nothing after the FIN, poll kept waking for the reset, and the selector
// filtered the report out. Now the reset is reported and ends the relay with an error.
TEST_F(CliTest, ConnectEndsWhenThePeerResetsAfterItsFinWhileStdinIsSilent) {
  test::TempDir dir;
  const std::string fifo = dir.file("stdin");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Held open for writing and never written: the child's stdin neither ends nor speaks.
  // Closed (and WIRE_SELECTOR unset) however the test ends.
  struct SilentWriter {
    int fd;
    ~SilentWriter() {
      if (fd >= 0) ::close(fd);
      ::unsetenv("WIRE_SELECTOR");
    }
  } silent_writer{::open(fifo.c_str(), O_RDWR | O_CLOEXEC)};
  ASSERT_GE(silent_writer.fd, 0);
  // The relay picks poll itself (see relay.cpp); each kind is tried all the same, so a
  // relay that follows WIRE_SELECTOR one day stays covered.
  for (const char* kind : {"poll", "epoll", "select"}) {
    SCOPED_TRACE(kind);
    ::setenv("WIRE_SELECTOR", kind, 1);
    Socket listener = test::loopback_listener();
    listener.set_timeout(10s);
    Child::Options options = Child::Options::merged();
    options.stdin_path = fifo;
    Child client({wire_binary(), "connect", listener.local_address().to_string()}, options);
    auto [conn, peer] = listener.accept();
    conn.send_all("hello\n");
    conn.shutdown(Shutdown::write);
    EXPECT_EQ(client.read_line(), "hello\n");
    // The FIN has landed once the client's socket is in CLOSE_WAIT.
    for (int i = 0; i < 500 && test::sockets_in_state(peer.port(), "08") == 0; ++i) {
      std::this_thread::sleep_for(10ms);
    }
    conn.set_option(option::linger, 0s);
    conn.close();

    ::rusage usage{};
    std::optional<int> code = client.wait_at_most(2s, &usage);
    if (!code) {
      const double cpu = client.cpu_seconds();
      EXPECT_LT(cpu, 1.0) << "wire connect spins after the reset";
      code = client.wait_at_most(3s, &usage);
    }
    ASSERT_TRUE(code) << "wire connect did not end after the reset";
    EXPECT_EQ(*code, 1);
    EXPECT_LT(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec, 1) << "CPU used: spinning";
    const std::string said = client.read_all();
    EXPECT_NE(said.find("Connection reset by peer"), std::string::npos) << said;
  }
}

TEST_F(CliTest, UdpEchoAndConnect) {
  test::TempDir dir;
  std::ofstream(dir.file("in.txt")) << "one datagram";
  Child server({wire_binary(), "echo", "udp://127.0.0.1:0"}, Child::Options::merged());
  Address bound = announced(server);
  Child client({wire_binary(), "connect", "--linger", "0.5", bound.to_string()},
               Child::Options::files(dir.file("in.txt"), dir.file("out.txt")));
  EXPECT_EQ(client.wait(), 0);
  EXPECT_EQ(slurp(dir.file("out.txt")), "one datagram");
  server.signal(SIGINT);
  EXPECT_EQ(server.wait(), 0);
}

TEST_F(CliTest, ListenAgainstSocatAsTheClient) {
  if (!test::have_program("socat"))
    GTEST_SKIP() << "socat is not installed (make test installs it)";
  test::TempDir dir;
  const std::string to_listener = make_file(dir.file("a.bin"), 500000);
  const std::string to_socat = make_file(dir.file("b.bin"), 200000);
  const std::string path = dir.file("listen.sock");
  Child listener({wire_binary(), "listen", "--quiet", "unix:" + path},
                 Child::Options::files(dir.file("b.bin"), dir.file("listener-got.bin")));
  ASSERT_TRUE(wait_for_socket(path));
  Child socat({"socat", "-t", "10", "-", "UNIX-CONNECT:" + path},
              Child::Options::files(dir.file("a.bin"), dir.file("socat-got.bin")));
  EXPECT_EQ(socat.wait(), 0);
  EXPECT_EQ(listener.wait(), 0);
  EXPECT_TRUE(slurp(dir.file("listener-got.bin")) == to_listener);
  EXPECT_TRUE(slurp(dir.file("socat-got.bin")) == to_socat);
}

TEST_F(CliTest, ConnectAgainstSocatAsTheServer) {
  if (!test::have_program("socat"))
    GTEST_SKIP() << "socat is not installed (make test installs it)";
  test::TempDir dir;
  const std::string data = make_file(dir.file("in.bin"), 600000);
  const std::string path = dir.file("cat.sock");
  Child socat({"socat", "UNIX-LISTEN:" + path, "EXEC:cat"});
  ASSERT_TRUE(wait_for_socket(path));
  Child client({wire_binary(), "connect", "unix:" + path},
               Child::Options::files(dir.file("in.bin"), dir.file("out.bin")));
  EXPECT_EQ(client.wait(), 0);
  EXPECT_TRUE(slurp(dir.file("out.bin")) == data);
  EXPECT_EQ(socat.wait(), 0);
}

TEST_F(CliTest, ListenKeepOpenServesOneAfterAnother) {
  test::TempDir dir;
  const std::string path = dir.file("keep.sock");
  Child listener({wire_binary(), "listen", "--quiet", "--keep-open", "unix:" + path});
  ASSERT_TRUE(wait_for_socket(path));
  for (const char* message : {"first\n", "second\n"}) {
    Socket s = create_connection("unix:" + path, 5s);
    s.send_all(message);
    s.shutdown(Shutdown::write);
    s.set_timeout(5s);
    EXPECT_EQ(s.recv(10), "") << "stdin (/dev/null) ended, so the listener half-closed";
    s.close();
    EXPECT_EQ(listener.read_line(), message);
  }
  listener.signal(SIGTERM);
  (void)listener.wait();
}

// A peer that resets (before or after sending) ends its own connection only: with
// --keep-open the listener says why and accepts the next one.
TEST_F(CliTest, ListenKeepOpenSurvivesPeersThatReset) {
  Child listener({wire_binary(), "listen", "--keep-open", "tcp://127.0.0.1:0"},
                 Child::Options::merged());
  const Address address = announced(listener);
  for (int i = 0; i < 3; ++i) {
    Socket s = create_connection(address.to_string(), 5s);
    if (i > 0) s.send_all("lost\n");
    s.set_option(option::linger, std::chrono::seconds(0));
    s.close();  // a reset
  }
  Socket s = create_connection(address.to_string(), 5s);
  s.send_all("still here\n");
  s.shutdown(Shutdown::write);
  s.set_timeout(5s);
  (void)s.recv(10, std::nothrow);
  std::string seen;
  for (int lines = 0; lines < 20 && seen.find("still here") == std::string::npos; ++lines) {
    seen += listener.read_line();
  }
  EXPECT_NE(seen.find("still here\n"), std::string::npos) << seen;
  listener.signal(SIGTERM);
  (void)listener.wait();
}

// UDP listeners (which now keep listening after stdin ends): test_cli_nc.cpp.
