// Seed, "What happens when a server creates a TCP socket":
//   server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
//   server_socket.bind(("127.0.0.1", 8080))
//   server_socket.listen()
//   conn, addr = server_socket.accept()
// Usage: tcp_server [ADDRESS]   (default tcp://127.0.0.1:8080; port 0 picks a free one)
#include <cstdio>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  try {
    wire::Socket server_socket(wire::Family::inet, wire::Type::stream);
    server_socket.set_option(wire::option::reuse_address, true);
    server_socket.bind(wire::Address::parse(where));
    server_socket.listen();
    std::printf("listening on %s with fd %d\n", server_socket.local_address().to_string().c_str(),
                server_socket.fileno());
    std::fflush(stdout);

    auto [conn, addr] = server_socket.accept();  // a new fd just for this client
    std::printf("accepted %s on fd %d\n", addr.to_string().c_str(), conn.fileno());
    std::string data = conn.recv(4096);
    std::printf("received %zu bytes: %s\n", data.size(), data.c_str());
    conn.send_all("hello from the server\n");
    conn.close();
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "tcp_server: %s\n", e.what());
    return 1;
  }
}
