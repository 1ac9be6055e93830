// The ways in and out of the loop's thread: run_in_thread, call_soon_threadsafe and
// add_signal_handler, with real sockets served while they work. Runs under TSan.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

TEST(RunInThreadTest, GivesTheValueBackOnTheLoopsThread) {
  EventLoop loop;
  auto main_task = [](EventLoop& loop) -> Task<bool> {
    const auto loop_thread = std::this_thread::get_id();
    const auto worker = co_await loop.run_in_thread([] { return std::this_thread::get_id(); });
    EXPECT_NE(worker, loop_thread);
    EXPECT_EQ(std::this_thread::get_id(), loop_thread) << "resumed on the loop's thread";
    const int sum = co_await loop.run_in_thread([] { return 40 + 2; });
    co_await loop.run_in_thread([] {});  // void
    co_return sum == 42;
  };
  EXPECT_TRUE(loop.run_until_complete(main_task(loop)));
}

TEST(RunInThreadTest, RethrowsTheFunctionsException) {
  EventLoop loop;
  auto main_task = [](EventLoop& loop) -> Task<std::string> {
    try {
      co_await loop.run_in_thread([]() -> int { throw std::runtime_error("no such file"); });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "";
  };
  EXPECT_EQ(loop.run_until_complete(main_task(loop)), "no such file");
}

// The point of it: blocking work does not stall the connections the loop serves.
TEST(RunInThreadTest, TheLoopKeepsServingWhileAJobBlocks) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  auto echo = [](AsyncSocket& conn) -> Task<void> {
    char buffer[64];
    for (;;) {
      const std::size_t n = co_await conn.recv(std::span<char>(buffer, sizeof buffer));
      if (n == 0) co_return;
      co_await conn.send_all(std::string_view(buffer, n));
    }
  };
  auto client = [](EventLoop& loop, AsyncSocket& conn) -> Task<int> {
    int round_trips = 0;
    const auto until = std::chrono::steady_clock::now() + 200ms;
    char buffer[8];
    while (std::chrono::steady_clock::now() < until) {
      co_await conn.send_all("ping");
      std::size_t got = 0;
      while (got < 4) got += co_await conn.recv(std::span<char>(buffer + got, 4 - got));
      ++round_trips;
      co_await loop.sleep(1ms);
    }
    co_return round_trips;
  };
  auto main_task = [](EventLoop& loop, test::AsyncPair& c, auto client) -> Task<int> {
    TaskHandle<int> pinger = loop.spawn(client(loop, c.near));
    co_await loop.run_in_thread([] { std::this_thread::sleep_for(300ms); });  // blocks a worker
    EXPECT_TRUE(pinger.done()) << "the client finished while the job blocked";
    co_return co_await pinger;
  };
  loop.spawn(echo(c.far)).detach();
  const int round_trips = loop.run_until_complete(main_task(loop, c, client));
  EXPECT_GT(round_trips, 10);
}

TEST(RunInThreadTest, AtMostTheWorkerLimitRunAtOnce) {
  EventLoop loop;
  std::atomic<int> inside{0};
  std::atomic<int> most{0};
  auto job = [](EventLoop& loop, std::atomic<int>& inside, std::atomic<int>& most) -> Task<void> {
    co_await loop.run_in_thread([&inside, &most] {
      const int now = ++inside;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(30ms);
      --inside;
    });
  };
  auto main_task = [](EventLoop& loop, std::atomic<int>& inside, std::atomic<int>& most,
                      auto job) -> Task<void> {
    TaskGroup group;
    for (int i = 0; i < 12; ++i) group.spawn(job(loop, inside, most));
    co_await group.join();
  };
  loop.run_until_complete(main_task(loop, inside, most, job));
  EXPECT_EQ(most.load(), static_cast<int>(EventLoop::max_worker_threads));
}

// A cancelled waiter cannot stop the thread; the result is dropped, nothing is resumed.
TEST(RunInThreadTest, CancellingTheWaiterDropsTheResult) {
  EventLoop loop;
  auto waiter = [](EventLoop& loop) -> Task<std::string> {
    co_return co_await loop.run_in_thread([] {
      std::this_thread::sleep_for(50ms);
      return std::string("too late");
    });
  };
  auto main_task = [](EventLoop& loop, auto waiter) -> Task<void> {
    TaskHandle<std::string> h = loop.spawn(waiter(loop));
    co_await loop.sleep(5ms);
    EXPECT_TRUE(h.cancel());
    co_await loop.sleep(100ms);  // the job finishes meanwhile and finds nobody
    EXPECT_TRUE(h.cancelled());
  };
  loop.run_until_complete(main_task(loop, waiter));
}

// Destroying the loop waits for a running job instead of leaving it a dangling loop.
TEST(RunInThreadTest, DestroyingTheLoopWaitsForARunningJob) {
  std::atomic<bool> finished{false};
  {
    EventLoop loop;
    auto waiter = [](EventLoop& loop, std::atomic<bool>& finished) -> Task<void> {
      co_await loop.run_in_thread([&finished] {
        std::this_thread::sleep_for(50ms);
        finished = true;
      });
    };
    loop.spawn(waiter(loop, finished)).detach();
    loop.call_later(5ms, [&] { loop.stop(); });
    loop.run();
  }
  EXPECT_TRUE(finished.load());
}

