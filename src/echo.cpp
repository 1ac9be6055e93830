#include "wire/echo.hpp"

namespace wire {

namespace {
// Only when the kernel's send buffer is full: a frame of its own, so the echo loop's frame
// (which every idle connection keeps) carries no send awaiter.
Task<void> send_rest(AsyncSocket& conn, Buffer data, std::size_t from) {
  co_await conn.send_all(data.view().substr(from));
}
}  // namespace

Task<void> echo_connection(AsyncSocket& conn) {
  for (;;) {
    Buffer data = co_await conn.recv_pooled();
    if (data.empty()) co_return;  // FIN from the peer: return, and the server closes at once
    const std::size_t sent = conn.send_now(data);
    if (sent < data.size()) co_await send_rest(conn, std::move(data), sent);
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
