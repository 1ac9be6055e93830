// wire fds [PID] [--json]: every fd of a process, sockets with their addresses and state.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "fd_table_text.hpp"
#include "wire/diag.hpp"

namespace wire::cli {

Command add_fds(CLI::App& app) {
  auto* sub = app.add_subcommand("fds",
                                 "Every fd of a process (default: wire itself): "
                                 "kind, flags, socket state and addresses");
  struct Args {
    pid_t pid = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  // Checked here so `wire fds abc` says what a PID is, not CLI11's "Value abc not in range".
  sub->add_option("PID", args->pid, "process id (default: this wire)")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            char* end = nullptr;
            errno = 0;
            const long value = std::strtol(text.c_str(), &end, 10);
            if (text.empty() || text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE ||
                value < 1 || value > 0x7fffffff) {
              return "must be a process id (a number from 1), not '" + detail::printable(text) +
                     "'";
            }
            return {};
          },
          "PID", "pid"));
  sub->add_flag("--json", args->json, "a JSON array of objects");
  return [args] {
    const auto table = diag::fd_table(args->pid > 0 ? args->pid : ::getpid());
    if (args->json) {
      std::fputs(diag::to_json(table).c_str(), stdout);
    } else {
      std::fputs(fd_table_text(table).c_str(), stdout);
    }
    flush_listing("fds");
    return 0;
  };
}

}  // namespace wire::cli
