// Load generator for echo servers: C connections, each keeping F messages of S bytes in
// flight (F=1 is ping-pong), for D seconds; prints messages per second. With --rate R the
// offered load is capped at R messages/s (for the fixed-load CPU comparison).
// Raw epoll, so the generator costs as little as possible when it shares a core.
// Usage: echo_load HOST PORT CONNECTIONS IN_FLIGHT SECONDS [RATE]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

namespace {
constexpr std::size_t message_size = 64;

struct Connection {
  int fd = -1;
  std::size_t received = 0;  // bytes of the current reply so far
  int in_flight = 0;
};
}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: echo_load HOST PORT CONNECTIONS IN_FLIGHT SECONDS [RATE]\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  const char* host = argv[1];
  const int port = std::atoi(argv[2]);
  const int connections = std::atoi(argv[3]);
  const int in_flight = std::atoi(argv[4]);
  const double seconds = std::atof(argv[5]);
  const double rate = argc > 6 ? std::atof(argv[6]) : 0;

  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, host, &address.sin_addr);
  int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  std::vector<Connection> conns(connections);
  char message[message_size];
  std::memset(message, 'm', sizeof message);
  for (auto& c : conns) {
    c.fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (::connect(c.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
      std::perror("echo_load: connect");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &c;
    ::epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &ev);
  }

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::uint64_t sent = 0, done = 0;
  std::deque<Connection*> waiting_for_budget;  // rate mode: replies owed a next message
  auto budget_left = [&] {
    if (rate <= 0) return true;
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    return static_cast<double>(sent) < rate * elapsed + 1;
  };
  auto send_one = [&](Connection& c) {
    if (::write(c.fd, message, sizeof message) == static_cast<ssize_t>(sizeof message)) {
      ++sent;
      ++c.in_flight;
    }
  };
  for (auto& c : conns) {
    for (int i = 0; i < in_flight; ++i) {
      if (budget_left()) {
        send_one(c);
      } else {
        waiting_for_budget.push_back(&c);
      }
    }
  }
  epoll_event events[512];
  char buffer[16384];
  while (Clock::now() < end) {
    while (!waiting_for_budget.empty() && budget_left()) {
      send_one(*waiting_for_budget.front());
      waiting_for_budget.pop_front();
    }
    int n = ::epoll_wait(epoll, events, 512, rate > 0 ? 1 : 100);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<Connection*>(events[i].data.ptr);
      ssize_t got = ::read(c->fd, buffer, sizeof buffer);
      if (got <= 0) {
        std::fprintf(stderr, "echo_load: server closed a connection\n");
        return 1;
      }
      c->received += static_cast<std::size_t>(got);
      while (c->received >= message_size) {
        c->received -= message_size;
        --c->in_flight;
        ++done;
        if (budget_left()) {
          send_one(*c);
        } else {
          waiting_for_budget.push_back(c);
        }
      }
    }
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%.0f\n", static_cast<double>(done) / elapsed);
  for (auto& c : conns) ::close(c.fd);
  return 0;
}
