// wire listen ADDR: netcat's server. Accepts a connection (or takes datagrams) and pipes it
// to stdin/stdout.
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "netcat.hpp"
#include "wire/connect.hpp"
#include "wire/relay.hpp"
#include "wire/socket_file.hpp"

namespace wire::cli {

Command add_listen(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "listen",
      "Accept one connection (or, with --keep-open, one after another) and pipe it "
      "to stdin/stdout (like nc -l). Datagrams: print what the first sender sends (with -k, "
      "every sender) and send stdin to it, until stopped. A Unix socket file is removed "
      "on exit, Ctrl-C (exit 130) and SIGTERM (exit 0)");
  struct Args {
    std::string address;
    bool keep_open = false;
    bool quiet = false;
    NetcatFlags flags;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("ADDRESS", args->address,
                  "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH, unixgram:/PATH, unix:@NAME")
      ->required();
  sub->add_flag("--keep-open,-k", args->keep_open,
                "after a connection ends, accept the next; datagrams: take every sender's");
  sub->add_flag("--quiet", args->quiet, "print nothing at start nor per connection");
  add_netcat_flags(sub, args->flags,
                   "seconds a connection may stay idle: it ends after SECONDS without traffic");
  return [args] {
    fill_closed_standard_fds();
    const NetcatFlags& flags = args->flags;
    Socket server = as_usage_error(
        [&] { return create_server(args->address, ServerOptions{.family = family(flags)}); });
    SocketFile file(server.local_address(), {.on_signals = true});
    if (!args->quiet) say("listening on " + server.local_address().to_string());
    RelayOptions options = relay_options(flags);
    int input = STDIN_FILENO;
    if (server.type() == Type::dgram) {
      // No linger: a listener keeps listening after stdin ends, until -q, -w or a signal.
      options.linger = std::nullopt;
      options.senders =
          args->keep_open ? RelayOptions::Senders::every : RelayOptions::Senders::first;
      if (flags.verbose) {
        options.on_sender = [](const Address& from) {
          const std::string name = from.to_string();
          say("datagram from " +
              (name == "unixgram:" ? "an unbound socket (no reply possible)" : name));
        };
      }
      relay(server, input, STDOUT_FILENO, options);
      return 0;
    }
    do {
      auto [conn, peer] = server.accept();
      if (!args->quiet) {
        const std::string name = peer.to_string();
        say("connection from " + (name == "unix:" ? "an unbound socket" : name) +
            (flags.verbose ? " to " + conn.local_address().to_string() : ""));
      }
      // With --keep-open a peer that resets or vanishes ends its own connection only.
      try {
        RelayStats stats = relay(conn, input, STDOUT_FILENO, options);
        if (stats.input_ended) input = -1;  // nothing more to send
        if (stats.timed_out && flags.verbose) {
          say(conn.describe() + ": idle for " + seconds_text(*flags.wait) + ": closed");
        }
      } catch (const Error& e) {
        if (!args->keep_open) throw;
        say(e.what());
      }
    } while (args->keep_open);
    return 0;
  };
}

}  // namespace wire::cli
