// wire/relay.hpp — netcat's core: copy an input fd to a socket and the socket to an output fd.
//
//   wire::Socket s = wire::create_connection("tcp://127.0.0.1:7000");
//   wire::relay(s, STDIN_FILENO, STDOUT_FILENO);   // until the peer closes
//   wire::relay(s, STDIN_FILENO, STDOUT_FILENO,     // nc -C -w 5 -q 1
//               {.quit_after_input = 1s, .idle_timeout = 5s, .crlf = true});
//
// Streams: at input EOF the socket is half-closed (shutdown(SHUT_WR)) so the peer sees EOF,
// and the relay goes on reading until the peer closes. After the peer's FIN the relay goes
// on sending the input; if the peer then resets (or, for Unix sockets, closes for good) the
// relay ends at once, even while the input is silent: with wire::Error (connection reset)
// for a reset, normally for a close.
//
// Datagrams: each input read becomes one datagram, or several when it is larger than the
// kernel takes on this path (65,507 bytes for IPv4 UDP, 65,527 for IPv6, the send buffer
// less 32 for Unix): the size is learnt from the kernel's EMSGSIZE, never assumed. After
// input EOF the relay waits `linger` for replies. A connected socket talks to its peer; an
// unconnected one (a listener's) answers whoever sent last, or only the first sender (see
// `senders`), and holds the input until someone has sent: there is nobody to send it to.
// An unbound Unix datagram sender cannot be answered; its datagrams are still output.
//
// Input is never read faster than the socket takes it: at most one buffer is held.
// Works with files, pipes, terminals and sockets as input and output. Throws wire::Error.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>

#include "wire/address.hpp"
#include "wire/socket.hpp"

namespace wire {

struct RelayOptions {
  // Datagrams: how long to keep receiving after the input ended, restarted by each datagram
  // received; nullopt keeps receiving (a listener's). Streams ignore it.
  std::optional<std::chrono::nanoseconds> linger = std::chrono::seconds(1);
  // End this long after the input ended and was sent, whatever the peer does (nc -q);
  // nullopt waits for the peer (streams) or the linger (datagrams).
  std::optional<std::chrono::nanoseconds> quit_after_input = std::nullopt;
  // End when nothing moved either way for this long (nc -w); RelayStats::timed_out says so.
  std::optional<std::chrono::nanoseconds> idle_timeout = std::nullopt;
  // Send each LF of the input as CR LF (nc -C), for line protocols that want it; an LF
  // that already follows a CR is left alone, as nc leaves it.
  bool crlf = false;
  // Unconnected datagram sockets: take datagrams from the first sender only (and ignore
  // the others', as nc -u -l does), or from every sender (nc -u -l -k).
  enum class Senders { first, every } senders = Senders::first;
  // Unconnected datagram sockets: called with a datagram's sender whenever it is not the
  // previous datagram's, before its bytes are output (nc -v names who sent).
  std::function<void(const Address&)> on_sender = nullptr;
};

struct RelayStats {
  std::size_t sent = 0;      // bytes from input to the socket
  std::size_t received = 0;  // bytes from the socket to output
  bool input_ended = false;  // the input reached EOF (so a next relay should not read it)
  bool timed_out = false;    // ended by RelayOptions::idle_timeout
};

// `input_fd` may be -1 (no input: streams half-close at once). Neither fd may be the
// socket's own (a closed stdin hands its number to the next socket): that is an error.
RelayStats relay(Socket& socket, int input_fd, int output_fd, const RelayOptions& options = {});

}  // namespace wire
