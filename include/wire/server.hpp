// wire/server.hpp — a coroutine per connection, and a lifecycle that never leaks a socket.
//
//   wire::Task<> handle(wire::AsyncSocket& conn) {        // conn.peer_address() says who
//     for (;;) {
//       wire::Buffer data = co_await conn.recv_pooled();  // no buffer held while idle
//       if (data.empty()) co_return;                      // FIN: return, and conn closes
//       co_await conn.send_all(data);
//     }
//   }
//   int main() { return wire::serve("tcp://127.0.0.1:8000", handle); }
//
// Lifecycle rules the Server enforces:
// - The connection's AsyncSocket lives in the server's record for that connection and is
//   closed the moment the handler returns (or throws): a handler that returns when recv()
//   gives 0 leaves nothing in CLOSE_WAIT.
// - Parking: a handler that returns with conn.mark_parkable(true) is called again, in a new
//   frame, once the peer sends more; meanwhile the connection is only its record (no
//   coroutine frame). The socket's timeout bounds the parked wait.
// - max_connections: when reached, the server stops accepting and new clients wait in the
//   listen backlog (they are not accepted-and-closed); accepting resumes as soon as one ends.
// - idle_timeout: each wait of a connection (recv, send, ...) fails with errc::timed_out
//   after it, so an idle or stalled peer is dropped.
// - EMFILE/ENFILE on accept: the server keeps serving what it has and retries accept after a
//   pause (accept_retry_delay), so it neither spins nor drops the clients in the backlog.
// - Graceful stop: stop accepting, close connections marked idle (AsyncSocket::mark_idle:
//   an HTTP keep-alive connection between requests) at once, let the others finish up to
//   shutdown_grace, then close what is left.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/async_socket.hpp"
#include "wire/connect.hpp"
#include "wire/loop.hpp"

namespace wire {

// The handler runs once per connection; conn stays valid until it returns. (The peer is
// conn.peer_address(): not a parameter, so an idle connection does not carry a whole
// Address in its frame.)
using ConnectionHandler = std::function<Task<void>(AsyncSocket& conn)>;
// For datagram addresses: runs once per worker on its bound socket.
using DatagramHandler = std::function<Task<void>(AsyncSocket& socket)>;

struct ServerLimits {
  std::size_t max_connections = 0;  // 0: as many as RLIMIT_NOFILE allows, less a reserve
  std::optional<std::chrono::nanoseconds> idle_timeout;
  std::chrono::nanoseconds accept_retry_delay = std::chrono::milliseconds(100);
  std::chrono::nanoseconds shutdown_grace = std::chrono::seconds(5);
};

// Connection counts that every worker of a serve() shares (ServeOptions::counters), for a
// status page or metrics: each connection costs one atomic increment when its handler
// starts and one when it ends, never a lock. On cache lines of their own, so workers
// counting do not slow each other's neighbours.
struct ConnectionCounters {
  alignas(64) std::atomic<std::uint64_t> accepted{0};  // connections a handler was started for
  alignas(64) std::atomic<std::uint64_t> closed{0};    // of those, the ones that have ended
  // accepted - closed. A connection's close is counted with release after its start, and
  // `closed` is read first with acquire, so every close seen has its start seen too.
  std::uint64_t open() const noexcept {
    const std::uint64_t ended = closed.load(std::memory_order_acquire);
    const std::uint64_t started = accepted.load(std::memory_order_relaxed);
    return started > ended ? started - ended : 0;
  }
};

// One loop's server: an accept loop and the connections it spawned.
class Server {
 public:
  Server(EventLoop& loop, Socket listener, ConnectionHandler handler, ServerLimits limits = {},
         std::shared_ptr<ConnectionCounters> counters = nullptr);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Starts accepting on the next loop iteration; the accept loop ends after stop_accepting().
  void start();
  // Closes the listener: no new connections; those running go on.
  void stop_accepting() noexcept;
  // Closes every connection still open (their handlers see errc::socket_closed).
  void close_all() noexcept;
  // Closes every connection and destroys the frames of handlers still running (those that
  // wait on a timer or anything but their socket): nothing of them is left afterwards.
  void cancel_all() noexcept;
  // stop_accepting, then run the loop until the connections end or `grace` passes, then
  // cancel_all. Returns within `grace` plus the time handlers take to react to their socket
  // closing, whatever they wait on; a stop() of the loop meanwhile (a second SIGINT) cuts
  // the grace short. The loop must not be running.
  void shutdown(std::chrono::nanoseconds grace);
  // shutdown() after a handoff: the service goes on elsewhere, so an idle connection is not
  // closed (a request may be on its way): each connection is marked draining (an HTTP one
  // answers its next request with Connection: close) and gets the grace to end.
  void drain(std::chrono::nanoseconds grace);

  std::size_t connection_count() const noexcept { return connections_.size(); }
  std::size_t accepted_count() const noexcept { return accepted_; }
  // How many times accept failed for lack of fds (EMFILE, ENFILE, ENOBUFS, ENOMEM, or on the
  // select selector none below FD_SETSIZE: that client is refused, and the first is reported).
  std::size_t fd_exhaustion_count() const noexcept { return fd_exhaustion_; }
  // How many connections ended because their handler could not even start (it threw at
  // once, or memory ran out): each was reported to the loop's exception handler.
  std::size_t handler_failure_count() const noexcept { return handler_failures_; }
  std::size_t max_connections() const noexcept { return max_connections_; }
  Address local_address() const;

