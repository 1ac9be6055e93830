// wire connect ADDR: netcat's client. stdin to the socket, the socket to stdout.
#include <unistd.h>

#include "commands.hpp"
#include "wire/connect.hpp"
#include "wire/relay.hpp"

namespace wire::cli {

Command add_connect(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "connect",
      "Connect and pipe stdin to the socket and the socket to stdout; at stdin EOF "
      "half-close and read until the peer closes");
  struct Args {
    std::string address;
    double timeout = 10;
    double linger = 1;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("ADDRESS", args->address, "tcp://HOST:PORT, udp://HOST:PORT, unix:/PATH, ...")
      ->required();
  sub->add_option("--timeout,-w", args->timeout, "seconds to connect, all addresses together")
      ->check(CLI::PositiveNumber);
  sub->add_option("--linger", args->linger,
                  "udp/unixgram: seconds to wait for replies after stdin ends")
      ->check(CLI::NonNegativeNumber);
  return [args] {
    const auto seconds = [](double s) {
      return std::chrono::nanoseconds(static_cast<std::int64_t>(s * 1e9));
    };
    Socket socket = create_connection(args->address, seconds(args->timeout));
    relay(socket, STDIN_FILENO, STDOUT_FILENO, RelayOptions{.linger = seconds(args->linger)});
    return 0;
  };
}

}  // namespace wire::cli
