// Seed, "Unix domain socket: /tmp/mysql.sock": a file system path instead of IP and port,
// same machine only. Both ends run here. Usage: unix_socket PATH
#include <cstdio>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: unix_socket PATH\n");
    return 2;
  }
  try {
    wire::Address address = wire::Address::unix_path(argv[1]);
    wire::Socket server = wire::create_server(address);  // bind + listen, mode 0600

    wire::Socket client(wire::Family::local, wire::Type::stream);
    client.connect(address);
    auto [conn, peer] = server.accept();

    client.send_all("ping over " + address.to_string());
    std::string data = conn.recv(1024);
    std::printf("server got '%s'\n", data.c_str());
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "unix_socket: %s\n", e.what());
    return 1;
  }
}
