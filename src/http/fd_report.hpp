// The status page's view of the process's fds (listeners, their clients, the rest), and the
// reader that makes it off the event loops, at most once per interval for every worker.
// Private to the http layer: with_status_page is its only user.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace wire::http::internal {

// What one fd is to the server: a listener, a connection a listener accepted, or anything else.
enum class FdRole { listening, client, other };

struct FdRow {
  int fd = -1;
  FdRole role = FdRole::other;
  std::string kind;     // "tcp", "unix-stream", "file"...
  std::string address;  // listening: where; client: the peer (or the socket's path); other: target
  std::string local;    // client: the local address it was accepted on
  std::string state;    // sockets: ESTAB, CLOSE-WAIT...
};

// The process's fds, read back from the kernel (wire::diag::fd_table), sorted into roles.
struct FdReport {
  std::vector<FdRow> listening;
  std::vector<FdRow> clients;
  std::vector<FdRow> others;
  std::map<std::string, std::uint64_t> clients_by_state;
  std::map<std::string, std::uint64_t> listening_by_address;
  std::size_t open = 0;
  std::size_t left_out = 0;                         // clients and others beyond max_rows
  std::string error;                                // why the table could not be read, or ""
  std::chrono::steady_clock::time_point read_at{};  // when the read began
};

// Reads the table now, on the calling thread. Never throws for an unreadable table: `error`
// says why.
FdReport read_fd_report(std::size_t max_rows);

// Hands out the latest FdReport to views on any worker. The table is the whole machine's
// /proc/net, so one read can take a good fraction of a second on a busy host: it is read on
// a thread of its own (owned here, started by the first view, joined by the destructor, all
// signals blocked), only when a view asks, and at most once per `interval` (start to
// start), so no worker ever stalls for it and a thousand views cost one read.
class FdReportReader {
 public:
  using Clock = std::chrono::steady_clock;

  FdReportReader(std::size_t max_rows, std::chrono::nanoseconds interval);
  FdReportReader(const FdReportReader&) = delete;
  FdReportReader& operator=(const FdReportReader&) = delete;
  ~FdReportReader();

  struct Latest {
    std::shared_ptr<const FdReport> report;  // null before the first read has finished
    bool recent = false;                     // begun no earlier than `asked` - interval
  };
  // The newest report for a view that came at `asked`. When it is not recent, a read is
  // asked for (unless one that will be is running or asked for already): call again later
  // to get it. Never waits for a read.
  Latest latest(Clock::time_point asked);

  // How many reads have begun: each is a full walk of the table.
  std::uint64_t reads() const noexcept { return reads_.load(std::memory_order_relaxed); }

 private:
  void run();
  void start_thread();  // with mutex_ held

  const std::size_t max_rows_;
  const std::chrono::nanoseconds interval_;
  std::atomic<std::uint64_t> reads_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<const FdReport> latest_;
  bool wanted_ = false;
  bool reading_ = false;
  Clock::time_point reading_since_{};
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace wire::http::internal
