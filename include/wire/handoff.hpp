// wire/handoff.hpp — restart a server without dropping a connection: the running one hands
// its listening sockets to its successor over a Unix control socket, then drains and exits.
//
//   // The running server answers successors on a control socket (0600, in a 0700 folder).
//   wire::ServeOptions options;
//   options.control = wire::default_control_path(wire::resolve("tcp://127.0.0.1:8000").front());
//   return wire::serve("tcp://127.0.0.1:8000", handler, options);  // 0 once handed over
//
//   // Its successor (a new binary, new flags) takes the very same sockets over:
//   wire::Takeover takeover = wire::take_over(options.control);
//   return wire::serve(std::move(takeover), handler, options);  // says "ready" once accepting
//
// What moves is the listening sockets themselves (their queues of connections not yet
// accepted included), so no client is refused or reset: the kernel never sees the port
// close. The conversation: the successor connects and asks; the server checks with
// SO_PEERCRED that it runs as the same user (any other is refused and reported), sends every
// worker's listener (SCM_RIGHTS) with a header naming them, and waits up to
// ServeOptions::handoff_timeout for "ready". Until then both accept from the same queues; a
// successor that dies or stays silent leaves the server serving (reported), and a later one
// may try again. On "ready" the server stops accepting and drains: requests in flight finish,
// an idle HTTP keep-alive connection gets its next request answered with Connection: close
// (closing it at once would race with a request already on its way), and what is still open
// when ServeOptions::drain_grace (60 s) is over is closed. serve() then returns 0, and the
// control socket's path (and a unix: socket file) now belongs to the successor.
//
// The successor checks, before it says ready, all that publishing its control socket needs
// (a private folder; at the path a socket or nothing: a file or a symlink there is never
// replaced). Should publishing fail anyway, it serves on without one and says so through
// ServeOptions::on_handoff: once ready it is the only server.
//
// ServeOptions::restart_signal (SIGUSR2, nginx's convention) makes a serving process start
// its own program again (/proc/self/exe, same arguments) with WIRE_HANDOFF naming the control
// socket; that process calls handoff_path_from_environment() and takes over as above.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "wire/address.hpp"
#include "wire/server.hpp"
#include "wire/socket.hpp"

namespace wire {

// The listeners a running server handed over, and the conversation with it (owns the
// control connection's fd, and the listeners until they are moved out).
class Takeover {
 public:
  Takeover() = default;
  Takeover(Takeover&&) noexcept = default;
  Takeover& operator=(Takeover&&) noexcept = default;

  std::vector<Socket> listeners;  // every worker's, in the previous server's order
  ::pid_t previous_pid = 0;       // the server that handed them over
  std::string control_path;

  // Tells the previous server these listeners are being served: it stops accepting and
  // drains. Waits (at most `timeout`) for its confirmation; throws wire::Error when there
  // is none (it gave up waiting for us, or is gone): it then keeps serving, or no one does.
  // serve(Takeover) calls this once every worker accepts.
  void ready(std::chrono::milliseconds timeout = std::chrono::seconds(5));

 private:
  friend Takeover take_over(const std::string& control_path, std::chrono::milliseconds timeout);
  friend Takeover take_over_once(const std::string& control_path,
                                 std::chrono::milliseconds timeout);  // one try of take_over
  Socket channel_;
};

// Connects to the server whose control socket is at `control_path` and receives its
// listeners. Throws wire::Error: ENOENT "nothing to take over" when no control socket is
// there, ECONNREFUSED when it is stale (its server is gone), EPERM when the folder is not
// private (0700, ours) or the server runs as another user, timed_out after `timeout`.
// Waiting behind another successor's conversation, it is reset when that one takes over: it
// then asks the new owner at the same path (within `timeout`; ECONNRESET, said so, after).
Takeover take_over(const std::string& control_path,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Serves the listeners of `takeover` (as serve(std::vector<Socket>...)), and once every
// worker accepts, says ready to the previous server and takes its control path over
// (options.control, when set, should be the same path). Throws wire::Error, after stopping,
// when the previous server did not confirm.
int serve(Takeover takeover, ConnectionHandler handler, ServeOptions options = {});

// The private per-user folder for control sockets: $XDG_RUNTIME_DIR/wire, or /tmp/wire-UID.
std::string control_folder();
// A control path for a server listening on `address` (its port resolved): one name per
// address inside control_folder(), e.g. /run/user/1000/wire/tcp-127.0.0.1-8000. A Unix path
// is made absolute (from the working folder) and its name ends with a hash of it, so two
// sockets never share a control path (unix-_run_app.sock-1f0c...).
std::string default_control_path(const Address& address);

// The control path a restarting server gave its successor in WIRE_HANDOFF (see
// ServeOptions::restart_signal), removed from the environment so it is not passed on.
std::optional<std::string> handoff_path_from_environment();

}  // namespace wire
