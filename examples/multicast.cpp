// UDP multicast: one receiver joins a group, one sender sends to the group, and every
// member hears it; nobody connects to anybody. Both ends run here and stay on loopback: the
// receiver joins on the interface holding 127.0.0.1, the sender sends from that interface
// with TTL 0, which never passes a router (nor, from a real interface, leaves this host).
// Usage: multicast [GROUP]  (an IPv4 group; default 239.255.0.1, administratively scoped)
#include <chrono>
#include <cstdio>
#include <string>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const std::string group = argc > 1 ? argv[1] : "239.255.0.1";
  try {
    wire::Socket receiver(wire::Family::inet, wire::Type::dgram);
    // Bound to the group's address: this socket gets the group's datagrams and no others.
    receiver.bind(wire::Address::parse("udp://" + group + ":0"));
    wire::join_group(receiver, group, "127.0.0.1");
    receiver.set_timeout(std::chrono::seconds(5));
    const wire::Address to = receiver.local_address();

    wire::Socket sender(wire::Family::inet, wire::Type::dgram);
    wire::set_multicast_interface(sender, "127.0.0.1");  // else the routing table chooses
    wire::set_multicast_ttl(sender, 0);
    sender.sendto("hello, group", to);

    auto [data, from] = receiver.recvfrom(512);
    std::printf("receiver heard '%s' from %s on %s\n", data.c_str(), from.to_string().c_str(),
                to.to_string().c_str());
    wire::leave_group(receiver, group, "127.0.0.1");
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "multicast: %s\n", e.what());
    return 1;
  }
}
