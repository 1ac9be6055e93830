// One suite, run against every selector backend.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/select.h>

#include "support.hpp"
#include "wire/selector.hpp"

using namespace wire;
using namespace std::chrono_literals;

template <SelectorKind Kind>
struct Backend {
  static constexpr SelectorKind kind = Kind;
};

template <class B>
class SelectorTest : public test::Test {
 protected:
  std::unique_ptr<Selector> selector = Selector::create(B::kind);
};

using Backends = ::testing::Types<Backend<SelectorKind::epoll>, Backend<SelectorKind::poll>,
                                  Backend<SelectorKind::select>>;
struct BackendName {
  template <class B>
  static std::string GetName(int) {
    return std::string(to_string(B::kind));
  }
};
TYPED_TEST_SUITE(SelectorTest, Backends, BackendName);

namespace {

std::vector<Ready> ready_list(Selector& s, std::optional<std::chrono::nanoseconds> timeout) {
  auto span = s.select(timeout);
  return {span.begin(), span.end()};
}

// Whether a select that reports nothing really slept rather than spun: the kernel counts a
// voluntary context switch each time a thread blocks, and a poll(2) that returns at once
// because of an event the selector then filters out never blocks. No clock involved.
bool reports_nothing_and_sleeps(Selector& s) {
  ::rusage before{}, after{};
  ::getrusage(RUSAGE_THREAD, &before);
  const bool empty = ready_list(s, 20ms).empty();
  ::getrusage(RUSAGE_THREAD, &after);
  return empty && after.ru_nvcsw > before.ru_nvcsw;
}

// Selects until `fd` is reported with exactly `events` (other reports of it before the
// one tested are skipped); the last report of `fd`, or nothing after 10 s.
std::optional<Ready> wait_for(Selector& s, int fd, unsigned events) {
  std::optional<Ready> last;
  for (int i = 0; i < 100; ++i) {
    for (const Ready& r : s.select(100ms)) {
      if (r.fd != fd) continue;
      last = r;
      if (r.events == events) return last;
    }
  }
  return last;
}

// Writes into a non-blocking fd until it is not writable any more.
void fill(int fd, Selector& probe) {
  const std::string block(65536, 'f');
  for (int round = 0; round < 100; ++round) {
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    ASSERT_EQ(errno, EAGAIN);
    if (!probe.register_fd(fd, writable, nullptr, std::nothrow)) {
      ADD_FAILURE() << "probe register";
      return;
    }
    const bool still_writable = !ready_list(probe, 0ms).empty();
    probe.unregister(fd);
    if (!still_writable) return;
  }
  ADD_FAILURE() << "fd " << fd << " stayed writable";
}

// The message of the wire::Error `call` throws.
template <class Call>
std::string error_text(Call call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

::testing::AssertionResult starts_with(const std::string& text, const std::string& prefix) {
  if (text.starts_with(prefix)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not start with '" << prefix << "'";
}
::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// A pipe, closed at the end of the test.
struct Pipe {
  int read_end = -1, write_end = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2");
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read_end >= 0) ::close(read_end);
    read_end = -1;
  }
  void close_write() {
    if (write_end >= 0) ::close(write_end);
    write_end = -1;
  }
};

// A TCP connection over loopback: the client and the accepted end.
struct Connection {
  Socket client, server;
  Connection() {
    Socket listener = test::loopback_listener();
    client = Socket(Family::inet, Type::stream);
    client.connect(listener.local_address());
    server = std::move(listener.accept().socket);
  }
  // Closing with SO_LINGER 0 sends a reset instead of a FIN.
  void reset_client() {
    client.set_option(option::linger, std::chrono::seconds(0));
    client.close();
  }
};

}  // namespace

TYPED_TEST(SelectorTest, ReportsReadableWithItsData) {
  auto [a, b] = Socket::pair();
  int tag = 42;
  this->selector->register_fd(b.fileno(), readable, &tag);
  EXPECT_EQ(this->selector->size(), 1u);
  EXPECT_TRUE(this->selector->is_registered(b.fileno()));
  EXPECT_TRUE(ready_list(*this->selector, 0ms).empty());
  a.send_all("x");
  auto ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd, b.fileno());
  EXPECT_EQ(ready[0].events, readable);
  EXPECT_EQ(ready[0].data, &tag);
  this->selector->unregister(b.fileno());
}

