#include "fd_report.hpp"

#include <pthread.h>
#include <signal.h>

#include <exception>
#include <string_view>
#include <system_error>

#include "wire/diag/fd_table.hpp"

namespace wire::http::internal {
namespace {

bool is_unix(diag::FdKind kind) {
  return kind == diag::FdKind::unix_stream || kind == diag::FdKind::unix_seqpacket ||
         kind == diag::FdKind::unix_dgram;
}

bool is_tcp(diag::FdKind kind) {
  return kind == diag::FdKind::tcp || kind == diag::FdKind::tcp6;
}

// "127.0.0.1:8000" -> 8000; "[::]:8000" -> 8000.
std::string_view port_of(std::string_view address) {
  const auto colon = address.rfind(':');
  return colon == std::string_view::npos ? std::string_view() : address.substr(colon + 1);
}

bool is_wildcard(std::string_view address) {
  return address.rfind("0.0.0.0:", 0) == 0 || address.rfind("[::]:", 0) == 0;
}

// Whether a connected socket with local address `local` was accepted by `listener`: the same
// address, or the same port under a wildcard listener (dual-stack included).
bool accepted_by(const diag::FdInfo& socket, const diag::FdInfo& listener) {
  if (is_unix(socket.kind) != is_unix(listener.kind)) return false;
  if (is_unix(socket.kind)) return !socket.local.empty() && socket.local == listener.local;
  if (socket.local == listener.local) return true;
  return is_wildcard(listener.local) && port_of(socket.local) == port_of(listener.local);
}

}  // namespace

FdReport read_fd_report(std::size_t max_rows) {
  FdReport report;
  report.read_at = std::chrono::steady_clock::now();
  std::vector<diag::FdInfo> table;
  try {
    table = diag::fd_table();
  } catch (const std::exception& e) {
    report.error = e.what();
    return report;
  }
  report.open = table.size();
  std::vector<const diag::FdInfo*> listeners;
  for (const auto& fd : table) {
    if ((is_tcp(fd.kind) || is_unix(fd.kind)) && fd.state == "LISTEN") listeners.push_back(&fd);
  }
  std::size_t rows = 0;
  for (const auto& fd : table) {
    FdRow row;
    row.fd = fd.fd;
    row.kind = std::string(diag::kind_name(fd.kind));
    row.state = fd.state;
    if (fd.state == "LISTEN" && (is_tcp(fd.kind) || is_unix(fd.kind))) {
      row.role = FdRole::listening;
      row.address = is_unix(fd.kind) ? "unix:" + fd.local : fd.local;
      ++report.listening_by_address[row.address];
      report.listening.push_back(std::move(row));
      continue;
    }
    bool client = false;
    if (fd.is_socket() && (is_tcp(fd.kind) || is_unix(fd.kind))) {
      for (const auto* listener : listeners) {
        if (accepted_by(fd, *listener)) {
          client = true;
          break;
        }
      }
    }
    if (client) {
      row.role = FdRole::client;
      // /proc/net/unix names no peer: the socket's own path says which listener it came from.
      row.address = is_unix(fd.kind) ? "unix:" + fd.local : fd.peer;
      row.local = is_unix(fd.kind) ? "unix:" + fd.local : fd.local;
      ++report.clients_by_state[fd.state];
    } else {
      row.role = FdRole::other;
      row.address = fd.target;
    }
    if (rows >= max_rows) {
      ++report.left_out;
      continue;
    }
    ++rows;
    (client ? report.clients : report.others).push_back(std::move(row));
  }
  return report;
}

FdReportReader::FdReportReader(std::size_t max_rows, std::chrono::nanoseconds interval)
    : max_rows_(max_rows),
      interval_(interval < std::chrono::nanoseconds::zero() ? std::chrono::nanoseconds::zero()
                                                            : interval) {}

FdReportReader::~FdReportReader() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

FdReportReader::Latest FdReportReader::latest(Clock::time_point asked) {
  const Clock::time_point oldest = asked - interval_;
  std::lock_guard lock(mutex_);
  if (latest_ && latest_->read_at >= oldest) return {latest_, true};
  // A read asked for begins later than now, so it will do; so will one that began late enough.
  if (!wanted_ && !(reading_ && reading_since_ >= oldest)) {
    wanted_ = true;
    if (!thread_.joinable()) {
      start_thread();
    } else {
      wake_.notify_one();
    }
  }
  return {latest_, false};
}

void FdReportReader::start_thread() {
  // The thread inherits the mask: blocked, a stop signal goes to a thread that acts on it,
  // and never interrupts a read of /proc with EINTR.
  sigset_t all, previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  try {
    thread_ = std::thread([this] { run(); });
  } catch (const std::system_error& e) {
    // No thread to be had (a process at its limit): the view says so, and the next view
    // after the interval tries again.
    auto failed = std::make_shared<FdReport>();
    failed->read_at = Clock::now();
    failed->error = std::string("no thread to read the fd table: ") + e.what();
    latest_ = std::move(failed);
    wanted_ = false;
  }
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void FdReportReader::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || wanted_; });
    if (stopping_) return;
    wanted_ = false;
    reading_ = true;
    reading_since_ = Clock::now();
    lock.unlock();
    reads_.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<FdReport> report;
    try {
      report = std::make_shared<FdReport>(read_fd_report(max_rows_));
    } catch (const std::exception& e) {  // out of memory: said on the page, not a terminate
      report.reset();
      try {
        report = std::make_shared<FdReport>();
        report->read_at = Clock::now();
        report->error = e.what();
      } catch (...) {
      }
    }
    lock.lock();
    reading_ = false;
    if (report) latest_ = std::move(report);
  }
}

}  // namespace wire::http::internal
