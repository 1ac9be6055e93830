#include "wire/async/open_connection.hpp"

#include <coroutine>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "../happy_eyeballs.hpp"
#include "../resolver.hpp"
#include "wire/async/run_in_thread.hpp"

namespace wire {
namespace {

using detail::Clock;
using detail::ConnectFailure;

// One candidate's connect in flight. When its fd turns writable the connect has finished,
// one way or the other: the loop calls finished(), then resumes the coroutine running Happy
// Eyeballs (whose handle the waiter holds), which looks at `outcome`.
// Ownership: owns its AsyncSocket, and so the fd; the loop only points to the waiter.
struct Attempt : detail::IoWaiter {
  Attempt(EventLoop& on, Socket socket, const Address& to)
      : loop(on), connecting(on, std::move(socket)), address(to) {}
  Attempt(const Attempt&) = delete;
  Attempt& operator=(const Attempt&) = delete;
  // Withdrawn before the socket closes: closing would abort the waiter, resuming the
  // coroutine that is destroying this.
  ~Attempt() {
    if (waiting) loop.cancel_io(*this);
  }

  static bool finished(detail::IoWaiter* waiter) noexcept {
    auto* self = static_cast<Attempt*>(waiter);
    // finish_connect remembers the peer, so later errors name it (as create_connection's).
    self->outcome = self->connecting.socket().finish_connect(self->address, std::nothrow);
    return true;
  }
  static void aborted(detail::IoWaiter* waiter, std::error_code reason) noexcept {
    auto* self = static_cast<Attempt*>(waiter);
    self->outcome = Result<void>(reason);
    self->handle.resume();
  }
  static constexpr detail::IoOps attempt_ops{&finished, &aborted};

  EventLoop& loop;
  AsyncSocket connecting;
  Address address;
  std::optional<Result<void>> outcome;  // set once the connect finished
};

using Pending = std::vector<std::unique_ptr<Attempt>>;  // the waiters must not move

// co_await AttemptsAwaiter(...): until the connect of a pending attempt finishes, or
// `until` passes. Attempts started since the last wait are handed to the loop here, where
// the coroutine's handle is known; the others stay registered between waits.
class AttemptsAwaiter : detail::TimerNode {
 public:
  AttemptsAwaiter(EventLoop& loop, Pending& pending,
                  std::optional<Clock::time_point> until) noexcept
      : loop_(loop), pending_(pending), until_(until) {}
  AttemptsAwaiter(const AttemptsAwaiter&) = delete;
  AttemptsAwaiter& operator=(const AttemptsAwaiter&) = delete;
  ~AttemptsAwaiter() {
    if (armed()) loop_.disarm(*this);
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> handle) noexcept {
    for (auto& attempt : pending_) {
      if (attempt->waiting || attempt->outcome) continue;
      attempt->handle = handle;
      attempt->ops = &Attempt::attempt_ops;
      attempt->fd = attempt->connecting.fileno();
      attempt->direction = static_cast<std::uint8_t>(writable);
      if (auto ec = loop_.wait_io(*attempt)) {
        attempt->outcome = Result<void>(ec);
        return false;  // looked at at once, as a failed connect
      }
    }
    if (until_) {
      handle_ = handle;
      fire = [](detail::TimerNode* node) noexcept {
        static_cast<AttemptsAwaiter*>(node)->handle_.resume();
      };
      loop_.arm(*this, *until_);
    }
    return true;
  }
  void await_resume() noexcept {
    if (armed()) loop_.disarm(*this);
  }

