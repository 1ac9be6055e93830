// Seed, "detach() — Detach the FD from the Socket Object":
//   fd = s.detach()
// After detach the object is unusable and the fd is yours: here it is handed to another
// owner with adopt(), which is how an fd crosses to other code or a child process.
#include <unistd.h>

#include <cstdio>

#include "wire/wire.hpp"

int main() {
  wire::Socket s(wire::Family::inet, wire::Type::stream);
  int fd = s.detach();
  std::printf("detached fd %d\n", fd);
  try {
    (void)s.fileno();
  } catch (const wire::Error& e) {
    std::printf("the old object refuses: %s\n", e.what());
  }
  wire::Socket adopted = wire::Socket::adopt(fd);  // a new owner; it closes fd when done
  std::printf("adopted fd %d again\n", adopted.fileno());
}
