// wire/echo.hpp — the echo protocol, as ready-made handlers for serve() and serve_datagrams().
//
//   wire::serve("tcp://127.0.0.1:7000", wire::echo_connection);
//   wire::serve_datagrams("udp://127.0.0.1:7000", wire::echo_datagrams);
#pragma once

#include "wire/async_socket.hpp"

namespace wire {

// Sends back every byte until the peer closes, then returns (so the connection closes).
// Reads with recv_pooled() (an idle connection holds no buffer); after park_after of
// silence it returns parkable, so a Server keeps the connection without a frame.
Task<void> echo_connection(AsyncSocket& conn);
// Sends every datagram back to where it came from, until the socket is closed.
Task<void> echo_datagrams(AsyncSocket& socket);

}  // namespace wire
