// wire/relay.hpp — netcat's core: copy an input fd to a socket and the socket to an output fd.
//
//   wire::Socket s = wire::create_connection("tcp://127.0.0.1:7000");
//   wire::relay(s, STDIN_FILENO, STDOUT_FILENO);   // until the peer closes
//
// Streams: at input EOF the socket is half-closed (shutdown(SHUT_WR)) so the peer sees EOF,
// and the relay goes on reading until the peer closes. After the peer's FIN the relay goes
// on sending the input; if the peer then resets (or, for Unix sockets, closes for good) the
// relay ends at once, even while the input is silent: with wire::Error (connection reset)
// for a reset, normally for a close. Datagrams: each input read is one
// datagram on a connected socket; after input EOF the relay waits `linger` for replies.
// Input is never read faster than the socket takes it: at most one buffer is held.
// Works with files, pipes, terminals and sockets as input and output. Throws wire::Error.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>

#include "wire/socket.hpp"

namespace wire {

struct RelayOptions {
  // Datagrams: how long to keep receiving after the input ended (streams ignore it).
  std::chrono::nanoseconds linger = std::chrono::seconds(1);
};

struct RelayStats {
  std::size_t sent = 0;      // bytes from input to the socket
  std::size_t received = 0;  // bytes from the socket to output
  bool input_ended = false;  // the input reached EOF (so a next relay should not read it)
};

RelayStats relay(Socket& socket, int input_fd, int output_fd, const RelayOptions& options = {});

}  // namespace wire
