// wire/relay_between.hpp — a forwarder: bytes both ways between two sockets, zero-copy.
//
//   wire::Task<> forward(wire::AsyncSocket& client, wire::EventLoop& loop) {
//     wire::AsyncSocket upstream(loop, wire::Socket(wire::Family::local, wire::Type::stream));
//     co_await upstream.connect(wire::Address::parse("unix:/run/app.sock"));
//     wire::RelayBetweenStats stats = co_await wire::relay_between(client, upstream);
//     // stats.a_to_b, stats.b_to_a: bytes each way; stats.end: why it ended
//   }
//
//   // The whole server (what `wire relay FROM TO` runs):
//   wire::serve_relay("tcp://127.0.0.1:8080", "unix:/run/app.sock");
//
// relay_between(a, b) moves bytes a -> b and b -> a at once, on the loop of `a`, until both
// directions have ended:
// - Half-close passes through: EOF from a becomes shutdown(SHUT_WR) on b (once every byte
//   before it was delivered), and the other direction keeps flowing until b's EOF.
// - A failure on either side (reset, EPIPE, the socket closed under the relay) ends both
//   directions at once; the other socket is then closed with a reset (SO_LINGER 0), so its
//   peer learns the stream was cut rather than seeing a clean end.
// - idle_timeout: no byte moved either way for that long ends both (closed normally). The
//   sockets' own timeouts (AsyncSocket::set_timeout) are cleared: they would cut a
//   direction that is merely quiet while the other one streams.
// - Both sockets are closed when the task returns. Cancelling the task (destroying it) at
//   any point leaves the sockets to their owner and frees everything else it holds.
// Stream sockets are copied with splice(2): socket -> pipe -> socket, the bytes never
// entering user space; where the kernel refuses (EINVAL) or no pipe can be made (out of
// fds), a direction copies through a buffer instead. Datagram sockets (connected) forward
// each datagram as one datagram. Peers' failures are not exceptions: they are in the stats.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <system_error>

#include "wire/async_socket.hpp"
#include "wire/server.hpp"
#include "wire/task.hpp"

namespace wire {

struct RelayBetweenOptions {
  // No byte either way for this long: both sides are closed. nullopt: no limit.
  std::optional<std::chrono::nanoseconds> idle_timeout;
  // splice(2) through a pipe per direction; false copies through a buffer (recv/send).
  bool zero_copy = true;
  // The pipe size asked for with F_SETPIPE_SZ; a refusal (the per-user pipe quota is spent)
  // keeps the kernel's default. Larger pipes move more per pair of syscalls.
  std::size_t pipe_size = 256 * 1024;
};

enum class RelayEnd {
  closed,        // both directions reached EOF (every byte delivered)
  idle_timeout,  // nothing moved for idle_timeout
  a_failed,      // a reset, vanished, or was closed under the relay: `error` says how
  b_failed,      // the same for b
};

struct RelayBetweenStats {
  std::uint64_t a_to_b = 0;     // bytes delivered to b
  std::uint64_t b_to_a = 0;     // bytes delivered to a
  bool a_to_b_spliced = false;  // whether splice carried that direction (not a buffer copy)
  bool b_to_a_spliced = false;
  RelayEnd end = RelayEnd::closed;
  std::error_code error;  // for a_failed / b_failed (and timed_out for idle_timeout)
};

// Relays until both directions end (see above). `a` and `b` must belong to the same loop,
// outlive the task, and not be read or written by anyone else meanwhile. Both are streams
// or both are connected datagram sockets.
Task<RelayBetweenStats> relay_between(AsyncSocket& a, AsyncSocket& b,
                                      RelayBetweenOptions options = {});

// serve_relay(FROM, TO): a server on FROM that connects each client to TO and relays.
struct RelayServeOptions {
  // Workers, max_connections (clients beyond it wait in the backlog; 0: RLIMIT_NOFILE over
  // ~6 fds a stream, 1 a datagram association), signals, on_listening.
  // serve.limits.idle_timeout is not used: relay.idle_timeout counts both directions.
  ServeOptions serve;
  RelayBetweenOptions relay;
  // How long connecting to TO may take before the client is closed.
  std::chrono::nanoseconds connect_timeout = std::chrono::seconds(10);
  // Datagrams: a client (sender address) with no datagram either way for this long loses
  // its association (its socket to TO). relay.idle_timeout, if set, takes precedence.
  std::chrono::nanoseconds datagram_idle_timeout = std::chrono::seconds(60);
  // One line per event, from the worker threads (concurrently with more than one worker):
  // `failure` lines (TO refused or timed out, a relay cut by a reset) and, when `verbose`,
  // a line per connection opened and closed with its byte counts.
  std::function<void(std::string_view line, bool failure)> log;
  bool verbose = false;
};

// Serves FROM until SIGINT/SIGTERM (or stop_serving()), then stops gracefully; returns 0.
// Relays still open after the grace are cut with a reset on both sides. FROM and TO are
// both streams (tcp://, unix:, unix:@name) or both udp://. TO is resolved once, at start;
// its addresses are tried in order for each client. Throws wire::Error if it cannot
// listen, TO does not resolve or the kinds differ, and (code std::errc::invalid_argument)
// for unixgram: or a TO that is FROM's own bound address (a relay that loops).
int serve_relay(std::string_view from, std::string_view to, RelayServeOptions options = {});

}  // namespace wire