TYPED_TEST(SelectorTest, ReportsWritableAndModifyChangesInterestAndData) {
  auto [a, b] = Socket::pair();
  int first = 1, second = 2;
  this->selector->register_fd(a.fileno(), writable, &first);
  auto ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, writable);
  this->selector->modify(a.fileno(), readable, &second);
  EXPECT_TRUE(ready_list(*this->selector, 0ms).empty());
  b.send_all("y");
  ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, readable);
  EXPECT_EQ(ready[0].data, &second);
  this->selector->modify(a.fileno(), readable | writable, &second);
  ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, readable | writable);
  this->selector->unregister(a.fileno());
}

TYPED_TEST(SelectorTest, SelectTimesOutWhenNothingIsReady) {
  auto [a, b] = Socket::pair();
  this->selector->register_fd(b.fileno(), readable);
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(ready_list(*this->selector, 50ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
  this->selector->unregister(b.fileno());
}

TYPED_TEST(SelectorTest, UnregisteredFdsAreNotReported) {
  auto [a, b] = Socket::pair();
  this->selector->register_fd(b.fileno(), readable);
  this->selector->unregister(b.fileno());
  EXPECT_EQ(this->selector->size(), 0u);
  a.send_all("z");
  EXPECT_TRUE(ready_list(*this->selector, 20ms).empty());
}

TYPED_TEST(SelectorTest, MisuseIsAnErrorNamingTheFdAndTheCause) {
  auto [a, b] = Socket::pair();
  Selector& s = *this->selector;
  const std::string fd_a = "fd " + std::to_string(a.fileno());
  const std::string fd_b = "fd " + std::to_string(b.fileno());
  s.register_fd(a.fileno(), readable);
  EXPECT_EQ(s.register_fd(a.fileno(), readable, nullptr, std::nothrow).error(),
            std::errc::file_exists);
  EXPECT_TRUE(starts_with(error_text([&] { s.register_fd(a.fileno(), readable); }),
                          "register " + fd_a + ": already registered (EEXIST)"));
  EXPECT_EQ(s.register_fd(-1, readable, nullptr, std::nothrow).error(),
            std::errc::bad_file_descriptor);
  Socket closed(Family::inet, Type::stream);
  const int closed_fd = closed.fileno();
  closed.close();
  EXPECT_EQ(s.register_fd(closed_fd, readable, nullptr, std::nothrow).error(),
            std::errc::bad_file_descriptor);
  EXPECT_EQ(error_text([&] { s.register_fd(closed_fd, readable); }),
            "register fd " + std::to_string(closed_fd) + ": not an open file descriptor (EBADF)");
  EXPECT_EQ(s.register_fd(b.fileno(), 8u, nullptr, std::nothrow).error(),
            std::errc::invalid_argument);
  const std::string bad_events = error_text([&] { s.register_fd(b.fileno(), 8u); });
  EXPECT_TRUE(starts_with(bad_events, "register " + fd_b + ": events must be"));
  EXPECT_TRUE(contains(bad_events, "(EINVAL)"));
  EXPECT_EQ(s.modify(b.fileno(), readable, nullptr, std::nothrow).error(),
            std::errc::no_such_file_or_directory);
  EXPECT_EQ(error_text([&] { s.modify(b.fileno(), readable); }),
            "modify " + fd_b + ": not registered (ENOENT)");
  EXPECT_EQ(error_text([&] { s.unregister(b.fileno()); }),
            "unregister " + fd_b + ": not registered (ENOENT)");
  s.unregister(a.fileno());
}

// epoll refuses regular files; the message says so and names the way out.
TYPED_TEST(SelectorTest, ARegularFileIsWatchedOrRefusedWithTheReason) {
  test::TempDir dir;
  const int file = ::open(dir.file("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  if (TypeParam::kind == SelectorKind::epoll) {
    const std::string text = error_text([&] { this->selector->register_fd(file, readable); });
    EXPECT_TRUE(contains(text, "(EPERM)"));
    EXPECT_TRUE(contains(text, "use the poll or select selector"));
  } else {
    this->selector->register_fd(file, readable);
    auto ready = ready_list(*this->selector, 0ms);
    ASSERT_EQ(ready.size(), 1u);
    EXPECT_EQ(ready[0].events, readable);
    this->selector->unregister(file);
  }
  ::close(file);
}

TYPED_TEST(SelectorTest, ModifyKeepsTheDataUnlessGivenNewData) {
  auto [a, b] = Socket::pair();
  Selector& s = *this->selector;
  int first = 1, second = 2;
  s.register_fd(a.fileno(), readable, &first);
  s.modify(a.fileno(), writable);
  auto ready = ready_list(s, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].data, &first);
  ASSERT_TRUE(s.modify(a.fileno(), readable | writable, std::nothrow));
  ready = ready_list(s, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].data, &first);
  s.modify(a.fileno(), writable, &second);
  ready = ready_list(s, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].data, &second);
  s.modify(a.fileno(), writable, nullptr);  // null is data too
  ready = ready_list(s, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].data, nullptr);
  s.unregister(a.fileno());
}

