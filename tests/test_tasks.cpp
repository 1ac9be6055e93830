// Task handles, task groups, when_all / when_any, yield and with_timeout's names, through
// real loopback TCP connections.
#include <fcntl.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"
#include "wire/async.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::read_bytes;

namespace {

Task<void> send_later(EventLoop& loop, AsyncSocket& conn, std::string text,
                      std::chrono::milliseconds delay) {
  co_await loop.sleep(delay);
  co_await conn.send_all(text);
}

Task<int> fail_after(EventLoop& loop, std::chrono::milliseconds delay, std::string why) {
  co_await loop.sleep(delay);
  throw std::runtime_error(why);
}

bool fd_is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

// Collects what reaches the loop's exception handler.
struct Reported {
  std::vector<std::string> messages;
  void attach(EventLoop& loop) {
    loop.set_exception_handler([this](std::exception_ptr error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        messages.push_back(e.what());
      }
    });
  }
};

}  // namespace

TEST(TaskHandleTest, JoinGivesTheValueOfATaskReadingFromAPeer) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  auto main_task = [](EventLoop& loop, test::AsyncPair& c) -> Task<std::string> {
    TaskHandle<std::string> reader = loop.spawn(read_bytes(c.far, 5));
    EXPECT_FALSE(reader.done());
    co_await c.near.send_all("hello");
    std::string got = co_await reader;
    EXPECT_TRUE(reader.done());
    EXPECT_FALSE(reader.cancelled());
    co_return got;
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, c)), "hello");
}

TEST(TaskHandleTest, JoinRethrowsTheTasksException) {
  EventLoop loop;
  Reported reported;
  reported.attach(loop);
  auto main_task = [](EventLoop& loop) -> Task<std::string> {
    TaskHandle<int> failing = loop.spawn(fail_after(loop, 5ms, "disk on fire"));
    try {
      co_await failing;
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop)), "disk on fire");
  EXPECT_TRUE(reported.messages.empty()) << "a joined exception is not also reported";
}

TEST(TaskHandleTest, CancelWithdrawsTheWaitAndLeavesTheSocketToItsOwner) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  auto main_task = [](EventLoop& loop, test::AsyncPair& c) -> Task<std::string> {
    TaskHandle<std::string> reader = loop.spawn(read_bytes(c.far, 5));
    co_await loop.sleep(10ms);  // the reader now waits in recv
    EXPECT_TRUE(reader.cancel());
    EXPECT_TRUE(reader.cancel()) << "asking twice is harmless";
    std::string outcome;
    try {
      co_await reader;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), std::errc::operation_canceled);
      outcome = e.what();
    }
    EXPECT_TRUE(reader.cancelled());
    EXPECT_FALSE(reader.cancel()) << "a settled task cannot be cancelled";
    // The socket is still open, and a new reader gets no EBUSY: the old wait is gone.
    EXPECT_TRUE(fd_is_open(c.far.fileno()));
    co_await c.near.send_all("after");
    EXPECT_EQ(co_await read_bytes(c.far, 5), "after");
    co_return outcome;
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, c)), "join task: the task was cancelled");
}

TEST(TaskHandleTest, ATaskThatCancelsItselfEndsAtItsNextSuspension) {
  EventLoop loop;
  struct Seen {
    TaskHandle<void>* self = nullptr;
    bool before = false;
    bool after = false;
  } seen;
  auto self_cancelling = [](EventLoop& loop, Seen& seen) -> Task<void> {
    co_await loop.sleep(1ms);
    seen.self->cancel();
    seen.before = true;  // still running: cancellation waits for the next suspension
    co_await loop.sleep(1ms);
    seen.after = true;
  };
  auto main_task = [](EventLoop& loop, Seen& seen, auto body) -> Task<void> {
    TaskHandle<void> handle = loop.spawn(body(loop, seen));
    seen.self = &handle;
    try {
      co_await handle;
    } catch (const Error&) {
    }
    EXPECT_TRUE(handle.cancelled());
  };
  loop.run_until_complete(main_task(loop, seen, self_cancelling));
  EXPECT_TRUE(seen.before);
  EXPECT_FALSE(seen.after);
}

