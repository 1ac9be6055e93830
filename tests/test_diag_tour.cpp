// wire::diag::run_tour and `wire tour`: every state a step shows is checked against what the
// kernel says through another door (`ss`, /proc/self/fd, `wire::diag::fd_table` of the
// running `wire tour`), and the CLI's --json, --pause and --port are run as a user would.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "support.hpp"
#include "wire/diag.hpp"

using namespace wire;
using diag::TourStep;
using test::Child;

namespace {

class TourTest : public test::Test {};

// One line of `ss -tanHe`: State Recv-Q Send-Q Local Peer [timer:(...)] [ino:N] ...
struct SsRow {
  std::string state;
  std::uint64_t recv_queue = 0;
  std::uint64_t send_queue = 0;
  std::string local;
  std::string peer;
  std::uint64_t inode = 0;
};

// The machine's TCP sockets with `port` at either end, as `ss` reads them (sock_diag, not
// the /proc/net files the library reads).
std::vector<SsRow> ss_rows(std::uint16_t port) {
  const std::string p = std::to_string(port);
  Child ss({"ss", "-tanHe", "sport = :" + p + " or dport = :" + p});
  std::istringstream lines(ss.read_all());
  EXPECT_EQ(ss.wait(), 0);
  std::vector<SsRow> rows;
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    SsRow row;
    if (!(fields >> row.state >> row.recv_queue >> row.send_queue >> row.local >> row.peer)) {
      continue;
    }
    for (std::string field; fields >> field;) {
      if (field.rfind("ino:", 0) == 0) row.inode = std::stoull(field.substr(4));
    }
    rows.push_back(row);
  }
  return rows;
}

std::string fd_link(int fd) {
  char link[256];
  const ssize_t n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof link);
  return n < 0 ? std::string() : std::string(link, static_cast<std::size_t>(n));
}

const diag::FdInfo* held_by(const TourStep& step, const std::string& name) {
  for (const auto& held : step.fds) {
    if (held.name == name) return &held.info;
  }
  return nullptr;
}

// "NAME:STATE ..." for a step's fds, "-" for a socket in no table.
std::string states_of(const TourStep& step) {
  std::string text;
  for (const auto& held : step.fds) {
    text += (text.empty() ? "" : " ") + held.name + ":" +
            (held.info.state.empty() ? "-" : held.info.state);
  }
  return text;
}

// What `wire ARGS...` prints on stdout and stderr, and its exit code, within 5 s.
struct WireRun {
  std::string out;
  std::string err;
  int code = -1;
};
WireRun run_wire(std::vector<std::string> args, const std::string& stdin_path = "/dev/null") {
  test::TempDir dir;
  args.insert(args.begin(), WIRE_CLI);
  Child::Options options;
  options.stdin_path = stdin_path;
  options.stderr_path = dir.file("stderr");
  Child child(std::move(args), options);
  WireRun run;
  run.out = child.read_all();
  const std::optional<int> code = child.wait_at_most(std::chrono::seconds(5));
  run.code = code ? *code : -1;
  run.err = test::slurp(dir.file("stderr"));
  return run;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t count = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

}  // namespace

