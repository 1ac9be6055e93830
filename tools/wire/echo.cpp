// wire echo ADDR: an echo server for tcp, udp and unix addresses.
#include <cstdio>

#include "commands.hpp"
#include "handoff_flags.hpp"
#include "wire/address.hpp"
#include "wire/echo.hpp"
#include "wire/server.hpp"

namespace wire::cli {

Command add_echo(CLI::App& app) {
  auto* sub = app.add_subcommand("echo", "Echo server: sends back every byte (or datagram)");
  struct Args {
    std::string address;
    int workers = 1;
    std::size_t max_connections = 0;
    double idle_timeout = 0;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("ADDRESS", args->address,
                  "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH, unix:@NAME, unixgram:/PATH")
      ->required();
  sub->add_option("--workers", args->workers, "threads, each with its own loop")
      ->check(CLI::Range(1, 256));
  sub->add_option("--max-connections", args->max_connections,
                  "beyond this, clients wait in the backlog (default: from RLIMIT_NOFILE)");
  sub->add_option("--idle-timeout", args->idle_timeout, "seconds before an idle connection closes")
      ->check(seconds_option(true));
  sub->add_flag("--quiet,-q", args->quiet, "print nothing at start");
  auto handoff = std::make_shared<HandoffFlags>();
  add_handoff_flags(sub, *handoff);
  return [args, handoff] {
    ServeOptions options;
    options.workers = args->workers;
    options.limits.max_connections = args->max_connections;
    if (args->idle_timeout > 0) {
      options.limits.idle_timeout = seconds_duration(args->idle_timeout);
    }
    options.on_listening = [quiet = args->quiet](const Address& bound) {
      if (!quiet) std::fprintf(stderr, "wire: echo on %s\n", bound.to_string().c_str());
    };
    const Address where = resolve(args->address).front();
    if (where.type() == Type::dgram) {
      if (handoff->takeover_option->count() > 0 || handoff->control_option->count() > 0) {
        throw CLI::ValidationError("--takeover",
                                   "datagram servers cannot be handed over (stream only)");
      }
      return serve_datagrams(args->address, echo_datagrams, options);
    }
    return serve_handing_over(*handoff, args->address, echo_connection, options);
  };
}

}  // namespace wire::cli
