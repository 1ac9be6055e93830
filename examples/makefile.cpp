// Seed, "makefile() — Turn a Socket into a File-like Object":
//   f = s.makefile('rwb')
// Still the same fd; a buffered wrapper with read_line, write and flush.
// Usage: makefile ADDRESS   (talks HTTP/1.0 and prints the status line and headers)
#include <cstdio>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  try {
    wire::Socket s = wire::create_connection(where, std::chrono::seconds(5));
    wire::Stream f = s.makefile();
    std::printf("socket fd %d, stream fd %d\n", s.fileno(), f.fileno());
    f.write("GET / HTTP/1.0\r\n");
    f.write("Host: localhost\r\n\r\n");
    f.flush();
    for (std::string line; (line = f.read_line()) != "\r\n" && !line.empty();) {
      std::printf("header: %s", line.c_str());
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "makefile: %s\n", e.what());
    return 1;
  }
}