TYPED_TEST(SelectorTest, HangUpIsReportedSoTheHandlersReadSeesIt) {
  auto [a, b] = Socket::pair();
  this->selector->register_fd(b.fileno(), readable);
  a.close();
  auto ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, readable);
  EXPECT_EQ(b.recv(10), "");
  this->selector->unregister(b.fileno());
}

TYPED_TEST(SelectorTest, ResetIsReportedAsReadableAndWritable) {
  Socket listener = test::loopback_listener();
  Socket client(Family::inet, Type::stream);
  client.connect(listener.local_address());
  auto [conn, peer] = listener.accept();
  this->selector->register_fd(conn.fileno(), readable | writable);
  client.set_option(option::linger, std::chrono::seconds(0));
  client.close();
  // Wait for the reset to land: the writable-only report before it is not what we test.
  std::vector<Ready> ready;
  for (int i = 0; i < 100; ++i) {
    ready = ready_list(*this->selector, 1s);
    if (!ready.empty() && ready[0].events == (readable | writable)) break;
  }
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, readable | writable);
  EXPECT_EQ(conn.recv(10, std::nothrow).error(), std::errc::connection_reset);
  this->selector->unregister(conn.fileno());
}

// Events 0 watches for errors and hang-ups alone: data does not wake it, a hang-up is
// reported as both events. select(2) cannot do that and refuses 0 instead.
TYPED_TEST(SelectorTest, NoEventsWatchesForErrorsAndHangUpsAlone) {
  auto [a, b] = Socket::pair();
  Selector& s = *this->selector;
  if (TypeParam::kind == SelectorKind::select) {
    EXPECT_EQ(s.register_fd(b.fileno(), 0, nullptr, std::nothrow).error(),
              std::errc::invalid_argument);
    EXPECT_TRUE(contains(error_text([&] { s.register_fd(b.fileno(), 0); }),
                         "select() cannot wait for errors alone"));
    s.register_fd(b.fileno(), readable);
    EXPECT_TRUE(contains(error_text([&] { s.modify(b.fileno(), 0); }),
                         "select() cannot wait for errors alone"));
    s.unregister(b.fileno());
    return;
  }
  s.register_fd(b.fileno(), 0);
  a.send_all("x");
  EXPECT_TRUE(reports_nothing_and_sleeps(s));
  a.close();
  auto ready = ready_list(s, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, readable | writable);
  EXPECT_EQ(b.recv(10), "x");
  EXPECT_EQ(b.recv(10), "");
  s.unregister(b.fileno());
}

TYPED_TEST(SelectorTest, ResetIsReportedToAReaderOnly) {
  Connection c;
  this->selector->register_fd(c.server.fileno(), readable);
  EXPECT_TRUE(reports_nothing_and_sleeps(*this->selector));
  c.reset_client();
  auto ready = wait_for(*this->selector, c.server.fileno(), readable);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->events, readable);
  EXPECT_EQ(c.server.recv(10, std::nothrow).error(), std::errc::connection_reset);
  this->selector->unregister(c.server.fileno());
}

