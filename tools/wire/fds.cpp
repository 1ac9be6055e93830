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
#include "wire/diag.hpp"

namespace wire::cli {
namespace {

std::string flag_words(const diag::FdInfo& fd) {
  std::string words;
  if (fd.cloexec) words = "cloexec";
  if (fd.nonblock) words += words.empty() ? "nonblock" : ",nonblock";
  return words.empty() ? "-" : words;
}

void print_table(const std::vector<diag::FdInfo>& table) {
  std::vector<std::array<std::string, 5>> rows{{"FD", "KIND", "FLAGS", "STATE", "TARGET"}};
  for (const auto& fd : table) {
    rows.push_back({std::to_string(fd.fd), std::string(diag::kind_name(fd.kind)), flag_words(fd),
                    fd.state.empty() ? "-" : fd.state,
                    fd.target.empty() ? "-" : detail::printable(fd.target)});
  }
  std::array<std::size_t, 4> width{};
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < width.size(); ++i) {
      line += row[i] + std::string(width[i] - row[i].size() + 2, ' ');
    }
    line += row[4];
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

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
      print_table(table);
    }
    if (std::fflush(stdout) != 0) {
      throw Error(detail::last_error(), "fds", "stdout");
    }
    return 0;
  };
}

}  // namespace wire::cli
