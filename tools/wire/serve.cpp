// wire serve [PORT] [DIR]: a static file server, like python3 -m http.server but fast and safe.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>

#include "commands.hpp"
#include "handoff_flags.hpp"
#include "inherited.hpp"
#include "wire/address.hpp"
#include "wire/http/static_files.hpp"
#include "wire/http/status_page.hpp"
#include "wire/server.hpp"

namespace wire::cli {

namespace {

std::mutex& log_mutex() {
  static std::mutex mutex;
  return mutex;
}

// The peer and the local time, as the access log shows them.
std::pair<std::string, std::string> log_prefix(const AsyncSocket& connection) {
  char when[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::strftime(when, sizeof when, "%d/%b/%Y %H:%M:%S", &tm);
  std::string peer = "-";
  if (auto address = connection.socket().peer_address(std::nothrow)) {
    peer = address->family() == Family::local ? "unix" : address->host();
  }
  return {peer, when};
}

// python3 -m http.server's port, which wire takes first too: digits only.
bool is_port_text(std::string_view text) {
  return !text.empty() && text.size() <= 5 &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Two spellings of one folder ("site" and "./site/") are one folder.
bool same_folder(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

// How the start line and wire get write where a listener is: an abstract socket keeps its '@'.
std::string url_of(const Address& bound) {
  return bound.family() == Family::local
             ? "http+unix:" + std::string(bound.is_abstract() ? "@" : "") + bound.path() + ":/"
             : "http://" +
                   (bound.family() == Family::inet6 ? "[" + bound.host() + "]" : bound.host()) +
                   ":" + std::to_string(bound.port()) + "/";
}

// Where `wire serve` listens and what it serves.
struct Where {
  std::string address;
  std::string directory;
};

}  // namespace

Command add_serve(CLI::App& app) {
  auto* sub =
      app.add_subcommand("serve",
                         "Serve a folder over HTTP, like python3 -m http.server (default: . on "
                         "127.0.0.1:8000)");
  struct Args {
    std::string first;   // PORT, or DIR when not all digits
    std::string second;  // DIR after a PORT
    std::string directory;
    std::string bind;
    int workers = 1;
    bool quiet = false;
    bool dotfiles = false;
    std::string status;  // "on", "off", or "" (on for loopback and Unix addresses)
    CLI::Option* first_option = nullptr;
    CLI::Option* second_option = nullptr;
    CLI::Option* directory_option = nullptr;
    CLI::Option* bind_option = nullptr;

    // From PORT, DIR, --directory and --bind; CLI::ValidationError (a usage error, exit 2)
    // when they contradict each other or a value is malformed.
    Where where() const {
      Where out{".", ""};
      bool have_directory = false;
      std::optional<std::uint16_t> port;
      if (first_option->count() > 0) {
        if (is_port_text(first)) {
          const unsigned long value = std::stoul(first);
          if (value > 65535) {
            throw CLI::ValidationError("PORT", "'" + first + "' is out of range 0-65535");
          }
          port = static_cast<std::uint16_t>(value);
          if (second_option->count() > 0) {
            out.directory = second;
            have_directory = true;
          }
        } else if (second_option->count() > 0) {
          throw CLI::ValidationError(
              "PORT", "'" + detail::printable(first) + "' is not a port (wire serve [PORT] [DIR])");
        } else {
          out.directory = first;
          have_directory = true;
        }
      }
      if (directory_option->count() > 0) {
        if (have_directory && !same_folder(out.directory, directory)) {
          throw CLI::ValidationError("--directory", "'" + detail::printable(directory) +
                                                        "' and DIR '" +
                                                        detail::printable(out.directory) +
                                                        "' differ; give the folder once");
        }
        out.directory = directory;
        have_directory = true;
      }
      if (!have_directory) out.directory = ".";
      if (names_inherited(bind)) {  // a socket passed by systemd: inherited_listeners() finds it
        if (port) {
          throw CLI::ValidationError("PORT", std::to_string(*port) + " and --bind " +
                                                 detail::printable(bind) +
                                                 " both say where to listen; give one");
        }
        out.address = bind;
        return out;
      }
      try {
        out.address = listen_address(bind, port.value_or(8000));
        // A --bind that names its own port (or a Unix socket) ignores the one it is given.
        if (port && bind_option->count() > 0 &&
            listen_address(bind, 1) == listen_address(bind, 2)) {
          throw CLI::ValidationError(
              "PORT", std::to_string(*port) + " and --bind " + detail::printable(bind) +
                          " both say where to listen; give a host alone to --bind, as in "
                          "wire serve " +
                          std::to_string(*port) + " --bind 0.0.0.0");
        }
      } catch (const Error& e) {
        throw CLI::ValidationError("--bind", e.what());
      }
      return out;
    }
  };
  auto args = std::make_shared<Args>();
  args->first_option =
      sub->add_option("PORT", args->first,
                      "port on 127.0.0.1 (default 8000), as in python3 -m http.server 8000. "
                      "A first argument of digits only is a port: write ./8000 (or -d 8000) "
                      "for a folder named 8000");
  args->second_option = sub->add_option("DIR", args->second, "the folder to serve (default: .)");
  args->directory_option = sub->add_option("-d,--directory", args->directory,
                                           "the folder to serve, as python3 -m http.server -d "
                                           "takes it (the same as DIR)");
  args->bind_option = sub->add_option(
      "--bind,-b", args->bind,
      "where to listen: :PORT, HOST, HOST:PORT, [IPV6]:PORT, unix:/PATH or "
      "unix:@NAME. Default 127.0.0.1:8000, this machine only (python3 -m "
      "http.server listens on every interface); name a host to open up, as "
      "in --bind 0.0.0.0. A port alone (:8000) stays on 127.0.0.1. fd:3 or fd:NAME: a socket "
      "inherited from systemd (LISTEN_FDS); started so with no --bind, wire "
      "serves every inherited socket");
  sub->add_option("--workers", args->workers, "threads, each with its own loop")
      ->check(CLI::Range(1, 256));
  sub->add_flag("--quiet,-q", args->quiet, "no access log");
  sub->add_flag("--dotfiles", args->dotfiles,
                "serve and list names starting with '.' (.git, .env): 404 without it");
  sub->add_option("--status", args->status,
                  "on|off: the status page at /_wire/status (fds, connections, requests by "
                  "status, bytes; refreshes itself), /_wire/status.json and Prometheus metrics "
                  "at /_wire/metrics. Default: on when bound to loopback or a Unix socket, off "
                  "otherwise. While on, /_wire is the page's: a _wire in the folder is neither "
                  "served nor listed (said at start)")
      ->check(CLI::IsMember({"on", "off"}));
  auto handoff = std::make_shared<HandoffFlags>();
  add_handoff_flags(sub, *handoff);
  return [args, handoff] {
    const Where where = args->where();
    // Under socket activation (systemd, systemd-socket-activate) the listeners are inherited.
    const bool bind_given = args->bind_option->count() > 0;
    const bool port_given = args->first_option->count() > 0 && is_port_text(args->first);
    std::optional<Inherited> inherited = inherited_listeners(bind_given   ? args->bind
                                                             : port_given ? args->first
                                                                          : "",
                                                             bind_given ? "--bind" : "PORT");
    http::Options options;
    if (!args->quiet) {
      // One line per request on stderr, as python3 -m http.server prints them; a refused
      // request gets one too, with the reason it was refused.
      options.on_response = [](const http::Request& request, int status, std::uint64_t bytes) {
        const auto [peer, when] = log_prefix(*request.connection);
        std::lock_guard lock(log_mutex());
        std::fprintf(stderr, "%s - - [%s] \"%.*s %.*s HTTP/1.%d\" %d %llu\n", peer.c_str(),
                     when.c_str(), static_cast<int>(request.method.size()), request.method.data(),
                     static_cast<int>(request.target.size()), request.target.data(),
                     request.head->version_minor, status, static_cast<unsigned long long>(bytes));
      };
      options.on_reject = [](const AsyncSocket& connection, int status, std::string_view reason) {
        const auto [peer, when] = log_prefix(connection);
        std::lock_guard lock(log_mutex());
        std::fprintf(stderr, "%s - - [%s] refused %d: %.*s\n", peer.c_str(), when.c_str(), status,
                     static_cast<int>(reason.size()), reason.data());
      };
    }
    // Failures are printed even with --quiet: a handler that failed, a response cut short.
    options.on_error = [](const AsyncSocket& connection, std::string_view message) {
      const auto [peer, when] = log_prefix(connection);
      std::lock_guard lock(log_mutex());
      std::fprintf(stderr, "%s - - [%s] error: %.*s\n", peer.c_str(), when.c_str(),
                   static_cast<int>(message.size()), message.data());
    };
    ServeOptions serve_options;
    serve_options.workers = args->workers;
    serve_options.on_stopping = [](std::chrono::nanoseconds grace) {
      std::lock_guard lock(log_mutex());
      std::fprintf(stderr,
                   "Stopping: no new connections; open ones get %.1f s to finish "
                   "(Ctrl-C again to stop at once)\n",
                   std::chrono::duration<double>(grace).count());
    };
    // The status page's default needs the address as it will be bound: a name (localhost)
    // is resolved as serve() resolves it.
    const bool status = args->status.empty()
                            ? http::status_page_on_by_default(
                                  inherited ? inherited->listeners.front().local_address()
                                            : resolve(where.address).front())
                            : args->status == "on";
    http::StaticOptions static_options;
    static_options.dotfiles = args->dotfiles;
    std::optional<std::string> hidden;
    if (status) {
      static_options.hidden = {std::string(http::status_page_name)};
      hidden = http::hidden_by_status_page(where.directory);
    }
    auto handler = http::static_files(where.directory, static_options);
    if (status) {
      auto stats = std::make_shared<http::ServerStats>();
      options.stats = stats;
      serve_options.counters = stats;
      http::StatusPageOptions page;
      page.description = "wire serve " + where.directory;
      handler = http::with_status_page(std::move(handler), stats, std::move(page));
    }
    // Where it serves: the address bound, or every inherited listener and where it came from.
    std::string inherited_at;
    if (inherited) {
      for (const Socket& listener : inherited->listeners) {
        inherited_at += (inherited_at.empty() ? "" : " and ") + url_of(listener.local_address());
      }
      inherited_at += " (" + inherited->summary + ")";
    }
    serve_options.on_listening = [where, hidden, inherited_at](const Address& bound) {
      const std::string at = inherited_at.empty() ? url_of(bound) : inherited_at;
      // Both may hold any byte (a folder or socket named with an escape sequence): shown safe.
      std::fprintf(stderr, "Serving %s at %s\n", detail::printable(where.directory).c_str(),
                   detail::printable(at).c_str());
      if (hidden) {
        std::fprintf(stderr,
                     "wire: %s is not served: /_wire is the status page's (--status off "
                     "serves it)\n",
                     detail::printable(*hidden).c_str());
      }
    };
    auto connection_handler = http::connection_handler(std::move(handler), options);
    if (inherited) {
      no_handoff_for(*handoff, inherited_handoff_refusal, serve_options);
      return serve(std::move(inherited->listeners), connection_handler, serve_options);
    }
    return serve_handing_over(*handoff, where.address, std::move(connection_handler),
                              std::move(serve_options));
  };
}

}  // namespace wire::cli
