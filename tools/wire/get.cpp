// wire get URL: an HTTP client on the command line, with curl's everyday flags.
// Parsing and printing only: requests, redirects, decoding, resuming live in libwire.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "wire/address.hpp"
#include "wire/http/client.hpp"
#include "wire/http/download.hpp"
#include "wire/http/parser.hpp"
#include "wire/stream.hpp"

namespace wire::cli {
namespace {

constexpr const char* exit_codes =
    "Exit codes: 0 success; 1 a runtime error (connection, timeout, write error) or an HTTP "
    "error status (>= 400); 2 a usage error (bad flag, malformed URL or header).\n"
    "Unlike curl, which exits 0 on a 404, wire exits 1 on any status >= 400 and still prints "
    "the body; -f/--fail prints no body for such a status (curl's --fail, with exit 1, not 22).";

constexpr const char* write_out_help =
    "print after the transfer; variables: %{http_code} %{response_code} %{time_total} "
    "%{time_connect} %{time_starttransfer} %{size_download} %{size_upload} %{size_header} "
    "%{speed_download} %{url_effective} %{num_redirects} %{content_type} %{remote_ip} "
    "%{remote_port} %{http_version}; \\n \\t \\r and %% as in curl";

const std::vector<std::string>& write_out_variables() {
  static const std::vector<std::string> names = {
      "http_code",     "response_code", "time_total",  "time_connect",   "time_starttransfer",
      "size_download", "size_upload",   "size_header", "speed_download", "url_effective",
      "num_redirects", "content_type",  "remote_ip",   "remote_port",    "http_version"};
  return names;
}

// Expands -w's FORMAT: %{name}, %%, and the backslash escapes curl knows.
// `value` is nullptr when only checking the format (at parse time: a typo is a usage error).
std::string expand_write_out(const std::string& format,
                             const std::function<std::string(const std::string&)>* value) {
  std::string out;
  for (std::size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '\\' && i + 1 < format.size()) {
      const char e = format[++i];
      out += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      if (e != 'n' && e != 't' && e != 'r' && e != '\\') out.insert(out.size() - 1, "\\");
    } else if (c == '%' && i + 1 < format.size() && format[i + 1] == '%') {
      out += '%';
      ++i;
    } else if (c == '%' && i + 1 < format.size() && format[i + 1] == '{') {
      const auto close = format.find('}', i);
      if (close == std::string::npos) throw CLI::ValidationError("--write-out", "unclosed %{");
      const std::string name = format.substr(i + 2, close - i - 2);
      const auto& known = write_out_variables();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        throw CLI::ValidationError("--write-out", "unknown variable %{" + name + "}");
      }
      if (value != nullptr) out += (*value)(name);
      i = close;
    } else {
      out += c;
    }
  }
  return out;
}

std::string seconds(std::chrono::nanoseconds d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6f", std::chrono::duration<double>(d).count());
  return text;
}

// A header as curl takes it: "Name: value", "Name:" (do not send the default), "Name;"
// (send it empty). Anything else, or a byte a header may not hold, is a usage error.
struct HeaderArg {
  std::string name, value;
  bool omit = false;
};
HeaderArg parse_header_arg(const std::string& h) {
  HeaderArg out;
  const auto colon = h.find(':');
  if (colon == std::string::npos) {
    if (!h.empty() && h.back() == ';' && http::is_valid_header_name(h.substr(0, h.size() - 1))) {
      out.name = h.substr(0, h.size() - 1);
      return out;
    }
    throw CLI::ValidationError("--header",
                               "expected 'Name: value', got '" + wire::detail::printable(h) + "'");
  }
  out.name = h.substr(0, colon);
  std::string_view value = std::string_view(h).substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  out.value = std::string(value);
  if (!http::is_valid_header_name(out.name)) {
    throw CLI::ValidationError("--header",
                               "'" + wire::detail::printable(out.name) + "' is not a header name");
  }
  if (!http::is_valid_header_value(out.value)) {
    throw CLI::ValidationError(
        "--header", "the value of " + out.name + " holds a byte a header may not (CR, LF, NUL...)");
  }
  out.omit = out.value.empty();
  return out;
}

