// wire/http/status_page.hpp — a server's own status, at /_wire/: a page that refreshes itself,
// the same as JSON, and Prometheus metrics. What `wire serve` shows on loopback.
//
//   auto stats = std::make_shared<wire::http::ServerStats>();
//   wire::http::Options options;
//   options.stats = stats;                    // requests, statuses, bytes
//   wire::ServeOptions serve_options;
//   serve_options.counters = stats;           // connections
//   wire::http::Router router;
//   router.add("GET", "/hello", hello);
//   wire::http::Handler handler = wire::http::with_status_page(router.handler(), stats);
//   wire::serve("tcp://127.0.0.1:8080", wire::http::connection_handler(handler, options),
//               serve_options);
//   // http://127.0.0.1:8080/_wire/status       the page (refreshes every 2 s)
//   // http://127.0.0.1:8080/_wire/status.json  the same, as JSON
//   // http://127.0.0.1:8080/_wire/metrics      Prometheus text format (scrape_configs:
//   //                                           metrics_path: /_wire/metrics)
//
// Everything under /_wire (the three pages; 404 for any other name, a redirect for /_wire
// and /_wire/ to the page) is answered here and never reaches `inner`. The page shows the
// process's fd table, read back from the kernel (wire::diag::fd_table): each listening
// socket ("FD 3 listening 127.0.0.1:8000"), each client connection of a listener with its
// peer and state ("FD 7 client 127.0.0.1:51234 ESTAB"), then every other fd; and the
// counters of `stats`: connections accepted / open / closed, requests by status, bytes in
// and out, uptime. Everything shown is escaped (HTML, JSON, Prometheus label values); the
// page loads nothing (a Content-Security-Policy of default-src 'none' says so to the
// browser) and runs no script; answers are Cache-Control: no-store; GET and HEAD only.
// Reading the fd table walks /proc/self/fd and the whole machine's /proc/net tables (a good
// fraction of a second on a host with many sockets): it is done on a thread of the page's own,
// when a view finds the last read older than fd_table_interval, and shared by every worker;
// the view waits for it on its loop's timer, so the worker answers others meanwhile. Every
// page says how old its fd table is and how many reads there have been.
// See docs/design/status-page.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wire/address.hpp"
#include "wire/http/server.hpp"
#include "wire/http/server_stats.hpp"

namespace wire::http {

// The name the status pages live under: the path /_wire, and so a folder's entry `_wire`.
inline constexpr std::string_view status_page_name = "_wire";

struct StatusPageOptions {
  // What the server is, shown at the top of the page and in the JSON ("wire serve ./site").
  std::string description;
  // Seconds between reloads of the HTML page (a meta refresh); 0: it does not reload.
  int refresh_seconds = 2;
  // At most this many fds are listed one by one (listening sockets always are); the counts
  // cover them all.
  std::size_t max_fd_rows = 1000;
  // The fd table is read at most once per this interval (start to start), whatever the
  // number of views and workers; a view within it shows the last read. 0: a fresh read for
  // every view (views that come together share it).
  std::chrono::milliseconds fd_table_interval{1000};
};

// Answers /_wire/status, /_wire/status.json and /_wire/metrics from `stats` and the fd table;
// everything outside /_wire goes to `inner`.
Handler with_status_page(Handler inner, std::shared_ptr<const ServerStats> stats,
                         StatusPageOptions options = {});

// Whether a server bound to `bound` shows its status page when nobody says: a loopback
// address (127.0.0.0/8, ::1, ::ffff:127.x.x.x) or a Unix socket, reachable from this machine
// only. Any other address (0.0.0.0 included) could let the network read the page.
bool status_page_on_by_default(const Address& bound);

// `root`/_wire when it exists: a static_files(root) behind with_status_page never serves it
// (give StaticOptions::hidden = {"_wire"} so listings leave it out too), which its server
// should say once at start. nullopt when there is no such entry.
std::optional<std::string> hidden_by_status_page(const std::string& root);

}  // namespace wire::http
