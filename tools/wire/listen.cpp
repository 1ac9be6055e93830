// wire listen ADDR: netcat's server. Accepts a connection and pipes it to stdin/stdout.
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "wire/connect.hpp"
#include "wire/relay.hpp"
#include "wire/stream.hpp"

namespace wire::cli {

Command add_listen(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "listen",
      "Accept one connection (or, with --keep-open, one after another) and pipe it "
      "to stdin/stdout");
  struct Args {
    std::string address;
    bool keep_open = false;
    bool quiet = false;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("ADDRESS", args->address, "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH, ...")
      ->required();
  sub->add_flag("--keep-open,-k", args->keep_open, "after a connection ends, accept the next");
  sub->add_flag("--quiet,-q", args->quiet, "print nothing at start");
  return [args] {
    Socket server = create_server(args->address);
    if (!args->quiet) {
      std::fprintf(stderr, "wire: listening on %s\n", server.local_address().to_string().c_str());
    }
    int input = STDIN_FILENO;
    do {
      if (server.type() == Type::dgram) {
        // The first datagram names the peer; from then on the socket talks only to it.
        char first[65536];
        auto datagram = server.recvfrom(std::span<char>(first));
        server.connect(datagram.from);
        Stream out(STDOUT_FILENO);  // no SIGPIPE if stdout's reader is gone
        out.write(std::string_view(first, datagram.size));
        out.flush();
        relay(server, input, STDOUT_FILENO);
        return 0;
      }
      auto [conn, peer] = server.accept();
      if (!args->quiet)
        std::fprintf(stderr, "wire: connection from %s\n", peer.to_string().c_str());
      if (!args->keep_open) {
        if (relay(conn, input, STDOUT_FILENO).input_ended) input = -1;
        break;
      }
      // With --keep-open a peer that resets or vanishes ends its own connection only.
      try {
        if (relay(conn, input, STDOUT_FILENO).input_ended) input = -1;  // nothing more to send
      } catch (const Error& e) {
        std::fprintf(stderr, "wire: %s\n", e.what());
      }
    } while (args->keep_open);
    return 0;
  };
}

}  // namespace wire::cli
