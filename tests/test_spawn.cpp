// wire::spawn with pass_fds, ChildProcess and set_inheritable, with real programs as children
// (/bin/sh, /bin/ls, /bin/sleep, /usr/bin/python3) reporting what they were given.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <thread>

#include "support.hpp"
#include "wire/process.hpp"

using namespace wire;
using namespace std::chrono_literals;

class SpawnTest : public test::Test {};
class SpawnConcurrent : public test::Test {};
class InheritableTest : public test::Test {};

namespace {

constexpr const char* python = "/usr/bin/python3";

// Everything until EOF on fd, 5 s at most per read.
std::string read_to_eof(int fd) {
  Stream in(fd, std::chrono::seconds(5));
  std::string all;
  for (std::string chunk; !(chunk = in.read(4096)).empty();) all += chunk;
  return all;
}

// Runs argv with stdin from /dev/null and stdout + stderr into a pipe (plus `more` fds);
// returns what it printed and its exit status.
std::pair<std::string, ExitStatus> run(const std::vector<std::string>& argv,
                                       std::vector<std::pair<int, int>> more = {},
                                       SpawnOptions options = {}) {
  test::Pipe out;
  OwnedFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  options.pass_fds = {{null.fd(), 0}, {out.write_end.fd(), 1}, {out.write_end.fd(), 2}};
  options.pass_fds.insert(options.pass_fds.end(), more.begin(), more.end());
  ChildProcess child = spawn(argv, options);
  out.write_end.close();
  std::string printed = read_to_eof(out.read_end.fd());
  auto status = child.wait_for(5s);
  if (!status) throw std::runtime_error(argv[0] + " did not exit");
  return {printed, *status};
}

// A python3 program that prints the fds it has open, in order, on one line.
const std::string list_fds = R"(
import os
alive = []
for name in os.listdir('/proc/self/fd'):
    try:
        os.fstat(int(name))        # the directory's own fd is closed by now
        alive.append(int(name))
    except OSError:
        pass
print(*sorted(alive))
)";

bool has_cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

}  // namespace

TEST_F(SpawnTest, TheChildHasOnlyThePassedFdsAtTheNumbersAsked) {
  // Strays a careless library opened without O_CLOEXEC: the child must not get them.
  OwnedFd stray_file(::open("/dev/null", O_RDONLY));
  int stray_pipe[2];
  ASSERT_EQ(::pipe(stray_pipe), 0);
  OwnedFd stray_read(stray_pipe[0]), stray_write(stray_pipe[1]);
  ASSERT_FALSE(has_cloexec(stray_file.fd()));
  OwnedFd stray_high(::fcntl(stray_file.fd(), F_DUPFD, 100));  // above every child number
  ASSERT_GE(stray_high.fd(), 100);

  auto [mine, theirs] = Socket::pair();
  mine.set_timeout(5s);
  auto [printed, status] =
      run({python, "-c", list_fds + "os.write(7, b'hi from fd 7')\n"}, {{theirs.fileno(), 7}});
  EXPECT_TRUE(status.success()) << status.describe() << "\n" << printed;
  EXPECT_EQ(printed, "0 1 2 7\n");
  EXPECT_EQ(mine.makefile().read_exact(12), "hi from fd 7");
}

TEST_F(SpawnTest, MappingsThatCrossAreResolved) {
  test::Pipe a, b;
  const int a_fd = a.write_end.fd(), b_fd = b.write_end.fd();
  // a's write end becomes b's number in the child and the other way round.
  auto [printed, status] =
      run({python, "-c",
           "import os, sys\nos.write(int(sys.argv[1]), b'A')\nos.write(int(sys.argv[2]), b'B')\n",
           std::to_string(b_fd), std::to_string(a_fd)},
          {{a_fd, b_fd}, {b_fd, a_fd}});
  EXPECT_TRUE(status.success()) << printed;
  a.write_end.close();
  b.write_end.close();
  EXPECT_EQ(read_to_eof(a.read_end.fd()), "A");
  EXPECT_EQ(read_to_eof(b.read_end.fd()), "B");
}

TEST_F(SpawnTest, TheSourceFdsAreLeftAsTheyWere) {
  test::Pipe pipe;
  for (int i = 0; i < 2; ++i) {  // one source, two children
    auto [printed, status] = run({"/bin/sh", "-c", "echo child >&5"}, {{pipe.write_end.fd(), 5}});
    EXPECT_TRUE(status.success()) << printed;
  }
  EXPECT_TRUE(has_cloexec(pipe.write_end.fd())) << "not made inheritable in this process";
  pipe.write_end.close();
  EXPECT_EQ(read_to_eof(pipe.read_end.fd()), "child\nchild\n");
}

