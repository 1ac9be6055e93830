// wire relay FROM TO: a forwarder (socat TCP-LISTEN:...,fork TCP:...), zero-copy.
#include <cstdio>
#include <mutex>

#include "commands.hpp"
#include "wire/address.hpp"
#include "wire/relay_between.hpp"

namespace wire::cli {

Command add_relay(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "relay", "Forward every client of FROM to TO, both ways (streams or datagrams)");
  struct Args {
    std::string from;
    std::string to;
    int workers = 1;
    std::size_t max_connections = 0;
    double idle_timeout = 0;
    double connect_timeout = 10;
    bool verbose = false;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("FROM", args->from,
                  "where clients come: tcp://HOST:PORT, unix:/PATH, unix:@NAME, udp://HOST:PORT")
      ->required();
  sub->add_option("TO", args->to, "where each client is relayed (same kind as FROM)")->required();
  sub->add_option("--workers", args->workers, "threads, each with its own loop")
      ->check(CLI::Range(1, 256));
  sub->add_option("--max-connections", args->max_connections,
                  "beyond this, clients wait in the backlog (default: from RLIMIT_NOFILE)");
  sub->add_option("--idle-timeout", args->idle_timeout,
                  "seconds without a byte either way before both sides are closed "
                  "(datagrams: 60 by default)")
      ->check(seconds_option(true));
  sub->add_option("--connect-timeout", args->connect_timeout, "seconds to reach TO (default 10)")
      ->check(seconds_option(false));
  sub->add_flag("--verbose,-v", args->verbose, "a line per connection opened and closed");
  sub->add_flag("--quiet,-q", args->quiet, "print nothing at start");
  return [args] {
    RelayServeOptions options;
    options.serve.workers = args->workers;
    options.serve.limits.max_connections = args->max_connections;
    if (args->idle_timeout > 0) options.relay.idle_timeout = seconds_duration(args->idle_timeout);
    options.connect_timeout = seconds_duration(args->connect_timeout);
    options.verbose = args->verbose;
    options.log = [](std::string_view line, bool) {
      static std::mutex mutex;  // workers log at once: one line at a time
      std::lock_guard lock(mutex);
      std::fprintf(stderr, "wire: %.*s\n", static_cast<int>(line.size()), line.data());
    };
    const std::string to = args->to;
    options.serve.on_listening = [quiet = args->quiet, to](const Address& bound) {
      if (!quiet)
        std::fprintf(stderr, "wire: relay to %s on %s\n", to.c_str(), bound.to_string().c_str());
    };
    try {
      return serve_relay(args->from, args->to, std::move(options));
    } catch (const Error& e) {
      // FROM and TO that cannot work together (a relay to itself, unixgram:) are the
      // user's to fix: a usage error.
      if (e.code() != std::make_error_code(std::errc::invalid_argument)) throw;
      std::fprintf(stderr, "wire: %s\n", e.what());
      return 2;
    }
  };
}

}  // namespace wire::cli
