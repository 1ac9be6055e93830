// wire tour [--pause] [--json] [--port N]: the tutorial's TCP server and client, step by step,
// with the fd table and socket states the kernel reports after each step.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.hpp"
#include "fd_table_text.hpp"
#include "wire/diag.hpp"

namespace wire::cli {
namespace {

// `text` in lines of at most `width` columns (a longer word stands alone), each indented.
std::string wrapped(const std::string& text, std::size_t width, const std::string& indent) {
  std::string out;
  std::string line;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string::npos) end = text.size();
    const std::string word = text.substr(start, end - start);
    if (!line.empty() && indent.size() + line.size() + 1 + word.size() > width) {
      out += indent + line + "\n";
      line.clear();
    }
    if (!word.empty()) line += (line.empty() ? "" : " ") + word;
    start = end + 1;
  }
  if (!line.empty()) out += indent + line + "\n";
  return out;
}

std::string step_text(const diag::TourStep& step, std::chrono::milliseconds settle_limit) {
  std::string text = "Step " + std::to_string(step.number) + "/" +
                     std::to_string(diag::tour_steps) + ". " + step.title + "\n";
  text += "  python  " + step.python + "\n";
  text += "  wire    " + step.wire + "\n\n";
  text += wrapped(step.explanation, 78, "  ");
  if (!step.settled) {
    text += "  (the kernel had not reached that state after " +
            std::to_string(settle_limit.count()) + " ms: shown as it is)\n";
  }
  text += "\n";
  std::vector<diag::FdInfo> rows;
  std::vector<std::string> names;
  for (const auto& held : step.fds) {
    rows.push_back(held.info);
    names.push_back(held.name);
  }
  if (rows.empty()) {
    text += "  (none of the tour's sockets has an fd)\n";
  } else {
    text += fd_table_text(rows, {.names = names, .queues = true, .indent = "  "});
  }
  if (!step.without_fd.sockets.empty()) {
    const bool netlink = step.without_fd.source == diag::Source::netlink;
    text += std::string("\n  held by the kernel, no fd (from ") +
            (netlink ? "sock_diag netlink" : "/proc/net/tcp") + "):\n";
    std::vector<std::vector<std::string>> rows{{"STATE", "RECV-Q", "SEND-Q", "LOCAL", "PEER"}};
    for (const diag::SocketInfo& socket : step.without_fd.sockets) {
      rows.push_back({socket.state, std::to_string(socket.recv_queue),
                      std::to_string(socket.send_queue), socket.local, socket.peer});
    }
    text += aligned_columns(rows, "  ");
  }
  return text + "\n";
}

}  // namespace

Command add_tour(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "tour",
      "The tutorial's TCP server and client, step by step (socket, bind, listen, connect, "
      "accept, send, recv, close): the fds and socket states the kernel reports after each");
  struct Args {
    bool pause = false;
    bool json = false;
    std::uint16_t port = 0;
  };
  auto args = std::make_shared<Args>();
  sub->add_flag("--pause", args->pause,
                "wait for Enter after each step (on stderr; end of input runs to the end)");
  sub->add_flag("--json", args->json, "one JSON array of the steps");
  sub->add_option("--port", args->port, "the server's port on 127.0.0.1 (default 0: a free one)")
      ->check(number_between("a port", 0, 65535));
  return [args] {
    diag::TourOptions options;
    options.port = args->port;
    bool pausing = args->pause;
    bool first = true;
    // The JSON document is printed whole at the end: a tour that fails midway (its port
    // taken) prints none of it, rather than an array a parser cannot close.
    std::string json = "[\n";
    if (!args->json) {
      std::printf(
          "wire tour, pid %d: a TCP server and its client on 127.0.0.1, both in this process.\n"
          "After each step, the tables are read back from the kernel.\n\n",
          static_cast<int>(::getpid()));
    }
    // A reader gone mid-tour (`wire tour | head`) ends it quietly; the tour closes its sockets.
    struct ReaderGone {};
    try {
      diag::run_tour(options, [&](const diag::TourStep& step) {
        if (args->json) {
          json += (first ? "" : ",\n") + diag::tour_step_json(step);
        } else {
          std::fputs(step_text(step, options.settle_limit).c_str(), stdout);
          if (!flush_listing("tour")) throw ReaderGone{};
        }
        first = false;
        if (pausing && step.number < diag::tour_steps) {
          std::fprintf(stderr, "wire tour: Enter for step %d/%d\n", step.number + 1,
                       diag::tour_steps);
          // End of input (or no stdin at all) stops the waiting, never the tour.
          int c = 0;
          while ((c = std::getchar()) != EOF && c != '\n') {
          }
          if (c == EOF) pausing = false;
        }
      });
    } catch (const ReaderGone&) {
      return 0;
    }
    if (args->json) std::fputs((json + "\n]\n").c_str(), stdout);
    flush_listing("tour");
    return 0;
  };
}

}  // namespace wire::cli