// A writer blocked on a full send buffer learns of the reset: it is reported writable, and
// its send meets the error.
TYPED_TEST(SelectorTest, ResetIsReportedToABlockedWriterOnly) {
  Connection c;
  c.server.set_option(option::send_buffer_size, 4096);
  c.client.set_option(option::receive_buffer_size, 4096);
  c.server.set_blocking(false);
  fill(c.server.fileno(), *this->selector);
  this->selector->register_fd(c.server.fileno(), writable);
  EXPECT_TRUE(reports_nothing_and_sleeps(*this->selector));
  c.reset_client();
  auto ready = wait_for(*this->selector, c.server.fileno(), writable);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->events, writable);
  EXPECT_FALSE(c.server.send("more", std::nothrow));
  this->selector->unregister(c.server.fileno());
}

TYPED_TEST(SelectorTest, AWriterWhosePeerIsGoneIsReported) {
  auto [a, b] = Socket::pair();
  a.set_blocking(false);
  fill(a.fileno(), *this->selector);
  this->selector->register_fd(a.fileno(), writable);
  EXPECT_TRUE(reports_nothing_and_sleeps(*this->selector));
  b.close();
  auto ready = wait_for(*this->selector, a.fileno(), writable);
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->events, writable);
  EXPECT_FALSE(a.send("more", std::nothrow));
  this->selector->unregister(a.fileno());
}

TYPED_TEST(SelectorTest, APipeWhoseWriteEndIsClosedIsReadable) {
  Pipe pipe;
  this->selector->register_fd(pipe.read_end, readable);
  EXPECT_TRUE(reports_nothing_and_sleeps(*this->selector));
  pipe.close_write();
  auto ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, readable);
  char byte;
  EXPECT_EQ(::read(pipe.read_end, &byte, 1), 0);
  this->selector->unregister(pipe.read_end);
}

TYPED_TEST(SelectorTest, AFullPipeWhoseReadEndIsClosedIsWritable) {
  Pipe pipe;
  fill(pipe.write_end, *this->selector);
  this->selector->register_fd(pipe.write_end, writable);
  EXPECT_TRUE(reports_nothing_and_sleeps(*this->selector));
  pipe.close_read();
  auto ready = ready_list(*this->selector, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].events, writable);
  this->selector->unregister(pipe.write_end);
}

// An fd closed while registered is dropped the same way by every backend: never reported,
// the others still are, modify says it is closed, unregister succeeds.
TYPED_TEST(SelectorTest, AnFdClosedWhileRegisteredIsDropped) {
  auto [a, b] = Socket::pair();
  auto [c, d] = Socket::pair();
  Selector& s = *this->selector;
  const int closed_fd = b.fileno();
  s.register_fd(closed_fd, readable | writable);
  s.register_fd(d.fileno(), readable, &d);
  b.close();
  EXPECT_TRUE(reports_nothing_and_sleeps(s));
  EXPECT_TRUE(reports_nothing_and_sleeps(s));  // and not the first time only
  c.send_all("still here");
  auto ready = ready_list(s, 1s);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].fd, d.fileno());
  EXPECT_EQ(ready[0].data, &d);
  EXPECT_TRUE(s.is_registered(closed_fd));
  EXPECT_EQ(s.modify(closed_fd, readable, std::nothrow).error(), std::errc::bad_file_descriptor);
  EXPECT_TRUE(
      starts_with(error_text([&] { s.modify(closed_fd, writable); }),
                  "modify fd " + std::to_string(closed_fd) + ": closed while registered (EBADF)"));
  s.unregister(closed_fd);
  EXPECT_FALSE(s.is_registered(closed_fd));
  s.unregister(d.fileno());
}

TYPED_TEST(SelectorTest, ManyReadyAtOnce) {
  std::vector<std::pair<Socket, Socket>> pairs;
  for (int i = 0; i < 300; ++i) pairs.push_back(Socket::pair());
  for (auto& [a, b] : pairs) {
    this->selector->register_fd(b.fileno(), readable, &b);
    a.send_all("!");
  }
  std::size_t seen = 0;
  for (int round = 0; round < 10 && seen < pairs.size(); ++round) {
    for (const Ready& r : this->selector->select(1s)) {
      auto* s = static_cast<Socket*>(r.data);
      EXPECT_EQ(s->recv(10), "!");
      ++seen;
    }
  }
  EXPECT_EQ(seen, pairs.size());
  for (auto& [a, b] : pairs) this->selector->unregister(b.fileno());
}

