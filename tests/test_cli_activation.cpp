// `wire serve` and `wire echo` under socket activation, started by the real
// systemd-socket-activate (Debian's systemd package), fetched with curl.
#include <fstream>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::Child;

namespace {

constexpr const char* activate_program = "/usr/bin/systemd-socket-activate";

// systemd-socket-activate listening on `count` free loopback ports (with `options` such as
// --fdname=web), running `command` once the first client connects. Its -l cannot take port
// 0: each port is found free by binding port 0 and closing, and the whole start is retried
// should another process take one meanwhile (EADDRINUSE).
struct Activated {
  std::vector<std::uint16_t> ports;
  std::unique_ptr<Child> child;

  Activated(std::size_t count, std::vector<std::string> options, std::vector<std::string> command) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      ports.clear();
      {
        std::vector<Socket> probes;  // all open at once: distinct ports
        for (std::size_t i = 0; i < count; ++i) {
          probes.push_back(create_server("tcp://127.0.0.1:0"));
          ports.push_back(probes.back().local_address().port());
        }
      }
      std::vector<std::string> argv = {activate_program};
      for (auto port : ports) argv.push_back("--listen=127.0.0.1:" + std::to_string(port));
      argv.insert(argv.end(), options.begin(), options.end());
      argv.insert(argv.end(), command.begin(), command.end());
      child = std::make_unique<Child>(argv, Child::Options::merged());
      bool listening = true;
      for (std::size_t i = 0; i < count && listening; ++i) {
        const std::string line = child->read_line();
        listening = line == "Listening on 127.0.0.1:" + std::to_string(ports[i]) + " as " +
                                std::to_string(3 + i) + ".\n";
        if (!listening && line.find("Address already in use") == std::string::npos) {
          throw std::runtime_error("systemd-socket-activate said: " + line);
        }
      }
      if (listening) return;
      (void)child->wait_at_most(5s);
    }
    throw std::runtime_error("no free ports found in 10 attempts");
  }

  // The first line of the command's own output that starts with `prefix` (the activator's
  // "Communication attempt" and "Execing" lines come first).
  std::string line_starting(const std::string& prefix) {
    for (int i = 0; i < 5; ++i) {
      std::string line = child->read_line();
      if (line.starts_with(prefix) || line.empty()) return line;
    }
    return "(no line starting with " + prefix + ")";
  }

  std::string address(std::size_t i) const {
    return "tcp://127.0.0.1:" + std::to_string(ports.at(i));
  }
  std::string url(std::size_t i, const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(ports.at(i)) + path;
  }

  // What the command said up to its exit, and its exit code (-1 if still running after 5 s).
  std::pair<std::string, int> finish() {
    const auto code = child->wait_at_most(5s);
    return {child->read_all(), code.value_or(-1)};
  }
};

// curl's body for `url` and its exit code (7: connection refused).
std::pair<std::string, int> curl(const std::string& url) {
  Child fetch({"curl", "-s", "-m", "5", url}, Child::Options{});
  std::string body = fetch.read_all();
  return {body, fetch.wait()};
}

// What curl gets for hello.txt.
const std::pair<std::string, int> served("hello, activated\n", 0);

class CliActivationTest : public test::Test {
 protected:
  void SetUp() override {
    if (::access(activate_program, X_OK) != 0) {
      GTEST_SKIP() << activate_program << " is missing (Debian package systemd; make deps)";
    }
    test::Test::SetUp();
  }
  void make_site() { std::ofstream(site.file("hello.txt")) << "hello, activated\n"; }
  test::TempDir site;
};

}  // namespace

TEST_F(CliActivationTest, ServeServesEveryInheritedListener) {
  make_site();
  Activated server(2, {}, {WIRE_CLI, "serve", "--quiet", site.file("")});
  EXPECT_EQ(curl(server.url(0, "/hello.txt")), served);
  EXPECT_EQ(server.line_starting("Serving"),
            "Serving " + site.file("") + " at " + server.url(0) + " and " + server.url(1) +
                " (socket activation: fd 3 unknown, fd 4 unknown)\n");
  EXPECT_EQ(curl(server.url(1, "/hello.txt")), served);
  server.child->signal(SIGTERM);
  EXPECT_EQ(server.finish().second, 0);
}

