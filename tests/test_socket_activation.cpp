// Socket activation: listen_fds() as sd_listen_fds(3) reads LISTEN_PID / LISTEN_FDS /
// LISTEN_FDNAMES, and SpawnOptions::listen_fds, the side that sets them for a child. The
// child is tests/activation_probe.cpp, which reports what it was given; the values no real
// sender would set are given to this process itself.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "support.hpp"
#include "wire/process.hpp"

using namespace wire;
using namespace std::chrono_literals;

namespace {

constexpr const char* probe_program = WIRE_ACTIVATION_PROBE;

// Everything until EOF on fd, 5 s at most per read.
std::string read_to_eof(int fd) {
  Stream in(fd, std::chrono::seconds(5));
  std::string all;
  for (std::string chunk; !(chunk = in.read(4096)).empty();) all += chunk;
  return all;
}

// A child started with `options` plus stdout and stderr on a pipe and stdin from /dev/null.
struct Probe {
  test::Pipe out;
  ChildProcess child;
  Probe(std::vector<std::string> argv, SpawnOptions options) {
    OwnedFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    options.pass_fds.insert(options.pass_fds.begin(),
                            {{null.fd(), 0}, {out.write_end.fd(), 1}, {out.write_end.fd(), 2}});
    child = spawn(argv, options);
    out.write_end.close();
  }
  // Its report, up to the line that starts with "after" (it may go on to --greet).
  std::string report() {
    Stream in(out.read_end.fd(), std::chrono::seconds(5));
    std::string all;
    for (std::string line; !(line = in.read_line()).empty();) {
      all += line;
      if (line.starts_with("after")) break;
    }
    return all;
  }
  // The rest of what it printed, and that it exited 0.
  void finish() {
    const std::string rest = read_to_eof(out.read_end.fd());
    const auto status = child.wait_for(5s);
    ASSERT_TRUE(status.has_value()) << "the probe did not exit";
    EXPECT_TRUE(status->success()) << status->describe() << "\n" << rest;
  }
};

// The three variables in this process, unset again when the test ends.
class ActivationTest : public test::Test {
 protected:
  void TearDown() override {
    for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) ::unsetenv(name);
    test::Test::TearDown();
  }
  static void set(const char* name, const std::string& value) { ::setenv(name, value.c_str(), 1); }
  static bool all_unset() {
    return !std::getenv("LISTEN_PID") && !std::getenv("LISTEN_FDS") &&
           !std::getenv("LISTEN_FDNAMES");
  }
};

}  // namespace

TEST_F(ActivationTest, AChildGetsTheListenersAtThreeOnWithNamesAndItsOwnPid) {
  test::TempDir dir;
  Socket web = create_server("tcp://127.0.0.1:0");
  Socket admin = create_server("unix:" + dir.file("admin.sock"));
  // What must not reach the child: a stray fd without O_CLOEXEC, and this process's own
  // (stale) variables.
  OwnedFd stray(::open("/dev/null", O_RDONLY));
  set("LISTEN_PID", "1");
  set("LISTEN_FDS", "7");
  set("LISTEN_FDNAMES", "stale");

  Probe child({probe_program, "--greet"},
              {.listen_fds = {{web.fileno(), "web"}, {admin.fileno(), "admin"}}});
  const std::string pid = std::to_string(child.child.pid());
  EXPECT_EQ(child.report(), "pid " + pid + "\nopen 0 1 2 3 4\nenv LISTEN_PID=" + pid +
                                " LISTEN_FDS=2 LISTEN_FDNAMES=web:admin\nfd 3 web " +
                                web.local_address().to_string() + " cloexec\nfd 4 admin " +
                                admin.local_address().to_string() +
                                " cloexec\nafter LISTEN_PID=- LISTEN_FDS=- LISTEN_FDNAMES=-\n");
  // They are the very listeners: the child accepts what is queued on ours.
  for (const auto& [listener, name] : {std::pair{&web, "web"}, {&admin, "admin"}}) {
    Socket client = create_connection(listener->local_address().to_string(), 5s);
    client.set_timeout(5s);
    EXPECT_EQ(client.makefile().read_line(), "hello from " + std::string(name) + "\n");
  }
  child.finish();
  EXPECT_EQ(std::string(std::getenv("LISTEN_FDNAMES")), "stale") << "ours are left alone";
}

