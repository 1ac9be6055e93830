// The reference: the simplest hand-written epoll echo server that is still correct for the
// benchmark's messages. Level-triggered, one read per readiness, one write back. Usage:
// epoll_echo PORT (listens on 127.0.0.1). Written against raw syscalls on purpose.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "raw_listener.hpp"

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 7000;
  std::signal(SIGPIPE, SIG_IGN);
  const auto [listener, epoll] = listen_on_loopback(port, "epoll_echo");
  epoll_event ev{};
  epoll_event events[256];
  char buffer[16384];
  for (;;) {
    int n = ::epoll_wait(epoll, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int conn;
        while ((conn = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          ev.events = EPOLLIN;
          ev.data.fd = conn;
          ::epoll_ctl(epoll, EPOLL_CTL_ADD, conn, &ev);
        }
        continue;
      }
      ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got <= 0) {
        ::close(fd);
        continue;
      }
      if (::write(fd, buffer, static_cast<size_t>(got)) < 0) ::close(fd);
    }
  }
}
