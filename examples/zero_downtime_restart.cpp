// Restart a server without dropping a connection: `kill -USR2 PID` starts this program again,
// which takes the listening socket over through a private control socket; the old process
// finishes its connections and exits 0. Each answer names the pid that served it.
// Usage: zero_downtime_restart CONTROL_PATH [ADDRESS]     (stop with SIGTERM)
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "wire/handoff.hpp"
#include "wire/wire.hpp"

namespace {

wire::Task<void> greet(wire::AsyncSocket& conn) {
  co_await conn.send_all("served by pid " + std::to_string(::getpid()) + "\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: zero_downtime_restart CONTROL_PATH [ADDRESS]\n");
    return 2;
  }
  try {
    wire::ServeOptions options;
    options.control = argv[1];         // where a successor finds us
    options.restart_signal = SIGUSR2;  // re-run /proc/self/exe, which takes over
    options.on_listening = [](const wire::Address& address) {
      std::printf("pid %d serving %s\n", int(::getpid()), address.to_string().c_str());
      std::fflush(stdout);
    };
    options.on_handoff = [](const std::string& line) {
      std::printf("pid %d: %s\n", int(::getpid()), line.c_str());
      std::fflush(stdout);
    };
    // Started by a restart: the old process is waiting for us on the control socket.
    if (auto control = wire::handoff_path_from_environment()) {
      return wire::serve(wire::take_over(*control), greet, options);
    }
    return wire::serve(argc > 2 ? argv[2] : "tcp://127.0.0.1:8080", greet, options);
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "zero_downtime_restart: %s\n", e.what());
    return 1;
  }
}