TEST_F(ActivationTest, AnInheritedSocketIsPickedByNumberOrByName) {
  Socket a = create_server("tcp://127.0.0.1:0");
  Socket b = create_server("tcp://127.0.0.1:0");
  Socket c = create_server("tcp://127.0.0.1:0");
  const std::string a_at = a.local_address().to_string(), b_at = b.local_address().to_string(),
                    c_at = c.local_address().to_string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"fd:4", "fd 4 (taken) " + b_at + " cloexec\n"},
      {"4", "fd 4 (taken) " + b_at + " cloexec\n"},
      {"fd:admin", "fd 4 (taken) " + b_at + " cloexec\n"},
      // A name given twice (every ListenStream= of one .socket unit): both.
      {"fd:web", "fd 3 (taken) " + a_at + " cloexec\nfd 5 (taken) " + c_at + " cloexec\n"},
      // A number that is no inherited fd is a name like any other.
      {"fd:9",
       "error listen_fds fd:9: not inherited; these were: fd 3 (web), fd 4 (admin), "
       "fd 5 (web)\n"},
      {"fd:nope",
       "error listen_fds fd:nope: not inherited; these were: fd 3 (web), fd 4 "
       "(admin), fd 5 (web)\n"},
      {"fd:",
       "error listen_fds fd:: not inherited; these were: fd 3 (web), fd 4 (admin), fd 5 "
       "(web)\n"},
  };
  for (const auto& [which, expected] : cases) {
    SCOPED_TRACE(which);
    Probe child({probe_program, "--take", which},
                {.listen_fds = {{a.fileno(), "web"}, {b.fileno(), "admin"}, {c.fileno(), "web"}}});
    const std::string report = child.report();
    const auto from = report.find('\n', report.find("\nenv ") + 1) + 1;
    EXPECT_EQ(report.substr(from), expected + "after LISTEN_PID=- LISTEN_FDS=- LISTEN_FDNAMES=-\n");
    child.finish();
  }
}

TEST_F(ActivationTest, WithoutNamesEverySocketIsUnknown) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  Probe child({probe_program, "LISTEN_PID=$PID", "LISTEN_FDS=1"},
              {.pass_fds = {{listener.fileno(), 3}}});
  const std::string report = child.report();
  EXPECT_NE(report.find("\nfd 3 unknown " + listener.local_address().to_string() + " cloexec\n"),
            std::string::npos)
      << report;
  EXPECT_NE(report.find("\nafter LISTEN_PID=- LISTEN_FDS=- LISTEN_FDNAMES=-\n"), std::string::npos);
  child.finish();
}

TEST_F(ActivationTest, FdsThatAreNotOpenOrNotSocketsAreNamedAndNoneIsTaken) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  test::Pipe pipe;
  const std::vector<std::tuple<std::vector<std::pair<int, int>>, std::string, std::string>> cases =
      {
          {{{listener.fileno(), 3}}, "2", "error listen_fds LISTEN_FDS=2: fd 4 is not open\n"},
          {{{listener.fileno(), 3}, {pipe.read_end.fd(), 4}},
           "2",
           "error listen_fds LISTEN_FDS=2: fd 4 is not a socket\n"},
      };
  for (const auto& [fds, count, expected] : cases) {
    SCOPED_TRACE(expected);
    Probe child({probe_program, "LISTEN_PID=$PID", "LISTEN_FDS=" + count}, {.pass_fds = fds});
    const std::string report = child.report();
    const auto from = report.find('\n', report.find("\nenv ") + 1) + 1;
    EXPECT_EQ(report.substr(from), expected + "after LISTEN_PID=- LISTEN_FDS=- LISTEN_FDNAMES=-\n");
    child.finish();
  }
}

TEST_F(ActivationTest, VariablesForAnotherProcessAreNotOurs) {
  set("LISTEN_PID", std::to_string(::getppid()));
  set("LISTEN_FDS", "1");
  set("LISTEN_FDNAMES", "web");
  EXPECT_TRUE(listen_fds().empty());
  EXPECT_TRUE(all_unset()) << "a child of ours must not take them either";
  // Not activated at all.
  EXPECT_TRUE(listen_fds_with_names().empty());
  set("LISTEN_FDS", "1");  // without LISTEN_PID: for nobody in particular, so not ours
  EXPECT_TRUE(listen_fds().empty());
  EXPECT_TRUE(all_unset());
}