TEST_F(CliActivationTest, ServeBindFdNamePicksThatListenerOnly) {
  make_site();
  Activated server(2, {"--fdname=web:admin"},
                   {WIRE_CLI, "serve", "--quiet", "--bind", "fd:admin", site.file("")});
  EXPECT_EQ(curl(server.url(1, "/hello.txt")), served);
  EXPECT_EQ(server.line_starting("Serving"), "Serving " + site.file("") + " at " + server.url(1) +
                                                 " (socket activation: fd 4 admin)\n");
  // The other one is not served (nor left open with clients queueing on it unanswered).
  EXPECT_EQ(curl(server.url(0, "/hello.txt")).second, 7) << "connection refused";
  server.child->signal(SIGTERM);
  EXPECT_EQ(server.finish().second, 0);
}

TEST_F(CliActivationTest, EchoServesTheInheritedListenerByNumberOrWithNoAddress) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{WIRE_CLI, "echo"},
                                             {WIRE_CLI, "echo", "--bind", "fd:3"},
                                             {WIRE_CLI, "echo", "fd:echo"}}) {
    SCOPED_TRACE(args.back());
    Activated server(1, {"--fdname=echo"}, args);
    Socket client = create_connection(server.address(0), 5s);
    client.set_timeout(5s);
    client.send_all("ping\n");
    EXPECT_EQ(client.makefile().read_line(), "ping\n");
    EXPECT_EQ(server.line_starting("wire:"),
              "wire: echo on " + server.address(0) + " (socket activation: fd 3 echo)\n");
    client.close();
    server.child->signal(SIGTERM);
    EXPECT_EQ(server.finish().second, 0);
  }
}

TEST_F(CliActivationTest, WhatIsNotInheritedIsAUsageError) {
  struct Case {
    std::vector<std::string> command;
    std::string said;
  };
  const std::vector<Case> cases = {
      {{WIRE_CLI, "serve", "--bind", "fd:7"},
       "wire: --bind: listen_fds fd:7: not inherited; these were: fd 3 (web)\n"},
      {{WIRE_CLI, "echo", "fd:nope"},
       "wire: ADDRESS: listen_fds fd:nope: not inherited; these were: fd 3 (web)\n"},
      {{WIRE_CLI, "serve", "8080"},
       "wire: PORT: 8080: this process was started with 1 inherited socket(s) (LISTEN_FDS); "
       "give no address to serve them all, or pick with --bind fd:N or fd:NAME\n"},
      // systemd holds inherited sockets across restarts: no control socket, no takeover.
      {{WIRE_CLI, "serve", "--control", site.file("control")},
       "wire: --control: inherited sockets are not handed over: systemd holds them across a "
       "restart\n"},
      {{WIRE_CLI, "echo", "--takeover"},
       "wire: --takeover: inherited sockets are not handed over: systemd holds them across a "
       "restart\n"},
  };
  for (const auto& [command, said] : cases) {
    SCOPED_TRACE(command.back());
    Activated server(1, {"--fdname=web"}, command);
    // The activator starts the command on the first connection; the command then exits.
    Socket client = create_connection(server.address(0), 5s);
    EXPECT_EQ(server.line_starting("wire:"), said);
    EXPECT_EQ(server.finish().second, 2);
  }
}

TEST_F(CliActivationTest, BindFdWithoutActivationIsAUsageErrorAndGarbageARuntimeOne) {
  const std::string none = "no socket was inherited (LISTEN_FDS is not set for this process)\n";
  const std::string wire = WIRE_CLI;
  struct Case {
    std::vector<std::string> command;
    std::string said;
    int code;
  };
  const std::vector<Case> cases = {
      {{wire, "serve", "--bind", "fd:3"}, "wire: --bind: listen_fds fd:3: " + none, 2},
      {{wire, "echo", "fd:web"}, "wire: ADDRESS: listen_fds fd:web: " + none, 2},
      {{wire, "echo"}, "wire: ADDRESS: required (unless started by socket activation)\n", 2},
      {{"/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=abc exec \"$0\" serve", wire},
       "wire: listen_fds LISTEN_FDS=abc: not a count of fds (a whole number from 1)\n",
       1},
      {{"/bin/sh", "-c", "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" echo 3</dev/null", wire},
       "wire: listen_fds LISTEN_FDS=1: fd 3 is not a socket\n",
       1},
  };
  for (const auto& [command, said, code] : cases) {
    SCOPED_TRACE(command.back());
    Child child(command, Child::Options::merged());
    EXPECT_EQ(child.wait_at_most(5s), code);
    EXPECT_EQ(child.read_all(), said);
  }
}