TEST(CallSoonThreadsafeTest, EveryCallbackFromManyThreadsRunsOnTheLoop) {
  EventLoop loop;
  const auto loop_thread = std::this_thread::get_id();
  int ran = 0;
  bool all_on_loop_thread = true;
  Event all_done;
  auto waiter = [](Event& done) -> Task<void> { co_await done.wait(); };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) {
        loop.call_soon_threadsafe([&] {
          all_on_loop_thread &= std::this_thread::get_id() == loop_thread;
          if (++ran == 1000) all_done.set();
        });
      }
    });
  }
  loop.run_until_complete(waiter(all_done));
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(ran, 1000);
  EXPECT_TRUE(all_on_loop_thread);
}

TEST(SignalHandlerTest, ASignalFromAnotherProcessRunsTheCallbackOnTheLoop) {
  EventLoop loop;
  Event hung_up;
  int calls = 0;
  bool on_loop_thread = false;
  const auto loop_thread = std::this_thread::get_id();
  loop.add_signal_handler(SIGHUP, [&] {
    ++calls;
    on_loop_thread = std::this_thread::get_id() == loop_thread;
    hung_up.set();
  });
  // A thread that does not block SIGHUP exists: the signal must still not kill us.
  std::atomic<bool> quit{false};
  std::thread bystander([&] {
    while (!quit) std::this_thread::sleep_for(1ms);
  });
  // The sender is a real process: kill(1) aimed at this one.
  const std::string command = "sleep 0.05; kill -HUP " + std::to_string(::getpid());
  test::Child sender({"/bin/sh", "-c", command});
  auto waiter = [](Event& e) -> Task<void> { co_await with_timeout(10s, e.wait()); };
  loop.run_until_complete(waiter(hung_up));
  quit = true;
  bystander.join();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(on_loop_thread);
  EXPECT_TRUE(loop.remove_signal_handler(SIGHUP));
  EXPECT_FALSE(loop.remove_signal_handler(SIGHUP));
}

TEST(SignalHandlerTest, RemovingRestoresThePreviousDisposition) {
  struct ::sigaction before {};
  ::sigaction(SIGUSR2, nullptr, &before);
  {
    EventLoop loop;
    loop.add_signal_handler(SIGUSR2, [] {});
    struct ::sigaction during {};
    ::sigaction(SIGUSR2, nullptr, &during);
    EXPECT_NE(during.sa_handler, before.sa_handler);
  }  // destroyed: restored
  struct ::sigaction after {};
  ::sigaction(SIGUSR2, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

TEST(SignalHandlerTest, SecondLoopAndBadSignalsAreRefusedClearly) {
  EventLoop first;
  EventLoop second;
  first.add_signal_handler(SIGUSR1, [] {});
  first.add_signal_handler(SIGUSR1, [] {});  // the same loop replaces its callback
  std::string error = test::error_of([&] { second.add_signal_handler(SIGUSR1, [] {}); });
  EXPECT_EQ(error, "add_signal_handler: another event loop handles signal 10");
  error = test::error_of([&] { first.add_signal_handler(SIGKILL, [] {}); });
  EXPECT_EQ(error, "add_signal_handler: signal 9 cannot be caught");
  error = test::error_of([&] { first.add_signal_handler(0, [] {}); });
  EXPECT_EQ(error, "add_signal_handler: signal 0 cannot be caught");
  EXPECT_TRUE(first.remove_signal_handler(SIGUSR1));
  second.add_signal_handler(SIGUSR1, [] {});  // free again
}

// A burst of signals during a busy loop: the callback runs (maybe fewer times than sent,
// as with any Unix signal), the process survives, and sockets keep working.
TEST(SignalHandlerTest, ABurstOfSignalsWhileServing) {
  EventLoop loop;
  test::AsyncPair c = test::async_pair(loop);
  int calls = 0;
  loop.add_signal_handler(SIGUSR1, [&] { ++calls; });
  std::thread sender([] {
    for (int i = 0; i < 200; ++i) {
      ::kill(::getpid(), SIGUSR1);
      std::this_thread::sleep_for(100us);
    }
  });
  auto pump = [](EventLoop& loop, test::AsyncPair& c) -> Task<std::size_t> {
    const std::string block(64 * 1024, 'b');
    std::size_t moved = 0;
    char buffer[65536];
    const auto until = std::chrono::steady_clock::now() + 100ms;
    while (std::chrono::steady_clock::now() < until) {
      co_await c.near.send_all(block);
      std::size_t got = 0;
      while (got < block.size()) got += co_await c.far.recv(std::span<char>(buffer, sizeof buffer));
      moved += got;
    }
    co_await loop.sleep(50ms);
    co_return moved;
  };
  const std::size_t moved = loop.run_until_complete(pump(loop, c));
  sender.join();
  loop.run_until_complete([](EventLoop& loop) -> Task<void> { co_await loop.sleep(10ms); }(loop));
  EXPECT_GT(moved, 0u);
  EXPECT_GE(calls, 1);
  EXPECT_LE(calls, 200);
}
