#include "wire/http/status_page.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <map>
#include <vector>

#include "../json_string.hpp"
#include "fd_report.hpp"
#include "wire/http/static_files.hpp"
#include "wire/loop.hpp"

namespace wire::http {
namespace {

using internal::FdReport;
using internal::FdReportReader;
using internal::FdRole;
using Row = internal::FdRow;

// The fds a view shows: the latest report (or none yet), its age, and the reads so far.
struct FdView {
  const FdReport& report;
  std::optional<double> age_seconds;  // none: no read has finished yet
  std::uint64_t reads = 0;
};

void append_json(std::string& out, std::string_view text) {
  wire::internal::append_json_string(out, text);
}

void append_label(std::string& out, std::string_view value) {
  wire::internal::append_prometheus_label(out, value);
}

std::string status_label(int status) {
  return status == 0 ? std::string("other") : std::to_string(status);
}

double seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

double unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

std::string format(const char* spec, double value) {
  char text[64];
  std::snprintf(text, sizeof text, spec, value);
  return text;
}

// "3 d 04:05:06", "04:05:06".
std::string uptime_text(std::chrono::nanoseconds uptime) {
  const long long total = std::chrono::duration_cast<std::chrono::seconds>(uptime).count();
  const long long days = total / 86400;
  char text[64];
  std::snprintf(text, sizeof text, "%02lld:%02lld:%02lld", (total / 3600) % 24, (total / 60) % 60,
                total % 60);
  return days > 0 ? std::to_string(days) + " d " + text : text;
}

// "1234567 (1.2 MiB)".
std::string bytes_text(std::uint64_t bytes) {
  std::string text = std::to_string(bytes);
  if (bytes < 1024) return text;
  static const char* const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  for (value /= 1024; value >= 1024 && unit + 1 < std::size(units); value /= 1024) ++unit;
  char scaled[48];
  std::snprintf(scaled, sizeof scaled, " (%.1f %s)", value, units[unit]);
  return text + scaled;
}

std::string utc_text(std::chrono::system_clock::time_point t) {
  const std::time_t when = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&when, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text;
}

std::string render_json(const ServerStats::Snapshot& s, const FdView& view,
                        const StatusPageOptions& options) {
  const FdReport& fds = view.report;
  std::string out = "{\n  \"description\": ";
  append_json(out, options.description);
  out += ",\n  \"pid\": " + std::to_string(::getpid());
  out += ",\n  \"start_time_seconds\": " + format("%.3f", unix_seconds(s.started));
  out += ",\n  \"uptime_seconds\": " + format("%.3f", seconds(s.uptime));
  out += ",\n  \"connections\": {\"accepted\": " + std::to_string(s.accepted) +
         ", \"open\": " + std::to_string(s.open) + ", \"closed\": " + std::to_string(s.closed) +
         "}";
  out += ",\n  \"requests\": {\"total\": " + std::to_string(s.requests) + ", \"by_status\": {";
  for (std::size_t i = 0; i < s.by_status.size(); ++i) {
    if (i > 0) out += ", ";
    append_json(out, status_label(s.by_status[i].first));
    out += ": " + std::to_string(s.by_status[i].second);
  }
  out += "}}";
  out += ",\n  \"bytes\": {\"received\": " + std::to_string(s.received) +
         ", \"sent\": " + std::to_string(s.sent) + "}";
  out += ",\n  \"fd_table_reads\": " + std::to_string(view.reads);
  out += ",\n  \"fds\": {\"open\": " + std::to_string(fds.open);
  if (view.age_seconds) out += ", \"age_seconds\": " + format("%.3f", *view.age_seconds);
  if (!fds.error.empty()) {
    out += ", \"error\": ";
    append_json(out, fds.error);
  }
  out += ",\n    \"listening\": [";
  for (std::size_t i = 0; i < fds.listening.size(); ++i) {
    const Row& r = fds.listening[i];
    out += i > 0 ? ",\n      " : "\n      ";
    out += "{\"fd\": " + std::to_string(r.fd) + ", \"kind\": ";
    append_json(out, r.kind);
    out += ", \"address\": ";
    append_json(out, r.address);
    out += "}";
  }
  out += "],\n    \"clients\": [";
  for (std::size_t i = 0; i < fds.clients.size(); ++i) {
    const Row& r = fds.clients[i];
    out += i > 0 ? ",\n      " : "\n      ";
    out += "{\"fd\": " + std::to_string(r.fd) + ", \"kind\": ";
    append_json(out, r.kind);
    out += ", \"peer\": ";
    append_json(out, r.address);
    out += ", \"local\": ";
    append_json(out, r.local);
    out += ", \"state\": ";
    append_json(out, r.state);
    out += "}";
  }
  out += "],\n    \"clients_by_state\": {";
  bool first = true;
  for (const auto& [state, count] : fds.clients_by_state) {
    if (!first) out += ", ";
    first = false;
    append_json(out, state);
    out += ": " + std::to_string(count);
  }
  out += "},\n    \"other\": [";
  for (std::size_t i = 0; i < fds.others.size(); ++i) {
    const Row& r = fds.others[i];
    out += i > 0 ? ",\n      " : "\n      ";
    out += "{\"fd\": " + std::to_string(r.fd) + ", \"kind\": ";
    append_json(out, r.kind);
    out += ", \"target\": ";
    append_json(out, r.address);
    if (!r.state.empty()) {
      out += ", \"state\": ";
      append_json(out, r.state);
    }
    out += "}";
  }
  out += "],\n    \"left_out\": " + std::to_string(fds.left_out) + "}\n}\n";
  return out;
}

// One family of the text exposition format: HELP, TYPE, then its samples.
void family(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const char* name, std::string_view value) {
  out += name;
  out += ' ';
  out += value;
  out += '\n';
}

void sample(std::string& out, const char* name, const char* label, std::string_view label_value,
            std::string_view value) {
  out += name;
  out += '{';
  out += label;
  out += '=';
  append_label(out, label_value);
  out += "} ";
  out += value;
  out += '\n';
}

std::string render_metrics(const ServerStats::Snapshot& s, const FdView& view) {
  const FdReport& fds = view.report;
  std::string out;
  family(out, "wire_connections_accepted_total", "counter",
         "Connections accepted (a handler was started for them).");
  sample(out, "wire_connections_accepted_total", std::to_string(s.accepted));
  family(out, "wire_connections_closed_total", "counter", "Accepted connections that have ended.");
  sample(out, "wire_connections_closed_total", std::to_string(s.closed));
  family(out, "wire_connections_open", "gauge", "Connections open: accepted less closed.");
  sample(out, "wire_connections_open", std::to_string(s.open));
  family(out, "wire_connection_states", "gauge",
         "Accepted connections in the fd table, by socket state as ss names it.");
  for (const auto& [state, count] : fds.clients_by_state) {
    sample(out, "wire_connection_states", "state", state, std::to_string(count));
  }
  family(out, "wire_http_requests_total", "counter",
         "Requests answered or refused, by status code.");
  for (const auto& [status, count] : s.by_status) {
    sample(out, "wire_http_requests_total", "code", status_label(status), std::to_string(count));
  }
  family(out, "wire_http_received_bytes_total", "counter", "Bytes read from connections.");
  sample(out, "wire_http_received_bytes_total", std::to_string(s.received));
  family(out, "wire_http_sent_bytes_total", "counter", "Bytes written to connections.");
  sample(out, "wire_http_sent_bytes_total", std::to_string(s.sent));
  family(out, "wire_listening_sockets", "gauge",
         "Listening sockets by address (one per worker for TCP).");
  for (const auto& [address, count] : fds.listening_by_address) {
    sample(out, "wire_listening_sockets", "address", address, std::to_string(count));
  }
  if (fds.error.empty()) {
    family(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    sample(out, "process_open_fds", std::to_string(fds.open));
  }
  if (view.age_seconds) {
    family(out, "wire_fd_table_age_seconds", "gauge",
           "Seconds since the fd table behind process_open_fds, wire_connection_states and "
           "wire_listening_sockets was read.");
    sample(out, "wire_fd_table_age_seconds", format("%.3f", *view.age_seconds));
  }
  family(out, "wire_fd_table_reads_total", "counter",
         "Reads of the fd table (each walks the whole machine's /proc/net tables).");
  sample(out, "wire_fd_table_reads_total", std::to_string(view.reads));
  family(out, "wire_start_time_seconds", "gauge",
         "When the server's counting started, in seconds since the Unix epoch.");
  sample(out, "wire_start_time_seconds", format("%.3f", unix_seconds(s.started)));
  family(out, "wire_uptime_seconds", "gauge", "Seconds since the server's counting started.");
  sample(out, "wire_uptime_seconds", format("%.3f", seconds(s.uptime)));
  return out;
}

void cell(std::string& out, std::string_view text, bool number = false) {
  out += number ? "<td class=\"n\">" : "<td>";
  out += html_escape(text);
  out += "</td>";
}

// "FD 7 | client | 127.0.0.1:51234 | ESTAB": a listener's LISTEN goes without saying.
void fd_row(std::string& out, const Row& r, std::string_view what) {
  out += "<tr>";
  cell(out, "FD " + std::to_string(r.fd));
  cell(out, what);
  cell(out, r.address);
  cell(out, r.role == FdRole::listening ? std::string() : r.state);
  out += "</tr>\n";
}

std::string render_html(const ServerStats::Snapshot& s, const FdView& view,
                        const StatusPageOptions& options) {
  const FdReport& fds = view.report;
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  if (options.refresh_seconds > 0) {
    out += "<meta http-equiv=\"refresh\" content=\"" + std::to_string(options.refresh_seconds) +
           "\">\n";
  }
  out +=
      "<meta name=\"viewport\" content=\"width=device-width\">\n"
      "<title>wire status</title>\n"
      "<style>\n"
      "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\n"
      "table{border-collapse:collapse;margin:.3em 0 1.2em}\n"
      "th,td{border:1px solid #ccc;padding:.2em .7em;text-align:left}\n"
      "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\n"
      "table.fds td{font-family:ui-monospace,monospace}\n"
      "</style>\n</head>\n<body>\n<h1>wire status</h1>\n";
  if (!options.description.empty()) {
    out += "<p id=\"description\">" + html_escape(options.description) + "</p>\n";
  }
  out += "<p>pid " + std::to_string(::getpid()) + ", up " + uptime_text(s.uptime) + " (since " +
         utc_text(s.started) + ")</p>\n";

  out +=
      "<h2>Connections</h2>\n<table id=\"connections\">\n"
      "<tr><th>accepted</th><th>open</th><th>closed</th></tr>\n<tr>";
  cell(out, std::to_string(s.accepted), true);
  cell(out, std::to_string(s.open), true);
  cell(out, std::to_string(s.closed), true);
  out += "</tr>\n</table>\n";

  out += "<h2>Requests</h2>\n<table id=\"requests\">\n<tr><th>status</th><th>requests</th></tr>\n";
  for (const auto& [status, count] : s.by_status) {
    out += "<tr>";
    cell(out,
         status == 0 ? std::string("other") : std::to_string(status) + " " + reason_phrase(status));
    cell(out, std::to_string(count), true);
    out += "</tr>\n";
  }
  out += "<tr><th>total</th>";
  cell(out, std::to_string(s.requests), true);
  out += "</tr>\n</table>\n";

  out += "<h2>Bytes</h2>\n<table id=\"bytes\">\n<tr><th>in</th><th>out</th></tr>\n<tr>";
  cell(out, bytes_text(s.received), true);
  cell(out, bytes_text(s.sent), true);
  out += "</tr>\n</table>\n";

  out += "<h2>File descriptors: " + std::to_string(fds.open) + " open</h2>\n";
  if (view.age_seconds) {
    out += "<p id=\"fds-age\">as of " + format("%.1f", *view.age_seconds) + " s ago</p>\n";
  }
  if (!fds.error.empty()) {
    out += "<p>The fd table could not be read: " + html_escape(fds.error) + "</p>\n";
  } else {
    out +=
        "<table class=\"fds\" id=\"fds\">\n"
        "<tr><th>fd</th><th>what</th><th>address</th><th>state</th></tr>\n";
    for (const Row& r : fds.listening) fd_row(out, r, "listening");
    for (const Row& r : fds.clients) fd_row(out, r, "client");
    for (const Row& r : fds.others) fd_row(out, r, r.kind);
    out += "</table>\n";
    if (fds.left_out > 0) {
      out += "<p>" + std::to_string(fds.left_out) +
             " more fds are left out (StatusPageOptions::max_fd_rows).</p>\n";
    }
  }
  out +=
      "<p><a href=\"status.json\">status.json</a> &middot; <a href=\"metrics\">metrics</a></p>\n"
      "</body>\n</html>\n";
  return out;
}

Response page(std::string body, const char* content_type) {
  Response r = Response::text(200, std::move(body), content_type);
  r.header("Cache-Control", "no-store");
  r.header("X-Content-Type-Options", "nosniff");
  // The page loads nothing and runs nothing: a browser is told so, and enforces it.
  r.header("Content-Security-Policy",
           "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  r.header("Referrer-Policy", "no-referrer");
  return r;
}

// How long a view waits for a fresh fd table before it shows the previous one, and how often
// it looks meanwhile: the loop has no wake-up from another thread, and a view is rare enough
// that a timer every few milliseconds while it waits costs nothing.
constexpr std::chrono::seconds fd_wait{2};
constexpr std::chrono::milliseconds fd_poll{5};

enum class Page { none, html, json, metrics };

Page page_for(std::string_view path) {
  if (path == "/_wire/status") return Page::html;
  if (path == "/_wire/status.json") return Page::json;
  if (path == "/_wire/metrics") return Page::metrics;
  return Page::none;
}

// Under /_wire: "/_wire" itself or "/_wire/...".
bool under_status_path(std::string_view path) {
  constexpr std::string_view prefix = "/_wire";
  return path.substr(0, prefix.size()) == prefix &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

}  // namespace

Handler with_status_page(Handler inner, std::shared_ptr<const ServerStats> stats,
                         StatusPageOptions options) {
  auto reader = std::make_shared<FdReportReader>(options.max_fd_rows, options.fd_table_interval);
  auto shared = std::make_shared<const StatusPageOptions>(std::move(options));
  return [inner = std::move(inner), stats = std::move(stats), options = std::move(shared),
          reader = std::move(reader)](Request& request) -> Task<Response> {
    if (!under_status_path(request.path)) co_return co_await inner(request);
    const Page which = page_for(request.path);
    const bool to_page =
        which == Page::none && (request.path == "/_wire" || request.path == "/_wire/");
    if (which == Page::none && !to_page) {
      Response missing = Response::text(404, "404 Not Found\n");
      missing.header("Cache-Control", "no-store");
      co_return missing;
    }
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::text(405, "405 Method Not Allowed\n");
      r.header("Allow", "GET, HEAD");
      r.header("Cache-Control", "no-store");
      co_return r;
    }
    if (to_page) {
      Response moved = Response::text(302, "302 Found\n");
      moved.header("Location", "/_wire/status");
      moved.header("Cache-Control", "no-store");
      co_return moved;
    }
    // The frame's own references: the view may wait below, and must not lean on the
    // closure's captures meanwhile.
    const auto counters = stats;
    const auto page_options = options;
    const auto fd_reader = reader;
    // A report older than the interval: the reader's thread makes a new one while this view
    // waits on its loop's timer (the worker answers others meanwhile), up to fd_wait; after
    // that the view shows what there is, with its age.
    const auto asked = FdReportReader::Clock::now();
    FdReportReader::Latest fds = fd_reader->latest(asked);
    if (!fds.recent) {
      if (EventLoop* loop = EventLoop::current()) {
        while (!fds.recent && FdReportReader::Clock::now() - asked < fd_wait) {
          co_await loop->sleep(fd_poll);
          fds = fd_reader->latest(asked);
        }
      }
    }
    static const FdReport not_read = [] {
      FdReport report;
      report.error = "not read yet: the first read of the fd table is still running";
      return report;
    }();
    std::optional<double> age;
    if (fds.report) age = seconds(FdReportReader::Clock::now() - fds.report->read_at);
    const FdView view{fds.report ? *fds.report : not_read, age, fd_reader->reads()};
    const ServerStats::Snapshot snapshot =
        counters ? counters->snapshot() : ServerStats::Snapshot{};
    switch (which) {
      case Page::json:
        co_return page(render_json(snapshot, view, *page_options), "application/json");
      case Page::metrics:
        co_return page(render_metrics(snapshot, view), "text/plain; version=0.0.4; charset=utf-8");
      default:
        co_return page(render_html(snapshot, view, *page_options), "text/html; charset=utf-8");
    }
  };
}

bool status_page_on_by_default(const Address& bound) {
  if (bound.family() == Family::local) return true;
  const std::string host = bound.host();
  unsigned char bytes[16] = {};
  if (bound.family() == Family::inet) {
    return ::inet_pton(AF_INET, host.c_str(), bytes) == 1 && bytes[0] == 127;
  }
  if (bound.family() == Family::inet6 && ::inet_pton(AF_INET6, host.c_str(), bytes) == 1) {
    static const unsigned char loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(bytes, bytes + 16, loopback)) return true;
    return std::equal(bytes, bytes + 12, mapped) && bytes[12] == 127;
  }
  return false;
}

std::optional<std::string> hidden_by_status_page(const std::string& root) {
  std::string path = root;
  if (path.empty() || path.back() != '/') path += '/';
  path += status_page_name;
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
  return path;
}

}  // namespace wire::http