TEST(TaskHandleTest, ADroppedHandleDetachesAndItsExceptionIsReported) {
  EventLoop loop;
  Reported reported;
  reported.attach(loop);
  test::AsyncPair c = test::async_pair(loop);
  // Dropped at once: the task runs on, and its failure reaches the handler.
  (void)loop.spawn(fail_after(loop, 1ms, "detached failure"));
  // Dropped after it failed, never joined: reported when dropped.
  std::optional<TaskHandle<int>> kept = loop.spawn(fail_after(loop, 1ms, "never joined"));
  // Detached and succeeding: it still does its work.
  loop.spawn(send_later(loop, c.near, "done", 1ms)).detach();
  loop.call_later(30ms, [&] { loop.stop(); });
  loop.run();
  EXPECT_EQ(reported.messages, std::vector<std::string>{"detached failure"});
  ASSERT_TRUE(kept->done());
  kept.reset();
  EXPECT_EQ(reported.messages, (std::vector<std::string>{"detached failure", "never joined"}));
  Socket& far = c.far.socket();
  char buffer[8];
  EXPECT_EQ(far.recv(std::span<char>(buffer, sizeof buffer)), 4u);
}

TEST(TaskHandleTest, ResultIsTheOutcomeWithoutWaiting) {
  EventLoop loop;
  auto answer = []() -> Task<int> { co_return 42; };
  TaskHandle<int> handle = loop.spawn(answer());
  try {
    (void)handle.result();
    ADD_FAILURE() << "a task not started has no result";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::resource_unavailable_try_again);
  }
  loop.run();
  EXPECT_EQ(handle.result(), 42);
  EXPECT_THROW((void)handle.result(), Error) << "the value is moved out once";
}

TEST(TaskHandleTest, TwoJoinersAtOnceAreRefusedClearly) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  TaskHandle<std::string> reader = loop.spawn(read_bytes(c.far, 2));
  auto join = [](TaskHandle<std::string>& h) -> Task<std::string> { co_return co_await h; };
  TaskHandle<std::string> first = loop.spawn(join(reader));
  TaskHandle<std::string> second = loop.spawn(join(reader));
  loop.spawn(send_later(loop, c.near, "ok", 5ms)).detach();
  loop.run();
  EXPECT_EQ(first.result(), "ok");
  const std::string error = test::error_of([&] { (void)second.result(); });
  EXPECT_NE(error.find("already waiting"), std::string::npos) << error;
}

TEST(TaskHandleTest, AHandleOutlivingItsLoopReadsAsCancelled) {
  TaskHandle<int> handle;
  {
    EventLoop loop;
    handle = loop.spawn(fail_after(loop, 1h, "never"));
    loop.call_later(5ms, [&] { loop.stop(); });
    loop.run();
    EXPECT_FALSE(handle.done());
  }
  EXPECT_TRUE(handle.done());
  EXPECT_TRUE(handle.cancelled());
  EXPECT_FALSE(handle.cancel());
}

// run() used to return while a task still waited on something the loop does not watch
// (here: a hand-written awaitable woken from another thread).
TEST(TaskHandleTest, RunStaysAliveForATaskWaitingOnItsOwnAwaitable) {
  EventLoop loop;
  struct Mailbox {
    std::coroutine_handle<> waiting;
    std::string letter;
  } mailbox;
  struct WaitForLetter {
    Mailbox& box;
    bool await_ready() const noexcept { return !box.letter.empty(); }
    void await_suspend(std::coroutine_handle<> h) noexcept { box.waiting = h; }
    std::string await_resume() const { return box.letter; }
  };
  auto reader = [](Mailbox& box) -> Task<std::string> { co_return co_await WaitForLetter{box}; };
  std::thread postman([&] {
    std::this_thread::sleep_for(50ms);
    loop.call_soon_threadsafe([&] {
      mailbox.letter = "hello from another thread";
      mailbox.waiting.resume();
    });
  });
  EXPECT_EQ(loop.run_until_complete(reader(mailbox)), "hello from another thread");
  postman.join();
}

