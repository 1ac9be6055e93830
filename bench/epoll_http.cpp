// The ceiling for bench/http.sh: the simplest hand-written epoll loop that answers every
// request head with one canned 13-byte response (no parsing beyond finding the blank
// line, no files, no timers). What wire serve's cost per request is measured against.
// Usage: epoll_http PORT (listens on 127.0.0.1). Raw syscalls on purpose.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "raw_listener.hpp"

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 7001;
  std::signal(SIGPIPE, SIG_IGN);
  const auto [listener, epoll] = listen_on_loopback(port, "epoll_http");
  int on = 1;
  epoll_event ev{};
  static const char reply[] =
      "HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 04:00:00 GMT\r\nServer: canned\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, world!";
  epoll_event events[256];
  char buffer[16384];
  for (;;) {
    int n = ::epoll_wait(epoll, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int conn;
        while ((conn = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          ::setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
          ev.events = EPOLLIN;
          ev.data.fd = conn;
          ::epoll_ctl(epoll, EPOLL_CTL_ADD, conn, &ev);
        }
        continue;
      }
      // wrk sends one whole head at a time and waits for the answer: one read, one write.
      ssize_t got = ::read(fd, buffer, sizeof buffer);
      if (got <= 0) {
        ::close(fd);
        continue;
      }
      if (::memmem(buffer, static_cast<size_t>(got), "\r\n\r\n", 4) == nullptr) continue;
      if (::write(fd, reply, sizeof reply - 1) < 0) ::close(fd);
    }
  }
}