// More registered fds than FD_SETSIZE: epoll and poll watch them all; select refuses the
// fds it cannot hold instead of writing past its fd_set.
TYPED_TEST(SelectorTest, BeyondFdSetSize) {
  const ::rlim_t wanted = FD_SETSIZE + 512;
  test::RaisedFdLimit fds(wanted);
  if (!fds.ok()) GTEST_SKIP() << "hard RLIMIT_NOFILE below " << wanted;
  {
    std::vector<std::pair<Socket, Socket>> pairs;
    while (pairs.empty() || pairs.back().second.fileno() < FD_SETSIZE + 10) {
      pairs.push_back(Socket::pair());
    }
    auto& [high_a, high_b] = pairs.back();
    ASSERT_GE(high_b.fileno(), FD_SETSIZE);
    if (TypeParam::kind == SelectorKind::select) {
      auto r = this->selector->register_fd(high_b.fileno(), readable, nullptr, std::nothrow);
      EXPECT_FALSE(r);
      try {
        this->selector->register_fd(high_b.fileno(), readable);
        ADD_FAILURE() << "select registered an fd above FD_SETSIZE";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("FD_SETSIZE"), std::string::npos) << e.what();
      }
    } else {
      for (auto& [a, b] : pairs) this->selector->register_fd(b.fileno(), readable, &b);
      EXPECT_GT(this->selector->size(), static_cast<std::size_t>(FD_SETSIZE / 2));
      high_a.send_all("high");
      auto ready = ready_list(*this->selector, 1s);
      ASSERT_EQ(ready.size(), 1u);
      EXPECT_EQ(ready[0].fd, high_b.fileno());
      EXPECT_EQ(ready[0].data, &high_b);
      for (auto& [a, b] : pairs) this->selector->unregister(b.fileno());
    }
  }
}

TEST(SelectorKindTest, ParsesNamesAndDefaultsToEpoll) {
  EXPECT_EQ(selector_kind_from_string("poll"), SelectorKind::poll);
  EXPECT_EQ(selector_kind_from_string("kqueue"), std::nullopt);
  EXPECT_EQ(to_string(SelectorKind::select), "select");
  ::unsetenv("WIRE_SELECTOR");
  EXPECT_EQ(default_selector_kind(), SelectorKind::epoll);
  ::setenv("WIRE_SELECTOR", "select", 1);
  EXPECT_EQ(default_selector_kind(), SelectorKind::select);
  EXPECT_EQ(Selector::create()->kind(), SelectorKind::select);
  ::setenv("WIRE_SELECTOR", "", 1);
  EXPECT_EQ(default_selector_kind(), SelectorKind::epoll) << "set but empty counts as unset";
  ::unsetenv("WIRE_SELECTOR");
}

// Before: a misspelt WIRE_SELECTOR silently meant epoll.
TEST(SelectorKindTest, AnUnknownWireSelectorIsAnErrorWhereverTheDefaultIsUsed) {
  struct Unset {
    ~Unset() { ::unsetenv("WIRE_SELECTOR"); }
  } unset;
  for (const char* value : {"bogus", "EPOLL", "poll ", "kqueue"}) {
    SCOPED_TRACE(value);
    ::setenv("WIRE_SELECTOR", value, 1);
    try {
      (void)default_selector_kind();
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
      EXPECT_EQ(std::string(e.what()),
                "WIRE_SELECTOR=" + std::string(value) + ": expected epoll, poll or select");
    }
    EXPECT_THROW((void)Selector::create(), Error);
    EXPECT_THROW(EventLoop loop, Error);
    EXPECT_THROW(ServeOptions options, Error);
    // Naming the kind does not read the variable.
    auto selector = Selector::create(SelectorKind::poll);
    auto [a, b] = Socket::pair();
    selector->register_fd(b.fileno(), readable);
    a.send_all("x");
    ASSERT_EQ(selector->select(1s).size(), 1u);
    EXPECT_EQ(selector->select(1s)[0].fd, b.fileno());
  }
  ::setenv("WIRE_SELECTOR", "bad\r\nvalue", 1);
  EXPECT_THROW(
      {
        try {
          (void)default_selector_kind();
        } catch (const Error& e) {
          EXPECT_EQ(std::string(e.what()),
                    "WIRE_SELECTOR=bad\\x0d\\x0avalue: expected epoll, poll or select");
          throw;
        }
      },
      Error);
}
