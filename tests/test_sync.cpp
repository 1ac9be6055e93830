// Event, Queue, Semaphore, Lock and SendQueue: coroutines on one loop coordinating around
// real loopback sockets, cancelled at every point they can wait.
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "support.hpp"
#include "wire/async.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::read_bytes;

TEST(EventTest, SetWakesEveryWaiterAndStaysSetUntilCleared) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  Event arrived;
  std::string order;
  auto waiter = [](Event& e, std::string& order, char name) -> Task<void> {
    co_await e.wait();
    order += name;
  };
  // The event is set by a task that hears from a real peer.
  auto listener = [](test::AsyncPair& c, Event& e) -> Task<void> {
    (void)co_await read_bytes(c.far, 2);
    e.set();
  };
  for (char name : {'a', 'b', 'c'}) loop.spawn(waiter(arrived, order, name)).detach();
  loop.spawn(listener(c, arrived)).detach();
  loop.call_later(5ms, [&] { c.near.socket().send("go"); });
  loop.run();
  EXPECT_EQ(order, "abc");
  EXPECT_TRUE(arrived.is_set());
  loop.run_until_complete(waiter(arrived, order, 'd'));  // set: no wait
  EXPECT_EQ(order, "abcd");
  arrived.clear();
  EXPECT_FALSE(arrived.is_set());
}

TEST(EventTest, ACancelledWaiterLeavesNoTrace) {
  EventLoop loop;
  Event never_before_timeout;
  auto main_task = [](EventLoop& loop, Event& e) -> Task<std::string> {
    std::string what;
    try {
      co_await with_timeout(5ms, e.wait(), "waiting for the event");
    } catch (const Error& error) {
      what = error.what();
    }
    // The timed-out waiter is gone from the event: setting it touches nothing freed
    // (ASan would say), and a new waiter is woken normally.
    TaskHandle<void> second = loop.spawn([](Event& e) -> Task<void> { co_await e.wait(); }(e));
    co_await wire::yield();
    e.set();
    co_await second;
    co_return what;
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, never_before_timeout)),
            "waiting for the event: timed out after 5 ms");
}

TEST(EventTest, WaitingOutsideALoopIsAClearError) {
  Event e;
  auto waiter = [](Event& e) -> Task<void> { co_await e.wait(); };
  Task<void> task = waiter(e);
  // Driven by hand, with no loop running on this thread.
  auto awaiter = e.wait();
  EXPECT_FALSE(awaiter.await_ready());
  const std::string error = test::error_of([&] { awaiter.await_suspend(task.handle()); });
  EXPECT_NE(error.find("no EventLoop is running"), std::string::npos) << error;
}

