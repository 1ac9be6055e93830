// AsyncFd: pipes, a FIFO, a pty, eventfd, signalfd, timerfd, inotify and a child process on
// the loop; ownership (adopt, borrow, reopen), timeouts, cancellation and refusals.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>

#include <cstring>
#include <set>

#include "support.hpp"
#include "wire/async_fd.hpp"

using namespace wire;
using test::error_from;
using namespace std::chrono_literals;

extern char** environ;

class AsyncFdTest : public test::Test {};

namespace {

bool nonblocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

// A pseudo-terminal standing in for a tty: the slave is what a program would have as its
// stdin; the test types into the master. Echo is off so the master reads only the output.
struct Pty {
  OwnedFd master, slave;
  std::string slave_path;
  Pty() {
    master = OwnedFd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master || ::grantpt(master.fd()) != 0 || ::unlockpt(master.fd()) != 0) {
      throw std::runtime_error("posix_openpt");
    }
    slave_path = ::ptsname(master.fd());
    slave = OwnedFd(::open(slave_path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!slave) throw std::runtime_error("open " + slave_path);
    ::termios mode{};
    ::tcgetattr(slave.fd(), &mode);
    mode.c_lflag &= ~static_cast<::tcflag_t>(ECHO);
    ::tcsetattr(slave.fd(), TCSANOW, &mode);
  }
};

// `/bin/sh -c script` with its stdout on `out` (closed here once the child has it).
::pid_t spawn_shell(const std::string& script, OwnedFd out) {
  ::posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  ::posix_spawn_file_actions_adddup2(&actions, out.fd(), 1);
  std::string sh = "/bin/sh", dash_c = "-c", body = script;
  char* argv[] = {sh.data(), dash_c.data(), body.data(), nullptr};
  ::pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, argv, environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn /bin/sh");
  return pid;
}

int exit_code(::pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Everything until end of input.
Task<std::string> read_all(AsyncFd& in) {
  std::string all;
  char buffer[4096];
  for (;;) {
    const std::size_t n = co_await in.read(buffer);
    if (n == 0) co_return all;
    all.append(buffer, n);
  }
}

Task<std::string> read_some(AsyncFd& in) {
  char buffer[4096];
  const std::size_t n = co_await in.read(buffer);
  co_return std::string(buffer, n);
}

Task<void> write_after(EventLoop& loop, AsyncFd& out, std::chrono::milliseconds delay,
                       std::string data) {
  co_await loop.sleep(delay);
  co_await out.write_all(data);
}

}  // namespace

TEST_F(AsyncFdTest, PipeCarriesBytesThenEndOfInput) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  AsyncFd out = AsyncFd::adopt(loop, std::move(p.write_end));
  EXPECT_TRUE(in.owns_fd());
  EXPECT_EQ(in.loop(), &loop);
  EXPECT_TRUE(nonblocking(in.fileno()));
  EXPECT_EQ(in.name().rfind("pipe:[", 0), 0u) << in.name();
  auto body = [](AsyncFd& in, AsyncFd& out) -> Task<std::string> {
    EXPECT_EQ(co_await out.write_all("hello"), 5u);
    std::string first = co_await read_some(in);
    out.close();
    std::string rest = co_await read_all(in);
    co_return first + "|" + rest;
  };
  EXPECT_EQ(loop.run_until_complete(body(in, out)), "hello|");
}

TEST_F(AsyncFdTest, AReadWaitsOnTheLoopWhileAnotherTaskWrites) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  AsyncFd out = AsyncFd::adopt(loop, std::move(p.write_end));
  loop.spawn(write_after(loop, out, 20ms, "late"));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(loop.run_until_complete(read_some(in)), "late");
  EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

TEST_F(AsyncFdTest, ReadsWhatAChildProcessWritesToAPipe) {
  EventLoop loop;
  test::Pipe p;
  const ::pid_t child =
      spawn_shell("printf 'one\\ntwo\\n'; sleep 0.05; printf three", std::move(p.write_end));
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  EXPECT_EQ(loop.run_until_complete(read_all(in)), "one\ntwo\nthree");
  EXPECT_EQ(exit_code(child), 0);
}