// -d @file and --data-binary @file / @- : the bytes of a file or stdin. -d drops CR and LF,
// as curl does (it is meant for form fields); --data-binary keeps every byte.
std::string data_arg(const std::string& arg, bool binary) {
  std::string data;
  if (!arg.empty() && arg.front() == '@') {
    const std::string path = arg.substr(1);
    const int fd = path == "-" ? STDIN_FILENO : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(wire::detail::last_error(), "read", path);
    struct Closer {
      int fd;
      ~Closer() {
        if (fd != STDIN_FILENO) ::close(fd);
      }
    } closer{fd};
    char buffer[65536];
    for (;;) {
      const ::ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        data.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0) {
        break;
      } else if (errno != EINTR) {
        throw Error(wire::detail::last_error(), "read", path);  // a folder: EISDIR
      }
    }
    if (!binary) std::erase_if(data, [](char c) { return c == '\r' || c == '\n'; });
  } else {
    data = arg;
  }
  return data;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return text;
}

// One line on stderr, redrawn at most 5 times a second, erased at the end.
class ProgressMeter {
 public:
  explicit ProgressMeter(bool enabled) : enabled_(enabled) {}
  ~ProgressMeter() { erase(); }
  void update(std::uint64_t received, std::optional<std::uint64_t> total) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (shown_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = elapsed > 0 ? static_cast<double>(received) / elapsed : 0;
    char line[160];
    if (total && *total > 0) {
      const double left =
          rate > 0 ? static_cast<double>(*total - std::min(*total, received)) / rate : 0;
      std::snprintf(line, sizeof line, "\r%3d%%  %s of %s  %s/s  ETA %d:%02d",
                    static_cast<int>(received * 100 / *total),
                    human_bytes(static_cast<double>(received)).c_str(),
                    human_bytes(static_cast<double>(*total)).c_str(), human_bytes(rate).c_str(),
                    static_cast<int>(left) / 60, static_cast<int>(left) % 60);
    } else {
      std::snprintf(line, sizeof line, "\r%s  %s/s",
                    human_bytes(static_cast<double>(received)).c_str(), human_bytes(rate).c_str());
    }
    std::fputs(line, stderr);
    std::fputs("\x1b[K", stderr);
    shown_ = true;
  }
  void erase() {
    if (shown_) std::fputs("\r\x1b[K", stderr);
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_{};
};

std::string head_text(const http::ClientResponse& r) {
  std::string text = r.version + " " + std::to_string(r.status) + " " + r.reason + "\r\n";
  for (const auto& [n, v] : r.headers) text += n + ": " + v + "\r\n";
  return text + "\r\n";
}

}  // namespace

