// Prints the address a socketpair end reports: proves headers, library and threads link.
#include <wire/wire.hpp>

#include <cstdio>

int main() {
  auto [a, b] = wire::Socket::pair();
  a.send_all("installed");
  std::printf("%s\n", b.recv(64).c_str());
}
