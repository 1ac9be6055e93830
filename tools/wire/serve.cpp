// wire serve [DIR]: a static file server, like python3 -m http.server but fast and safe.
#include <cstdio>
#include <ctime>
#include <mutex>

#include "commands.hpp"
#include "wire/http/static_files.hpp"
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

}  // namespace

Command add_serve(CLI::App& app) {
  auto* sub =
      app.add_subcommand("serve", "Serve a folder over HTTP (default: . on 127.0.0.1:8000)");
  struct Args {
    std::string directory = ".";
    std::string bind = "tcp://127.0.0.1:8000";
    int workers = 1;
    bool quiet = false;
    bool dotfiles = false;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("DIR", args->directory, "the folder to serve");
  sub->add_option("--bind,-b", args->bind, "address: tcp://HOST:PORT, HOST:PORT or unix:/PATH");
  sub->add_option("--workers", args->workers, "threads, each with its own loop")
      ->check(CLI::Range(1, 256));
  sub->add_flag("--quiet,-q", args->quiet, "no access log");
  sub->add_flag("--dotfiles", args->dotfiles,
                "serve and list names starting with '.' (.git, .env): 404 without it");
  return [args] {
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
    serve_options.on_listening = [args](const Address& bound) {
      std::string url =
          bound.family() == Family::local
              ? "http+unix:" + bound.path() + ":/"
              : "http://" +
                    (bound.family() == Family::inet6 ? "[" + bound.host() + "]" : bound.host()) +
                    ":" + std::to_string(bound.port()) + "/";
      std::fprintf(stderr, "Serving %s at %s\n", args->directory.c_str(), url.c_str());
    };
    http::StaticOptions static_options;
    static_options.dotfiles = args->dotfiles;
    auto handler = http::static_files(args->directory, static_options);
    return serve(args->bind, http::connection_handler(std::move(handler), options), serve_options);
  };
}

}  // namespace wire::cli
