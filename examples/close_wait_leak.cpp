// Seed, "TCP CLOSE_WAIT — The Deadly Zombie Socket": the leak and its fix, side by side.
//   data = conn.recv(1024)
//   if not data:
//       break            # the leak: conn is never closed, the kernel keeps it in CLOSE_WAIT
//       conn.close()     # the fix: close as soon as recv() says the peer sent FIN
// Usage: close_wait_leak leaky|correct [ADDRESS] [CLIENTS]
// Serves CLIENTS in turn (echoing until each one closes), then stays up until SIGINT or SIGTERM
// so that its sockets can be looked at:
//   wire sockets --check-close-wait --pid PID   # exit 1 for `leaky`, 0 for `correct`
// The leaky server "forgets" the way long-running servers do: the connection stays in a list
// that nothing prunes, so its fd (and the kernel's socket) outlive the conversation. C++'s RAII
// would close a Socket that went out of scope; a container keeps it alive just as Python's
// references do.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire/wire.hpp"

namespace {

// Echoes until the peer closes; returns the bytes echoed.
std::size_t echo_until_eof(wire::Socket& conn) {
  std::size_t total = 0;
  for (;;) {
    std::string data = conn.recv(1024);
    if (data.empty()) return total;  // FIN from the peer
    total += data.size();
    conn.send_all(data);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool leaky = argc > 1 && std::strcmp(argv[1], "leaky") == 0;
  if (argc < 2 || (!leaky && std::strcmp(argv[1], "correct") != 0)) {
    std::fprintf(stderr, "usage: close_wait_leak leaky|correct [ADDRESS] [CLIENTS]\n");
    return 2;
  }
  const char* where = argc > 2 ? argv[2] : "tcp://127.0.0.1:8080";
  char* end = nullptr;
  const long clients = argc > 3 ? std::strtol(argv[3], &end, 10) : 1;
  if (argc > 3 && (*end != '\0' || clients < 1 || clients > 100000)) {
    std::fprintf(stderr, "close_wait_leak: CLIENTS must be a number from 1 to 100000\n");
    return 2;
  }

  std::vector<wire::Socket> forgotten;  // the leak: nothing ever removes a finished connection
  try {
    wire::Socket server = wire::create_server(where);
    std::printf("listening on %s (pid %d, %s)\n", server.local_address().to_string().c_str(),
                static_cast<int>(::getpid()), leaky ? "leaky" : "correct");
    std::fflush(stdout);
    for (long i = 0; i < clients; ++i) {
      auto [conn, addr] = server.accept();
      const std::size_t total = echo_until_eof(conn);
      std::printf("client %s closed after %zu bytes; fd %d %s\n", addr.to_string().c_str(), total,
                  conn.fileno(), leaky ? "left open (CLOSE_WAIT)" : "closed");
      if (leaky) {
        forgotten.push_back(std::move(conn));
      } else {
        conn.close();
      }
      std::fflush(stdout);
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "close_wait_leak: %s\n", e.what());
    return 1;
  }
  // Only now are the stop signals blocked, to be taken by sigwait(): while serving, Ctrl-C
  // ends the program the usual way.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::printf("served %ld clients; %zu sockets still open; waiting for SIGINT or SIGTERM\n",
              clients, forgotten.size());
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop, &signal_number);
  return 0;
}
