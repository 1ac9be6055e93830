// wire/diag/tour.hpp — the tutorial's "what happens when a server creates a TCP socket", run
// for real on 127.0.0.1: socket, bind, listen, a client's socket, connect, accept, send, recv,
// the client's close and the server's close. After each step, what the kernel now holds is
// read back from it: this process's fd table (the tour's fds only) and the tour's sockets
// that no fd holds (not yet: a connection waiting in the accept queue; not any more: the
// client's side after its close, FIN-WAIT-2, then TIME-WAIT). `wire tour` prints it.
//
//   wire::diag::run_tour({}, [](const wire::diag::TourStep& step) {
//     std::printf("%d. %s\n   %s\n", step.number, step.title.c_str(), step.python.c_str());
//     for (const auto& held : step.fds) {
//       std::printf("   fd %d (%s) %s %s\n", held.info.fd, held.name.c_str(),
//                   held.info.state.c_str(), held.info.target.c_str());
//     }
//   });
//   // 3. listen: the socket waits for clients
//   //    server.listen()
//   //    fd 3 (server) LISTEN 127.0.0.1:41234
//
// Nothing is scripted: every fd, state, address and queue in a step comes from /proc after
// the step's call returned. A state change the kernel makes on its own (the ACK of a FIN, the
// handshake's last ACK) is waited for by reading the kernel again, up to `settle_limit`; a
// step whose expected state did not come by then is shown as it is, with settled = false.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "wire/diag/fd_table.hpp"
#include "wire/diag/sockets.hpp"

namespace wire::diag {

inline constexpr int tour_steps = 10;

struct TourOptions {
  std::uint16_t port = 0;  // the server's port on 127.0.0.1; 0: the kernel chooses a free one
  std::chrono::milliseconds settle_limit{2000};
};

// One of the tour's fds and the Python variable that holds it: "server", "client", "conn".
struct TourFd {
  std::string name;
  FdInfo info;
};

struct TourStep {
  int number = 0;     // 1..10
  std::string title;  // "listen: the socket waits for clients"
  std::string
      python;        // the tutorial's line, with the real port: "server.bind(('127.0.0.1', 41234))"
  std::string wire;  // the same call in wire: "server.bind(wire::Address::inet(...));"
  std::string explanation;  // what the kernel now holds, with this run's fds and ports
  std::vector<TourFd> fds;  // the tour's open fds, from fd_table(), ordered by fd
  // The sockets of the tour's connection that no fd of this process holds, from sockets()
  // on the tour's port (a stranger's connection to the port is left out).
  SocketList without_fd;
  bool settled = true;  // false: the expected state had not come within settle_limit
};

// Runs the ten steps, calling `on_step` after each with what the kernel then holds. The
// sockets live in this process (fds 3, 4, 5 in a fresh one) and are all closed on return.
// `on_step` may block (`wire tour --pause` waits for Enter there) or throw, which stops the
// tour and closes its sockets. Throws wire::Error when a step fails: the port is in use
// ("bind tcp://127.0.0.1:8000: Address already in use"), no fds are left...
void run_tour(const TourOptions& options, const std::function<void(const TourStep&)>& on_step);

// One step as a JSON object: number, title, python, wire, explanation, settled; "names" maps
// each variable to its fd ({"server": 3}); "fds" is those fds' rows as `wire fds --json`
// gives them, "without_fd" the list as `to_json(SocketList)` gives it.
std::string tour_step_json(const TourStep& step);

}  // namespace wire::diag