TEST_F(AsyncFdTest, FifoInATempDir) {
  test::TempDir dir;
  const std::string path = dir.file("fifo");
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0);
  EventLoop loop;
  // The reader opens first without waiting for a writer; the writer then finds it.
  AsyncFd in =
      AsyncFd::adopt(loop, OwnedFd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)));
  AsyncFd out = AsyncFd::adopt(loop, OwnedFd(::open(path.c_str(), O_WRONLY | O_CLOEXEC)));
  EXPECT_EQ(in.name(), path);
  loop.spawn(write_after(loop, out, 10ms, "through a fifo"));
  EXPECT_EQ(loop.run_until_complete(read_some(in)), "through a fifo");
  out.close();
  EXPECT_EQ(loop.run_until_complete(read_all(in)), "");
}

TEST_F(AsyncFdTest, PtyReadsTypedLinesAndWritesOutput) {
  Pty pty;
  EventLoop loop;
  AsyncFd tty = AsyncFd::borrow(loop, pty.slave.fd());
  AsyncFd terminal = AsyncFd::borrow(loop, pty.master.fd());
  EXPECT_EQ(tty.name(), pty.slave_path);
  EXPECT_FALSE(tty.owns_fd());
  loop.spawn(write_after(loop, terminal, 10ms, "typed line\n"));
  EXPECT_EQ(loop.run_until_complete(read_some(tty)), "typed line\n") << "canonical mode: a line";
  auto answer = [](AsyncFd& tty, AsyncFd& terminal) -> Task<std::string> {
    co_await tty.write_all("shown\n");
    std::string seen;
    while (seen.find('\n') == std::string::npos) seen += co_await read_some(terminal);
    co_return seen;
  };
  EXPECT_EQ(loop.run_until_complete(answer(tty, terminal)), "shown\r\n") << "the tty's ONLCR";
}

TEST_F(AsyncFdTest, EventfdWaitsUntilSignalled) {
  EventLoop loop;
  AsyncFd events = AsyncFd::adopt(loop, OwnedFd(::eventfd(0, EFD_CLOEXEC)));
  EXPECT_EQ(events.name(), "anon_inode:[eventfd]");
  auto signal_later = [](EventLoop& loop, AsyncFd& events) -> Task<void> {
    co_await loop.sleep(10ms);
    const std::uint64_t three = 3;
    co_await events.write_all(std::string_view(reinterpret_cast<const char*>(&three), 8));
  };
  auto wait_then_read = [](AsyncFd& events) -> Task<std::uint64_t> {
    co_await events.wait_readable();
    std::uint64_t count = 0;
    EXPECT_EQ(co_await events.read(std::span<char>(reinterpret_cast<char*>(&count), 8)), 8u);
    co_return count;
  };
  loop.spawn(signal_later(loop, events));
  EXPECT_EQ(loop.run_until_complete(wait_then_read(events)), 3u);
  std::uint64_t count = 0;
  auto empty = events.read_now(std::span<char>(reinterpret_cast<char*>(&count), 8), std::nothrow);
  EXPECT_TRUE(detail::would_block(empty.error())) << "read reset the count";
}

TEST_F(AsyncFdTest, SignalfdDeliversABlockedSignal) {
  ::sigset_t usr1, old_mask;
  ::sigemptyset(&usr1);
  ::sigaddset(&usr1, SIGUSR1);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &usr1, &old_mask), 0);
  {
    EventLoop loop;
    AsyncFd signals = AsyncFd::adopt(loop, OwnedFd(::signalfd(-1, &usr1, SFD_CLOEXEC)));
    EXPECT_EQ(signals.name(), "anon_inode:[signalfd]");
    auto raise_later = [](EventLoop& loop) -> Task<void> {
      co_await loop.sleep(10ms);
      ::raise(SIGUSR1);  // to this thread, which blocks it: it waits in the signalfd
    };
    auto receive = [](AsyncFd& signals) -> Task<std::uint32_t> {
      ::signalfd_siginfo info{};
      const std::size_t n =
          co_await signals.read(std::span<char>(reinterpret_cast<char*>(&info), sizeof info));
      EXPECT_EQ(n, sizeof info);
      co_return info.ssi_signo;
    };
    loop.spawn(raise_later(loop));
    EXPECT_EQ(loop.run_until_complete(receive(signals)), static_cast<std::uint32_t>(SIGUSR1));
  }
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr), 0);
}