// A producer reading a socket feeds a consumer writing another, through a small queue.
TEST(QueueTest, BackpressureKeepsTheQueueWithinItsCapacity) {
  EventLoop loop;
  test::AsyncPair in = test::async_pair(loop);
  test::AsyncPair out = test::async_pair(loop);
  Queue<std::string> chunks(4);
  std::size_t largest = 0;
  auto producer = [](AsyncSocket& from, Queue<std::string>& q, std::size_t& largest) -> Task<void> {
    char buffer[1000];
    for (;;) {
      const std::size_t n = co_await from.recv(std::span<char>(buffer, sizeof buffer));
      if (n == 0) break;
      co_await q.push(std::string(buffer, n));
      largest = std::max(largest, q.size());
    }
    q.close();
  };
  auto consumer = [](EventLoop& loop, Queue<std::string>& q, AsyncSocket& to) -> Task<void> {
    while (auto chunk = co_await q.pop()) {
      co_await loop.sleep(100us);  // slower than the producer
      co_await to.send_all(*chunk);
    }
    to.shutdown(Shutdown::write);
  };
  const std::string data = test::random_bytes(200'000);
  loop.spawn(producer(in.far, chunks, largest)).detach();
  loop.spawn(consumer(loop, chunks, out.near)).detach();
  TaskHandle<std::string> received = loop.spawn(read_bytes(out.far, data.size() + 1));
  auto feed = [](AsyncSocket& to, const std::string& data) -> Task<void> {
    co_await to.send_all(data);
    to.shutdown(Shutdown::write);
  };
  loop.spawn(feed(in.near, data)).detach();
  loop.run();
  EXPECT_EQ(received.result(), data);
  EXPECT_LE(largest, 4u);
  EXPECT_GE(largest, 1u);
}

TEST(QueueTest, CloseLetsConsumersDrainThenEndsThem) {
  EventLoop loop;
  Queue<int> q(8);
  EXPECT_TRUE(q.try_push(1));
  EXPECT_TRUE(q.try_push(2));
  q.close();
  EXPECT_FALSE(q.try_push(3));
  auto drain = [](Queue<int>& q) -> Task<std::vector<int>> {
    std::vector<int> got;
    while (auto item = co_await q.pop()) got.push_back(*item);
    co_return got;
  };
  EXPECT_EQ(loop.run_until_complete(drain(q)), (std::vector<int>{1, 2}));
  auto late_push = [](Queue<int>& q) -> Task<void> { co_await q.push(4); };
  try {
    loop.run_until_complete(late_push(q));
    ADD_FAILURE() << "a push after close must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::broken_pipe);
    EXPECT_STREQ(e.what(), "Queue::push: the queue is closed");
  }
}

TEST(QueueTest, WaitingPushersAndPoppersAreEndedByClose) {
  EventLoop loop;
  Queue<int> full(1);
  Queue<int> empty(1);
  EXPECT_TRUE(full.try_push(0));
  auto pusher = [](Queue<int>& q) -> Task<std::string> {
    try {
      co_await q.push(1);
    } catch (const Error& e) {
      co_return e.what();
    }
    co_return "pushed";
  };
  auto popper = [](Queue<int>& q) -> Task<bool> { co_return (co_await q.pop()).has_value(); };
  TaskHandle<std::string> pushed = loop.spawn(pusher(full));
  TaskHandle<bool> popped = loop.spawn(popper(empty));
  loop.call_later(5ms, [&] {
    full.close();
    empty.close();
  });
  loop.run();
  EXPECT_EQ(pushed.result(), "Queue::push: the queue is closed");
  EXPECT_FALSE(popped.result());
  EXPECT_EQ(full.try_pop(), 0) << "what was queued before close stays";
}

TEST(QueueTest, FirstComeFirstServedOnBothSides) {
  EventLoop loop;
  Queue<std::string> q(1);
  std::string order;
  auto pusher = [](Queue<std::string>& q, std::string item) -> Task<void> {
    co_await q.push(std::move(item));
  };
  auto popper = [](Queue<std::string>& q, std::string& order) -> Task<void> {
    auto item = co_await q.pop();
    order += *item;
  };
  auto main_task = [](Queue<std::string>& q, std::string& order, auto pusher,
                      auto popper) -> Task<void> {
    TaskGroup group;
    for (const char* item : {"1", "2", "3", "4"}) group.spawn(pusher(q, item));
    co_await wire::yield();
    co_await wire::yield();
    EXPECT_EQ(q.size(), 1u);  // "1" is queued; 2, 3 and 4 wait in line
    for (int i = 0; i < 4; ++i) group.spawn(popper(q, order));
    co_await group.join();
  };
  loop.run_until_complete(main_task(q, order, pusher, popper));
  EXPECT_EQ(order, "1234");
}

// A popper handed an item but cancelled before it ran gives it back, first in line.
TEST(QueueTest, ACancelledPopperGivesItsItemBack) {
  EventLoop loop;
  Queue<std::string> q(2);
  auto popper = [](Queue<std::string>& q) -> Task<std::string> { co_return *co_await q.pop(); };
  auto main_task = [](EventLoop& loop, Queue<std::string>& q, auto popper) -> Task<std::string> {
    TaskHandle<std::string> waiting = loop.spawn(popper(q));
    co_await wire::yield();            // it waits in pop now
    EXPECT_TRUE(q.try_push("first"));  // handed straight to it...
    EXPECT_TRUE(q.try_push("second"));
    waiting.cancel();  // ...which is cancelled before it runs
    co_await wire::yield();
    EXPECT_TRUE(waiting.cancelled());
    EXPECT_EQ(q.size(), 2u);
    std::string both = *co_await q.pop();
    both += "," + *co_await q.pop();
    co_return both;
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, q, popper)), "first,second");
}

