// 64-byte ping-pong over a Unix socketpair, one thread: wire's Socket against the raw
// send/recv syscalls it wraps. Both do the same four syscalls per round trip, so the ratio
// is wire's own overhead. Run with `make bench`, which prints the median ratio.
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "wire/wire.hpp"

namespace {

constexpr std::size_t message_size = 64;

void raw_syscalls(benchmark::State& state) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  char ping[message_size];
  std::memset(ping, 'p', sizeof ping);
  char buffer[message_size];
  for (auto _ : state) {
    if (::send(fds[0], ping, sizeof ping, MSG_NOSIGNAL) != message_size ||
        ::recv(fds[1], buffer, sizeof buffer, 0) != message_size ||
        ::send(fds[1], buffer, sizeof buffer, MSG_NOSIGNAL) != message_size ||
        ::recv(fds[0], buffer, sizeof buffer, 0) != message_size) {
      state.SkipWithError("short transfer");
      break;
    }
    benchmark::DoNotOptimize(buffer);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  state.SetItemsProcessed(state.iterations());
}

void wire_socket(benchmark::State& state) {
  auto [a, b] = wire::Socket::pair();
  char ping[message_size];
  std::memset(ping, 'p', sizeof ping);
  char buffer[message_size];
  const std::string_view message(ping, sizeof ping);
  for (auto _ : state) {
    if (a.send(message) != message_size || b.recv(std::span<char>(buffer)) != message_size ||
        b.send(std::string_view(buffer, sizeof buffer)) != message_size ||
        a.recv(std::span<char>(buffer)) != message_size) {
      state.SkipWithError("short transfer");
      break;
    }
    benchmark::DoNotOptimize(buffer);
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(raw_syscalls)->MinTime(0.5);
BENCHMARK(wire_socket)->MinTime(0.5);
BENCHMARK_MAIN();
