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
  conn.mark_parkable(false);
  const auto idle_timeout = conn.timeout();
  const bool may_park = !idle_timeout || *idle_timeout > park_after;
  bool lingering = false;
  for (;;) {
    auto data = co_await conn.recv_pooled(std::nothrow);
    if (!data) {
      if (lingering && data.error() == errc::timed_out) {
        // Quiet for park_after: return parkable, and a Server keeps the connection with no
        // frame at all until the peer sends again (within the idle timeout, if any).
        conn.set_timeout(idle_timeout);
        conn.mark_parkable(true);
        co_return;
      }
      throw Error(data.error(), "recv", conn.socket().describe());
    }
    if (lingering) {
      conn.set_timeout(idle_timeout);
      lingering = false;
    }
    if (data->empty()) co_return;  // FIN from the peer: return, and the server closes at once
    const std::size_t sent = conn.send_now(*data);
    if (sent < data->size()) co_await send_rest(conn, std::move(*data), sent);
    if (may_park && conn.drained()) {  // the next read will likely wait: wait a little here
      lingering = true;
      conn.set_timeout(park_after);
    }
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