TEST_F(ActivationTest, GarbageIsAnErrorNamingTheVariable) {
  const std::string self = std::to_string(::getpid());
  const std::string not_a_count = ": not a count of fds (a whole number from 1)";
  struct Case {
    std::string pid, fds, names, expected;
  };
  const std::vector<Case> cases = {
      {"abc", "1", "", "listen_fds LISTEN_PID=abc: not a process id"},
      {"-5", "1", "", "listen_fds LISTEN_PID=-5: not a process id"},
      {"0", "1", "", "listen_fds LISTEN_PID=0: not a process id"},
      {self, "abc", "", "listen_fds LISTEN_FDS=abc" + not_a_count},
      {self, "-1", "", "listen_fds LISTEN_FDS=-1" + not_a_count},
      {self, "0", "", "listen_fds LISTEN_FDS=0" + not_a_count},
      {self, "", "", "listen_fds LISTEN_FDS=" + not_a_count},
      {self, " 1", "", "listen_fds LISTEN_FDS= 1" + not_a_count},
      {self, "+1", "", "listen_fds LISTEN_FDS=+1" + not_a_count},
      {self, "1x", "", "listen_fds LISTEN_FDS=1x" + not_a_count},
      {self, "99999999999", "", "listen_fds LISTEN_FDS=99999999999" + not_a_count},
      {self, "2147483647", "",
       "listen_fds LISTEN_FDS=2147483647: more fds than this process may have open "
       "(RLIMIT_NOFILE "},
      {self, "1", "web:admin", "listen_fds LISTEN_FDNAMES=web:admin: 2 names for LISTEN_FDS=1"},
      {self, "2", "web", "listen_fds LISTEN_FDNAMES=web: 1 names for LISTEN_FDS=2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.expected);
    for (bool nothrow : {false, true}) {
      set("LISTEN_PID", c.pid);
      set("LISTEN_FDS", c.fds);
      if (!c.names.empty()) set("LISTEN_FDNAMES", c.names);
      if (nothrow) {
        auto got = listen_fds_with_names(std::nothrow);
        ASSERT_FALSE(got);
        EXPECT_EQ(got.error(), ActivationErrc::bad_environment);
        EXPECT_EQ(got.error(), std::errc::invalid_argument);
      } else {
        const std::string said = test::error_of([] { (void)listen_fds(); });
        EXPECT_EQ(said.substr(0, c.expected.size()), c.expected) << said;
      }
      EXPECT_TRUE(all_unset());
    }
  }
}

TEST_F(ActivationTest, TheChildsListenPidIsItsOwnEvenThroughPath) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  test::Pipe out;
  // "sh", found on PATH as posix_spawnp would find it; $$ is the shell's own pid.
  ChildProcess child =
      spawn({"sh", "-c", "[ \"$LISTEN_PID\" = $$ ] && echo \"$LISTEN_FDS $LISTEN_FDNAMES\" >&5"},
            {.pass_fds = {{out.write_end.fd(), 5}}, .listen_fds = {{listener.fileno(), "http"}}});
  out.write_end.close();
  EXPECT_EQ(read_to_eof(out.read_end.fd()), "1 http\n");
  const auto status = child.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << status->describe();
}

TEST_F(ActivationTest, SpawnRefusesWhatCannotBeActivatedAndLeavesNoChild) {
  test::TempDir dir;
  Socket listener = create_server("tcp://127.0.0.1:0");
  const int fd = listener.fileno();
  { std::ofstream(dir.file("not-executable")) << "#!/bin/sh\n"; }
  const std::vector<std::pair<std::function<void()>, std::string>> cases = {
      {[&] {
         spawn({probe_program}, {.listen_fds = {{fd, "a:b"}}});
       },
       "spawn " + std::string(probe_program) +
           ": listen_fds: name 'a:b' is not 1-255 printable ASCII characters without ':'"},
      {[&] {
         spawn({probe_program}, {.listen_fds = {{fd, ""}}});
       },
       "spawn " + std::string(probe_program) +
           ": listen_fds: name '' is not 1-255 printable ASCII characters without ':'"},
      {[&] {
         spawn({probe_program}, {.pass_fds = {{fd, 4}}, .listen_fds = {{fd, "a"}, {fd, "b"}}});
       },
       "spawn " + std::string(probe_program) +
           ": pass_fds: child fd 4 is taken by listen_fds (fds 3-4)"},
      {[&] {
         spawn({"/nonexistent/wire-probe"}, {.listen_fds = {{fd, "a"}}});
       },
       "spawn /nonexistent/wire-probe: No such file or directory"},
      {[&] {
         spawn({"wire-no-such-program"}, {.listen_fds = {{fd, "a"}}});
       },
       "spawn wire-no-such-program: No such file or directory"},
      {[&] {
         spawn({dir.file("not-executable")}, {.listen_fds = {{fd, "a"}}});
       },
       "spawn " + dir.file("not-executable") + ": Permission denied"},
      {[&] {
         spawn({probe_program}, {.cwd = dir.file("missing"), .listen_fds = {{fd, "a"}}});
       },
       "spawn " + std::string(probe_program) + ": cwd " + dir.file("missing") +
           ": No such file or directory"},
  };
  for (const auto& [call, expected] : cases) EXPECT_EQ(test::error_of(call), expected);
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1) << "a child was left behind";
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(ActivationTest, TheForkedChildStartsWithNoSignalBlockedLikeAnyOtherSpawn) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  // A thread that blocked SIGTERM for itself (to sigwait on it) must not start a child that
  // cannot be stopped.
  ::sigset_t term, previous;
  ::sigemptyset(&term);
  ::sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &previous), 0);
  test::Pipe out;
  // grep reads its own status (a shell would clear its mask itself and hide a fault here).
  auto child =
      spawn({"grep", "^SigBlk", "/proc/self/status"},
            {.pass_fds = {{out.write_end.fd(), 1}}, .listen_fds = {{listener.fileno(), "a"}}},
            std::nothrow);
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  ASSERT_TRUE(child) << child.error().message();
  out.write_end.close();
  EXPECT_EQ(read_to_eof(out.read_end.fd()), "SigBlk:\t0000000000000000\n");
  const auto status = child->wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << status->describe();
}
