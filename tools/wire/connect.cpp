// wire connect ADDR: netcat's client. stdin to the socket, the socket to stdout; -z probes.
#include <unistd.h>

#include "commands.hpp"
#include "netcat.hpp"
#include "wire/connect.hpp"
#include "wire/probe.hpp"
#include "wire/relay.hpp"

namespace wire::cli {

Command add_connect(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "connect",
      "Connect and pipe stdin to the socket and the socket to stdout; at stdin EOF "
      "half-close and read until the peer closes (like nc HOST PORT)");
  struct Args {
    std::string address;
    std::vector<std::string> ports;
    NetcatFlags flags;
    bool probe = false;
    double linger = 1;
    std::string source;
    std::uint16_t source_port = 0;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("ADDRESS", args->address,
                  "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH, unixgram:/PATH, HOST:PORT; "
                  "HOST may be a name, PORT a service name (http) or, with -z, a range "
                  "(8000-8010); or HOST alone, followed by PORT...")
      ->required();
  sub->add_option("PORT", args->ports, "nc's form: wire connect HOST PORT (several with -z)");
  add_netcat_flags(sub, args->flags,
                   "seconds to connect (default 10) and, once connected, to stay idle: "
                   "the connection ends after SECONDS without traffic");
  sub->add_flag("-z,--probe", args->probe,
                "connect and close at once, sending nothing: exit 0 if every port is open, "
                "1 otherwise (with -v, say which)");
  sub->add_option("-s,--source", args->source, "numeric IP to connect from");
  sub->add_option("-p,--source-port", args->source_port, "port to connect from");
  sub->add_option("--linger", args->linger,
                  "udp/unixgram: seconds to wait for replies after stdin ends")
      ->check(seconds_option(true));
  return [args] {
    fill_closed_standard_fds();
    const NetcatFlags& flags = args->flags;
    ConnectOptions options{.timeout = seconds_duration(flags.wait.value_or(10)),
                           .family = family(flags),
                           .source_host = args->source,
                           .source_port = args->source_port};
    std::vector<std::string> targets;
    if (args->ports.empty()) {
      targets.push_back(args->address);
    } else {
      for (const auto& port : args->ports) targets.push_back(join_host_port(args->address, port));
    }
    if (args->probe) {
      std::vector<std::string> all;
      for (const auto& target : targets) {
        for (auto& one : as_usage_error([&] { return expand_port_range(target); })) {
          all.push_back(std::move(one));
        }
      }
      bool every_open = true;
      for (const auto& target : all) {
        ProbeResult result = probe(target, options, seconds_duration(flags.wait.value_or(1)));
        // Bad address text (a port above 65535, a name as source) is a usage error.
        if (result.error == errc::invalid_address) throw CLI::ValidationError(result.message);
        every_open = every_open && result.open();
        if (result.open() && flags.verbose) say(result.address.to_string() + " open");
        if (!result.open() && flags.verbose) say(result.message);  // closed: the answer asked for
      }
      return every_open ? 0 : 1;
    }
    if (targets.size() != 1) {
      say("connect takes one PORT (several only with -z)");
      return 2;
    }
    Socket socket = as_usage_error([&] { return create_connection(targets.front(), options); });
    if (flags.verbose) {
      say("connected to " + socket.describe() + " from " + socket.local_address().to_string());
    }
    RelayOptions relay_options = cli::relay_options(flags);
    relay_options.linger = seconds_duration(args->linger);
    if (flags.quit) relay_options.linger = std::nullopt;  // -q decides when to stop
    RelayStats stats = relay(socket, STDIN_FILENO, STDOUT_FILENO, relay_options);
    if (stats.timed_out && flags.verbose) {
      say(socket.describe() + ": idle for " + seconds_text(*flags.wait) + ": closed");
    }
    return 0;
  };
}

}  // namespace wire::cli