TEST(TaskGroupTest, JoinWaitsForEveryChild) {
  EventLoop loop;
  test::AsyncPair a = test::async_pair(loop);
  test::AsyncPair b = test::async_pair(loop);
  auto main_task = [](EventLoop& loop, test::AsyncPair& a,
                      test::AsyncPair& b) -> Task<std::string> {
    TaskGroup group;
    TaskHandle<std::string> from_a = group.spawn(read_bytes(a.far, 3));
    TaskHandle<std::string> from_b = group.spawn(read_bytes(b.far, 3));
    group.spawn(send_later(loop, a.near, "aaa", 5ms));
    group.spawn(send_later(loop, b.near, "bbb", 10ms));
    EXPECT_EQ(group.running(), 4u);
    co_await group.join();
    EXPECT_EQ(group.running(), 0u);
    co_return from_a.result() + from_b.result();
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, a, b)), "aaabbb");
}

TEST(TaskGroupTest, TheFirstExceptionCancelsTheRestAndIsRethrown) {
  EventLoop loop;
  Reported reported;
  reported.attach(loop);
  test::AsyncPair c = test::async_pair(loop);
  auto main_task = [](EventLoop& loop, test::AsyncPair& c) -> Task<std::string> {
    TaskGroup group;
    TaskHandle<std::string> reader = group.spawn(read_bytes(c.far, 5));  // never gets 5
    group.spawn(fail_after(loop, 5ms, "first"));
    std::string what;
    try {
      co_await group.join();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
    EXPECT_TRUE(reader.cancelled());
    EXPECT_TRUE(fd_is_open(c.far.fileno()));
    // A child spawned into a failed group is cancelled before it runs.
    TaskHandle<std::string> late = group.spawn(read_bytes(c.far, 1));
    co_await group.join_settled();
    EXPECT_TRUE(late.cancelled());
    co_return what;
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, c)), "first");
  EXPECT_TRUE(reported.messages.empty());
}

