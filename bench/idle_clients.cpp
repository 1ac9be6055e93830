// Opens N idle TCP connections to HOST:PORT, prints "ready" once the server has taken them
// all (each one answered a 1-byte echo, or with `http` one keep-alive GET /hello.txt),
// then holds them until stdin closes.
// Usage: idle_clients HOST PORT N [http]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: idle_clients HOST PORT N\n");
    return 2;
  }
  const int n = std::atoi(argv[3]);
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  inet_pton(AF_INET, argv[1], &address.sin_addr);
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) < 0) {
      std::perror("idle_clients: connect");
      return 1;
    }
    // One round trip proves the server accepted this connection and ran its handler once,
    // as a real client's first exchange would; then the connection goes idle.
    if (argc > 4) {
      static const char request[] = "GET /hello.txt HTTP/1.1\r\nHost: bench\r\n\r\n";
      char response[4096];
      if (write(fd, request, sizeof request - 1) != sizeof request - 1 ||
          read(fd, response, sizeof response) <= 0) {
        std::perror("idle_clients: http");
        return 1;
      }
    } else {
      char byte = 'x';
      if (write(fd, &byte, 1) != 1 || read(fd, &byte, 1) != 1) {
        std::perror("idle_clients: echo");
        return 1;
      }
    }
    fds.push_back(fd);
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char sink[64];
  while (read(0, sink, sizeof sink) > 0) {
  }
  for (int fd : fds) close(fd);
}
