// `wire serve --takeover`, `wire echo --takeover` and `kill -USR2`: a restart under load
// loses no request and refuses no connection. Real peers on loopback: wrk (keep-alive
// connections), python3 (a new connection per request), curl, and chains of wire processes.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <set>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::Child;

class CliHandoffTest : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    std::ofstream(dir_.file("small.txt")) << "hello\n";
    control_ = dir_.file("control");  // inside the TempDir: private (0700), ours
    stop_ = dir_.file("stop");        // the clients stop once it exists
  }
  void stop_clients() { std::ofstream(stop_) << ""; }
  test::TempDir dir_;
  std::string control_;
  std::string stop_;
};

namespace {

const std::string wire_binary = WIRE_CLI;

// The digits right after `marker` in `text`, from `from` on ("" if none), and where they end.
std::string digits_after(const std::string& text, const std::string& marker,
                         std::size_t* from = nullptr) {
  const std::size_t start = text.find(marker, from ? *from : 0);
  if (start == std::string::npos) return "";
  std::size_t end = start + marker.size();
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
  if (from) *from = end;
  return text.substr(start + marker.size(), end - start - marker.size());
}

// Reads `child`'s lines until one contains `text`; all of them, for messages.
std::string read_until(Child& child, const std::string& text) {
  std::string seen;
  for (;;) {
    const std::string line = child.read_line();
    if (line.empty()) throw std::runtime_error("ended before '" + text + "': " + seen);
    seen += line;
    if (line.find(text) != std::string::npos) return seen;
  }
}

// The port in "Serving DIR at http://127.0.0.1:PORT/".
std::uint16_t serving_port(Child& child) {
  const std::string said = read_until(child, "Serving ");
  const std::string port = digits_after(said, "http://127.0.0.1:");
  if (port.empty()) throw std::runtime_error("no port in: " + said);
  return static_cast<std::uint16_t>(std::stoi(port));
}

// The pids owning listening sockets on `port`, as ss shows them ("" without ss).
std::string listening_pids(std::uint16_t port) {
  if (!test::have_program("ss")) return "";
  Child ss({"ss", "-Htlnp", "sport = :" + std::to_string(port)});
  const std::string table = ss.read_all();
  (void)ss.wait();
  std::set<std::string> pids;
  std::size_t at = 0;
  for (std::string pid; !(pid = digits_after(table, "pid=", &at)).empty();) pids.insert(pid);
  std::string out;
  for (const auto& p : pids) out += (out.empty() ? "" : ",") + p;
  return out;
}

// A client making a new connection per request until the file STOP exists, counting what
// failed: prints "started" after its first answer, then "ok N fail M". An optional PAUSE
// (seconds) between requests leaves the CPU to the servers where load is not the point.
const char* const new_connection_client = R"(
import os, socket, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0
ok = fail = 0
while not os.path.exists(stop):
    try:
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        s.sendall(b'GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        if data.startswith(b'HTTP/1.1 200') and data.endswith(b'\r\n\r\nhello\n'):
            ok += 1
        else:
            fail += 1
            print('bad answer', data[:80], flush=True)
    except Exception as e:
        fail += 1
        print('error', e, flush=True)
    if ok + fail == 1:
        print('started', flush=True)
    time.sleep(pause)
print('ok', ok, 'fail', fail, flush=True)
)";

// The same on one keep-alive connection (http.client opens another after a Connection:
// close).
const char* const keep_alive_client = R"(
import http.client, os, sys, time
port, stop = int(sys.argv[1]), sys.argv[2]
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0
conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
ok = fail = 0
while not os.path.exists(stop):
    try:
        conn.request('GET', '/small.txt')
        r = conn.getresponse()
        body = r.read()
        if r.status == 200 and body == b'hello\n':
            ok += 1
        else:
            fail += 1
        if r.getheader('Connection') == 'close':
            conn.close()
    except Exception as e:
        fail += 1
        print('error', e, flush=True)
        conn.close()
    if ok + fail == 1:
        print('started', flush=True)
    time.sleep(pause)
print('ok', ok, 'fail', fail, flush=True)
)";