TEST_F(AsyncFdTest, TimerfdTicks) {
  EventLoop loop;
  AsyncFd timer = AsyncFd::adopt(loop, OwnedFd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)));
  ::itimerspec every_5ms{};
  every_5ms.it_interval.tv_nsec = 5'000'000;
  every_5ms.it_value.tv_nsec = 5'000'000;
  ASSERT_EQ(::timerfd_settime(timer.fileno(), 0, &every_5ms, nullptr), 0);
  auto ticks = [](AsyncFd& timer) -> Task<std::uint64_t> {
    std::uint64_t total = 0;
    while (total < 3) {
      std::uint64_t expirations = 0;
      (void)co_await timer.read(std::span<char>(reinterpret_cast<char*>(&expirations), 8));
      total += expirations;
    }
    co_return total;
  };
  EXPECT_GE(loop.run_until_complete(ticks(timer)), 3u);
}

TEST_F(AsyncFdTest, InotifyReportsACreatedFile) {
  test::TempDir dir;
  EventLoop loop;
  AsyncFd watch = AsyncFd::adopt(loop, OwnedFd(::inotify_init1(IN_CLOEXEC)));
  ASSERT_GE(::inotify_add_watch(watch.fileno(), dir.file("").c_str(), IN_CREATE), 0);
  auto create_later = [](EventLoop& loop, std::string path) -> Task<void> {
    co_await loop.sleep(10ms);
    OwnedFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  };
  auto created = [](AsyncFd& watch) -> Task<std::string> {
    // g++ 12 does not honour alignas for a coroutine frame's locals: fields are copied out.
    char buffer[4096];
    const std::size_t n = co_await watch.read(buffer);
    EXPECT_GE(n, sizeof(::inotify_event));
    std::uint32_t length = 0;
    std::memcpy(&length, buffer + offsetof(::inotify_event, len), sizeof length);
    const char* name = buffer + sizeof(::inotify_event);
    co_return std::string(name, ::strnlen(name, length));
  };
  loop.spawn(create_later(loop, dir.file("new-file")));
  EXPECT_EQ(loop.run_until_complete(created(watch)), "new-file");
}

TEST_F(AsyncFdTest, WriteToAPipeWhoseReaderClosedIsEpipeNotSigpipe) {
  ::signal(SIGPIPE, SIG_DFL);  // a SIGPIPE would kill the test
  EventLoop loop;
  test::Pipe p;
  p.read_end.close();
  AsyncFd out = AsyncFd::adopt(loop, std::move(p.write_end));
  auto write = [](AsyncFd& out) -> Task<void> { (void)co_await out.write("nobody reads this"); };
  const std::string message = test::error_of([&] { loop.run_until_complete(write(out)); });
  EXPECT_EQ(message.rfind("write pipe:[", 0), 0u) << message;
  EXPECT_NE(message.find("Broken pipe"), std::string::npos) << message;
  auto write_all = [](AsyncFd& out) -> Task<Result<std::size_t>> {
    co_return co_await out.write_all(std::string(100000, 'x'), std::nothrow);
  };
  EXPECT_EQ(loop.run_until_complete(write_all(out)).error(), std::errc::broken_pipe);
  ::sigset_t pending;
  ::sigpending(&pending);
  EXPECT_FALSE(::sigismember(&pending, SIGPIPE)) << "no SIGPIPE left pending either";
}

TEST_F(AsyncFdTest, IdleTimeoutFailsAReadAndTheNextReadStillWorks) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  in.set_timeout(30ms);
  EXPECT_EQ(in.timeout(), std::chrono::nanoseconds(30ms));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(error_from(loop, read_some(in)), errc::timed_out);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  ASSERT_EQ(::write(p.write_end.fd(), "now", 3), 3);
  EXPECT_EQ(loop.run_until_complete(read_some(in)), "now");
  in.set_timeout(std::nullopt);
  EXPECT_FALSE(in.timeout());
}