// In this process: at every step, the step's fds are ours (/proc/self/fd) and agree with ss
// on state, addresses and queues; the states are the tutorial's, at the tutorial's steps.
TEST_F(TourTest, EveryStepAgreesWithSsAndProcSelfFd) {
  if (!test::have_program("ss")) GTEST_SKIP() << "no ss";
  std::vector<std::string> seen;
  std::vector<std::string> without_fd;  // "STATE client|server" of the first one, per step
  std::string client;                   // the client's address, once connected
  std::uint16_t port = 0;
  diag::run_tour({}, [&](const TourStep& step) {
    SCOPED_TRACE("step " + std::to_string(step.number) + ": " + step.title);
    EXPECT_EQ(step.number, static_cast<int>(seen.size()) + 1);
    EXPECT_TRUE(step.settled);
    EXPECT_FALSE(step.python.empty());
    EXPECT_FALSE(step.wire.empty());
    EXPECT_FALSE(step.explanation.empty());
    seen.push_back(states_of(step));
    if (const auto* server = held_by(step, "server"); server != nullptr && !server->local.empty()) {
      port = static_cast<std::uint16_t>(
          std::stoul(server->local.substr(server->local.rfind(':') + 1)));
    }
    const std::vector<SsRow> rows = port != 0 ? ss_rows(port) : std::vector<SsRow>{};
    for (const auto& held : step.fds) {
      const diag::FdInfo& info = held.info;
      EXPECT_EQ(fd_link(info.fd), "socket:[" + std::to_string(info.inode) + "]") << held.name;
      const SsRow* match = nullptr;
      for (const SsRow& row : rows) {
        if (row.inode == info.inode) match = &row;
      }
      if (info.state.empty()) {
        // Not yet listening or connected: in no table, for ss as for /proc/net/tcp.
        EXPECT_EQ(match, nullptr) << held.name;
        EXPECT_EQ(info.kind, diag::FdKind::socket) << held.name;
        continue;
      }
      ASSERT_NE(match, nullptr) << held.name << " inode " << info.inode << " is not in ss";
      EXPECT_EQ(match->state, info.state) << held.name;
      EXPECT_EQ(match->local, info.local) << held.name;
      EXPECT_EQ(match->peer, info.peer.empty() ? "0.0.0.0:*" : info.peer) << held.name;
      EXPECT_EQ(match->recv_queue, info.recv_queue) << held.name;
      // For a listener, ss's Send-Q is the backlog; /proc/net/tcp has no such column.
      if (info.state != "LISTEN") {
        EXPECT_EQ(match->send_queue, info.send_queue) << held.name;
      }
    }
    // Every socket on the port that has an inode is one of the step's fds: none is missed.
    for (const SsRow& row : rows) {
      if (row.inode == 0) continue;
      bool held = false;
      for (const auto& f : step.fds) held = held || f.info.inode == row.inode;
      EXPECT_TRUE(held) << row.state << " " << row.local << " " << row.peer;
    }
    // The sockets without an fd are the ones ss shows without an inode, and /proc/net/tcp
    // (which sockets() may not have read) counts them in the same states.
    if (const auto* c = held_by(step, "client"); c != nullptr && !c->local.empty()) {
      client = c->local;
    }
    // Only the tour's own connection: another test's TIME-WAIT may share the port number.
    std::vector<std::string> kernel_only;
    for (const SsRow& row : rows) {
      if (row.inode == 0 && !client.empty() && (row.local == client || row.peer == client)) {
        kernel_only.push_back(row.state + " " + row.local + " " + row.peer);
      }
    }
    std::vector<std::string> shown;
    for (const auto& socket : step.without_fd.sockets) {
      shown.push_back(socket.state + " " + socket.local + " " + socket.peer);
      const auto port_of = [](const std::string& address) {
        return static_cast<std::uint16_t>(std::stoul(address.substr(address.rfind(':') + 1)));
      };
      const std::uint16_t local_port = port_of(socket.local);
      const std::uint16_t peer_port = port_of(socket.peer);
      const std::map<std::string, const char*> proc_code = {
          {"ESTAB", "01"}, {"FIN-WAIT-2", "05"}, {"TIME-WAIT", "06"}};
      ASSERT_EQ(proc_code.count(socket.state), 1u) << socket.state;
      EXPECT_EQ(test::sockets_in_state(local_port, proc_code.at(socket.state), peer_port), 1)
          << socket.state << " " << socket.local;
    }
    std::sort(kernel_only.begin(), kernel_only.end());
    std::sort(shown.begin(), shown.end());
    EXPECT_EQ(shown, kernel_only);
    without_fd.push_back(
        step.without_fd.sockets.empty()
            ? ""
            : step.without_fd.sockets.front().state +
                  (step.without_fd.sockets.front().local == client ? " client" : " server"));
    if (step.number == 5) {
      EXPECT_EQ(held_by(step, "server")->recv_queue, 1u) << "accept queue";
    }
    if (step.number == 7) {
      EXPECT_EQ(held_by(step, "conn")->recv_queue, 5u) << "b'hello' waits";
    }
    if (step.number == 8) {
      EXPECT_EQ(held_by(step, "conn")->recv_queue, 0u) << "read";
    }
  });
  EXPECT_EQ(seen, (std::vector<std::string>{
                      "server:-",
                      "server:-",
                      "server:LISTEN",
                      "server:LISTEN client:-",
                      "server:LISTEN client:ESTAB",
                      "server:LISTEN client:ESTAB conn:ESTAB",
                      "server:LISTEN client:ESTAB conn:ESTAB",
                      "server:LISTEN client:ESTAB conn:ESTAB",
                      "server:LISTEN conn:CLOSE-WAIT",
                      "server:LISTEN",
                  }));
  EXPECT_EQ(without_fd, (std::vector<std::string>{"", "", "", "", "ESTAB server", "", "", "",
                                                  "FIN-WAIT-2 client", "TIME-WAIT client"}));
  ASSERT_NE(port, 0);
  for (const SsRow& row : ss_rows(port)) {
    EXPECT_NE(row.state, "LISTEN") << "the tour closed its listener";
  }
}