// Pushers cancelled while waiting for room leave no item behind and no gap in line.
TEST(QueueTest, ACancelledPusherLeavesNothingBehind) {
  EventLoop loop;
  Queue<int> q(1);
  EXPECT_TRUE(q.try_push(1));
  auto pusher = [](Queue<int>& q, int item) -> Task<void> { co_await q.push(item); };
  auto main_task = [](EventLoop& loop, Queue<int>& q, auto pusher) -> Task<std::vector<int>> {
    TaskHandle<void> two = loop.spawn(pusher(q, 2));
    TaskHandle<void> three = loop.spawn(pusher(q, 3));
    co_await wire::yield();
    two.cancel();
    co_await wire::yield();
    std::vector<int> got;
    got.push_back(*co_await q.pop());
    got.push_back(*co_await q.pop());
    co_await three;
    EXPECT_TRUE(q.empty());
    co_return got;
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop, q, pusher)), (std::vector<int>{1, 3}));
}

TEST(QueueTest, AQueueWithNoRoomIsRefused) {
  const std::string error = test::error_of([] { Queue<int> q(0); });
  EXPECT_EQ(error, "Queue: a queue needs room for at least one item");
}

TEST(SemaphoreTest, BoundsConcurrencyAndServesInOrder) {
  EventLoop loop;
  Semaphore slots(2);
  int inside = 0;
  int most = 0;
  std::string order;
  auto worker = [](EventLoop& loop, Semaphore& s, int& inside, int& most, std::string& order,
                   char name) -> Task<void> {
    auto permit = co_await s.hold();
    order += name;
    most = std::max(most, ++inside);
    co_await loop.sleep(2ms);
    --inside;
  };
  for (char name : std::string("abcdef")) {
    loop.spawn(worker(loop, slots, inside, most, order, name)).detach();
  }
  loop.run();
  EXPECT_EQ(most, 2);
  EXPECT_EQ(order, "abcdef");
  EXPECT_EQ(slots.available(), 2u);
}

// Handed a permit, cancelled before it ran: the permit goes to the next in line.
TEST(SemaphoreTest, ACancelledWaiterPassesItsPermitOn) {
  EventLoop loop;
  Semaphore s(1);
  ASSERT_TRUE(s.try_acquire());
  auto acquirer = [](Semaphore& s) -> Task<void> { co_await s.acquire(); };
  auto main_task = [](EventLoop& loop, Semaphore& s, auto acquirer) -> Task<void> {
    TaskHandle<void> first = loop.spawn(acquirer(s));
    TaskHandle<void> second = loop.spawn(acquirer(s));
    co_await wire::yield();
    s.release();                                   // handed to `first`...
    first.cancel();                                // ...which never runs
    co_await with_timeout(1s, std::move(second));  // `second` gets it instead
    EXPECT_TRUE(first.cancelled());
    EXPECT_EQ(s.available(), 0u);
    s.release();
  };
  loop.run_until_complete(main_task(loop, s, acquirer));
  EXPECT_EQ(s.available(), 1u);
}

TEST(LockTest, OneCoroutineAtATimeAcrossSuspensions) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  Lock lock;
  // Each writer sends a message in three pieces with waits between: under the lock the
  // pieces of two writers never interleave on the wire.
  auto writer = [](EventLoop& loop, Lock& lock, AsyncSocket& conn, char name) -> Task<void> {
    for (int round = 0; round < 3; ++round) {
      auto held = co_await lock.lock();
      for (int piece = 0; piece < 3; ++piece) {
        co_await conn.send_all(std::string(1, name));
        co_await loop.sleep(100us);
      }
    }
  };
  loop.spawn(writer(loop, lock, c.near, 'a')).detach();
  loop.spawn(writer(loop, lock, c.near, 'b')).detach();
  TaskHandle<std::string> got = loop.spawn(read_bytes(c.far, 18));
  loop.run();
  const std::string wire_bytes = got.result();
  ASSERT_EQ(wire_bytes.size(), 18u);
  for (std::size_t i = 0; i < wire_bytes.size(); i += 3) {
    EXPECT_EQ(wire_bytes.substr(i, 3), std::string(3, wire_bytes[i])) << wire_bytes;
  }
  EXPECT_FALSE(lock.locked());
}