TEST_F(AsyncFdTest, WithTimeoutCancelsAReadAndLeavesNoRegistration) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  auto cancelled = [](AsyncFd& in) -> Task<std::size_t> {
    char buffer[16];
    co_return co_await with_timeout(30ms, in.read(buffer));
  };
  EXPECT_EQ(error_from(loop, cancelled(in)), errc::timed_out);
  // Nothing waits any more: run() returns at once instead of hanging on the pipe.
  const auto start = std::chrono::steady_clock::now();
  loop.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  // A second read after the cancelled one takes the reader's slot (no EBUSY) and gets data.
  auto wait_then_read = [](AsyncFd& in) -> Task<std::string> {
    co_await with_timeout(5s, in.wait_readable());
    co_return co_await read_some(in);
  };
  ASSERT_EQ(::write(p.write_end.fd(), "after", 5), 5);
  EXPECT_EQ(loop.run_until_complete(wait_then_read(in)), "after");
  in.close();
  EXPECT_EQ(loop.selector().size(), 1u) << "only the loop's own wakeup fd stays registered";
}

TEST_F(AsyncFdTest, CloseWakesAWaitingReader) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  auto close_later = [](EventLoop& loop, AsyncFd& in) -> Task<void> {
    co_await loop.sleep(10ms);
    in.close();
  };
  loop.spawn(close_later(loop, in));
  EXPECT_EQ(error_from(loop, read_some(in)), errc::socket_closed);
  EXPECT_FALSE(in.is_open());
  EXPECT_EQ(in.fileno(), -1);
  char buffer[4];
  auto closed = [](AsyncFd& in, std::span<char> buffer) -> Task<Result<std::size_t>> {
    co_return co_await in.read(buffer, std::nothrow);
  };
  EXPECT_EQ(loop.run_until_complete(closed(in, buffer)).error(), errc::socket_closed);
}

TEST_F(AsyncFdTest, ASecondReaderAtOnceIsBusy) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  auto first = [](AsyncFd& in) -> Task<void> { co_await with_timeout(50ms, in.wait_readable()); };
  auto second = [](AsyncFd& in) -> Task<Result<void>> {
    co_return co_await in.wait_readable(std::nothrow);
  };
  loop.spawn([](Task<void> t) -> Task<void> {
    try {
      co_await std::move(t);
    } catch (const Error&) {
    }
  }(first(in)));
  EXPECT_EQ(loop.run_until_complete(second(in)).error(), std::errc::device_or_resource_busy);
  loop.run();
}

TEST_F(AsyncFdTest, PartialWriteAndWriteAllThroughAFullPipe) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  AsyncFd out = AsyncFd::adopt(loop, std::move(p.write_end));
  const std::string big = test::random_bytes(1 << 20);
  auto partial = [](AsyncFd& out, const std::string& big) -> Task<std::size_t> {
    co_return co_await out.write(big);
  };
  const std::size_t took = loop.run_until_complete(partial(out, big));
  EXPECT_GT(took, 0u);
  EXPECT_LT(took, big.size()) << "a pipe holds less than 1 MiB";
  auto full = out.write_now("x", std::nothrow);
  EXPECT_TRUE(detail::would_block(full.error()));
  // Reading what the partial write left, while write_all sends everything, waiting for room.
  auto reader = [](AsyncFd& in, std::size_t expected) -> Task<std::string> {
    std::string all;
    char buffer[65536];
    while (all.size() < expected) all.append(buffer, co_await in.read(buffer));
    co_return all;
  };
  auto writer = [](AsyncFd& out, std::string_view rest) -> Task<void> {
    EXPECT_EQ(co_await out.write_all(rest), rest.size());
  };
  loop.spawn(writer(out, std::string_view(big).substr(took)));
  EXPECT_EQ(loop.run_until_complete(reader(in, big.size())), big);
}

