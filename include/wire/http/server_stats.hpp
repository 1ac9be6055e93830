// wire/http/server_stats.hpp — what an HTTP server has done: connections, requests by status,
// bytes in and out, since it started. Shared by every worker, counted without a lock.
//
//   auto stats = std::make_shared<wire::http::ServerStats>();
//   wire::http::Options options;
//   options.stats = stats;                 // requests, statuses, bytes (serve_connection)
//   wire::ServeOptions serve_options;
//   serve_options.counters = stats;        // connections accepted and closed (wire::Server)
//   serve_options.workers = 4;
//   wire::serve("tcp://127.0.0.1:8080",
//               wire::http::connection_handler(router.handler(), options), serve_options);
//   ...
//   auto now = stats->snapshot();          // from any thread, at any time
//   std::printf("%llu requests\n", static_cast<unsigned long long>(now.requests));
//
// wire/http/status_page.hpp shows a snapshot as a page, JSON and Prometheus metrics.
// Counting costs a request a few relaxed atomic increments on a cache line of its thread's
// own (the counters are split in shards, summed when read), so workers never contend for
// one; see docs/design/status-page.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "wire/server.hpp"

namespace wire::http {

// The connection counts come from wire::Server (ServeOptions::counters), the rest from
// serve_connection (Options::stats); a handler of another protocol may count too.
class ServerStats : public ConnectionCounters {
 public:
  ServerStats();
  ServerStats(const ServerStats&) = delete;
  ServerStats& operator=(const ServerStats&) = delete;
  ~ServerStats();

  // Bytes read from or written to connections (heads, bodies, refusals, drained input).
  void add_received(std::uint64_t bytes) noexcept;
  void add_sent(std::uint64_t bytes) noexcept;
  // One answered (or refused) request: its status and the bytes of its response (head and
  // body, as far as they went). Statuses outside 100-599 are counted together, as status 0.
  void add_response(int status, std::uint64_t bytes_sent) noexcept;

  struct Snapshot {
    std::uint64_t accepted = 0;
    std::uint64_t open = 0;
    std::uint64_t closed = 0;
    std::uint64_t requests = 0;                            // the sum of by_status
    std::vector<std::pair<int, std::uint64_t>> by_status;  // ascending, counts above 0 only
    std::uint64_t received = 0;
    std::uint64_t sent = 0;
    std::chrono::system_clock::time_point started;  // when the stats object was made
    std::chrono::nanoseconds uptime{0};
  };
  // Each counter is read once, without stopping the counting: a request in flight may show
  // in one counter and not yet in another.
  Snapshot snapshot() const;

 private:
  struct Shard;
  Shard& shard() noexcept;
  std::unique_ptr<Shard[]> shards_;
  std::chrono::system_clock::time_point started_;
  std::chrono::steady_clock::time_point started_steady_;
};

}  // namespace wire::http