 private:
  // A connection's record: its socket, owned here rather than in a wrapper coroutine, so an
  // idle connection costs this record plus its handler's frame and nothing more.
  struct Connection;
  class SlotAwaitable;
  static const detail::IoOps park_ops;
  Task<void> accept_loop();
  void start_connection(AsyncSocket socket);
  static void connection_done(void* connection, std::exception_ptr error) noexcept;
  static void end_connection(Connection* connection) noexcept;
  void run_handler(Connection* connection);
  bool park(Connection* connection) noexcept;
  void unpark(Connection* connection) noexcept;
  void resume_accept() noexcept;
  void close_connections(bool only_idle) noexcept;
  void wait_for_connections(std::chrono::nanoseconds grace);

  EventLoop& loop_;
  AsyncSocket listener_;
  ConnectionHandler handler_;
  ServerLimits limits_;
  std::shared_ptr<ConnectionCounters> counters_;  // may be null
  std::size_t max_connections_;
  std::vector<Connection*> connections_;  // each knows its index: O(1) removal
  bool closing_all_ = false;
  std::vector<Connection*> ended_while_closing_;  // freed once close_all() has finished
  Task<void> accept_task_;
  EventLoop::TimerId start_timer_ = 0;
  std::coroutine_handle<> paused_accept_;  // the accept loop, waiting for a free slot
  std::size_t accepted_ = 0;
  std::size_t fd_exhaustion_ = 0;
  bool said_select_limit_ = false;
  std::size_t handler_failures_ = 0;
  EventLoop::TimerId grace_timer_ = 0;
  bool stopping_ = false;
  bool draining_ = false;
  bool in_shutdown_run_ = false;  // shutdown() runs the loop until the last connection ends
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for callbacks queued on the loop
};

struct ServeOptions {
  int workers = 1;  // threads, each with its own loop (and SO_REUSEPORT listener)
  ServerLimits limits;
  ServerOptions socket;        // backlog, unix_mode, dual_stack (reuse_port is set for workers)
  bool handle_signals = true;  // SIGINT / SIGTERM stop gracefully
  SelectorKind selector = default_selector_kind();
  // Called once listening, with the bound address (port 0 resolved), before serving.
  std::function<void(const Address&)> on_listening;
  // Called once when a stop begins (from a worker thread, not the signal handler), with the
  // grace the open connections get: for a "stopping..." line. A second SIGINT/SIGTERM (or
  // stop_serving() call) during the grace ends it at once.
  std::function<void(std::chrono::nanoseconds grace)> on_stopping;
  // Optional: connections started and ended, summed over every worker (an
  // http::ServerStats is one: give the same object to http::Options::stats).
  std::shared_ptr<ConnectionCounters> counters;
  // Handoff (wire/handoff.hpp): a path for a Unix control socket (made 0600 in a private
  // 0700 folder, created if missing and refused if not ours), where a successor started
  // with take_over() receives these listeners; this serve() then drains and returns 0.
  // Removed when serve() stops, unless a successor took it over. "": none.
  std::string control;
  // How long a successor has, once it holds the listeners, to say it serves them.
  std::chrono::nanoseconds handoff_timeout = std::chrono::seconds(10);
  // How long, once handed over, the connections still open may run before they are closed
  // (a download in progress, a long poll): the service goes on, so this is much longer than
  // limits.shutdown_grace, which a SIGINT/SIGTERM stop keeps. A stop request during the
  // drain (SIGINT/SIGTERM, stop_serving()) ends it at once.
  std::chrono::nanoseconds drain_grace = std::chrono::seconds(60);
  // Called (from a worker thread) with one line on each handoff event: given, refused,
  // failed, a restart started. Without it nothing is printed.
  std::function<void(const std::string& message)> on_handoff;
  // When the control socket cannot be made (its folder is not private, the path too long):
  // false, serve() throws; true, it serves without one and says why through on_handoff (for
  // a default path the user never asked for).
  bool control_optional = false;
  // On this signal (SIGUSR2, as nginx), start this program again (/proc/self/exe with this
  // process's arguments) to take over through `control`. Without a control socket (none
  // given, one that could not be made, serve_datagrams) the signal is ignored rather than
  // left to kill the server. 0: none.
  int restart_signal = 0;
};

// Serves `address` until SIGINT/SIGTERM (or stop_serving()), then stops gracefully.
// Returns 0 after a graceful stop; throws wire::Error if it cannot listen. A unix: path it
// created is removed when it returns (if it is still the same file).
int serve(std::string_view address, ConnectionHandler handler, ServeOptions options = {});
// The same on listeners made elsewhere: inherited from systemd (wire::listen_fds()) or
// handed over by a running server. Each listener gets a worker of its own (a group of
// SO_REUSEPORT listeners must all be served, or the connections the kernel sends to one left
// out would wait forever); workers beyond that share a dup of a listener. The sockets must
// be listening stream sockets: EINVAL otherwise. A Unix socket file is left in place (this
// call did not make it).
//
//   auto listeners = wire::listen_fds();               // LISTEN_FDS from systemd
//   return wire::serve(std::move(listeners), handler);
int serve(std::vector<Socket> listeners, ConnectionHandler handler, ServeOptions options = {});
// The same for udp:// and unixgram: addresses: `handler` runs on each worker's socket.
int serve_datagrams(std::string_view address, DatagramHandler handler, ServeOptions options = {});
// Asks every running serve() in this process to stop gracefully (async-signal-safe).
void stop_serving() noexcept;

}  // namespace wire
