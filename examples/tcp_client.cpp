// Seed, "Client starts the TCP 3-way handshake":
//   client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
//   client_socket.connect(("127.0.0.1", 8080))
// Usage: tcp_client [ADDRESS] [MESSAGE]
#include <cstdio>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  const char* message = argc > 2 ? argv[2] : "hello from the client\n";
  try {
    wire::Socket client_socket(wire::Family::inet, wire::Type::stream);
    client_socket.connect(wire::Address::parse(where));  // the kernel does the handshake
    client_socket.send_all(message);
    client_socket.shutdown(wire::Shutdown::write);  // "that is all I will send"
    for (std::string reply; !(reply = client_socket.recv(4096)).empty();) {
      std::fwrite(reply.data(), 1, reply.size(), stdout);
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "tcp_client: %s\n", e.what());
    return 1;
  }
}