// wrk's summary must show requests and no error of any kind.
void expect_clean_wrk(const std::string& out) {
  EXPECT_NE(out.find("requests in"), std::string::npos) << out;
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  // "  65432 requests in 2.00s, ...": the count is the number before it.
  const std::size_t in = out.find(" requests in");
  ASSERT_NE(in, std::string::npos) << out;
  std::size_t start = in;
  while (start > 0 && out[start - 1] >= '0' && out[start - 1] <= '9') --start;
  ASSERT_LT(start, in) << out;
  EXPECT_GT(std::stol(out.substr(start, in - start)), 0) << out;
}

// The end of a run under load: wrk's summary clean, then the clients stopped (`stop`) and the
// per-request client's count without a failure.
void expect_load_lost_nothing(Child& wrk, Child& fresh, const std::function<void()>& stop) {
  const std::string wrk_said = wrk.read_all();
  EXPECT_EQ(wrk.wait(), 0);
  expect_clean_wrk(wrk_said);
  stop();
  const std::string fresh_said = fresh.read_all();
  EXPECT_EQ(fresh.wait(), 0);
  EXPECT_NE(fresh_said.find(" fail 0\n"), std::string::npos) << fresh_said;
  EXPECT_EQ(fresh_said.find("error"), std::string::npos) << fresh_said;
}