// Many coroutines send to one socket at once: no EBUSY, each message whole, each sender's
// messages in order.
TEST(SendQueueTest, ManySendersOneSocketEveryMessageWholeAndInOrder) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  SendQueue out(c.near, 8);
  auto sender = [](SendQueue& out, int id) -> Task<void> {
    for (int i = 0; i < 50; ++i) {
      const std::string message =
          "<" + std::to_string(id) + ":" + std::to_string(i) + ":" + std::string(300, 'x') + ">";
      EXPECT_TRUE(co_await out.send(message));
    }
  };
  auto all = [](SendQueue& out, auto sender) -> Task<void> {
    TaskGroup group;
    for (int id = 0; id < 10; ++id) group.spawn(sender(out, id));
    co_await group.join();
    co_await out.drain();
  };
  TaskHandle<std::string> got = loop.spawn(read_bytes(c.far, 10 * 50 * 310));
  loop.spawn([](test::AsyncPair& c, SendQueue& out, auto all, auto sender) -> Task<void> {
        co_await all(out, sender);
        c.near.shutdown(Shutdown::write);
      }(c, out, all, sender))
      .detach();
  loop.run();
  EXPECT_FALSE(out.failed());
  const std::string text = got.result();
  std::map<int, int> next;
  std::size_t at = 0;
  int messages = 0;
  while (at < text.size()) {
    ASSERT_EQ(text[at], '<') << "a message was cut at byte " << at;
    const std::size_t end = text.find('>', at);
    ASSERT_NE(end, std::string::npos);
    const std::string body = text.substr(at + 1, end - at - 1);
    const int id = std::stoi(body);
    const int seq = std::stoi(body.substr(body.find(':') + 1));
    EXPECT_EQ(seq, next[id]++) << "sender " << id << " out of order";
    at = end + 1;
    ++messages;
  }
  EXPECT_EQ(messages, 500);
}