TEST_F(AsyncFdTest, WaitWritableTimesOutOnAFullPipeThenCompletesOnceRead) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd out = AsyncFd::adopt(loop, std::move(p.write_end));
  const std::string block(65536, 'x');
  while (out.write_now(block, std::nothrow)) {
  }
  out.set_timeout(20ms);
  auto wait = [](AsyncFd& out) -> Task<void> { co_await out.wait_writable(); };
  EXPECT_EQ(error_from(loop, wait(out)), errc::timed_out);
  out.set_timeout(5s);
  std::string drained(1 << 20, '\0');
  ASSERT_GT(::read(p.read_end.fd(), drained.data(), drained.size()), 0);
  EXPECT_EQ(error_from(loop, wait(out)), std::error_code());
  auto wait_nothrow = [](AsyncFd& out) -> Task<Result<void>> {
    co_return co_await out.wait_writable(std::nothrow);
  };
  EXPECT_TRUE(loop.run_until_complete(wait_nothrow(out)));
}

TEST_F(AsyncFdTest, ARegularFileIsRefusedClearly) {
  test::TempDir dir;
  const std::string path = dir.file("data.txt");
  { OwnedFd create(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600)); }
  EventLoop loop;
  // adopt owns the fd even when it refuses: it is closed (the fd count checks that).
  const std::string adopted = test::error_of(
      [&] { (void)AsyncFd::adopt(loop, OwnedFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC))); });
  EXPECT_EQ(adopted.rfind("adopt " + path +
                              ": Operation not permitted: epoll cannot wait for a "
                              "regular file",
                          0),
            0u)
      << adopted;
  // borrow leaves the fd open, and its flags as they were.
  OwnedFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  try {
    (void)AsyncFd::borrow(loop, file.fd());
    ADD_FAILURE() << "borrowed a regular file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::operation_not_permitted);
    EXPECT_EQ(e.operation(), "borrow");
    EXPECT_EQ(e.address(), path);
  }
  EXPECT_GE(::fcntl(file.fd(), F_GETFD), 0);
  EXPECT_FALSE(nonblocking(file.fd()));
  EXPECT_EQ(AsyncFd::borrow(loop, file.fd(), std::nothrow).error(),
            std::errc::operation_not_permitted);
  // The same under the poll selector, which could watch it: a program behaves the same.
  EventLoop polling(SelectorKind::poll);
  EXPECT_EQ(AsyncFd::borrow(polling, file.fd(), std::nothrow).error(),
            std::errc::operation_not_permitted);

  OwnedFd folder(::open(dir.file("").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  const std::string dir_message = test::error_of([&] { (void)AsyncFd::borrow(loop, folder.fd()); });
  EXPECT_NE(dir_message.find("a folder is not a stream"), std::string::npos) << dir_message;
  const std::string null_message = test::error_of(
      [&] { (void)AsyncFd::adopt(loop, OwnedFd(::open("/dev/null", O_RDONLY | O_CLOEXEC))); });
  EXPECT_EQ(null_message.rfind("adopt /dev/null: Operation not permitted: epoll cannot wait", 0),
            0u)
      << null_message;
  EXPECT_NE(test::error_of([&] { (void)AsyncFd::borrow(loop, 999); }).find("not an open file"),
            std::string::npos);
  EXPECT_EQ(AsyncFd::adopt(loop, OwnedFd(), std::nothrow).error(), std::errc::bad_file_descriptor);
}

TEST_F(AsyncFdTest, BorrowingStdinNeverClosesItAndRestoresItsFlags) {
  EventLoop loop;
  test::Pipe p;
  // fd 0 becomes a pipe for the test, and is put back after.
  OwnedFd saved_stdin(::fcntl(0, F_DUPFD_CLOEXEC, 3));
  ASSERT_TRUE(saved_stdin);
  ASSERT_EQ(::dup2(p.read_end.fd(), 0), 0);
  ASSERT_FALSE(nonblocking(0));
  {
    AsyncFd in = AsyncFd::borrow(loop, 0);
    EXPECT_FALSE(in.owns_fd());
    EXPECT_EQ(in.name().rfind("stdin (pipe:[", 0), 0u) << in.name();
    EXPECT_TRUE(nonblocking(0));
    ASSERT_EQ(::write(p.write_end.fd(), "typed", 5), 5);
    EXPECT_EQ(loop.run_until_complete(read_some(in)), "typed");
    in.close();
    EXPECT_FALSE(nonblocking(0)) << "close restored the flag";
    EXPECT_GE(::fcntl(0, F_GETFD), 0) << "fd 0 is still open";
  }
  // A borrowed fd that was non-blocking already stays so: the flag is left as found.
  ::fcntl(0, F_SETFL, ::fcntl(0, F_GETFL) | O_NONBLOCK);
  { AsyncFd in = AsyncFd::borrow(loop, 0); }
  EXPECT_TRUE(nonblocking(0));
  ::fcntl(0, F_SETFL, ::fcntl(0, F_GETFL) & ~O_NONBLOCK);
  {
    // Destruction restores it too, and adopt() of a dup restores it on the shared
    // description before closing its own fd.
    AsyncFd in = AsyncFd::adopt(loop, OwnedFd(::fcntl(0, F_DUPFD_CLOEXEC, 3)));
    EXPECT_TRUE(nonblocking(0)) << "one description: the dup's flag is fd 0's";
  }
  EXPECT_FALSE(nonblocking(0));
  ASSERT_EQ(::dup2(saved_stdin.fd(), 0), 0);
}

TEST_F(AsyncFdTest, ReopenGivesAPrivateDescriptionAndLeavesTheOriginalBlocking) {
  Pty pty;
  EventLoop loop;
  {
    AsyncFd tty = AsyncFd::reopen(loop, pty.slave.fd());
    EXPECT_TRUE(tty.owns_fd());
    EXPECT_NE(tty.fileno(), pty.slave.fd());
    EXPECT_EQ(tty.name(), pty.slave_path);
    EXPECT_TRUE(nonblocking(tty.fileno()));
    EXPECT_FALSE(nonblocking(pty.slave.fd())) << "the original description is untouched";
    ASSERT_EQ(::write(pty.master.fd(), "via reopen\n", 11), 11);
    EXPECT_EQ(loop.run_until_complete(read_some(tty)), "via reopen\n");
  }
  EXPECT_GE(::fcntl(pty.slave.fd(), F_GETFD), 0);

  // An anonymous pipe reopens too (as a FIFO would), and the reopened end sees the writer.
  test::Pipe p;
  AsyncFd in = AsyncFd::reopen(loop, p.read_end.fd());
  EXPECT_FALSE(nonblocking(p.read_end.fd()));
  ASSERT_EQ(::write(p.write_end.fd(), "piped", 5), 5);
  EXPECT_EQ(loop.run_until_complete(read_some(in)), "piped");

  // A socket cannot be reopened: the error says to borrow it.
  auto [a, b] = Socket::pair();
  const std::string message = test::error_of([&] { (void)AsyncFd::reopen(loop, a.fileno()); });
  EXPECT_NE(message.find("a socket cannot be reopened; borrow it instead"), std::string::npos)
      << message;
  EXPECT_EQ(AsyncFd::reopen(loop, a.fileno(), std::nothrow).error(),
            std::errc::no_such_device_or_address);
  EXPECT_EQ(AsyncFd::reopen(loop, -1, std::nothrow).error(), std::errc::bad_file_descriptor);
  // Nor a pty master: its /proc link is /dev/ptmx, which would open a new pty.
  const std::string master = test::error_of([&] { (void)AsyncFd::reopen(loop, pty.master.fd()); });
  EXPECT_NE(master.find("a pty master cannot be reopened"), std::string::npos) << master;
}

TEST_F(AsyncFdTest, ASocketFdWritesWithoutSigpipe) {
  ::signal(SIGPIPE, SIG_DFL);
  EventLoop loop;
  auto [a, b] = Socket::pair();
  b.close();
  AsyncFd out = AsyncFd::borrow(loop, a.fileno());
  EXPECT_EQ(out.name().rfind("socket:[", 0), 0u) << out.name();
  auto write = [](AsyncFd& out) -> Task<Result<std::size_t>> {
    co_return co_await out.write("gone", std::nothrow);
  };
  EXPECT_EQ(loop.run_until_complete(write(out)).error(), std::errc::broken_pipe);
}

TEST_F(AsyncFdTest, MovingKeepsTheFdAndTheFlagsToRestore) {
  EventLoop loop;
  test::Pipe p;
  AsyncFd first = AsyncFd::borrow(loop, p.read_end.fd());
  AsyncFd second(std::move(first));
  EXPECT_FALSE(first.is_open());
  EXPECT_EQ(second.fileno(), p.read_end.fd());
  AsyncFd third;
  third = std::move(second);
  EXPECT_TRUE(nonblocking(p.read_end.fd()));
  third.close();
  EXPECT_FALSE(nonblocking(p.read_end.fd()));
  EXPECT_EQ(third.name().rfind("pipe:[", 0), 0u) << "the name outlives close";
}

// select(2) cannot watch an fd at or above FD_SETSIZE: on a select loop such an fd is an error
// that says so and names the way out, not a bare "Invalid argument".
TEST_F(AsyncFdTest, AnFdBeyondFdSetSizeOnASelectLoopSaysWhy) {
  const int high = FD_SETSIZE + 100;
  test::RaisedFdLimit fds(high + 1);
  if (!fds.ok()) GTEST_SKIP() << "hard RLIMIT_NOFILE too low";
  {
    test::Pipe p;
    ASSERT_EQ(::dup2(p.read_end.fd(), high), high);
    EventLoop loop(SelectorKind::select);
    AsyncFd in = AsyncFd::borrow(loop, high);
    const std::string message =
        test::error_of([&] { (void)loop.run_until_complete(read_some(in)); });
    EXPECT_NE(message.find("FD_SETSIZE (1024), which select() cannot watch; use the poll or epoll"),
              std::string::npos)
        << message;
    in.close();
    ::close(high);
  }
}

class AsyncFdSelectorTest : public test::Test,
                            public ::testing::WithParamInterface<SelectorKind> {};

TEST_P(AsyncFdSelectorTest, PipeRoundTripOnEveryBackend) {
  EventLoop loop(GetParam());
  test::Pipe p;
  AsyncFd in = AsyncFd::adopt(loop, std::move(p.read_end));
  AsyncFd out = AsyncFd::adopt(loop, std::move(p.write_end));
  loop.spawn(write_after(loop, out, 5ms, "across"));
  EXPECT_EQ(loop.run_until_complete(read_some(in)), "across");
}

// The loop's own wakeup eventfd is registered without the loop's per-fd record: an AsyncFd
// borrowing it (found in /proc/self/fd) is refused, on every backend, and the loop still
// wakes for another thread (it corrupted the poll backend's table, and deafened select).
TEST_P(AsyncFdSelectorTest, TheLoopsOwnWakeupFdIsRefused) {
  auto eventfds = [] {
    std::set<int> found;
    for (int fd = 0; fd < 256; ++fd) {
      char link[64];
      const std::string path = "/proc/self/fd/" + std::to_string(fd);
      const ::ssize_t n = ::readlink(path.c_str(), link, sizeof link);
      if (n > 0 && std::string(link, static_cast<std::size_t>(n)) == "anon_inode:[eventfd]") {
        found.insert(fd);
      }
    }
    return found;
  };
  const std::set<int> before = eventfds();
  EventLoop loop(GetParam());
  int wakeup = -1;
  for (int fd : eventfds()) {
    if (!before.contains(fd)) wakeup = fd;
  }
  ASSERT_GE(wakeup, 0) << "the loop's eventfd";
  {
    AsyncFd borrowed = AsyncFd::borrow(loop, wakeup);
    auto wait = [](AsyncFd& fd) -> Task<std::error_code> {
      auto r = co_await fd.wait_readable(std::nothrow);
      co_return r ? std::error_code() : r.error();
    };
    EXPECT_EQ(loop.run_until_complete(wait(borrowed)), std::errc::device_or_resource_busy);
  }
  std::thread other([&] {
    std::this_thread::sleep_for(100ms);  // the loop is asleep in its selector by then
    loop.call_soon_threadsafe([&] { loop.stop(); });
  });
  auto guard = loop.call_later(5s, [&] {
    ADD_FAILURE() << "the loop was not woken";
    loop.stop();
  });
  loop.run();
  loop.cancel(guard);
  other.join();
  EXPECT_EQ(loop.selector().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Selectors, AsyncFdSelectorTest,
                         ::testing::Values(SelectorKind::epoll, SelectorKind::poll,
                                           SelectorKind::select),
                         [](const auto& info) { return std::string(to_string(info.param)); });