// Whether process `pid` ended (gone, or a zombie) within `limit`.
bool gone_within(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    if (!in || paren == std::string::npos || stat.size() < paren + 3 || stat[paren + 2] == 'Z') {
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

bool have_load_tools() {
  return test::have_program("wrk") && test::have_program("/usr/bin/python3");
}

}  // namespace

// The whole story under load: wrk's 50 keep-alive connections and a client opening a
// connection per request, while a second `wire serve --takeover` takes the port over.
TEST_F(CliHandoffTest, TakeoverUnderLoadLosesNoRequestAndRefusesNoConnection) {
  if (!have_load_tools()) GTEST_SKIP() << "needs wrk and python3";
  Child old({wire_binary, "serve", "0", dir_.file(""), "-q", "--control", control_},
            Child::Options::merged());
  const std::uint16_t port = serving_port(old);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/small.txt";
  Child wrk({"wrk", "-t2", "-c50", "-d2s", url}, Child::Options::merged());
  Child fresh({"/usr/bin/python3", "-c", new_connection_client, std::to_string(port), stop_},
              Child::Options::merged());
  EXPECT_EQ(fresh.read_line(), "started\n");
  (void)wrk.read_line();  // "Running 2s test @ ...": the load is on

  Child successor({wire_binary, "serve", "0", dir_.file(""), "-q", "--takeover", control_},
                  Child::Options::merged());
  read_until(successor, "took over from pid " + std::to_string(old.pid()));
  // The old one finishes what it has and exits 0, well within its grace (5 s).
  const std::string old_said = read_until(old, "handed over to pid");
  EXPECT_EQ(old.wait_at_most(5000ms), 0) << old_said;

  expect_load_lost_nothing(wrk, fresh, [this] { stop_clients(); });
  if (test::have_program("ss")) {
    EXPECT_EQ(listening_pids(port), std::to_string(successor.pid()));
  }
}

// kill -USR2: the server starts its own binary again, which takes both SO_REUSEPORT
// listeners over (a connection queued on the one the old worker is leaving is answered).
TEST_F(CliHandoffTest, Usr2RestartsWithTwoWorkersUnderLoad) {
  if (!have_load_tools()) GTEST_SKIP() << "needs wrk and python3";
  Child old(
      {wire_binary, "serve", "0", dir_.file(""), "-q", "--workers", "2", "--control", control_},
      Child::Options::merged());
  const std::uint16_t port = serving_port(old);
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/small.txt";
  Child wrk({"wrk", "-t2", "-c50", "-d2s", url}, Child::Options::merged());
  Child fresh({"/usr/bin/python3", "-c", new_connection_client, std::to_string(port), stop_},
              Child::Options::merged());
  EXPECT_EQ(fresh.read_line(), "started\n");
  (void)wrk.read_line();

  old.signal(SIGUSR2);
  // The restarted process writes to the same stderr: its "took over" comes through here.
  const std::string said = read_until(old, "handed over to pid");
  const std::string new_pid = digits_after(said, "started pid ");
  ASSERT_FALSE(new_pid.empty()) << said;
  EXPECT_EQ(old.wait_at_most(5000ms), 0) << said;

  expect_load_lost_nothing(wrk, fresh, [this] { stop_clients(); });
  if (test::have_program("ss")) {
    EXPECT_EQ(listening_pids(port), new_pid);
  }
  // The restarted server outlives its parent (it is not our child): stopped by pid, and
  // seen gone once it is a zombie (whoever adopted it reaps it when it likes).
  ::kill(std::stoi(new_pid), SIGTERM);
  EXPECT_TRUE(gone_within(std::stoi(new_pid), 5000ms)) << "the restarted server did not stop";
}

// Twenty handoffs in a row, each successor handing to the next, while a keep-alive client
// and a connection-per-request client keep asking: not one failure.
TEST_F(CliHandoffTest, AChainOfTwentyHandoffsLosesNothing) {
  if (!test::have_program("/usr/bin/python3")) GTEST_SKIP() << "needs python3";
  std::vector<std::unique_ptr<Child>> servers;
  servers.push_back(
      std::make_unique<Child>(std::vector<std::string>{wire_binary, "serve", "0", dir_.file(""),
                                                       "-q", "--control", control_},
                              Child::Options::merged()));
  const std::uint16_t port = serving_port(*servers.back());
  // Paced (1 ms between requests): twenty process starts are the load here, and two clients
  // spinning on two cores would only slow those (each handoff still crosses many requests).
  Child keep_alive(
      {"/usr/bin/python3", "-c", keep_alive_client, std::to_string(port), stop_, "0.001"},
      Child::Options::merged());
  Child fresh(
      {"/usr/bin/python3", "-c", new_connection_client, std::to_string(port), stop_, "0.001"},
      Child::Options::merged());
  EXPECT_EQ(keep_alive.read_line(), "started\n");
  EXPECT_EQ(fresh.read_line(), "started\n");
  for (int i = 0; i < 20; ++i) {
    const pid_t previous = servers.back()->pid();
    servers.push_back(
        std::make_unique<Child>(std::vector<std::string>{wire_binary, "serve", "0", dir_.file(""),
                                                         "-q", "--takeover", control_},
                                Child::Options::merged()));
    read_until(*servers.back(), "took over from pid " + std::to_string(previous));
  }
  for (std::size_t i = 0; i + 1 < servers.size(); ++i) {
    EXPECT_EQ(servers[i]->wait_at_most(5000ms), 0) << "server " << i;
  }
  if (test::have_program("ss")) {
    EXPECT_EQ(listening_pids(port), std::to_string(servers.back()->pid()));
  }
  stop_clients();
  for (Child* client : {&keep_alive, &fresh}) {
    const std::string said = client->read_all();
    EXPECT_EQ(client->wait(), 0);
    EXPECT_NE(said.find(" fail 0\n"), std::string::npos) << said;
    EXPECT_EQ(said.find("error"), std::string::npos) << said;
  }
  servers.back()->signal(SIGTERM);
  EXPECT_EQ(servers.back()->wait_at_most(5000ms), 0);
}

// wire echo: the open connection is finished by the old server, new ones go to the new.
TEST_F(CliHandoffTest, EchoHandsOverAndFinishesItsConnections) {
  Child old({wire_binary, "echo", "tcp://127.0.0.1:0", "--control", control_},
            Child::Options::merged());
  const Address address = test::announced(old);
  Socket open_before = create_connection(std::vector<Address>{address}, 5s);
  open_before.set_timeout(5s);
  open_before.send_all("before");
  EXPECT_EQ(open_before.recv(64), "before");

  Child successor({wire_binary, "echo", "tcp://127.0.0.1:0", "--takeover", control_},
                  Child::Options::merged());
  read_until(successor, "took over from pid " + std::to_string(old.pid()));
  read_until(old, "handed over");
  open_before.send_all("during");
  EXPECT_EQ(open_before.recv(64), "during");  // still served, by the old one
  open_before.close();
  EXPECT_EQ(old.wait_at_most(5000ms), 0);

  Socket after = create_connection(std::vector<Address>{address}, 5s);
  after.set_timeout(5s);
  after.send_all("after");
  EXPECT_EQ(after.recv(64), "after");
  after.close();  // an open echo connection would hold the stop below for its grace
  if (test::have_program("ss")) {
    EXPECT_EQ(listening_pids(address.port()), std::to_string(successor.pid()));
  }
  successor.signal(SIGTERM);
  EXPECT_EQ(successor.wait_at_most(5000ms), 0);
}

// What the user gets wrong is said in one line, with the right exit code.
TEST_F(CliHandoffTest, MistakesAreClearOneLineErrors) {
  const auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), wire_binary);
    Child child(std::move(args), Child::Options::merged());
    const std::optional<int> code = child.wait_at_most(5000ms);
    return std::make_pair(code ? child.read_all() : std::string("(hung)"), code.value_or(-1));
  };
  // Nothing to take over: 1, naming the path.
  const std::string missing = dir_.file("nobody");
  auto [said, code] = run({"serve", "0", dir_.file(""), "--takeover", missing});
  EXPECT_EQ(code, 1) << said;
  EXPECT_EQ(said, "wire: take over " + missing +
                      ": nothing to take over (no server's control socket there)\n");
  // Port 0 has no default control socket to find.
  std::tie(said, code) = run({"serve", "0", dir_.file(""), "--takeover"});
  EXPECT_EQ(code, 2) << said;
  EXPECT_NE(said.find("give --takeover PATH"), std::string::npos) << said;
  // A control folder others may enter is refused.
  const std::string open_folder = dir_.file("open");
  ASSERT_EQ(::mkdir(open_folder.c_str(), 0755), 0);
  ASSERT_EQ(::chmod(open_folder.c_str(), 0755), 0);
  std::tie(said, code) = run({"echo", "tcp://127.0.0.1:0", "--control", open_folder + "/ctl"});
  EXPECT_EQ(code, 1) << said;
  EXPECT_NE(said.find("is not private (owner uid"), std::string::npos) << said;
  EXPECT_EQ(std::count(said.begin(), said.end(), '\n'), 1) << said;
  // Datagrams cannot move.
  std::tie(said, code) = run({"echo", "udp://127.0.0.1:0", "--takeover", control_});
  EXPECT_EQ(code, 2) << said;
}

