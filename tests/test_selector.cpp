// One suite, run against every selector backend.
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

TYPED_TEST(SelectorTest, MisuseIsAnErrorNotUndefinedBehaviour) {
  auto [a, b] = Socket::pair();
  Selector& s = *this->selector;
  s.register_fd(a.fileno(), readable);
  EXPECT_EQ(s.register_fd(a.fileno(), readable, nullptr, std::nothrow).error(),
            std::errc::file_exists);
  try {
    s.register_fd(a.fileno(), readable);
    ADD_FAILURE() << "registered twice";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already registered"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s.register_fd(-1, readable, nullptr, std::nothrow).error(),
            std::errc::bad_file_descriptor);
  Socket closed(Family::inet, Type::stream);
  const int closed_fd = closed.fileno();
  closed.close();
  EXPECT_EQ(s.register_fd(closed_fd, readable, nullptr, std::nothrow).error(),
            std::errc::bad_file_descriptor);
  EXPECT_EQ(s.register_fd(b.fileno(), 8u, nullptr, std::nothrow).error(),
            std::errc::invalid_argument);
  EXPECT_EQ(s.modify(b.fileno(), readable, nullptr, std::nothrow).error(),
            std::errc::no_such_file_or_directory);
  EXPECT_THROW(s.unregister(b.fileno()), Error);
  EXPECT_THROW(s.modify(b.fileno(), readable), Error);
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

TYPED_TEST(SelectorTest, NoInterestMeansNoReport) {
  auto [a, b] = Socket::pair();
  this->selector->register_fd(b.fileno(), 0);
  a.close();
  EXPECT_TRUE(ready_list(*this->selector, 20ms).empty());
  this->selector->unregister(b.fileno());
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
  ::rlimit limit{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &limit), 0);
  const ::rlim_t wanted = FD_SETSIZE + 512;
  if (limit.rlim_max < wanted) GTEST_SKIP() << "hard RLIMIT_NOFILE below " << wanted;
  const ::rlimit saved = limit;
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = wanted;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &limit), 0);
  }
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
  ::setrlimit(RLIMIT_NOFILE, &saved);
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
  ::setenv("WIRE_SELECTOR", "bogus", 1);
  EXPECT_EQ(default_selector_kind(), SelectorKind::epoll);
  ::unsetenv("WIRE_SELECTOR");
}
