// wire/process/socket_activation.hpp — listeners handed over at start by systemd (a .socket
// unit), systemd-socket-activate or any supervisor that speaks its protocol: sd_listen_fds(3)
// and sd_listen_fds_with_names(3). The other side, starting a program with listeners of
// ours, is SpawnOptions::listen_fds (wire/process/spawn.hpp).
//
//   int main() {
//     // Call it first, before any thread starts: it reads and then unsets the environment.
//     std::vector<wire::ListenFd> inherited = wire::listen_fds_with_names();
//     if (inherited.empty()) return wire::serve("tcp://127.0.0.1:8080", handle);  // not activated
//     // `systemd-socket-activate -l 8080 --fdname=web ./server`, or FileDescriptorName=web:
//     std::vector<wire::Socket> web = wire::take_listen_fds(inherited, "fd:web");  // or "fd:3"
//     return wire::serve(std::move(web), handle);
//   }
//
//   // Every inherited socket, names aside (sd_listen_fds):
//   return wire::serve(wire::listen_fds(), handle);
//
//   // The other side, as systemd does it: the child finds the listener at its fd 3 with
//   // LISTEN_FDS=1, LISTEN_FDNAMES=web and LISTEN_PID=its own pid.
//   wire::Socket listener = wire::create_server("tcp://127.0.0.1:8080");
//   wire::ChildProcess server =
//       wire::spawn({"./server"}, {.listen_fds = {{listener.fileno(), "web"}}});
//
// The protocol: LISTEN_PID is the pid of the process the fds are for (a variable inherited
// by one of its children is not for the child); LISTEN_FDS is their count, at fds 3, 4, ...;
// LISTEN_FDNAMES, when set, their names joined with ':' (systemd says "unknown" for a socket
// it did not name, and so does this when the variable is absent). Names may repeat: every
// ListenStream= of one .socket unit has the unit's name.
//
// Ownership: each inherited fd becomes a Socket (made close-on-exec, as sd_listen_fds does,
// so a program this process starts gets it only when passed on purpose). The three variables
// are unset in every case, so a child this process starts does not take them for its own.
//
// Errors: a value that is not what the protocol allows (LISTEN_FDS=abc, -1, 0, a count
// beyond the fd limit, an fd that is not open or not a socket, names whose count is not
// LISTEN_FDS) is a wire::Error of ActivationErrc::bad_environment naming the variable and
// the value ("listen_fds LISTEN_FDS=2: fd 4 is not open"); then no fd is taken and every
// one is left as it was. Never a silent wrong fd.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "wire/error.hpp"
#include "wire/socket.hpp"

namespace wire {

// The ways socket activation fails that are not an errno. Both compare equal to
// std::errc::invalid_argument.
enum class ActivationErrc {
  bad_environment = 1,  // LISTEN_PID, LISTEN_FDS or LISTEN_FDNAMES is malformed or wrong
  not_inherited,        // take_listen_fds: no inherited socket has that number or name
};
const std::error_category& activation_category() noexcept;
inline std::error_code make_error_code(ActivationErrc e) noexcept {
  return {static_cast<int>(e), activation_category()};
}

// One inherited socket and the name it was passed with ("unknown" when none was given).
struct ListenFd {
  Socket socket;
  std::string name;
};

// The sockets passed to this process (empty when it was not socket-activated: no LISTEN_PID,
// or one naming another process), in fd order from 3; unsets LISTEN_PID, LISTEN_FDS and
// LISTEN_FDNAMES. Reads and changes the environment: call it before starting threads.
std::vector<ListenFd> listen_fds_with_names();
Result<std::vector<ListenFd>> listen_fds_with_names(std::nothrow_t) noexcept;
// The same without the names.
std::vector<Socket> listen_fds();
Result<std::vector<Socket>> listen_fds(std::nothrow_t) noexcept;

// Moves out of `inherited` the sockets that `which` names: "fd:3" (the socket inherited as
// fd 3) or "fd:web" (every socket named web, in order); the "fd:" may be left out. A number
// that is no inherited fd is taken as a name. ActivationErrc::not_inherited when nothing
// matches (the message lists what was inherited).
std::vector<Socket> take_listen_fds(std::vector<ListenFd>& inherited, std::string_view which);
Result<std::vector<Socket>> take_listen_fds(std::vector<ListenFd>& inherited,
                                            std::string_view which, std::nothrow_t) noexcept;

}  // namespace wire

template <>
struct std::is_error_code_enum<wire::ActivationErrc> : std::true_type {};
