// Seed, "UDP: faster, connectionless" (e.g. a DNS query to 8.8.8.8:53): no connect, no
// accept; every datagram carries its destination and arrives whole or not at all.
// Both ends run here, on loopback. Usage: udp [ADDRESS]  (default udp://127.0.0.1:0)
#include <cstdio>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "udp://127.0.0.1:0";
  try {
    wire::Socket server(wire::Family::inet, wire::Type::dgram);
    server.bind(wire::Address::parse(where));
    wire::Address server_address = server.local_address();

    wire::Socket client(wire::Family::inet, wire::Type::dgram);
    client.sendto("query", server_address);

    auto [data, from] = server.recvfrom(512);
    std::printf("server got '%s' from a client\n", data.c_str());
    server.sendto("answer", from);

    auto reply = client.recvfrom(512);
    std::printf("client got '%s' from %s\n", reply.data.c_str(), reply.from.to_string().c_str());
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "udp: %s\n", e.what());
    return 1;
  }
}
