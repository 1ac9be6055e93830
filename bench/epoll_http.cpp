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

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 7001;
  std::signal(SIGPIPE, SIG_IGN);
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
      ::listen(listener, SOMAXCONN) < 0) {
    std::perror("epoll_http: bind/listen");
    return 1;
  }
  int epoll = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listener;
  ::epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &ev);
  static const char reply[] =
      "HTTP/1.1 200 OK\r\nDate: Wed, 25 Nov 2026 04:00:00 GMT\r\nServer: canned\r\n"
      "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, world!";
  std::fprintf(stderr, "epoll_http on 127.0.0.1:%d\n", port);
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
