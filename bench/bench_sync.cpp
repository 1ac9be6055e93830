// Queue push+pop and Event set+wake on one loop (Google Benchmark), and allocations per
// operation counted with a replaced operator new. `make bench` runs it; the figures go in
// bench/RESULTS.md.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <new>

#include "wire/async.hpp"

namespace {
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

using wire::EventLoop;
using wire::Task;

// A push and a pop that both find the queue ready: the cost of the queue itself.
void BM_QueuePushPop(benchmark::State& state) {
  EventLoop loop;
  wire::Queue<int> queue(64);
  auto body = [](benchmark::State& state, wire::Queue<int>& queue) -> Task<long> {
    const long before = allocations.load();
    int value = 0;
    for (auto _ : state) {
      co_await queue.push(value++);
      auto item = co_await queue.pop();
      benchmark::DoNotOptimize(item);
    }
    co_return allocations.load() - before;
  };
  const long allocated = loop.run_until_complete(body(state, queue));
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocated) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_QueuePushPop);

// A consumer waits in pop; the producer pushes and yields: each item is handed to a
// waiting coroutine and woken through the loop. Per item: push, hand-off, wake, resume.
void BM_QueueHandOffToAWaitingConsumer(benchmark::State& state) {
  EventLoop loop;
  wire::Queue<int> queue(1);
  auto consumer = [](wire::Queue<int>& queue) -> Task<void> {
    while (auto item = co_await queue.pop()) benchmark::DoNotOptimize(item);
  };
  auto producer = [](benchmark::State& state, wire::Queue<int>& queue) -> Task<long> {
    const long before = allocations.load();
    int value = 0;
    for (auto _ : state) {
      co_await queue.push(value++);
      co_await wire::yield();
    }
    queue.close();
    co_return allocations.load() - before;
  };
  loop.spawn(consumer(queue)).detach();
  const long allocated = loop.run_until_complete(producer(state, queue));
  state.counters["allocs_per_op"] =
      benchmark::Counter(static_cast<double>(allocated) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_QueueHandOffToAWaitingConsumer);

// Two coroutines wake each other through two Events: per iteration, one set() wakes a
// waiter and the loop resumes it (the figure is per set+wake).
void BM_EventSetAndWake(benchmark::State& state) {
  EventLoop loop;
  wire::Event ping;
  wire::Event pong;
  bool done = false;
  auto responder = [](wire::Event& ping, wire::Event& pong, bool& done) -> Task<void> {
    for (;;) {
      co_await ping.wait();
      ping.clear();
      if (done) co_return;
      pong.set();
    }
  };
  auto driver = [](benchmark::State& state, wire::Event& ping, wire::Event& pong,
                   bool& done) -> Task<long> {
    const long before = allocations.load();
    for (auto _ : state) {
      ping.set();
      co_await pong.wait();
      pong.clear();
    }
    const long allocated = allocations.load() - before;
    done = true;
    ping.set();
    co_return allocated;
  };
  loop.spawn(responder(ping, pong, done)).detach();
  const long allocated = loop.run_until_complete(driver(state, ping, pong, done));
  state.SetItemsProcessed(2 * state.iterations());  // two set+wake per iteration
  state.counters["ns_per_set_and_wake"] =
      benchmark::Counter(2 * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["allocs_per_op"] = benchmark::Counter(
      static_cast<double>(allocated) / (2 * static_cast<double>(state.iterations())));
}
BENCHMARK(BM_EventSetAndWake);

}  // namespace

BENCHMARK_MAIN();