// Closing a socket fails its reader and its writer in the same step, before the first
// failure's cancellation can take effect: the second failure is reported, not lost.
TEST(TaskGroupTest, ASecondFailureIsReportedNotLost) {
  EventLoop loop;
  Reported reported;
  reported.attach(loop);
  test::AsyncPair c = test::async_pair(loop);
  auto writer = [](AsyncSocket& conn) -> Task<void> {
    const std::string block(1 << 20, 'x');
    for (;;) co_await conn.send_all(block);  // the peer never reads: it fills and waits
  };
  auto closer = [](EventLoop& loop, AsyncSocket& conn) -> Task<void> {
    co_await loop.sleep(20ms);
    conn.close();
  };
  auto main_task = [](EventLoop& loop, test::AsyncPair& c, auto writer,
                      auto closer) -> Task<std::string> {
    TaskGroup group;
    group.spawn(read_bytes(c.far, 1));
    group.spawn(writer(c.far));
    group.spawn(closer(loop, c.far));
    try {
      co_await group.join();
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "";
  };
  const std::string first = loop.run_until_complete(main_task(loop, c, writer, closer));
  EXPECT_NE(first.find("recv"), std::string::npos) << first;
  ASSERT_EQ(reported.messages.size(), 1u);
  EXPECT_NE(reported.messages[0].find("send_all"), std::string::npos) << reported.messages[0];
}

// The children use the parent's locals: cancelling the parent must end them with it.
TEST(TaskGroupTest, CancellingTheParentDestroysItsChildrenAtOnce) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  struct Alive {
    int count = 0;
  } alive;
  auto reader = [](AsyncSocket& conn, Alive& alive, std::string& parents_local) -> Task<void> {
    ++alive.count;
    struct Leave {
      Alive& alive;
      ~Leave() { --alive.count; }
    } leave{alive};
    char buffer[16];
    (void)co_await conn.recv(std::span<char>(buffer, sizeof buffer));
    parents_local += "touched";  // would be a use after free if the parent were gone
  };
  auto sleeper = [](EventLoop& loop, Alive& alive) -> Task<void> {
    ++alive.count;
    struct Leave {
      Alive& alive;
      ~Leave() { --alive.count; }
    } leave{alive};
    co_await loop.sleep(1h);
  };
  auto parent = [](EventLoop& loop, AsyncSocket& conn, Alive& alive, auto reader,
                   auto sleeper) -> Task<void> {
    std::string local = "parent's";
    TaskGroup group;
    group.spawn(reader(conn, alive, local));
    group.spawn(sleeper(loop, alive));
    co_await group.join();
  };
  TaskHandle<void> handle = loop.spawn(parent(loop, c.far, alive, reader, sleeper));
  loop.call_later(10ms, [&] {
    EXPECT_EQ(alive.count, 2);
    EXPECT_TRUE(handle.cancel());
  });
  loop.call_later(20ms, [&] {
    EXPECT_TRUE(handle.cancelled());
    EXPECT_EQ(alive.count, 0);
    c.near.socket().send("late");  // nobody reads it any more
  });
  const auto start = std::chrono::steady_clock::now();
  loop.run();  // returns: no task, timer or wait is left
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  EXPECT_EQ(alive.count, 0);
  EXPECT_TRUE(fd_is_open(c.far.fileno()));
}

TEST(WhenTest, WhenAllReturnsEveryValueInOrder) {
  EventLoop loop;
  test::AsyncPair a = test::async_pair(loop);
  test::AsyncPair b = test::async_pair(loop);
  auto main_task = [](EventLoop& loop, test::AsyncPair& a,
                      test::AsyncPair& b) -> Task<std::string> {
    auto [got_a, got_b, sent] = co_await when_all(read_bytes(a.far, 2), read_bytes(b.far, 2),
                                                  send_later(loop, b.near, "bb", 1ms));
    static_assert(std::is_same_v<decltype(sent), std::monostate>);
    co_return got_a + "|" + got_b;
  };
  a.near.socket().send("aa");
  EXPECT_EQ(loop.run_until_complete(main_task(loop, a, b)), "aa|bb");
}

TEST(WhenTest, WhenAllRethrowsAndCancelsTheRest) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  auto main_task = [](EventLoop& loop, test::AsyncPair& c) -> Task<std::string> {
    try {
      co_await when_all(read_bytes(c.far, 5), fail_after(loop, 2ms, "broken"));
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, c)), "broken");
  // The reader is gone: a new one may wait on the socket.
  c.near.socket().send("x");
  EXPECT_EQ(loop.run_until_complete(read_bytes(c.far, 1)), "x");
}

