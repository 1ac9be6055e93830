#include "happy_eyeballs.hpp"

#include <algorithm>

#include "wire/loop.hpp"

namespace wire::detail {

std::optional<Clock::time_point> deadline_after(Timeout timeout) {
  if (!timeout) return std::nullopt;
  return later(Clock::now(), *timeout);
}

std::error_code overall_error(const std::vector<ConnectFailure>& failures) {
  if (failures.empty()) return std::make_error_code(std::errc::invalid_argument);
  for (const auto& f : failures) {
    if (f.error == errc::timed_out) return errc::timed_out;
  }
  return failures.back().error;
}

std::string describe(const std::vector<ConnectFailure>& failures) {
  if (failures.empty()) return "no address to connect to";
  std::string text;
  for (const auto& f : failures) {
    if (!text.empty()) text += "; ";
    text += f.address.to_string() + ": " + (f.detail.empty() ? f.error.message() : f.detail);
  }
  return text;
}

Error connect_error(std::error_code code, std::string_view target,
                    const std::vector<ConnectFailure>& failures, bool name_target) {
  if (failures.size() == 1 && !name_target) {
    if (failures[0].detail.empty()) return Error(code, "connect", failures[0].address.to_string());
    return Error(code, "connect", failures[0].address.to_string(), failures[0].detail);
  }
  return Error(code, "connect", std::string(target), describe(failures));
}

std::string candidate_names(const std::vector<Address>& candidates) {
  std::string names;
  for (const auto& a : candidates) names += (names.empty() ? "" : ", ") + a.to_string();
  return names;
}

const char* family_name(Family family) {
  return family == Family::inet ? "IPv4" : family == Family::inet6 ? "IPv6" : "Unix";
}

Result<std::vector<Address>> filter_candidates(std::vector<Address> candidates,
                                               const ConnectOptions& options, Source& source,
                                               std::string& error) {
  Family wanted = options.family;
  if (!options.source_host.empty()) {
    auto host = Address::parse(join_host_port(options.source_host, "0"), std::nothrow);
    if (!host || host->family() == Family::local) {
      error = "source address '" + printable(options.source_host) +
              "' is not a numeric IPv4 or IPv6 address";
      return errc::invalid_address;
    }
    if (wanted != Family::unspecified && wanted != host->family()) {
      error = "source address " + printable(options.source_host) + " is not " + family_name(wanted);
      return errc::invalid_address;
    }
    wanted = host->family();
    source.host = *host;
  }
  source.port = options.source_port;
  if (!source.empty() && std::any_of(candidates.begin(), candidates.end(), [](const Address& a) {
        return a.family() == Family::local;
      })) {
    error = "a source address or port applies to tcp:// and udp:// only";
    return errc::invalid_address;
  }
  if (wanted == Family::unspecified) return candidates;
  std::vector<Address> kept;
  std::string names;
  for (const auto& a : candidates) {
    names += (names.empty() ? "" : ", ") + a.to_string();
    if (a.family() == wanted) kept.push_back(a);
  }
  if (kept.empty()) {
    error = std::string("no ") + family_name(wanted) + " address among " + names;
    return errc::invalid_address;
  }
  return kept;
}

namespace {

// Binds `socket` as `source` asks before connecting to `target`. A unixgram client gets an
// autobound abstract name (bind with the family alone), or the server could not reply.
Result<void> bind_source(Socket& socket, const Address& target, const Source& source,
                         std::string& detail) noexcept {
  if (target.family() == Family::local) {
    if (target.type() != Type::dgram) return {};
    ::sa_family_t family = AF_UNIX;
    Address autobind = Address::from_sockaddr(reinterpret_cast<const ::sockaddr*>(&family),
                                              sizeof family, Type::dgram);
    auto bound = socket.bind(autobind, std::nothrow);
    if (!bound) detail = "autobind: " + bound.error().message();
    return bound;
  }
  if (source.empty()) return {};
  Address local;
  if (source.host) {
    local = source.host->with_port(source.port).with_type(target.type());
  } else {
    // The wildcard of the target's family: zero the address, keep only family and port.
    ::sockaddr_storage any{};
    any.ss_family = target.native()->sa_family;
    local = Address::from_sockaddr(reinterpret_cast<const ::sockaddr*>(&any), target.native_size(),
                                   target.type())
                .with_port(source.port);
  }
  if (source.port != 0) {
    if (auto r = socket.set_option(option::reuse_address, true, std::nothrow); !r) return r;
  }
  auto bound = socket.bind(local, std::nothrow);
  if (!bound) detail = "bind " + local.to_string() + ": " + bound.error().message();
  return bound;
}

}  // namespace

std::optional<StartedAttempt> start_attempt(const Address& address, const Source& source,
                                            std::vector<ConnectFailure>& failures) {
  auto socket = Socket::create(address.family(), address.type(), std::nothrow);
  if (!socket) {
    failures.push_back({address, socket.error()});
    return std::nullopt;
  }
  std::string detail;
  if (auto r = bind_source(*socket, address, source, detail); !r) {
    failures.push_back({address, r.error(), detail});
    return std::nullopt;
  }
  if (auto r = socket->set_timeout(std::chrono::nanoseconds(0), std::nothrow); !r) {
    failures.push_back({address, r.error()});
    return std::nullopt;
  }
  auto connected = socket->connect(address, std::nothrow);
  if (connected) return StartedAttempt{std::move(*socket), true};  // the peer is remembered
  if (connected.error() != std::errc::operation_in_progress) {
    failures.push_back({address, connected.error()});
    return std::nullopt;
  }
  return StartedAttempt{std::move(*socket), false};
}

AttemptSchedule::AttemptSchedule(const std::vector<Address>& candidates,
                                 std::optional<Clock::time_point> deadline)
    : ordered_(interleave_families(candidates)), deadline_(deadline) {}

const Address* AttemptSchedule::next_due(Clock::time_point now, bool attempts_pending) noexcept {
  if (exhausted() || (attempts_pending && now < next_start_)) return nullptr;
  return &ordered_[next_++];
}

std::optional<Clock::time_point> AttemptSchedule::wake_time() const noexcept {
  std::optional<Clock::time_point> wake = deadline_;
  if (!exhausted() && (!wake || next_start_ < *wake)) wake = next_start_;
  return wake;
}

void AttemptSchedule::time_out(const std::vector<Address>& pending,
                               std::vector<ConnectFailure>& failures) {
  for (const auto& address : pending) failures.push_back({address, errc::timed_out});
  for (; next_ < ordered_.size(); ++next_) failures.push_back({ordered_[next_], errc::timed_out});
}

}  // namespace wire::detail
