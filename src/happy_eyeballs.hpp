// Internal: Happy Eyeballs (RFC 8305) as create_connection (blocking, ppoll) and
// open_connection (on an EventLoop) both run it. They differ only in how they wait; what
// is shared lives here: which candidates are kept (ConnectOptions), the order they are
// tried in, when the next attempt starts, how one attempt starts, and the words of the
// error that lists every address tried.
//
// Ownership: a StartedAttempt owns its socket (and so its fd); nothing else here holds one.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "wire/address.hpp"
#include "wire/connect.hpp"
#include "wire/error.hpp"
#include "wire/socket.hpp"

namespace wire::detail {

using Clock = std::chrono::steady_clock;

std::optional<Clock::time_point> deadline_after(Timeout timeout);

// One candidate that failed, and why.
struct ConnectFailure {
  Address address;
  std::error_code error;
  std::string detail = {};  // replaces error.message() when set ("bind tcp://...: ...")
};

// The code a call that tried every candidate fails with: timed_out if any attempt ran out
// of time, else the last failure's.
std::error_code overall_error(const std::vector<ConnectFailure>& failures);
// "ADDRESS: why; ADDRESS: why; ...", every address tried.
std::string describe(const std::vector<ConnectFailure>& failures);
// The wire::Error for a call that connected to none of them: one failure names its address,
// several name `target` (what the caller asked for) and list each. With `name_target`, one
// failure is listed after `target` too ("connect tcp://localhost:80: tcp://127.0.0.1:80:
// timed out"), so that a name which resolved to one address still shows in the message.
Error connect_error(std::error_code code, std::string_view target,
                    const std::vector<ConnectFailure>& failures, bool name_target = false);
// "ADDRESS, ADDRESS, ...": the target of a call given candidates rather than a name.
std::string candidate_names(const std::vector<Address>& candidates);

const char* family_name(Family family);

// What to bind a socket to before it connects (nc -s / -p); an empty one binds nothing.
struct Source {
  std::optional<Address> host;  // a numeric IP, port 0
  std::uint16_t port = 0;
  bool empty() const { return !host && port == 0; }
};

// ConnectOptions checked and applied to the candidates: those of another family than the
// one asked for, or than the source's, are dropped. `error` says why nothing is left.
Result<std::vector<Address>> filter_candidates(std::vector<Address> candidates,
                                               const ConnectOptions& options, Source& source,
                                               std::string& error);

struct StartedAttempt {
  Socket socket;           // non-blocking (timeout 0)
  bool connected = false;  // at once (a Unix path, often); else the connect is in progress
};

// A socket for `address`, bound as `source` asks, with a non-blocking connect started.
// nullopt when that failed at once; the failure is then in `failures`. Throws only
// std::bad_alloc.
std::optional<StartedAttempt> start_attempt(const Address& address, const Source& source,
                                            std::vector<ConnectFailure>& failures);

// When each candidate's attempt starts (RFC 8305 section 5): families interleaved (see
// interleave_families), the first at once, each next one connection_attempt_delay after
// the previous started, or at once when no attempt is pending (the previous failed).
class AttemptSchedule {
 public:
  AttemptSchedule(const std::vector<Address>& candidates,
                  std::optional<Clock::time_point> deadline);

  // The candidate to start now, or nullptr when none is due yet (or none is left). Call
  // started() or failed() for it before asking again.
  const Address* next_due(Clock::time_point now, bool attempts_pending) noexcept;
  void started(Clock::time_point now) noexcept { next_start_ = now + connection_attempt_delay; }
  // An attempt failed: the next one need not wait for the delay.
  void failed(Clock::time_point now) noexcept { next_start_ = now; }

  bool exhausted() const noexcept { return next_ >= ordered_.size(); }
  bool expired(Clock::time_point now) const noexcept { return deadline_ && now >= *deadline_; }
  // When the waiting caller must look again: the deadline, or the next start if sooner.
  std::optional<Clock::time_point> wake_time() const noexcept;
  // At the deadline: the attempts still pending and the candidates never started each fail
  // with timed_out, in that order.
  void time_out(const std::vector<Address>& pending, std::vector<ConnectFailure>& failures);

 private:
  std::vector<Address> ordered_;
  std::size_t next_ = 0;
  Clock::time_point next_start_{};
  std::optional<Clock::time_point> deadline_;
};

}  // namespace wire::detail
