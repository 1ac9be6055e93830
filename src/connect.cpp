#include "wire/connect.hpp"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include "happy_eyeballs.hpp"

namespace wire {
namespace {

using detail::Clock;
using detail::ConnectFailure;
using detail::Source;

struct Attempt {
  Socket socket;
  Address address;
};

// Happy Eyeballs over the candidates, waiting in ppoll; every attempt that is not the
// winner is closed. open_connection runs the same schedule on an EventLoop.
Result<Socket> connect_first(const std::vector<Address>& candidates,
                             std::optional<Clock::time_point> deadline,
                             std::vector<ConnectFailure>& failures,
                             const Source& source = {}) noexcept {
  std::vector<Attempt> pending;
  std::vector<::pollfd> polled;
  try {
    detail::AttemptSchedule schedule(candidates, deadline);
    for (;;) {
      Clock::time_point now = Clock::now();
      if (schedule.expired(now)) {
        std::vector<Address> waiting;
        for (const auto& attempt : pending) waiting.push_back(attempt.address);
        schedule.time_out(waiting, failures);
        return errc::timed_out;
      }
      while (const Address* address = schedule.next_due(now, !pending.empty())) {
        auto started = detail::start_attempt(*address, source, failures);
        if (!started) {
          schedule.failed(now);  // failed at once: the next attempt starts now
          continue;
        }
        if (started->connected) {  // Socket::connect remembered the peer for error messages
          (void)started->socket.set_timeout(std::nullopt, std::nothrow);
          return std::move(started->socket);
        }
        pending.push_back({std::move(started->socket), *address});
        schedule.started(now);
      }
      if (pending.empty()) {
        if (schedule.exhausted()) return detail::overall_error(failures);
        continue;
      }

      std::optional<Clock::time_point> wake = schedule.wake_time();
      ::timespec wait_for{};
      ::timespec* wait_ptr = nullptr;
      if (wake) {
        auto ns = std::max<std::int64_t>(
            0, std::chrono::duration_cast<std::chrono::nanoseconds>(*wake - now).count());
        wait_for.tv_sec = static_cast<std::time_t>(ns / 1'000'000'000);
        wait_for.tv_nsec = static_cast<long>(ns % 1'000'000'000);
        wait_ptr = &wait_for;
      }
      polled.clear();
      for (const auto& attempt : pending) {
        polled.push_back({attempt.socket.fileno(), POLLOUT, 0});
      }
      int ready = ::ppoll(polled.data(), polled.size(), wait_ptr, nullptr);
      if (ready < 0 && errno != EINTR) return detail::last_error();
      if (ready <= 0) continue;

      for (std::size_t i = polled.size(); i-- > 0;) {
        if (polled[i].revents == 0) continue;
        // finish_connect, not a bare SO_ERROR: it remembers the peer, so that errors after a
        // reset name it rather than our own ephemeral port.
        auto finished = pending[i].socket.finish_connect(pending[i].address, std::nothrow);
        if (finished) {
          Socket winner = std::move(pending[i].socket);
          (void)winner.set_timeout(std::nullopt, std::nothrow);
          return winner;  // the other attempts close as `pending` goes out of scope
        }
        failures.push_back({pending[i].address, finished.error()});
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        schedule.failed(Clock::now());  // an attempt failed: do not wait to start the next
      }
    }
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

bool is_unix_path(const Address& address) {
  return address.family() == Family::local && !address.is_abstract();
}

struct ServerError {
  std::error_code code;
  const char* step = "";
  std::string detail = {};  // replaces "step: reason" when set
};

// Removes `path` if it is a socket nobody listens on any more; fails (saying why in
// `failed`) when something answers there, or when it cannot tell. The probe connect is
// non-blocking: a blocking one would wait forever on a live listener whose backlog is full,
// and then take the path over when that process exits. On a Unix stream socket EAGAIN
// means exactly that full backlog: a live listener.
bool remove_stale_socket(const Address& address, ServerError& failed) noexcept {
  const std::string path = address.path();
  auto fail = [&](std::error_code code, std::string detail) {
    failed.code = code;
    failed.detail = std::move(detail);
    return false;
  };
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) < 0) return true;  // nothing there
  if (!S_ISSOCK(st.st_mode)) {
    return fail(std::make_error_code(std::errc::address_in_use),
                "it exists and is not a socket (left alone)");
  }
  auto probe = Socket::create(Family::local, address.type(), std::nothrow);
  if (!probe) return fail(probe.error(), "socket: " + probe.error().message());
  probe->set_blocking(false);
  auto connected = probe->connect(address, std::nothrow);
  const std::error_code in_use = std::make_error_code(std::errc::address_in_use);
  if (connected) return fail(in_use, "another process listens on it");
  const std::error_code ec = connected.error();
  if (ec == std::errc::resource_unavailable_try_again || ec == std::errc::operation_in_progress) {
    return fail(in_use, "another process listens on it (its backlog is full)");
  }
  if (ec == std::errc::wrong_protocol_type) {
    return fail(in_use, "another process listens on it (a socket of another type)");
  }
  if (ec == std::errc::no_such_file_or_directory) return true;  // removed meanwhile
  if (ec == std::errc::permission_denied) {
    return fail(ec,
                "permission denied: cannot connect to the socket file to tell whether "
                "anyone listens on it");
  }
  if (ec != std::errc::connection_refused) {
    return fail(ec, "cannot tell whether anyone listens on it: " + ec.message());
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    const std::error_code why = detail::last_error();
    return fail(why, "cannot remove the stale socket file: " + why.message());
  }
  return true;
}

Result<Socket> make_server(const Address& address, const ServerOptions& options,
                           ServerError& failed) noexcept {
  auto fail = [&](std::error_code code, const char* step) -> Result<Socket> {
    failed = {code, step};
    return code;
  };
  if (address.empty()) return fail(errc::invalid_address, "address");
  if (is_unix_path(address)) {
    if (!remove_stale_socket(address, failed)) return failed.code;
  }
  auto socket = Socket::create(address.family(), address.type(), std::nothrow);
  if (!socket) return fail(socket.error(), "socket");
  if (address.family() != Family::local) {
    if (auto r = socket->set_option(option::reuse_address, true, std::nothrow); !r) {
      return fail(r.error(), "reuse_address");
    }
    if (options.reuse_port) {
      if (auto r = socket->set_option(option::reuse_port, true, std::nothrow); !r) {
        return fail(r.error(), "reuse_port");
      }
    }
    if (address.family() == Family::inet6) {
      if (auto r = socket->set_option(option::v6_only, !options.dual_stack, std::nothrow); !r) {
        return fail(r.error(), "v6_only");
      }
    }
  }
  if (auto r = socket->bind(address, std::nothrow); !r) return fail(r.error(), "bind");
  // Before listen, so no client can connect through the umask's permissions.
  if (is_unix_path(address) && ::chmod(address.path().c_str(), options.unix_mode) < 0) {
    return fail(detail::last_error(), "chmod");
  }
  if (address.type() == Type::stream) {
    if (auto r = socket->listen(options.backlog, std::nothrow); !r)
      return fail(r.error(), "listen");
  }
  return std::move(*socket);
}

}  // namespace

std::vector<Address> interleave_families(const std::vector<Address>& candidates) {
  if (candidates.empty()) return {};
  const Family first = candidates.front().family();
  std::vector<Address> preferred, other, ordered;
  for (const auto& a : candidates) (a.family() == first ? preferred : other).push_back(a);
  for (std::size_t i = 0; i < std::max(preferred.size(), other.size()); ++i) {
    if (i < preferred.size()) ordered.push_back(preferred[i]);
    if (i < other.size()) ordered.push_back(other[i]);
  }
  return ordered;
}

Result<Socket> create_connection(std::string_view address, const ConnectOptions& options,
                                 std::nothrow_t) noexcept {
  try {
    auto deadline = detail::deadline_after(options.timeout);
    auto resolved = resolve(address, options.timeout, std::nothrow);
    if (!resolved) return resolved.error();
    Source source;
    std::string error;
    auto candidates = detail::filter_candidates(std::move(*resolved), options, source, error);
    if (!candidates) return candidates.error();
    std::vector<ConnectFailure> failures;
    return connect_first(*candidates, deadline, failures, source);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

Socket create_connection(std::string_view address, const ConnectOptions& options) {
  auto deadline = detail::deadline_after(options.timeout);
  // Throws naming the bad part or the lookup error.
  std::vector<Address> resolved = resolve(address, options.timeout);
  Source source;
  std::string error;
  auto candidates = detail::filter_candidates(std::move(resolved), options, source, error);
  if (!candidates) throw Error(candidates.error(), "connect", std::string(address), error);
  std::vector<ConnectFailure> failures;
  auto socket = connect_first(*candidates, deadline, failures, source);
  if (!socket) throw detail::connect_error(socket.error(), address, failures);
  return std::move(*socket);
}

Result<Socket> create_connection(const std::vector<Address>& candidates, Timeout timeout,
                                 std::nothrow_t) noexcept {
  std::vector<ConnectFailure> failures;
  return connect_first(candidates, detail::deadline_after(timeout), failures);
}

Socket create_connection(const std::vector<Address>& candidates, Timeout timeout) {
  std::vector<ConnectFailure> failures;
  auto socket = connect_first(candidates, detail::deadline_after(timeout), failures);
  if (!socket) {
    throw detail::connect_error(socket.error(), detail::candidate_names(candidates), failures);
  }
  return std::move(*socket);
}

Result<Socket> create_connection(std::string_view address, Timeout timeout,
                                 std::nothrow_t) noexcept {
  return create_connection(address, ConnectOptions{.timeout = timeout}, std::nothrow);
}

Socket create_connection(std::string_view address, Timeout timeout) {
  return create_connection(address, ConnectOptions{.timeout = timeout});
}

Result<Socket> create_server(const Address& address, const ServerOptions& options,
                             std::nothrow_t) noexcept {
  ServerError failed;
  return make_server(address, options, failed);
}

Socket create_server(const Address& address, const ServerOptions& options) {
  ServerError failed;
  auto socket = make_server(address, options, failed);
  if (!socket) {
    throw Error(failed.code, "create_server", address.to_string(),
                failed.detail.empty() ? std::string(failed.step) + ": " + failed.code.message()
                                      : failed.detail);
  }
  return std::move(*socket);
}

Socket create_server(std::string_view address, const ServerOptions& options) {
  // getaddrinfo never succeeds with an empty list, so front() exists.
  std::vector<Address> all = resolve(address);
  if (options.family == Family::unspecified) return create_server(all.front(), options);
  for (const auto& a : all) {
    if (a.family() == options.family) return create_server(a, options);
  }
  throw Error(errc::invalid_address, "create_server", std::string(address),
              std::string("no ") + detail::family_name(options.family) + " address for it");
}

}  // namespace wire
