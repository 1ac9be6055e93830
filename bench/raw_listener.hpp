// What the hand-written reference servers share: a non-blocking listener on 127.0.0.1 and
// an epoll instance watching it, from raw syscalls (they are what wire is measured against).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>

struct RawListener {
  int listener = -1;
  int epoll = -1;
};

// Listens on 127.0.0.1:port and registers the listener for EPOLLIN; exits on failure.
inline RawListener listen_on_loopback(int port, const char* name) {
  RawListener raw;
  raw.listener = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;
  ::setsockopt(raw.listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(raw.listener, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0 ||
      ::listen(raw.listener, SOMAXCONN) < 0) {
    std::perror(name);
    ::_exit(1);
  }
  raw.epoll = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = raw.listener;
  ::epoll_ctl(raw.epoll, EPOLL_CTL_ADD, raw.listener, &ev);
  std::fprintf(stderr, "%s on 127.0.0.1:%d\n", name, port);
  return raw;
}
