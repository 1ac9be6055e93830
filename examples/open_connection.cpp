// create_connection for coroutines: the name is looked up on one of the loop's worker
// threads, the connects race on the loop (Happy Eyeballs: IPv6 and IPv4 alternate, the next
// starts 250 ms after the previous or at once when it fails), all within one deadline. The
// loop could serve other sockets all the while.
// Usage: open_connection [ADDRESS] [MESSAGE]   e.g.  open_connection tcp://localhost:8080 hi
// Prints "connected to PEER", sends MESSAGE, half-closes and prints the reply.
#include <cstdio>
#include <string>

#include "wire/wire.hpp"

namespace {

wire::Task<int> talk(std::string where, std::string message) {
  try {
    wire::AsyncSocket conn = co_await wire::open_connection(where, std::chrono::seconds(5));
    std::printf("connected to %s\n", conn.peer_address().to_string().c_str());
    std::fflush(stdout);
    co_await conn.send_all(message);
    conn.shutdown(wire::Shutdown::write);  // "that is all I will send"
    char buffer[4096];
    for (std::size_t n; (n = co_await conn.recv(buffer)) != 0;) std::fwrite(buffer, 1, n, stdout);
  } catch (const wire::Error& e) {  // every address tried and why each failed
    std::fprintf(stderr, "open_connection: %s\n", e.what());
    co_return 1;
  }
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://localhost:8080";
  const char* message = argc > 2 ? argv[2] : "hello from the client\n";
  wire::EventLoop loop;
  return loop.run_until_complete(talk(where, message));
}
