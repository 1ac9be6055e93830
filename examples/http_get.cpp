// Seed, "Building Protocols": HTTP is formatted strings over a TCP socket.
//   c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
//   data = c.recv(4096)
//   print(data.decode())
// Usage: http_get ADDRESS
#include <cstdio>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  try {
    wire::Socket c = wire::create_connection(where, std::chrono::seconds(5));
    c.send_all("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string data = c.recv(4096);
    std::fwrite(data.data(), 1, data.size(), stdout);
    std::printf("\n");
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "http_get: %s\n", e.what());
    return 1;
  }
}