Command add_get(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "get", "HTTP request; prints the body (exit 1 on errors and statuses >= 400)");
  sub->footer(exit_codes);
  struct Args {
    std::string url;
    std::string method;
    std::vector<std::string> headers;
    std::vector<std::string> data, data_binary;
    std::string upload;
    std::string output;
    bool remote_name = false;
    bool include = false, head = false, follow = false, verbose = false;
    bool silent = false, show_error = false, fail = false, compressed = false;
    std::string write_out, user_agent, user, resume;
    int max_redirects = 10;
    double timeout = 30, max_time = 0;
    std::uint64_t max_filesize = 0;
  };
  auto args = std::make_shared<Args>();
  // A malformed URL is a usage error (exit 2), found before anything connects.
  sub->add_option(
         "URL", args->url,
         "http://[USER:PASS@]HOST[:PORT]/PATH, http+unix:/SOCKET:/PATH or http+unix:@NAME:/PATH")
      ->required()
      ->check([](const std::string& url) {
        try {
          (void)http::parse_url(url);
          return std::string();
        } catch (const Error& e) {
          return std::string(e.what());
        }
      });
  sub->add_option("-X,--request", args->method, "method (default GET; POST with -d, PUT with -T)")
      ->check([](const std::string& m) {
        return http::is_valid_header_name(m)
                   ? std::string()
                   : "'" + wire::detail::printable(m) + "' is not a method";
      });
  sub->add_option("-H,--header", args->headers,
                  "'Name: value' (repeatable); 'Name:' drops a default header, 'Name;' sends it "
                  "empty")
      ->check([](const std::string& h) {
        try {
          (void)parse_header_arg(h);
          return std::string();
        } catch (const std::exception& e) {
          // CLI11 names the option itself: only the reason.
          std::string why = e.what();
          const auto colon = why.find(": ");
          return colon == std::string::npos ? why : why.substr(colon + 2);
        }
      })
      ->allow_extra_args(false);
  sub->add_option("-d,--data", args->data,
                  "request body (POST, form-encoded); @FILE or @- reads it, without CR/LF; "
                  "repeated ones are joined with &")
      ->allow_extra_args(false);
  sub->add_option("--data-binary", args->data_binary, "request body as is; @FILE or @- reads it")
      ->allow_extra_args(false);
  sub->add_option("-T,--upload-file", args->upload,
                  "PUT FILE, streamed (- for stdin, sent chunked); a URL ending in / gets the "
                  "file's name");
  sub->add_option("-o,--output", args->output, "write the body to FILE (- for stdout)");
  sub->add_flag("-O,--remote-name", args->remote_name, "write the body to the URL's file name");
  sub->add_option("-C,--continue-at", args->resume,
                  "- : resume the -o/-O file where it stops (Range + If-Range)")
      ->check(CLI::IsMember({"-"}));
  sub->add_flag("-i,--include", args->include, "print the response head before the body");
  sub->add_flag("-I,--head", args->head, "HEAD request; print the response head");
  sub->add_flag("-L,--location", args->follow,
                "follow redirects (http:// only, credentials "
                "dropped when the host changes)");
  sub->add_option("--max-redirs", args->max_redirects, "redirects followed at most (default 10)")
      ->check(CLI::Range(0, 1000));
  sub->add_flag("-v,--verbose", args->verbose, "request and response heads on stderr");
  sub->add_flag("-s,--silent", args->silent, "no progress meter, no error messages");
  sub->add_flag("-S,--show-error", args->show_error, "with -s: error messages still shown");
  sub->add_flag("-f,--fail", args->fail, "status >= 400: print no body (exit 1 either way)");
  sub->add_flag("--compressed", args->compressed, "ask for gzip/deflate and decode it");
  sub->add_option("-w,--write-out", args->write_out, write_out_help)
      ->check([](const std::string& f) {
        try {
          (void)expand_write_out(f, nullptr);
          return std::string();
        } catch (const std::exception& e) {
          // CLI11 names the option itself: only the reason.
          std::string why = e.what();
          const auto colon = why.find(": ");
          return colon == std::string::npos ? why : why.substr(colon + 2);
        }
      });
  sub->add_option("-A,--user-agent", args->user_agent, "User-Agent header")
      ->check([](const std::string& a) {
        return http::is_valid_header_value(a)
                   ? std::string()
                   : std::string("a User-Agent may not hold CR, LF, NUL or other controls");
      });
  sub->add_option("-u,--user", args->user, "USER:PASS for Basic auth")
      ->check([](const std::string& user) {
        return user.find(':') == std::string::npos
                   ? std::string("expected USER:PASS (wire never prompts for a password)")
                   : std::string();
      });
  sub->add_option("--timeout", args->timeout,
                  "idle timeout: seconds for connect and each wait (default 30)")
      ->check(seconds_option(false));
  sub->add_option("-m,--max-time", args->max_time, "seconds for the whole request at most")
      ->check(seconds_option(false));
  sub->add_option("--max-filesize", args->max_filesize,
                  "refuse a body larger than BYTES (no limit by default when the body is "
                  "written out as it arrives)");
  return [args] {
    http::ClientOptions options;
    options.follow_redirects = args->follow;
    options.max_redirects = args->max_redirects;
    options.decompress = args->compressed;
    options.timeout = seconds_duration(args->timeout);
    if (args->max_time > 0) {
      options.max_time = seconds_duration(args->max_time);
    }
    if (args->max_filesize > 0) {
      options.max_body = args->max_filesize;
      options.max_response = args->max_filesize;
    }
    if (!args->user_agent.empty()) options.user_agent = args->user_agent;
    http::Client client(options);
    const bool show_errors = !args->silent || args->show_error;

    http::ClientRequest request;
    request.url = args->url;
    for (const auto& h : args->headers) {
      HeaderArg header = parse_header_arg(h);
      if (header.omit) {
        request.omit.push_back(header.name);
      } else {
        request.headers.emplace_back(header.name, header.value);
      }
    }
    if (!args->user.empty()) {
      // An Authorization header like any other: dropped when a redirect changes the origin.
      request.headers.emplace_back("Authorization", http::basic_authorization(args->user));
    }
    std::string method = args->method;
    const bool has_data = !args->data.empty() || !args->data_binary.empty();
    if (has_data && !args->upload.empty()) {
      throw CLI::ValidationError("--upload-file", "cannot be combined with -d/--data-binary");
    }
    if (has_data) {
      std::string body;
      for (const auto& d : args->data) body += (body.empty() ? "" : "&") + data_arg(d, false);
      for (const auto& d : args->data_binary) body += (body.empty() ? "" : "&") + data_arg(d, true);
      request.body = std::move(body);
      if (!args->data.empty()) {
        bool typed = false;
        for (const auto& [n, v] : request.headers)
          typed = typed || http::equals_ignore_case(n, "content-type");
        if (!typed)
          request.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
      }
      if (method.empty()) method = "POST";  // -X GET -d keeps GET, as curl does
    }

    // -T: the file is read as it is sent, never whole into memory.
    struct Input {
      int fd = -1;
      bool owned = false;
      ~Input() {
        if (owned && fd >= 0) ::close(fd);
      }
    } input;
    if (!args->upload.empty()) {
      if (args->upload == "-") {
        input.fd = STDIN_FILENO;
      } else {
        input.fd = ::open(args->upload.c_str(), O_RDONLY | O_CLOEXEC);
        if (input.fd < 0) throw Error(wire::detail::last_error(), "open", args->upload);
        input.owned = true;
        struct ::stat st {};
        if (::fstat(input.fd, &st) != 0)
          throw Error(wire::detail::last_error(), "stat", args->upload);
        if (S_ISDIR(st.st_mode)) {  // found before anything is sent
          throw Error(std::make_error_code(std::errc::is_a_directory), "upload", args->upload);
        }
        if (S_ISREG(st.st_mode)) request.body_length = static_cast<std::uint64_t>(st.st_size);
        if (!request.url.empty() && request.url.back() == '/') {
          const auto slash = args->upload.rfind('/');
          request.url += http::percent_encode(
              args->upload.substr(slash == std::string::npos ? 0 : slash + 1), "!$&'()*+,;=:@");
        }
      }
      const int fd = input.fd;
      const std::string name = args->upload;
      request.body_reader = [fd, name](std::span<char> buffer) -> std::size_t {
        for (;;) {
          const ::ssize_t n = ::read(fd, buffer.data(), buffer.size());
          if (n >= 0) return static_cast<std::size_t>(n);
          if (errno != EINTR) throw Error(wire::detail::last_error(), "read", name);
        }
      };
      if (method.empty()) method = "PUT";
    }
    if (args->head &&
        (has_data || !args->upload.empty() || (!args->method.empty() && args->method != "HEAD"))) {
      throw CLI::ValidationError("--head", "-I sends HEAD: not with -d, -T or another -X");
    }
    if (args->head) method = "HEAD";
    request.method = method.empty() ? "GET" : method;
    // Where the body goes.
    std::string output = args->output;
    if (args->remote_name && output.empty()) {
      try {
        output = http::file_name_from_url(request.url);
      } catch (const Error& e) {
        throw CLI::ValidationError("--remote-name", e.what());
      }
    }
    const bool to_stdout = output.empty() || output == "-";
    if (!args->resume.empty() && to_stdout) {
      throw CLI::ValidationError("--continue-at", "needs -o FILE or -O");
    }
    Stream out(STDOUT_FILENO);  // no SIGPIPE if stdout's reader is gone; write errors throw
    ProgressMeter progress(!args->silent && !args->verbose && ::isatty(STDERR_FILENO) == 1 &&
                           (!to_stdout || ::isatty(STDOUT_FILENO) != 1));
    bool skip_body = false;

    http::ResponseHandlers handlers;
    handlers.on_head = [&](const http::ClientResponse& r) {
      skip_body = args->fail && r.status >= 400;
      if ((args->include || args->head) && !skip_body) out.write(head_text(r));
    };
    handlers.on_body = [&](std::string_view bytes, std::uint64_t received,
                           std::optional<std::uint64_t> total) {
      progress.update(received, total);
      if (to_stdout && !skip_body) out.write(bytes);
    };
    if (args->verbose) {
      handlers.on_trace = [](char kind, std::string_view text) {
        if (kind == '*') {
          std::fprintf(stderr, "* %.*s\n", static_cast<int>(text.size()), text.data());
          return;
        }
        // A head, one line at a time, without its CRLFs.
        while (!text.empty()) {
          auto end = text.find('\n');
          std::string_view line = text.substr(0, end);
          if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
          std::fprintf(stderr, "%c %s\n", kind, wire::detail::printable(line).c_str());
          if (end == std::string_view::npos) break;
          text.remove_prefix(end + 1);
        }
      };
    }

    http::ClientResponse response;
    bool already_complete = false;
    try {
      if (to_stdout) {
        response = client.send(request, handlers);
      } else {
        http::DownloadOptions download_options;
        download_options.resume = !args->resume.empty();
        download_options.write_error_body = !args->fail;
        download_options.handlers = handlers;
        auto result = http::download(client, request, output, download_options);
        response = std::move(result.response);
        already_complete = result.already_complete;
      }
      progress.erase();
      out.flush();
    } catch (const Error&) {
      progress.erase();
      try {
        out.flush();
      } catch (const Error&) {
      }
      if (!show_errors) return 1;
      throw;
    }

    int code = 0;
    if (response.status >= 400 && !already_complete) {
      if (show_errors) {
        std::fprintf(stderr, "wire: %s %s: %d %s\n", request.method.c_str(),
                     wire::detail::printable(http::redact_userinfo(response.url)).c_str(),
                     response.status, wire::detail::printable(response.reason).c_str());
      }
      code = 1;
    }
    if (already_complete && show_errors && !args->silent) {
      std::fprintf(stderr, "wire: %s is already complete\n", output.c_str());
    }
    if (!args->write_out.empty()) {
      const auto remote = Address::parse(response.remote, std::nothrow);
      const std::function<std::string(const std::string&)> value =
          [&](const std::string& name) -> std::string {
        const auto& t = response.timings;
        if (name == "http_code" || name == "response_code") {
          char code_text[8];
          std::snprintf(code_text, sizeof code_text, "%03d", response.status);
          return code_text;
        }
        if (name == "time_total") return seconds(t.total);
        if (name == "time_connect") return seconds(t.connect);
        if (name == "time_starttransfer") return seconds(t.first_byte);
        if (name == "size_download") return std::to_string(response.body_bytes);
        if (name == "size_upload") return std::to_string(response.uploaded_bytes);
        if (name == "size_header") return std::to_string(response.head_bytes);
        if (name == "speed_download") {
          const double s = std::chrono::duration<double>(t.total).count();
          return std::to_string(
              static_cast<std::uint64_t>(s > 0 ? static_cast<double>(response.body_bytes) / s : 0));
        }
        if (name == "url_effective") return response.url;
        if (name == "num_redirects") return std::to_string(response.redirects);
        if (name == "content_type") return response.header("Content-Type");
        if (name == "http_version") return response.version.substr(5);
        if (name == "remote_ip") {
          return remote && remote->family() != Family::local ? remote->host() : "";
        }
        if (name == "remote_port") {
          return remote && remote->family() != Family::local ? std::to_string(remote->port()) : "";
        }
        return "";
      };
      out.write(expand_write_out(args->write_out, &value));
      out.flush();
    }
    return code;
  };
}

}  // namespace wire::cli