TEST_F(SpawnTest, ASocketDetachedToAChildIsServedThere) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  Socket client = create_connection(std::vector<Address>{listener.local_address()}, 5s);
  client.set_timeout(5s);
  OwnedFd connection(listener.accept().socket.detach());
  ChildProcess child =
      spawn({python, "-c",
             "import socket\ns = socket.socket(fileno=3)\ns.sendall(b'served by ' + s.recv(10))\n"},
            {.pass_fds = {{connection.fd(), 3}}});
  connection.close();  // the child's copy is the only one now
  client.send_all("the child");
  EXPECT_EQ(client.makefile().read_exact(19), "served by the child");
  EXPECT_EQ(client.recv(1), "") << "the child closed the last copy";
  auto status = child.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->success()) << status->describe();
}

TEST_F(SpawnTest, EnvAndCwd) {
  test::TempDir dir;
  const std::string real_dir = std::filesystem::canonical(dir.file("")).string();
  auto [printed, status] =
      run({"/bin/sh", "-c", "echo \"$WIRE_SPAWN_TEST\"; pwd -P"}, {},
          {.env = std::vector<std::string>{"WIRE_SPAWN_TEST=given"}, .cwd = dir.file("")});
  EXPECT_TRUE(status.success()) << printed;
  EXPECT_EQ(printed, "given\n" + real_dir + "\n");

  ::setenv("WIRE_SPAWN_TEST", "inherited", 1);
  auto [inherited, status2] = run({"sh", "-c", "echo \"$WIRE_SPAWN_TEST\""});  // found in PATH
  ::unsetenv("WIRE_SPAWN_TEST");
  EXPECT_EQ(inherited, "inherited\n");
}

TEST_F(SpawnTest, ExitCodesAndSignals) {
  auto [printed, status] = run({"/bin/sh", "-c", "exit 7"});
  EXPECT_TRUE(status.exited());
  EXPECT_FALSE(status.success());
  EXPECT_EQ(status.code, 7);
  EXPECT_EQ(status.describe(), "exit code 7");

  ChildProcess sleeper = spawn({"/bin/sleep", "30"});
  sleeper.kill(SIGTERM);
  ExitStatus killed = sleeper.wait();
  EXPECT_FALSE(killed.exited());
  EXPECT_EQ(killed.signal, SIGTERM);
  EXPECT_NE(killed.describe().find("killed by signal 15"), std::string::npos) << killed.describe();
  EXPECT_TRUE(sleeper.reaped());
  EXPECT_EQ(sleeper.wait().signal, SIGTERM) << "the same status again";
  EXPECT_EQ(sleeper.kill(SIGTERM, std::nothrow).error(), std::errc::no_such_process);
  EXPECT_EQ(sleeper.pidfd(), -1);
}

TEST_F(SpawnTest, WaitForGivesUpAndThePidfdSaysWhenItExits) {
  ChildProcess sleeper = spawn({"/bin/sleep", "30"});
  ASSERT_GE(sleeper.pidfd(), 0);
  EXPECT_TRUE(has_cloexec(sleeper.pidfd()));
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(sleeper.pidfd()));
  std::string line, pid_line;
  while (std::getline(info, line)) {
    if (line.rfind("Pid:", 0) == 0) pid_line = line;
  }
  EXPECT_EQ(pid_line, "Pid:\t" + std::to_string(sleeper.pid()));

  EXPECT_FALSE(sleeper.wait_for(20ms).has_value());
  ::pollfd p{sleeper.pidfd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "running: not readable";
  sleeper.kill(SIGKILL);
  EXPECT_EQ(::poll(&p, 1, 5000), 1) << "readable once it exits";
  auto status = sleeper.wait_for(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->signal, SIGKILL);
}