// A successor for another address takes nothing: the server says so and keeps serving.
TEST_F(CliHandoffTest, ASuccessorForAnotherAddressLeavesTheServerServing) {
  Child old({wire_binary, "serve", "0", dir_.file(""), "-q", "--control", control_},
            Child::Options::merged());
  const std::uint16_t port = serving_port(old);
  const std::string other = std::to_string(port == 1 ? 2 : 1);
  Child wrong({wire_binary, "serve", other, dir_.file(""), "--takeover", control_},
              Child::Options::merged());
  EXPECT_EQ(wrong.wait_at_most(5000ms), 1);
  const std::string said = wrong.read_all();
  EXPECT_NE(said.find("that server listens on tcp://127.0.0.1:" + std::to_string(port) +
                      ", not tcp://127.0.0.1:" + other),
            std::string::npos)
      << said;
  EXPECT_NE(read_until(old, "handoff to pid").find("still serving"), std::string::npos);
  Socket s = create_connection(std::vector<Address>{Address::inet("127.0.0.1", port)}, 5s);
  s.set_timeout(5s);
  s.send_all("GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer;
  for (std::string chunk; !(chunk = s.recv(4096)).empty();) answer += chunk;
  EXPECT_EQ(answer.substr(answer.size() - 6), "hello\n");
  old.signal(SIGTERM);
  EXPECT_EQ(old.wait_at_most(5000ms), 0);
}

// kill -USR2 when the restart cannot start (its folder is gone): the failure is reported
// and the server goes on serving; a later signal, once the cause is fixed, hands over.
TEST_F(CliHandoffTest, AFailedRestartIsReportedAndTheServerKeepsServing) {
  const std::string site = dir_.file("site");
  ASSERT_EQ(::mkdir(site.c_str(), 0755), 0);
  std::ofstream(site + "/small.txt") << "hello\n";
  Child old({wire_binary, "serve", "0", site, "-q", "--control", control_},
            Child::Options::merged());
  const std::uint16_t port = serving_port(old);
  const std::string moved = dir_.file("moved");
  ASSERT_EQ(::rename(site.c_str(), moved.c_str()), 0);
  old.signal(SIGUSR2);
  const std::string said = read_until(old, "before taking over; still serving");
  EXPECT_NE(said.find("not a readable folder"), std::string::npos) << said;
  EXPECT_NE(said.find("ended with exit code 1"), std::string::npos) << said;
  EXPECT_FALSE(old.wait_at_most(0ms));

  ASSERT_EQ(::rename(moved.c_str(), site.c_str()), 0);
  old.signal(SIGUSR2);
  const std::string again = read_until(old, "handed over to pid");
  const std::string new_pid = digits_after(again, "started pid ");
  ASSERT_FALSE(new_pid.empty()) << again;
  EXPECT_EQ(old.wait_at_most(5000ms), 0);
  Socket s = create_connection(std::vector<Address>{Address::inet("127.0.0.1", port)}, 5s);
  s.set_timeout(5s);
  s.send_all("GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string answer;
  for (std::string chunk; !(chunk = s.recv(4096)).empty();) answer += chunk;
  EXPECT_EQ(answer.substr(answer.size() - 6), "hello\n");
  ::kill(std::stoi(new_pid), SIGTERM);
  EXPECT_TRUE(gone_within(std::stoi(new_pid), 5000ms));
}

// Everything `client` receives until the server closes (Connection: close).
std::string answer_of(Socket& client) {
  std::string all;
  for (std::string piece; !(piece = client.recv(4096)).empty();) all += piece;
  return all;
}

// SIGUSR2 to a server with no control socket (port 0, a datagram echo) would end it and every
// connection with it: it is ignored.
TEST_F(CliHandoffTest, Usr2WithoutAControlSocketIsIgnored) {
  Child http({wire_binary, "serve", "0", dir_.file(""), "-q"}, Child::Options::merged());
  const std::uint16_t port = serving_port(http);
  Child udp({wire_binary, "echo", "udp://127.0.0.1:0"}, Child::Options::merged());
  const std::string udp_said = read_until(udp, "echo on ");
  const std::string udp_port = digits_after(udp_said, "udp://127.0.0.1:");
  ASSERT_FALSE(udp_port.empty()) << udp_said;
  for (int i = 0; i < 3; ++i) {
    http.signal(SIGUSR2);
    udp.signal(SIGUSR2);
  }
  Socket client = create_connection("tcp://127.0.0.1:" + std::to_string(port), 5s);
  client.set_timeout(5s);
  client.send_all("GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(answer_of(client).find("hello"), std::string::npos);
  Socket datagrams(Family::inet, Type::dgram);
  datagrams.set_timeout(5s);
  datagrams.sendto("ping", Address::parse("udp://127.0.0.1:" + udp_port));
  EXPECT_EQ(datagrams.recvfrom(64).data, "ping");
  http.signal(SIGTERM);
  udp.signal(SIGTERM);
  EXPECT_EQ(http.wait_at_most(5000ms), 0);
  EXPECT_EQ(udp.wait_at_most(5000ms), 0);
}

// `--takeover PATH` alone: the successor serves its own control socket at PATH, so the next
// `--takeover PATH` finds it there (it used to move to the default path).
TEST_F(CliHandoffTest, TheTakeoverPathIsTheNextControlPath) {
  // A fixed port, which has a default control path of its own (in a private runtime folder
  // here): the one --takeover names must win over it.
  test::TempDir runtime;
  const std::string env = "XDG_RUNTIME_DIR=" + runtime.file("");
  const std::string port = std::to_string([] {
    Socket probe = create_server("tcp://127.0.0.1:0");
    return probe.local_address().port();
  }());
  Child first({"env", env, wire_binary, "serve", port, dir_.file(""), "-q", "--control", control_},
              Child::Options::merged());
  (void)serving_port(first);
  std::vector<std::unique_ptr<Child>> chain;
  pid_t previous = first.pid();
  for (int i = 0; i < 3; ++i) {
    chain.push_back(std::make_unique<Child>(
        std::vector<std::string>{"env", env, wire_binary, "serve", port, dir_.file(""), "-q",
                                 "--takeover", control_},
        Child::Options::merged()));
    read_until(*chain.back(), "took over from pid " + std::to_string(previous));
    previous = chain.back()->pid();
  }
  EXPECT_EQ(first.wait_at_most(5000ms), 0);
  for (std::size_t i = 0; i + 1 < chain.size(); ++i) EXPECT_EQ(chain[i]->wait_at_most(5000ms), 0);
  chain.back()->signal(SIGTERM);
  EXPECT_EQ(chain.back()->wait_at_most(5000ms), 0);
}

// The default control socket is a convenience: a folder that is not private (or a path too
// long for a socket) leaves the server serving without one, and says so.
TEST_F(CliHandoffTest, AnUnusableDefaultControlFolderDoesNotStopServing) {
  test::TempDir runtime;
  ASSERT_EQ(::mkdir(runtime.file("wire").c_str(), 0755), 0);
  const std::uint16_t port = [] {
    Socket probe = create_server("tcp://127.0.0.1:0");
    return probe.local_address().port();
  }();
  Child server({"env", "XDG_RUNTIME_DIR=" + runtime.file(""), wire_binary, "serve",
                std::to_string(port), dir_.file("")},
               Child::Options::merged());
  const std::string said = read_until(server, "Serving ");
  EXPECT_NE(said.find("no control socket ("), std::string::npos) << said;
  EXPECT_NE(said.find("not private"), std::string::npos) << said;
  Socket client = create_connection("tcp://127.0.0.1:" + std::to_string(port), 5s);
  client.set_timeout(5s);
  client.send_all("GET /small.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(answer_of(client).find("hello"), std::string::npos);
  server.signal(SIGTERM);
  EXPECT_EQ(server.wait_at_most(5000ms), 0);
}

// --drain-grace bounds how long a server that handed over keeps its open connections: an idle
// echo connection held open does not keep it past a short grace (the default is 60 s).
TEST_F(CliHandoffTest, DrainGraceBoundsTheOldServersLastConnections) {
  Child old(
      {wire_binary, "echo", "tcp://127.0.0.1:0", "--control", control_, "--drain-grace", "0.3"},
      Child::Options::merged());
  const Address address = test::announced(old);
  Socket held = create_connection(std::vector<Address>{address}, 5s);
  held.set_timeout(5s);
  held.send_all("held");
  EXPECT_EQ(held.recv(64), "held");
  Child successor({wire_binary, "echo", "tcp://127.0.0.1:0", "--takeover", control_},
                  Child::Options::merged());
  read_until(successor, "took over from pid " + std::to_string(old.pid()));
  EXPECT_EQ(old.wait_at_most(3000ms), 0);  // well before 60 s, and held is closed
  EXPECT_EQ(held.recv(64), "");
  successor.signal(SIGTERM);
  EXPECT_EQ(successor.wait_at_most(5000ms), 0);
}