 private:
  EventLoop& loop_;
  Pending& pending_;
  std::optional<Clock::time_point> until_;
  std::coroutine_handle<> handle_;
};

// Happy Eyeballs on the loop: create_connection's schedule (detail::AttemptSchedule), waiting
// in the loop where create_connection waits in ppoll. Attempts that do not win close as
// `pending` goes out of scope, or as the frame is destroyed when the task is cancelled.
Task<Result<AsyncSocket>> connect_first(EventLoop& loop, const std::vector<Address>& candidates,
                                        std::optional<Clock::time_point> deadline,
                                        std::vector<ConnectFailure>& failures,
                                        const detail::Source& source) {
  Pending pending;
  detail::AttemptSchedule schedule(candidates, deadline);
  for (;;) {
    Clock::time_point now = Clock::now();
    if (schedule.expired(now)) {
      std::vector<Address> waiting;
      for (const auto& attempt : pending) waiting.push_back(attempt->address);
      schedule.time_out(waiting, failures);
      co_return errc::timed_out;
    }
    while (const Address* address = schedule.next_due(now, !pending.empty())) {
      auto started = detail::start_attempt(*address, source, failures);
      if (!started) {
        schedule.failed(now);  // failed at once: the next attempt starts now
        continue;
      }
      if (started->connected) co_return AsyncSocket(loop, std::move(started->socket));
      pending.push_back(std::make_unique<Attempt>(loop, std::move(started->socket), *address));
      schedule.started(now);
    }
    if (pending.empty()) {
      if (schedule.exhausted()) co_return detail::overall_error(failures);
      continue;
    }

    AttemptsAwaiter waiting(loop, pending, schedule.wake_time());
    co_await waiting;

    for (std::size_t i = 0; i < pending.size();) {
      Attempt& attempt = *pending[i];
      if (!attempt.outcome) {
        ++i;
        continue;
      }
      // The loop withdrew the winner's waiter before resuming us, so it may move.
      if (*attempt.outcome) co_return std::move(attempt.connecting);
      failures.push_back({attempt.address, attempt.outcome->error()});
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      schedule.failed(Clock::now());  // an attempt failed: do not wait to start the next
    }
  }
}

// What getaddrinfo's worker hands back.
struct Lookup {
  Result<std::vector<Address>> addresses{std::error_code()};
  std::string why;
};

// resolve(text) on one of the loop's workers, by `deadline`. The loop's worker pool rather
// than getaddrinfo_a: glibc runs those requests on helper threads of its own all the same
// (made per request while none is idle, up to 20, plus a new thread per SIGEV_THREAD
// notification), and gai_cancel cannot stop a request already running (EAI_NOTCANCELED):
// its notification still comes, racing with a caller that gave up and freed its gaicb. An
// answer after a timeout must be dropped either way; run_in_thread drops it by itself (its
// job owns everything it touches), and its pool bounds the threads.
Task<Result<std::vector<Address>>> resolve_off_loop(EventLoop& loop, const std::string& text,
                                                    std::optional<Clock::time_point> deadline,
                                                    Timeout timeout, std::string& why) {
  auto lookup = [text] {
    Lookup found;
    found.addresses = detail::resolve_explained(text, found.why);
    return found;
  };
  const auto timed_out = [&] {
    why = "timed out after " + detail::describe_duration(*timeout);
    return errc::timed_out;
  };
  try {
    std::optional<Lookup> found;
    if (!deadline) {
      found.emplace(co_await loop.run_in_thread(std::move(lookup)));
    } else {
      const auto remaining = *deadline - Clock::now();
      if (remaining <= Clock::duration::zero()) co_return timed_out();
      // Not with_timeout(): that one waits on EventLoop::current(), this on `loop`. Built
      // step by step in named objects: g++ 12 copies a TimeoutAwaiter made of nested
      // temporaries inside co_await bytewise, and its label's string then frees a pointer
      // into the frame.
      Task<Lookup> lookup_task = detail::as_task(loop.run_in_thread(std::move(lookup)));
      detail::TimeoutAwaiter<Lookup> bounded(loop, remaining, std::move(lookup_task),
                                             detail::TimeoutLabel{});
      found.emplace(co_await bounded);
    }
    why = std::move(found->why);
    co_return std::move(found->addresses);
  } catch (const std::system_error& e) {  // wire::Error is one
    if (e.code() == errc::timed_out) co_return timed_out();
    why = e.what();
    co_return e.code();
  }
}

// What to connect to: text to resolve, or the caller's own candidates.
struct Target {
  std::string text;
  std::vector<Address> candidates;
  bool resolved = false;
};

// Everything open_connection does; `error`, when given, receives the wire::Error the
// throwing forms raise.
Task<Result<AsyncSocket>> open(EventLoop* given, Target target, ConnectOptions options,
                               std::optional<Error>* error) {
  const std::string& text = target.text;
  const auto fail = [&](std::error_code code, const char* operation, std::string address,
                        std::string why) {
    if (error != nullptr) {
      error->emplace(why.empty() ? Error(code, operation, std::move(address))
                                 : Error(code, operation, std::move(address), std::move(why)));
    }
    return code;
  };
  try {
    EventLoop* loop = given != nullptr ? given : EventLoop::current();
    if (loop == nullptr) {
      co_return fail(std::make_error_code(std::errc::operation_not_permitted), "open_connection",
                     detail::printable(text), "no EventLoop is running on this thread");
    }
    const auto deadline = detail::deadline_after(options.timeout);
    std::vector<Address> candidates = std::move(target.candidates);
    // A name looked up is kept in the error, which otherwise names the one address tried.
    bool looked_up = false;
    if (!target.resolved) {
      looked_up = detail::resolve_may_block(text);
      std::string why;
      Result<std::vector<Address>> resolved{std::error_code()};
      if (looked_up) {
        resolved = co_await resolve_off_loop(*loop, text, deadline, options.timeout, why);
      } else {
        resolved = detail::resolve_explained(text, why);  // numeric: nothing to wait for
      }
      if (!resolved) co_return fail(resolved.error(), "resolve", detail::printable(text), why);
      candidates = std::move(*resolved);
    }
    detail::Source source;
    std::string why;
    auto kept = detail::filter_candidates(std::move(candidates), options, source, why);
    if (!kept) co_return fail(kept.error(), "connect", text, why);
    std::vector<ConnectFailure> failures;
    auto socket = co_await connect_first(*loop, *kept, deadline, failures, source);
    if (!socket && error != nullptr) {
      error->emplace(detail::connect_error(socket.error(), text, failures, looked_up));
    }
    co_return std::move(socket);
  } catch (const std::bad_alloc&) {
    co_return fail(std::make_error_code(std::errc::not_enough_memory), "open_connection",
                   detail::printable(text), "");
  }
}

Task<AsyncSocket> open_throwing(EventLoop* loop, Target target, ConnectOptions options) {
  std::optional<Error> error;
  auto socket = co_await open(loop, std::move(target), std::move(options), &error);
  if (!socket) throw std::move(*error);
  co_return std::move(*socket);
}

Target named(std::string_view address) {
  return {std::string(address), {}, false};
}

Target listed(std::vector<Address> candidates) {
  std::string names = detail::candidate_names(candidates);
  return {std::move(names), std::move(candidates), true};
}

}  // namespace

Task<AsyncSocket> open_connection(std::string_view address, Timeout timeout) {
  return open_throwing(nullptr, named(address), ConnectOptions{.timeout = timeout});
}

Task<AsyncSocket> open_connection(std::string_view address, const ConnectOptions& options) {
  return open_throwing(nullptr, named(address), options);
}

Task<Result<AsyncSocket>> open_connection(std::string_view address, Timeout timeout,
                                          std::nothrow_t) {
  return open(nullptr, named(address), ConnectOptions{.timeout = timeout}, nullptr);
}

Task<Result<AsyncSocket>> open_connection(std::string_view address, const ConnectOptions& options,
                                          std::nothrow_t) {
  return open(nullptr, named(address), options, nullptr);
}

Task<AsyncSocket> open_connection(EventLoop& loop, std::string_view address, Timeout timeout) {
  return open_throwing(&loop, named(address), ConnectOptions{.timeout = timeout});
}

Task<AsyncSocket> open_connection(EventLoop& loop, std::string_view address,
                                  const ConnectOptions& options) {
  return open_throwing(&loop, named(address), options);
}

Task<Result<AsyncSocket>> open_connection(EventLoop& loop, std::string_view address,
                                          Timeout timeout, std::nothrow_t) {
  return open(&loop, named(address), ConnectOptions{.timeout = timeout}, nullptr);
}

Task<Result<AsyncSocket>> open_connection(EventLoop& loop, std::string_view address,
                                          const ConnectOptions& options, std::nothrow_t) {
  return open(&loop, named(address), options, nullptr);
}

Task<AsyncSocket> open_connection(std::vector<Address> candidates, Timeout timeout) {
  return open_throwing(nullptr, listed(std::move(candidates)), ConnectOptions{.timeout = timeout});
}

Task<Result<AsyncSocket>> open_connection(std::vector<Address> candidates, Timeout timeout,
                                          std::nothrow_t) {
  return open(nullptr, listed(std::move(candidates)), ConnectOptions{.timeout = timeout}, nullptr);
}

}  // namespace wire