TEST_F(TourTest, ACallbackThatThrowsStopsTheTourAndClosesItsSockets) {
  int steps = 0;
  std::string listening;
  EXPECT_THROW(diag::run_tour({},
                              [&](const TourStep& step) {
                                ++steps;
                                if (step.number == 6) {
                                  listening = held_by(step, "server")->local;
                                  throw std::runtime_error("stop");
                                }
                              }),
               std::runtime_error);
  EXPECT_EQ(steps, 6);
  // The listener is gone (test::Test checks that no fd is left open).
  for (const auto& fd : diag::fd_table()) EXPECT_NE(fd.local, listening) << fd.fd;
}

TEST_F(TourTest, APortInUseIsAnErrorNamingIt) {
  Socket holder = test::loopback_listener();
  const std::uint16_t port = holder.local_address().port();
  const std::string expected =
      "bind tcp://127.0.0.1:" + std::to_string(port) + ": Address already in use";
  int steps = 0;
  try {
    diag::run_tour({.port = port}, [&](const TourStep&) { ++steps; });
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), expected);
  }
  EXPECT_EQ(steps, 1) << "the socket step, then bind failed";

  const WireRun run = run_wire({"tour", "--port", std::to_string(port)});
  EXPECT_EQ(run.err, "wire: " + expected + "\n");
  EXPECT_EQ(run.code, 1);
  EXPECT_NE(run.out.find("Step 1/10"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("Step 2/10"), std::string::npos) << run.out;
}

TEST_F(TourTest, AChosenPortIsUsedAndShownInThePythonLine) {
  // A free port, found by binding port 0 and letting it go.
  std::uint16_t port = 0;
  {
    Socket probe(Family::inet, Type::stream);
    probe.bind(Address::parse("127.0.0.1:0"));
    port = probe.local_address().port();
  }
  std::vector<std::string> python;
  std::string listening;
  diag::run_tour({.port = port}, [&](const TourStep& step) {
    python.push_back(step.python);
    if (step.number == 3) listening = held_by(step, "server")->local;
  });
  ASSERT_EQ(python.size(), 10u);
  EXPECT_EQ(python[1], "server.bind(('127.0.0.1', " + std::to_string(port) + "))");
  EXPECT_EQ(python[4], "client.connect(('127.0.0.1', " + std::to_string(port) + "))");
  EXPECT_EQ(listening, "127.0.0.1:" + std::to_string(port));
}

TEST_F(TourTest, BadOptionsAreUsageErrors) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"tour", "--port", "70000"}, {"tour", "--port", "x"}, {"tour", "extra"}}) {
    const WireRun run = run_wire(args);
    EXPECT_EQ(run.code, 2) << args.back();
    EXPECT_EQ(run.err.rfind("wire: ", 0), 0u) << run.err;
    EXPECT_EQ(count_of(run.err, "\n"), 1u) << run.err;
    EXPECT_EQ(run.out, "");
  }
}

// The JSON document, parsed by Python: ten steps, each state at its step.
TEST_F(TourTest, WireTourJsonParsesAndShowsEachStateAtItsStep) {
  test::TempDir dir;
  const WireRun run = run_wire({"tour", "--json"});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.err, "");
  std::ofstream(dir.file("tour.json")) << run.out;
  const char* script = R"(
