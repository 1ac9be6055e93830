// wire echo ADDR: an echo server for tcp, udp and unix addresses.
#include <cstdio>

#include "commands.hpp"
#include "handoff_flags.hpp"
#include "inherited.hpp"
#include "wire/address.hpp"
#include "wire/echo.hpp"
#include "wire/server.hpp"

namespace wire::cli {

Command add_echo(CLI::App& app) {
  auto* sub = app.add_subcommand("echo", "Echo server: sends back every byte (or datagram)");
  struct Args {
    std::string address;
    std::string bind;
    int workers = 1;
    std::size_t max_connections = 0;
    double idle_timeout = 0;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  auto* address = sub->add_option(
      "ADDRESS", args->address,
      "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH, unix:@NAME, unixgram:/PATH, or fd:3 / "
      "fd:NAME: a socket inherited from systemd (LISTEN_FDS). Needed unless started under "
      "socket activation, where wire serves every inherited socket");
  sub->add_option("--bind,-b", args->bind, "the same as ADDRESS (as wire serve takes it)")
      ->excludes(address);
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
    const std::string given = args->bind.empty() ? args->address : args->bind;
    std::optional<Inherited> inherited =
        inherited_listeners(given, args->bind.empty() ? "ADDRESS" : "--bind");
    if (inherited) {
      std::string at;
      for (const Socket& listener : inherited->listeners) {
        at += (at.empty() ? "" : " and ") + listener.local_address().to_string();
      }
      at += " (" + inherited->summary + ")";
      options.on_listening = [quiet = args->quiet, at](const Address&) {
        if (!quiet) std::fprintf(stderr, "wire: echo on %s\n", detail::printable(at).c_str());
      };
      no_handoff_for(*handoff, inherited_handoff_refusal, options);
      return serve(std::move(inherited->listeners), echo_connection, options);
    }
    if (given.empty()) {
      throw CLI::ValidationError("ADDRESS", "required (unless started by socket activation)");
    }
    options.on_listening = [quiet = args->quiet](const Address& bound) {
      if (!quiet) std::fprintf(stderr, "wire: echo on %s\n", bound.to_string().c_str());
    };
    const Address where = resolve(given).front();
    if (where.type() == Type::dgram) {
      no_handoff_for(*handoff, "a datagram server cannot be handed over (stream only)", options);
      return serve_datagrams(given, echo_datagrams, options);
    }
    return serve_handing_over(*handoff, given, echo_connection, options);
  };
}

}  // namespace wire::cli
