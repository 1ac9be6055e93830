// wire get URL: an HTTP client on the command line.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

#include "commands.hpp"
#include "wire/http/client.hpp"
#include "wire/stream.hpp"

namespace wire::cli {

Command add_get(CLI::App& app) {
  auto* sub = app.add_subcommand("get", "HTTP request; prints the body (exit 1 unless 2xx/3xx)");
  struct Args {
    std::string url;
    std::string method = "GET";
    std::vector<std::string> headers;
    std::string data;
    bool has_data = false;
    std::string output;
    bool include = false;
    bool follow = false;
    double timeout = 30;
  };
  auto args = std::make_shared<Args>();
  sub->add_option("URL", args->url, "http://HOST[:PORT]/PATH or http+unix:/SOCKET:/PATH")
      ->required();
  sub->add_option("-X,--request", args->method, "method (default GET, or POST with -d)");
  sub->add_option("-H,--header", args->headers, "'Name: value' (repeatable)");
  sub->add_option("-d,--data", args->data, "request body")->each([args](const std::string&) {
    args->has_data = true;
  });
  sub->add_option("-o,--output", args->output, "write the body to FILE");
  sub->add_flag("-i,--include", args->include, "print the status line and headers too");
  sub->add_flag("-L,--location", args->follow, "follow redirects");
  sub->add_option("--timeout", args->timeout, "seconds for connect and each read")
      ->check(CLI::PositiveNumber);
  return [args] {
    http::ClientOptions options;
    options.follow_redirects = args->follow;
    options.timeout = std::chrono::nanoseconds(static_cast<std::int64_t>(args->timeout * 1e9));
    http::Client client(options);
    http::Client::Headers headers;
    for (const auto& h : args->headers) {
      auto colon = h.find(':');
      if (colon == std::string::npos)
        throw CLI::ValidationError("--header", "expected 'Name: value'");
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      headers.emplace_back(h.substr(0, colon), value);
    }
    std::string method = args->method;
    if (args->has_data && method == "GET") method = "POST";

    // The body goes to stdout or the file as it arrives, both through Stream: a reader that
    // quits (stdout piped to head, -o naming a FIFO) is an EPIPE error, never SIGPIPE, and a
    // write error (a full disk) fails the command.
    struct OutputFile {
      int fd = -1;
      ~OutputFile() {
        if (fd >= 0) ::close(fd);
      }
    } file;
    if (!args->output.empty()) {
      file.fd = ::open(args->output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
      if (file.fd < 0) throw Error(detail::last_error(), "open", args->output);
    }
    Stream out(file.fd >= 0 ? file.fd : STDOUT_FILENO);
    const bool progress = ::isatty(STDERR_FILENO) == 1;
    bool progress_shown = false;
    auto sink = [&](std::string_view bytes, std::uint64_t received,
                    std::optional<std::uint64_t> total) {
      out.write(bytes);
      if (progress && total && *total > (1u << 20)) {
        int percent = static_cast<int>(received * 100 / *total);
        std::fprintf(stderr, "\r[%-50s] %3d%% %llu/%llu bytes",
                     std::string(percent / 2, '#').c_str(), percent,
                     static_cast<unsigned long long>(received),
                     static_cast<unsigned long long>(*total));
        progress_shown = true;
      }
    };
    // With -i the head must come before the body, so the body is kept until the head is out.
    http::ClientResponse response =
        args->include && args->output.empty()
            ? client.request(method, args->url, headers, args->data)
            : client.request(method, args->url, headers, args->data, sink);
    if (progress_shown) std::fprintf(stderr, "\n");
    if (args->include) {
      out.write("HTTP/1.1 " + std::to_string(response.status) + " " + response.reason + "\r\n");
      for (const auto& [n, v] : response.headers) out.write(n + ": " + v + "\r\n");
      out.write("\r\n");
      out.write(response.body);
    }
    out.flush();
    if (response.status >= 400) {
      std::fprintf(stderr, "wire: %s %s: %d %s\n", method.c_str(), args->url.c_str(),
                   response.status, response.reason.c_str());
      return 1;
    }
    return 0;
  };
}

}  // namespace wire::cli