TEST(WhenTest, WhenAnyGivesTheFirstAndEndsTheOthers) {
  EventLoop loop;
  test::AsyncPair a = test::async_pair(loop);
  test::AsyncPair b = test::async_pair(loop);
  auto main_task = [](test::AsyncPair& a, test::AsyncPair& b) -> Task<std::string> {
    auto [index, value] = co_await when_any(read_bytes(a.far, 3), read_bytes(b.far, 3));
    co_return std::to_string(index) + ":" + value;
  };
  b.near.socket().send("bbb");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(loop.run_until_complete(main_task(a, b)), "1:bbb");
  // The loser waits no more: the next reader of `a` is not refused.
  a.near.socket().send("aaa");
  EXPECT_EQ(loop.run_until_complete(read_bytes(a.far, 3)), "aaa");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(WhenTest, WhenAnyRethrowsTheWinnersException) {
  EventLoop loop;
  auto main_task = [](EventLoop& loop) -> Task<std::string> {
    try {
      co_await when_any(fail_after(loop, 1ms, "fast failure"), fail_after(loop, 1h, "slow"));
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(loop.run_until_complete(main_task(loop)), "fast failure");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "the hour-long sleep was cancelled";
}

TEST(YieldTest, YieldLetsTheOtherReadyTasksRunFirst) {
  EventLoop loop;
  std::string order;
  auto worker = [](std::string& order, char name) -> Task<void> {
    for (int i = 0; i < 3; ++i) {
      order += name;
      co_await wire::yield();
    }
  };
  loop.spawn(worker(order, 'a')).detach();
  loop.spawn(worker(order, 'b')).detach();
  loop.run();
  EXPECT_EQ(order, "ababab");
}

TEST(YieldTest, ACancelledYielderIsNotResumed) {
  EventLoop loop;
  bool resumed = false;
  auto yielder = [](bool& resumed) -> Task<void> {
    co_await wire::yield();
    resumed = true;
  };
  auto main_task = [](EventLoop& loop, bool& resumed, auto yielder) -> Task<void> {
    TaskHandle<void> h = loop.spawn(yielder(resumed));
    co_await wire::yield();  // h has started and now waits in its yield
    h.cancel();
    co_await wire::yield();
    co_await wire::yield();
  };
  loop.run_until_complete(main_task(loop, resumed, yielder));
  EXPECT_FALSE(resumed);
}

TEST(WithTimeoutTest, TheErrorNamesTheOperationThePeerAndTheDuration) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  const std::string peer = c.far.socket().describe();
  auto main_task = [](test::AsyncPair& c) -> Task<std::string> {
    char buffer[8];
    try {
      co_await with_timeout(30ms, c.far.recv(std::span<char>(buffer, sizeof buffer)));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::timed_out);
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(loop.run_until_complete(main_task(c)), "recv " + peer + ": timed out after 30 ms");

  auto named = [](EventLoop& loop) -> Task<std::string> {
    try {
      co_await with_timeout(1500ms, loop.sleep(1h), "waiting for the bell");
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(loop.run_until_complete(named(loop)), "waiting for the bell: timed out after 1.5 s");
  auto unnamed = [](EventLoop& loop) -> Task<std::string> {
    try {
      co_await with_timeout(2ms, loop.sleep(1h));
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(loop.run_until_complete(unnamed(loop)), "with_timeout: timed out after 2 ms");
}

// A group destroyed while a task other than its owner waits in join: that task is told.
TEST(TaskGroupTest, AJoinerOfADestroyedGroupIsToldNotLeftWaiting) {
  EventLoop loop;
  auto group = std::make_unique<TaskGroup>(loop);
  auto sleeper = [](EventLoop& loop) -> Task<void> { co_await loop.sleep(1h); };
  group->spawn(sleeper(loop));
  auto joiner = [](TaskGroup& g) -> Task<std::string> {
    try {
      co_await g.join();
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "joined";
  };
  TaskHandle<std::string> waiting = loop.spawn(joiner(*group));
  loop.call_later(5ms, [&] { group.reset(); });
  loop.run();
  EXPECT_EQ(waiting.result(),
            "join task group: the group was destroyed while this task waited on it");
}

// The handle a task joins through is dropped while it waits: the result is still there.
TEST(TaskHandleTest, AJoinerOutlivesADroppedHandle) {
  EventLoop loop;
  auto answer = [](EventLoop& loop) -> Task<int> {
    co_await loop.sleep(5ms);
    co_return 7;
  };
  auto handle = std::make_unique<TaskHandle<int>>(loop.spawn(answer(loop)));
  auto joiner = [](TaskHandle<int>& h) -> Task<int> { co_return co_await h; };
  TaskHandle<int> joined = loop.spawn(joiner(*handle));
  loop.call_later(1ms, [&] { handle.reset(); });
  loop.run();
  EXPECT_EQ(joined.result(), 7);
}
