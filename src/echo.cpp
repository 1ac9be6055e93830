#include "wire/echo.hpp"

namespace wire {

Task<void> echo_connection(AsyncSocket& conn) {
  for (;;) {
    Buffer data = co_await conn.recv_pooled();
    if (data.empty()) co_return;  // FIN from the peer: return, and the server closes at once
    co_await conn.send_all(data);
  }
}

Task<void> echo_datagrams(AsyncSocket& socket) {
  char buffer[65536];
  for (;;) {
    auto datagram = co_await socket.recvfrom(buffer);
    // A datagram that cannot be sent back (peer gone, buffer full) is dropped, as UDP does.
    (void)co_await socket.sendto({buffer, datagram.size}, datagram.from, std::nothrow);
  }
}

}  // namespace wire