import json, sys
steps = json.load(sys.stdin)
for s in steps:
    names = {fd: name for name, fd in s['names'].items()}
    fds = ' '.join(names[f['fd']] + ':' + (f['state'] or '-') + ':' + str(f['recv_queue'])
                   for f in s['fds'])
    gone = ' '.join(k['state'] for k in s['without_fd']['sockets'])
    print(s['number'], s['settled'], bool(s['python']) and bool(s['wire']), fds + '|' + gone)
)";
  Child python({"/usr/bin/python3", "-c", script},
               Child::Options::files(dir.file("tour.json"), dir.file("summary")));
  ASSERT_EQ(python.wait(), 0) << run.out;
  const std::string summary = test::slurp(dir.file("summary"));
  std::istringstream lines(summary);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  ASSERT_EQ(got.size(), 10u) << summary;
  const std::vector<std::string> expected = {
      "1 True True server:-:0|",
      "2 True True server:-:0|",
      "3 True True server:LISTEN:0|",
      "4 True True server:LISTEN:0 client:-:0|",
      "5 True True server:LISTEN:1 client:ESTAB:0|ESTAB",
      "6 True True server:LISTEN:0 client:ESTAB:0 conn:ESTAB:0|",
      "7 True True server:LISTEN:0 client:ESTAB:0 conn:ESTAB:5|",
      "8 True True server:LISTEN:0 client:ESTAB:0 conn:ESTAB:0|",
  };
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(got[i], expected[i]);
  // The FIN counts in the receive queue of a CLOSE-WAIT socket: its queue is not checked.
  EXPECT_EQ(got[8].rfind("9 True True server:LISTEN:0 conn:CLOSE-WAIT:", 0), 0u) << got[8];
  EXPECT_EQ(got[8].substr(got[8].find('|')), "|FIN-WAIT-2") << got[8];
  EXPECT_EQ(got[9], "10 True True server:LISTEN:0|TIME-WAIT");
}

TEST_F(TourTest, PauseWithInputRunsAStepPerLine) {
  test::TempDir dir;
  std::ofstream(dir.file("enters")) << std::string(9, '\n');
  const WireRun run = run_wire({"tour", "--pause"}, dir.file("enters"));
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(count_of(run.err, "wire tour: Enter for step "), 9u) << run.err;
  EXPECT_NE(run.out.find("Step 10/10"), std::string::npos);
}

TEST_F(TourTest, PauseWithNoInputDoesNotWait) {
  const WireRun run = run_wire({"tour", "--pause"}, "/dev/null");
  EXPECT_EQ(run.code, 0) << run.err;
  EXPECT_EQ(run.err, "wire tour: Enter for step 2/10\n") << "end of input: no more waiting";
  EXPECT_NE(run.out.find("Step 10/10"), std::string::npos);
}

// While `wire tour --pause` waits after step 3, its fds are as step 3 left them: one socket,
// listening, on the port the step printed; Enter moves it on, end of input runs it to the end.
TEST_F(TourTest, PauseHoldsTheStateUntilEnter) {
  test::TempDir dir;
  const std::string fifo = dir.file("stdin");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Open for both ends first, so that neither this open nor the child's blocks.
  struct Writer {
    int fd;
    ~Writer() {
      if (fd >= 0) ::close(fd);
    }
  } writer{::open(fifo.c_str(), O_RDWR | O_CLOEXEC)};
  ASSERT_GE(writer.fd, 0);
  Child::Options options = Child::Options::merged();
  options.stdin_path = fifo;
  Child tour({WIRE_CLI, "tour", "--pause"}, options);
  std::string port;
  for (std::string line; (line = tour.read_line()) != "wire tour: Enter for step 4/10\n";) {
    ASSERT_FALSE(line.empty()) << "ended early";
    if (line.rfind("  python  server.bind(('127.0.0.1', ", 0) == 0) {
      port = line.substr(36, line.find(')') - 36);
    }
    if (line.rfind("wire tour: Enter", 0) == 0) {
      ASSERT_EQ(::write(writer.fd, "\n", 1), 1);
    }
  }
  std::vector<diag::FdInfo> sockets;
  for (auto& fd : diag::fd_table(tour.pid())) {
    if (fd.is_socket()) sockets.push_back(fd);
  }
  ASSERT_EQ(sockets.size(), 1u) << "only the server's socket: step 4 has not run";
  EXPECT_EQ(sockets[0].state, "LISTEN");
  EXPECT_EQ(sockets[0].local, "127.0.0.1:" + port);
  ::close(std::exchange(writer.fd, -1));  // end of input: no more waiting
  const std::string rest = tour.read_all();
  EXPECT_NE(rest.find("Step 10/10"), std::string::npos) << rest;
  EXPECT_EQ(rest.find("wire tour: Enter"), std::string::npos) << rest;
  EXPECT_EQ(tour.wait(), 0);
}