// A peer that stops reading is that peer's failure: its queue fails once the socket's
// timeout passes, the broadcaster sees false (never an exception), and the other peer
// gets every message.
TEST(SendQueueTest, ASlowPeerFailsItsOwnQueueNotTheSender) {
  EventLoop loop;
  test::AsyncPair slow = test::async_pair(loop);
  test::AsyncPair fast = test::async_pair(loop);
  slow.near.socket().set_option(option::send_buffer_size, 4096);
  slow.near.set_timeout(50ms);
  SendQueue to_slow(slow.near, 4);
  SendQueue to_fast(fast.near, 4);
  struct Tally {
    int refused_by_slow = 0;
  } tally;
  auto broadcaster = [](EventLoop& loop, SendQueue& a, SendQueue& b, Tally& tally) -> Task<void> {
    const std::string message(10'000, 'm');
    for (int i = 0; i < 200; ++i) {
      if (!a.try_send(message)) ++tally.refused_by_slow;  // never waits for the slow one
      EXPECT_TRUE(co_await b.send(message));
      if (i % 20 == 0) co_await loop.sleep(5ms);
    }
    co_await b.drain();
    // Keep offering to the slow one until its kernel buffers are full and its timeout
    // passes (bounded: 4 s at most), then let it go.
    for (int i = 0; i < 800 && !a.failed(); ++i) {
      if (!a.try_send(message)) ++tally.refused_by_slow;
      co_await loop.sleep(5ms);
    }
    a.close();
  };
  TaskHandle<std::string> got = loop.spawn(read_bytes(fast.far, 200 * 10'000));
  loop.spawn(broadcaster(loop, to_slow, to_fast, tally)).detach();
  loop.run();
  EXPECT_EQ(got.result().size(), 200u * 10'000u);
  EXPECT_TRUE(to_slow.failed());
  EXPECT_EQ(to_slow.error(), errc::timed_out);
  EXPECT_GT(tally.refused_by_slow, 0);
  EXPECT_FALSE(to_fast.failed());
}

// A peer that resets: EPIPE / ECONNRESET for its queue, and no SIGPIPE for the process.
TEST(SendQueueTest, APeerThatResetsFailsItsQueueWithoutASignal) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  SendQueue out(c.near, 4);
  c.far.socket().set_option(option::linger, std::chrono::seconds(0));
  c.far.close();  // RST
  auto sender = [](EventLoop& loop, SendQueue& out) -> Task<int> {
    int accepted = 0;
    for (int i = 0; i < 100 && !out.failed(); ++i) {
      if (co_await out.send(std::string(1000, 'z'))) ++accepted;
      co_await loop.sleep(1ms);
    }
    co_return accepted;
  };
  loop.run_until_complete(sender(loop, out));
  EXPECT_TRUE(out.failed());
  EXPECT_TRUE(out.error() == std::errc::broken_pipe || out.error() == std::errc::connection_reset)
      << out.error().message();
}

// Destroying a queue with messages still waiting cancels its writer at once.
TEST(SendQueueTest, DestroyingTheQueueEndsItsWriter) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  {
    SendQueue out(c.near, 4);
    EXPECT_TRUE(out.try_send("never written"));
  }
  loop.run();  // nothing left: the writer is gone
  EXPECT_EQ(loop.task_count(), 0u);
  // The socket is still usable by its owner.
  c.near.socket().send("direct");
  EXPECT_EQ(loop.run_until_complete(read_bytes(c.far, 6)), "direct");
}

// A primitive destroyed while tasks wait on it: each waiter is woken with a clear error
// and never touches the dead primitive (ASan would say).
TEST(SyncLifetimeTest, DestroyingAPrimitiveWakesItsWaitersWithAnError) {
  EventLoop loop;
  auto event = std::make_unique<Event>();
  auto empty = std::make_unique<Queue<int>>(1);
  auto full = std::make_unique<Queue<int>>(1);
  auto semaphore = std::make_unique<Semaphore>(0);
  ASSERT_TRUE(full->try_push(1));
  auto expect_error = [](auto awaitable) -> Task<std::string> {
    try {
      co_await std::move(awaitable);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), std::errc::operation_canceled);
      co_return e.what();
    }
    co_return "no error";
  };
  TaskHandle<std::string> on_event = loop.spawn(expect_error(event->wait()));
  auto expect_end = [](auto awaitable) -> Task<bool> {
    const auto item = co_await std::move(awaitable);
    co_return !item.has_value();
  };
  TaskHandle<bool> on_pop = loop.spawn(expect_end(empty->pop()));
  TaskHandle<std::string> on_push = loop.spawn(expect_error(full->push(2)));
  TaskHandle<std::string> on_acquire = loop.spawn(expect_error(semaphore->acquire()));
  loop.call_later(5ms, [&] {
    event.reset();
    empty.reset();
    full.reset();
    semaphore.reset();
  });
  loop.run();
  EXPECT_EQ(on_event.result(), "Event::wait: it was destroyed while this task waited on it");
  EXPECT_TRUE(on_pop.result()) << "a destroyed queue ends its poppers like a closed one";
  EXPECT_EQ(on_push.result(), "Queue::push: it was destroyed while this task waited on it");
  EXPECT_EQ(on_acquire.result(),
            "Semaphore::acquire: it was destroyed while this task waited on it");
}

TEST(LockTest, UnlockingALockNobodyHoldsIsRefused) {
  Lock lock;
  EXPECT_EQ(test::error_of([&] { lock.unlock(); }), "Lock::unlock: the lock is not locked");
  ASSERT_TRUE(lock.try_lock());
  EXPECT_FALSE(lock.try_lock());
  lock.unlock();
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.try_lock()) << "still a lock: one holder at a time";
  EXPECT_FALSE(lock.try_lock());
}
