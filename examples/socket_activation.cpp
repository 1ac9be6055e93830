// Socket activation, both sides. Started by systemd or
//   systemd-socket-activate -l 127.0.0.1:8080 --fdname=greeting ./socket_activation
// it finds its listener in LISTEN_FDS and greets one client. Started by hand, it plays
// systemd's part: it listens on ADDRESS itself and starts this program again with the listener
// as fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=greeting, LISTEN_PID=the child's pid).
// Usage: socket_activation [ADDRESS]     (serves one client, then exits)
#include <unistd.h>

#include <cstdio>
#include <string>

#include "wire/process.hpp"
#include "wire/wire.hpp"

namespace {

// The activated side: whatever started us listened; we only accept.
int greet(std::vector<wire::ListenFd> inherited) {
  std::vector<wire::Socket> listeners = wire::take_listen_fds(inherited, "fd:greeting");
  wire::Socket& listener = listeners.front();
  std::printf("pid %d: socket-activated, fd %d is %s\n", int(::getpid()), listener.fileno(),
              listener.local_address().to_string().c_str());
  std::fflush(stdout);
  auto [conn, peer] = listener.accept();
  conn.send_all("hello from pid " + std::to_string(::getpid()) + ", socket-activated\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<wire::ListenFd> inherited = wire::listen_fds_with_names();
    if (!inherited.empty()) return greet(std::move(inherited));

    wire::Socket listener = wire::create_server(argc > 1 ? argv[1] : "tcp://127.0.0.1:8080");
    std::printf("listening on %s\n", listener.local_address().to_string().c_str());
    std::fflush(stdout);
    wire::ChildProcess child =
        wire::spawn({"/proc/self/exe"}, {.listen_fds = {{listener.fileno(), "greeting"}}});
    listener.close();  // the child's copy is the listener now
    wire::ExitStatus status = child.wait();
    std::printf("supervisor: child pid %d %s\n", int(child.pid()), status.describe().c_str());
    return status.success() ? 0 : 1;
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "socket_activation: %s\n", e.what());
    return 1;
  }
}