TEST_F(SpawnTest, TheDestructorKillsAndReapsAChildNotWaitedFor) {
  ::pid_t pid;
  {
    ChildProcess sleeper = spawn({"/bin/sleep", "30"});
    pid = sleeper.pid();
    ASSERT_EQ(::kill(pid, 0), 0);
    ChildProcess moved = std::move(sleeper);  // the moved-from one owns nothing
    EXPECT_EQ(sleeper.pid(), -1);
  }
  EXPECT_EQ(::kill(pid, 0), -1) << "no zombie left";
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(SpawnTest, ReleaseLetsTheChildOutliveTheObject) {
  ::pid_t pid;
  {
    ChildProcess sleeper = spawn({"/bin/sleep", "30"});
    pid = sleeper.release();
    EXPECT_EQ(sleeper.pid(), -1);
    EXPECT_EQ(sleeper.pidfd(), -1);
  }
  EXPECT_EQ(::kill(pid, 0), 0) << "still running";
  ::kill(pid, SIGKILL);
  int raw = 0;
  EXPECT_EQ(::waitpid(pid, &raw, 0), pid) << "ours to reap";
}

TEST_F(SpawnTest, AProgramThatCannotRunIsAnErrorHereNotAnExit127) {
  auto missing = spawn({"/nonexistent/wire-no-such-program"}, {}, std::nothrow);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), std::errc::no_such_file_or_directory);
  EXPECT_EQ(test::error_of([] { spawn({"/nonexistent/wire-no-such-program"}); }),
            "spawn /nonexistent/wire-no-such-program: No such file or directory");
  EXPECT_EQ(spawn({"wire-no-such-program-in-path"}, {}, std::nothrow).error(),
            std::errc::no_such_file_or_directory);

  test::TempDir dir;
  std::ofstream(dir.file("not-executable")) << "#!/bin/sh\n";
  EXPECT_EQ(spawn({dir.file("not-executable")}, {}, std::nothrow).error(),
            std::errc::permission_denied);

  int raw = 0;
  EXPECT_EQ(::waitpid(-1, &raw, WNOHANG), -1) << "no child was left behind";
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(SpawnTest, BadArgumentsAreClearErrors) {
  EXPECT_NE(test::error_of([] { spawn({}); }).find("no program given"), std::string::npos);
  test::Pipe pipe;
  const int fd = pipe.write_end.fd();
  EXPECT_NE(test::error_of([&] {
              spawn({"/bin/true"}, {.pass_fds = {{fd, -1}}});
            }).find("child fd -1 is negative"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              spawn({"/bin/true"}, {.pass_fds = {{fd, 4}, {fd, 4}}});
            }).find("child fd 4 is named twice"),
            std::string::npos);
  EXPECT_EQ(test::error_of([&] {
              spawn({"/bin/true"}, {.pass_fds = {{987654, 3}}});
            }),
            "spawn /bin/true: pass_fds: fd 987654 is not open: Bad file descriptor");
  EXPECT_EQ(spawn({"/bin/true"}, {.pass_fds = {{987654, 3}}}, std::nothrow).error(),
            std::errc::bad_file_descriptor);
  EXPECT_NE(test::error_of([] {
              spawn({"/bin/true", std::string("a\0b", 3)});
            }).find("NUL byte"),
            std::string::npos);
  EXPECT_NE(test::error_of([] {
              spawn({"/bin/true"}, {.cwd = "/nonexistent/wire-dir"});
            }).find("cwd /nonexistent/wire-dir: No such file or directory"),
            std::string::npos);
  int raw = 0;
  EXPECT_EQ(::waitpid(-1, &raw, WNOHANG), -1) << "no child was started";
}

// Another thread opening fds without O_CLOEXEC while spawn runs: closefrom in the child
// catches them even when they appear between the parent's checks and the exec.
TEST_F(SpawnConcurrent, FdsOpenedMeanwhileByAnotherThreadStayOut) {
  std::atomic<bool> stop{false};
  std::thread opener([&] {
    while (!stop.load()) {
      const int fd = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, on purpose
      if (fd >= 0) ::close(fd);
    }
  });
  std::vector<std::string> listings;
  for (int i = 0; i < 5; ++i) listings.push_back(run({"/bin/ls", "/proc/self/fd"}).first);
  stop = true;
  opener.join();
  for (const auto& listing : listings) {
    EXPECT_EQ(listing, "0\n1\n2\n3\n") << "3 is ls's own directory";
  }
}

TEST_F(InheritableTest, TurnsCloseOnExecOffAndOn) {
  OwnedFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  EXPECT_FALSE(is_inheritable(fd.fd()));
  set_inheritable(fd.fd(), true);
  EXPECT_TRUE(is_inheritable(fd.fd()));
  EXPECT_FALSE(has_cloexec(fd.fd()));
  set_inheritable(fd.fd(), false);
  EXPECT_TRUE(has_cloexec(fd.fd()));
  EXPECT_EQ(test::error_of([] { set_inheritable(987654, true); }),
            "set_inheritable fd 987654: Bad file descriptor");
  EXPECT_EQ(is_inheritable(987654, std::nothrow).error(), std::errc::bad_file_descriptor);
}

TEST_F(InheritableTest, AnInheritableFdSurvivesAPlainExec) {
  // The flag is what exec looks at: a child spawned by other means (here test::Child's own
  // posix_spawn, which closes nothing) keeps an inheritable fd and loses a close-on-exec one.
  test::Pipe kept, dropped;
  set_inheritable(kept.write_end.fd(), true);
  test::Child child({"/bin/sh", "-c",
                     "echo kept >&" + std::to_string(kept.write_end.fd()) +
                         "; echo dropped 2>/dev/null >&" + std::to_string(dropped.write_end.fd()) +
                         "; true"});
  EXPECT_EQ(child.wait(), 0);
  kept.write_end.close();
  dropped.write_end.close();
  EXPECT_EQ(read_to_eof(kept.read_end.fd()), "kept\n");
  EXPECT_EQ(read_to_eof(dropped.read_end.fd()), "");
}
