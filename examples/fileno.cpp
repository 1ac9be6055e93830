// Seed, "Proof that sockets are file descriptor objects":
//   s = socket.socket()
//   print(s.fileno())   # -> e.g., 3
#include <cstdio>

#include "wire/wire.hpp"

int main() {
  wire::Socket s(wire::Family::inet, wire::Type::stream);  // socket(AF_INET, SOCK_STREAM)
  std::printf("Underlying FD is %d\n", s.fileno());
}
