#include "wire/relay_between.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "sigpipe.hpp"
#include "wire/address.hpp"

namespace wire {

namespace {

// Bytes a buffer-copy direction reads at a time (also the largest datagram forwarded).
constexpr std::size_t copy_buffer_size = 64 * 1024;
// A direction that keeps finding data yields to the loop after moving this much, so one
// fast pair cannot starve the other direction or the loop's other connections.
constexpr std::size_t turn_budget = 1024 * 1024;
// While one side has sent its FIN and the other still streams, how often the relay looks
// for a reset on the finished side: the loop has no errors-only interest (a socket at EOF
// is always readable), so a timer probes it with poll(2) instead.
constexpr std::chrono::milliseconds reset_probe_interval(500);

// A pipe for splice(2). Owns both of its fds (O_CLOEXEC | O_NONBLOCK) from create() until
// reset() or destruction; move-only.
class Pipe {
 public:
  Pipe() noexcept = default;
  Pipe(Pipe&& other) noexcept
      : read_(std::exchange(other.read_, -1)),
        write_(std::exchange(other.write_, -1)),
        capacity_(other.capacity_) {}
  Pipe& operator=(Pipe&& other) noexcept {
    if (this != &other) {
      reset();
      read_ = std::exchange(other.read_, -1);
      write_ = std::exchange(other.write_, -1);
      capacity_ = other.capacity_;
    }
    return *this;
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  ~Pipe() { reset(); }

  // A pipe of about `size` bytes: F_SETPIPE_SZ may be refused (the per-user quota of pipe
  // pages is spent), and then the kernel's default stays.
  static Result<Pipe> create(std::size_t size) noexcept {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return detail::last_error();
    Pipe pipe;
    pipe.read_ = fds[0];
    pipe.write_ = fds[1];
    if (size > 0) (void)::fcntl(pipe.write_, F_SETPIPE_SZ, static_cast<int>(size));
    const int capacity = ::fcntl(pipe.write_, F_GETPIPE_SZ);
    pipe.capacity_ = capacity > 0 ? static_cast<std::size_t>(capacity) : 65536;
    return pipe;
  }

  bool is_open() const noexcept { return read_ >= 0; }
  int read_end() const noexcept { return read_; }
  int write_end() const noexcept { return write_; }
  std::size_t capacity() const noexcept { return capacity_; }
  void reset() noexcept {
    if (read_ >= 0) ::close(std::exchange(read_, -1));
    if (write_ >= 0) ::close(std::exchange(write_, -1));
  }

 private:
  int read_ = -1;
  int write_ = -1;
  std::size_t capacity_ = 0;
};

bool would_block(int error) noexcept {
  return error == EAGAIN || error == EWOULDBLOCK;
}

// The awaitable behind relay_between: two directions, each a small state machine that runs
// its syscalls until the kernel says EAGAIN and then waits on the loop with its own
// IoWaiter (no coroutine per direction). It lives in relay_between's frame: destroying it
// (the task cancelled) withdraws both waits and both timers, and its directions close
// their pipes. It never resumes its coroutine from inside the loop's fd dispatch, only
// from a timer: a fd closed under it reports to both of its waiters in turn, and the
// coroutine it would resume could free the second one before the loop reaches it.
class Relay {
 public:
  Relay(AsyncSocket& a, AsyncSocket& b, const RelayBetweenOptions& options)
      : loop_(*a.loop()),
        options_(options),
        stream_(a.socket().type() == Type::stream && b.socket().type() == Type::stream),
        a_to_b_(this, a, b, RelayEnd::a_failed, RelayEnd::b_failed),
        b_to_a_(this, b, a, RelayEnd::b_failed, RelayEnd::a_failed) {
    idle_timer_.relay = this;
    resume_timer_.relay = this;
    probe_timer_.relay = this;
  }
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  ~Relay() { stop_waiting(); }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> parent) noexcept {
    parent_ = parent;
    // Per-wait socket timeouts would cut a direction that is quiet while the other streams:
    // the relay's own idle timer watches both at once instead.
    a_to_b_.from->set_timeout(std::nullopt);
    b_to_a_.from->set_timeout(std::nullopt);
    last_activity_ = loop_.now();
    if (options_.idle_timeout) {
      idle_timer_.fire = &Relay::on_idle_timer;
      loop_.arm(idle_timer_, last_activity_ + *options_.idle_timeout);
    }
    start(a_to_b_);
    if (!finished_) start(b_to_a_);
    if (finished_) return false;  // over before any wait: continue without suspending
    suspended_ = true;
    return true;
  }
  RelayBetweenStats await_resume() const noexcept {
    RelayBetweenStats stats;
    stats.a_to_b = a_to_b_.moved;
    stats.b_to_a = b_to_a_.moved;
    stats.a_to_b_spliced = a_to_b_.spliced && a_to_b_.moved > 0;
    stats.b_to_a_spliced = b_to_a_.spliced && b_to_a_.moved > 0;
    stats.end = end_;
    stats.error = error_;
    return stats;
  }

 private:
  struct Direction : detail::IoWaiter {
    Direction(Relay* owner, AsyncSocket& source, AsyncSocket& sink, RelayEnd source_end,
              RelayEnd sink_end)
        : relay(owner), from(&source), to(&sink), from_fails(source_end), to_fails(sink_end) {}
    Relay* relay;
    AsyncSocket* from;
    AsyncSocket* to;
    RelayEnd from_fails;  // how the relay ends when `from` fails
    RelayEnd to_fails;
    Pipe pipe;                       // splice mode: the bytes in flight live here
    std::unique_ptr<char[]> buffer;  // buffer mode
    std::size_t buffer_size = 0;
    std::size_t offset = 0;   // buffer mode: where the bytes to send start
    std::size_t pending = 0;  // bytes read and not yet delivered
    bool holding = false;     // a read is waiting to be delivered (maybe 0 bytes)
    std::uint64_t moved = 0;
    bool spliced = false;
    bool ended = false;  // EOF seen and passed on
  };
  struct Timer : detail::TimerNode {
    Relay* relay = nullptr;
  };

  static bool on_ready(detail::IoWaiter*) noexcept { return true; }  // advance() finds out
  static void on_abort(detail::IoWaiter* waiter, std::error_code reason) noexcept {
    auto* d = static_cast<Direction*>(waiter);
    d->relay->fail(d->from->is_open() ? d->to_fails : d->from_fails, reason);
  }
  static void on_complete(detail::IoWaiter* waiter) noexcept {
    auto* d = static_cast<Direction*>(waiter);
    d->relay->advance(*d);
  }
  static constexpr detail::IoOps direction_ops{&on_ready, &on_abort, &on_complete};

  static void on_idle_timer(detail::TimerNode* node) noexcept {
    Relay* self = static_cast<Timer*>(node)->relay;
    if (self->finished_) return;
    const auto deadline = self->last_activity_ + *self->options_.idle_timeout;
    if (deadline <= self->loop_.now()) {
      self->fail(RelayEnd::idle_timeout, errc::timed_out);
    } else {
      self->loop_.arm(self->idle_timer_, deadline);
    }
  }
  // A side that sent its FIN is not waited on any more; a reset from it afterwards (poll
  // reports POLLHUP or POLLERR) must still cut the relay, or the other side stays open.
  static void on_probe_timer(detail::TimerNode* node) noexcept {
    Relay* self = static_cast<Timer*>(node)->relay;
    for (Direction* d : {&self->a_to_b_, &self->b_to_a_}) {
      if (self->finished_) return;
      if (!d->ended) continue;
      if (!d->from->is_open()) return self->fail(d->from_fails, errc::socket_closed);
      ::pollfd probe{d->from->fileno(), 0, 0};
      if (::poll(&probe, 1, 0) == 1 && (probe.revents & (POLLHUP | POLLERR)) != 0) {
        int error = 0;
        ::socklen_t size = sizeof error;
        (void)::getsockopt(probe.fd, SOL_SOCKET, SO_ERROR, &error, &size);
        return self->fail(d->from_fails,
                          std::error_code(error != 0 ? error : ECONNRESET, std::system_category()));
      }
    }
    self->loop_.arm(self->probe_timer_, self->loop_.now() + reset_probe_interval);
  }
  static void on_resume_timer(detail::TimerNode* node) noexcept {
    static_cast<Timer*>(node)->relay->parent_.resume();  // may destroy this Relay
  }

  void start(Direction& d) noexcept {
    if (stream_ && options_.zero_copy) {
      if (auto pipe = Pipe::create(options_.pipe_size)) {
        d.pipe = std::move(*pipe);
        d.spliced = true;
      }
      // No pipe (out of fds, say): this direction copies through a buffer instead.
    }
    if (!d.spliced && !make_buffer(d, copy_buffer_size)) return;
    advance(d);
  }

  bool make_buffer(Direction& d, std::size_t size) noexcept {
    d.buffer.reset(new (std::nothrow) char[size]);
    if (!d.buffer) {
      fail(d.from_fails, std::make_error_code(std::errc::not_enough_memory));
      return false;
    }
    d.buffer_size = size;
    return true;
  }

  // Leaves splice mode with bytes still in the pipe: they move to a buffer first.
  bool leave_splice(Direction& d) noexcept {
    if (!make_buffer(d, std::max(copy_buffer_size, d.pending))) return false;
    std::size_t got = 0;
    while (got < d.pending) {
      const ::ssize_t n = ::read(d.pipe.read_end(), d.buffer.get() + got, d.pending - got);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        fail(d.from_fails,
             n < 0 ? detail::last_error() : std::make_error_code(std::errc::io_error));
        return false;
      }
    }
    d.pipe.reset();
    d.spliced = false;
    d.offset = 0;
    return true;
  }

  // Moves bytes until the kernel says wait, then registers the one wait that is needed.
  void advance(Direction& d) noexcept {
    std::size_t budget = turn_budget;
    while (!finished_) {
      if (d.holding) {
        if (!d.to->is_open()) return fail(d.to_fails, errc::socket_closed);
        const int fd = d.to->fileno();
        ::ssize_t n;
        if (d.spliced) {
          // splice has no MSG_NOSIGNAL: a vanished reader would raise SIGPIPE.
          n = detail::without_sigpipe([&] {
            return ::splice(d.pipe.read_end(), nullptr, fd, nullptr, d.pending,
                            SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
          });
        } else {
          n = ::send(fd, d.buffer.get() + d.offset, d.pending, MSG_NOSIGNAL);
        }
        if (n < 0) {
          const int error = errno;
          if (error == EINTR) continue;
          if (would_block(error)) return wait(d, *d.to, writable);
          if (error == EINVAL && d.spliced) {
            if (!leave_splice(d)) return;
            continue;
          }
          return fail(d.to_fails, std::error_code(error, std::system_category()));
        }
        const auto sent = static_cast<std::size_t>(n);
        d.moved += sent;
        last_activity_ = loop_.now();
        if (!stream_ || sent >= d.pending) {  // a datagram goes whole or not at all
          d.pending = 0;
          d.offset = 0;
          d.holding = false;
        } else {
          d.pending -= sent;
          d.offset += sent;
        }
        continue;
      }
      if (d.ended) return;
      if (budget == 0) return wait(d, *d.from, readable);  // more is likely there: next turn
      if (!d.from->is_open()) return fail(d.from_fails, errc::socket_closed);
      const int fd = d.from->fileno();
      ::ssize_t n;
      if (d.spliced) {
        n = ::splice(fd, nullptr, d.pipe.write_end(), nullptr, d.pipe.capacity(),
                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      } else {
        n = ::recv(fd, d.buffer.get(), d.buffer_size, 0);
      }
      if (n < 0) {
        const int error = errno;
        if (error == EINTR) continue;
        if (would_block(error)) return wait(d, *d.from, readable);
        if (error == EINVAL && d.spliced) {  // this kind of socket cannot splice: copy instead
          d.pipe.reset();
          d.spliced = false;
          if (!make_buffer(d, copy_buffer_size)) return;
          continue;
        }
        return fail(d.from_fails, std::error_code(error, std::system_category()));
      }
      if (n == 0 && stream_) return pass_eof(d);
      d.pending = static_cast<std::size_t>(n);
      d.offset = 0;
      d.holding = true;
      budget -= std::min(budget, std::max<std::size_t>(d.pending, 1));
    }
  }

  // EOF from `from` (every byte before it delivered): `to` is shut for writing, and the
  // relay is over once the other direction has ended too.
  void pass_eof(Direction& d) noexcept {
    d.ended = true;
    d.pipe.reset();  // not needed any more: its fds go back now
    d.buffer.reset();
    if (!d.to->is_open()) return fail(d.to_fails, errc::socket_closed);
    if (::shutdown(d.to->fileno(), SHUT_WR) != 0) return fail(d.to_fails, detail::last_error());
    if (a_to_b_.ended && b_to_a_.ended) return finish(RelayEnd::closed, {});
    if (stream_ && !probe_timer_.armed()) {
      probe_timer_.fire = &Relay::on_probe_timer;
      loop_.arm(probe_timer_, loop_.now() + reset_probe_interval);
    }
  }

  void wait(Direction& d, AsyncSocket& socket, Events direction) noexcept {
    d.handle = {};
    d.ops = &direction_ops;
    d.fd = socket.fileno();
    d.direction = static_cast<std::uint8_t>(direction);
    if (auto error = loop_.wait_io(d)) fail(&socket == d.from ? d.from_fails : d.to_fails, error);
  }

  void fail(RelayEnd how, std::error_code error) noexcept { finish(how, error); }

  void finish(RelayEnd how, std::error_code error) noexcept {
    if (finished_) return;
    finished_ = true;
    end_ = how;
    error_ = error;
    stop_waiting();
    if (suspended_) {
      // Resumed from the loop's timers, after the fd dispatch that got here is done.
      resume_timer_.fire = &Relay::on_resume_timer;
      loop_.arm(resume_timer_, loop_.now());
    }
  }

  void stop_waiting() noexcept {
    for (Direction* d : {&a_to_b_, &b_to_a_}) {
      if (d->waiting) loop_.cancel_io(*d);
    }
    if (idle_timer_.armed()) loop_.disarm(idle_timer_);
    if (resume_timer_.armed()) loop_.disarm(resume_timer_);
    if (probe_timer_.armed()) loop_.disarm(probe_timer_);
  }

  EventLoop& loop_;
  RelayBetweenOptions options_;
  bool stream_;
  Direction a_to_b_;
  Direction b_to_a_;
  Timer idle_timer_;
  Timer resume_timer_;
  Timer probe_timer_;
  detail::Clock::time_point last_activity_{};
  std::coroutine_handle<> parent_;
  bool suspended_ = false;
  bool finished_ = false;
  RelayEnd end_ = RelayEnd::closed;
  std::error_code error_;
};

}  // namespace

Task<RelayBetweenStats> relay_between(AsyncSocket& a, AsyncSocket& b, RelayBetweenOptions options) {
  if (a.loop() == nullptr || a.loop() != b.loop()) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "relay_between", "",
                "both sockets must belong to the same event loop");
  }
  if (a.is_open() && b.is_open() && a.socket().type() != b.socket().type()) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "relay_between", "",
                "a stream and a datagram socket cannot be relayed");
  }
  RelayBetweenStats stats = co_await Relay(a, b, options);
  if (stats.end == RelayEnd::a_failed || stats.end == RelayEnd::b_failed) {
    // The survivor's peer learns the stream was cut (a reset), not that it ended cleanly.
    AsyncSocket& survivor = stats.end == RelayEnd::a_failed ? b : a;
    if (survivor.is_open() && survivor.socket().type() == Type::stream) {
      (void)survivor.socket().set_option(option::linger, std::chrono::seconds(0), std::nothrow);
    }
  } else {
    // A clean end is a FIN on both, even where the owner armed SO_LINGER 0 so that any cut
    // it makes itself (closing or cancelling mid-relay) is a reset.
    for (AsyncSocket* s : {&a, &b}) {
      if (s->is_open() && s->socket().type() == Type::stream) {
        (void)s->socket().set_option(option::linger, std::nullopt, std::nothrow);
      }
    }
  }
  a.close();
  b.close();
  co_return stats;
}

namespace {

// What every connection of serve_relay shares (read-only once serving, but for the
// failure lines' rate limit).
struct RelayTarget {
  std::vector<Address> to;  // resolved once, tried in order
  std::string to_text;
  RelayServeOptions options;

  void log(const std::string& line, bool failure) const {
    if (!options.log || (!failure && !options.verbose)) return;
    try {
      options.log(line, failure);
    } catch (...) {
      // A logger that fails costs its line, never the relay.
    }
  }

  // A failure line of one `kind` ("connect", "full", ...): at most one a second per kind,
  // which says how many were left out before it. A TO that is down, or a flood of
  // clients, must not turn the log into the bottleneck (or fill the disk).
  void log_failure(const char* kind, const std::string& line) const {
    if (!options.log) return;
    std::size_t suppressed = 0;
    {
      std::lock_guard lock(limiter_mutex_);
      Limiter& limiter = limiters_[kind];
      const auto now = detail::Clock::now();
      if (limiter.printed && now - limiter.last < std::chrono::seconds(1)) {
        ++limiter.suppressed;
        return;
      }
      limiter.printed = true;
      limiter.last = now;
      suppressed = std::exchange(limiter.suppressed, 0);
    }
    log(suppressed == 0 ? line
                        : line + " (" + std::to_string(suppressed) +
                              " more like it in the last second not shown)",
        true);
  }

 private:
  struct Limiter {
    bool printed = false;
    detail::Clock::time_point last{};
    std::size_t suppressed = 0;
  };
  mutable std::mutex limiter_mutex_;
  mutable std::map<std::string, Limiter, std::less<>> limiters_;
};

// Peers choose their names (an abstract Unix name may hold ESC, a newline, a NUL): shown
// only through printable(), so a log line cannot be forged or turned into terminal codes.
std::string name_of(const Address& address) {
  std::string text = address.to_string();
  return text.empty() ? "unix:(unnamed)" : detail::printable(text);
}

std::string name_of_peer(const AsyncSocket& conn) {
  auto peer = conn.socket().peer_address(std::nothrow);
  if (peer && !peer->empty()) return name_of(*peer);
  return "unix:(unnamed)";
}

std::string end_text(const RelayBetweenStats& stats, const char* a_name, const char* b_name) {
  switch (stats.end) {
    case RelayEnd::closed:
      return "closed";
    case RelayEnd::idle_timeout:
      return "idle timeout";
    case RelayEnd::a_failed:
      return std::string("cut by the ") + a_name + ": " + stats.error.message();
    case RelayEnd::b_failed:
      return std::string("cut by the ") + b_name + ": " + stats.error.message();
  }
  return "ended";
}

// Closes a client whose TO could not be reached: FIN, and what it sends is read away until
// its own EOF, for up to `drain` (a second, or the idle timeout if shorter), so the close
// is not turned into a reset by unread data however much it uploads meanwhile.
Task<void> close_unserved(AsyncSocket& client, std::chrono::nanoseconds drain) {
  if (!client.is_open()) co_return;
  (void)client.socket().shutdown(Shutdown::write, std::nothrow);
  const auto deadline = detail::Clock::now() + drain;
  char sink[16384];
  for (;;) {
    const auto left = deadline - detail::Clock::now();
    if (left <= std::chrono::nanoseconds(0)) break;
    client.set_timeout(left);
    auto n = co_await client.recv(std::span<char>(sink), std::nothrow);
    if (!n || *n == 0) break;
  }
  client.close();
}

Task<void> relay_stream_client(AsyncSocket& client, const RelayTarget& target) {
  EventLoop& loop = *client.loop();
  const std::string route = name_of_peer(client) + " -> " + target.to_text;
  const auto deadline = detail::Clock::now() + target.options.connect_timeout;
  AsyncSocket upstream;
  std::error_code failure = errc::timed_out;
  for (const Address& candidate : target.to) {
    const auto left = deadline - detail::Clock::now();
    if (left <= std::chrono::nanoseconds(0)) {
      failure = errc::timed_out;
      break;
    }
    auto socket = Socket::create(candidate.family(), Type::stream, std::nothrow);
    if (!socket) {
      failure = socket.error();  // out of fds, most likely: the next candidate fares no better
      break;
    }
    upstream = AsyncSocket(loop, std::move(*socket));
    try {
      auto connected = co_await with_timeout(left, upstream.connect(candidate, std::nothrow));
      if (connected) break;
      failure = connected.error();
    } catch (const Error& e) {
      failure = e.code();  // with_timeout's errc::timed_out
    }
    upstream.close();
  }
  if (!upstream.is_open()) {
    target.log_failure("connect", "relay " + route + ": connect: " + failure.message());
    std::chrono::nanoseconds drain = std::chrono::seconds(1);
    if (target.options.relay.idle_timeout)
      drain = std::min(drain, *target.options.relay.idle_timeout);
    co_await close_unserved(client, drain);
    co_return;
  }
  target.log("relay " + route + ": open", false);
  // Armed for any cut made from outside (a stop after its grace closes or cancels this
  // connection): a truncated stream must end with a reset, never look complete.
  // relay_between clears it on a clean end, so that one is still a FIN.
  for (AsyncSocket* s : {&client, &upstream}) {
    (void)s->socket().set_option(option::linger, std::chrono::seconds(0), std::nothrow);
  }
  const RelayBetweenStats stats = co_await relay_between(client, upstream, target.options.relay);
  target.log("relay " + route + ": " + end_text(stats, "client", "server") + ", " +
                 std::to_string(stats.a_to_b) + " bytes sent, " + std::to_string(stats.b_to_a) +
                 " bytes back" + (stats.a_to_b_spliced || stats.b_to_a_spliced ? " (splice)" : ""),
             false);
}

// The datagram side of serve_relay, on one worker's bound socket: one association per
// client address, each with its own socket connected to TO (so replies come back to the
// right client), ended after idle_timeout without a datagram either way. Associations are
// records driven by the loop's waiters and timers (no coroutine each); this object owns
// them and, through them, their sockets.
class DatagramRelay {
 public:
  DatagramRelay(AsyncSocket& listener, const RelayTarget& target)
      : listener_(listener),
        target_(target),
        loop_(*listener.loop()),
        idle_(target.options.relay.idle_timeout.value_or(target.options.datagram_idle_timeout)),
        limit_(target.options.serve.limits.max_connections) {}  // set by serve_relay
  DatagramRelay(const DatagramRelay&) = delete;
  DatagramRelay& operator=(const DatagramRelay&) = delete;
  ~DatagramRelay() {
    while (!table_.empty()) end(*table_.begin()->second, nullptr);
  }

  // A datagram from `from`: to TO through its association (made on the first one).
  void forward(std::string_view data, const Address& from) {
    Association* association = find(from);
    if (association == nullptr) {
      if (limit_ != 0 && table_.size() >= limit_) {  // full: dropped, as UDP may
        target_.log_failure("full", "relay " + name_of(from) + " -> " + target_.to_text + ": " +
                                        std::to_string(limit_) +
                                        " associations open, datagram dropped");
        return;
      }
      association = open(from);
      if (association == nullptr) return;
    }
    association->last_activity = loop_.now();
    // Non-blocking: a datagram the kernel cannot take now is dropped, as UDP does.
    auto sent = association->upstream.socket().send(data, std::nothrow);
    if (sent) {
      association->to_server += data.size();
    } else if (sent.error() != std::errc::resource_unavailable_try_again) {
      end(*association, ("send: " + sent.error().message()).c_str(), true);
    }
  }
  std::size_t size() const noexcept { return table_.size(); }

 private:
  struct Association : detail::IoWaiter, detail::TimerNode {
    DatagramRelay* owner = nullptr;
    Address client;
    std::string key;       // the client's sockaddr bytes: its key in the table
    AsyncSocket upstream;  // connected to TO
    detail::Clock::time_point last_activity{};
    std::uint64_t to_server = 0;
    std::uint64_t to_client = 0;
  };

  static std::string key_of(const Address& address) {
    return {reinterpret_cast<const char*>(address.native()), address.native_size()};
  }

  Association* find(const Address& from) {
    auto it = table_.find(key_of(from));
    return it == table_.end() ? nullptr : it->second.get();
  }

  Association* open(const Address& from) {
    const std::string route = name_of(from) + " -> " + target_.to_text;
    std::error_code failure;
    for (const Address& candidate : target_.to) {
      auto socket = Socket::create(candidate.family(), Type::dgram, std::nothrow);
      if (!socket) {
        failure = socket.error();
        break;
      }
      if (auto connected = socket->connect(candidate, std::nothrow); !connected) {
        failure = connected.error();
        continue;
      }
      auto association = std::make_unique<Association>();
      association->owner = this;
      association->client = from;
      association->key = key_of(from);
      association->upstream = AsyncSocket(loop_, std::move(*socket));
      association->last_activity = loop_.now();
      association->fire = &DatagramRelay::on_idle;
      Association* raw = association.get();
      table_.emplace(raw->key, std::move(association));
      loop_.arm(*raw, raw->last_activity + idle_);
      target_.log("relay " + route + ": open", false);
      return wait(*raw) ? raw : nullptr;
    }
    target_.log_failure("connect", "relay " + route + ": connect: " + failure.message());
    return nullptr;
  }

  static bool on_reply_ready(detail::IoWaiter*) noexcept { return true; }
  static void on_reply_abort(detail::IoWaiter* w, std::error_code) noexcept {
    auto* a = static_cast<Association*>(w);
    a->owner->end(*a, "closed");
  }
  static void on_reply_complete(detail::IoWaiter* w) noexcept {
    auto* a = static_cast<Association*>(w);
    a->owner->pass_replies(*a);
  }
  static constexpr detail::IoOps reply_ops{&on_reply_ready, &on_reply_abort, &on_reply_complete};

  // False when the wait failed and the association is gone.
  bool wait(Association& a) noexcept {
    a.handle = {};
    a.ops = &reply_ops;
    a.fd = a.upstream.fileno();
    a.direction = readable;
    if (auto error = loop_.wait_io(a)) {
      end(a, error.message().c_str(), true);
      return false;
    }
    return true;
  }

  // Replies from TO, each to the association's client as one datagram.
  void pass_replies(Association& a) noexcept {
    char buffer[copy_buffer_size];
    for (int turn = 0; turn < 64; ++turn) {
      auto got = a.upstream.socket().recv(std::span<char>(buffer), std::nothrow);
      if (!got) {
        if (got.error() == std::errc::resource_unavailable_try_again) {
          (void)wait(a);
          return;
        }
        // ECONNREFUSED: TO's port is closed (an ICMP came back).
        return end(a, got.error().message().c_str(), true);
      }
      a.last_activity = loop_.now();
      auto sent = listener_.socket().sendto(std::string_view(buffer, *got), a.client, std::nothrow);
      if (sent) a.to_client += *got;  // otherwise dropped, as UDP may
    }
    (void)wait(a);  // more may be queued: the next turn, after the loop's other work
  }

  static void on_idle(detail::TimerNode* node) noexcept {
    auto* a = static_cast<Association*>(node);
    DatagramRelay* self = a->owner;
    const auto deadline = a->last_activity + self->idle_;
    if (deadline > self->loop_.now()) {
      self->loop_.arm(*a, deadline);
    } else {
      self->end(*a, "idle timeout");
    }
  }

  void end(Association& a, const char* why, bool failure = false) noexcept {
    if (a.waiting) loop_.cancel_io(a);
    if (a.armed()) loop_.disarm(a);
    if (why != nullptr) {
      try {
        const std::string line = "relay " + name_of(a.client) + " -> " + target_.to_text + ": " +
                                 why + ", " + std::to_string(a.to_server) + " bytes sent, " +
                                 std::to_string(a.to_client) + " bytes back";
        if (failure) {
          target_.log_failure("cut", line);
        } else {
          target_.log(line, false);
        }
      } catch (...) {
      }
    }
    auto it = table_.find(a.key);
    std::unique_ptr<Association> gone = std::move(it->second);
    table_.erase(it);
    gone->upstream.close();
  }

  AsyncSocket& listener_;
  const RelayTarget& target_;
  EventLoop& loop_;
  std::chrono::nanoseconds idle_;
  std::size_t limit_;
  std::unordered_map<std::string, std::unique_ptr<Association>> table_;
};

Task<void> relay_datagrams(AsyncSocket& listener, const RelayTarget& target) {
  DatagramRelay relay(listener, target);
  char buffer[copy_buffer_size];
  for (;;) {
    auto got = co_await listener.recvfrom(std::span<char>(buffer), std::nothrow);
    if (!got) {
      if (got.error() == errc::socket_closed) co_return;
      continue;  // a transient error (an ICMP for an earlier reply): the next datagram
    }
    relay.forward(std::string_view(buffer, got->size), got->from);
  }
}

}  // namespace

namespace {

// fds kept for everything that is not a relayed connection (the listeners, logs, resolver).
constexpr std::size_t reserved_fds = 32;
// A relayed stream holds its two sockets and two pipes; the rest is slack for the moments
// a connect or a pipe is being made.
constexpr std::size_t fds_per_stream = 6;

// As many relays per worker as RLIMIT_NOFILE allows, each costing `fds_each`: beyond it,
// clients wait in the backlog instead of being accepted and dropped for want of an fd.
std::size_t default_relay_limit(std::size_t fds_each, int workers) {
  ::rlimit limit{};
  std::size_t fds = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    fds = static_cast<std::size_t>(limit.rlim_cur);
  }
  const std::size_t usable = fds > 2 * reserved_fds ? fds - reserved_fds : fds / 2;
  return std::max<std::size_t>(1,
                               usable / fds_each / static_cast<std::size_t>(std::max(1, workers)));
}

// Whether this host's IP address `ip` is one of its own (bind succeeds only there).
bool is_local_ip(const Address& ip) {
  auto probe = Socket::create(ip.family(), Type::dgram, std::nothrow);
  return probe && probe->bind(ip.with_port(0), std::nothrow).has_value();
}

bool is_wildcard(const Address& address) {
  const std::string host = address.host();
  return host == "0.0.0.0" || host == "::";
}

// Whether connecting to `to` reaches `listening` itself: a relay to its own address would
// connect to itself for every connection it makes, until no fd is left.
bool reaches_itself(const Address& to, const Address& listening) {
  if (to.family() == Family::local || listening.family() == Family::local) {
    return to.family() == listening.family() && to.to_string() == listening.to_string();
  }
  if (to.port() != listening.port()) return false;
  if (!is_wildcard(listening)) return to.host() == listening.host();
  // 0.0.0.0 takes every IPv4 address of the host; :: every IPv6 one (and IPv4 too when
  // dual-stack, which is the default).
  if (listening.family() == Family::inet && to.family() != Family::inet) return false;
  return is_local_ip(to);
}

}  // namespace

int serve_relay(std::string_view from, std::string_view to, RelayServeOptions options) {
  auto target = std::make_shared<RelayTarget>();
  target->to = resolve(to);
  const Address listen_on = resolve(from).front();
  const Type type = listen_on.type();
  for (const Address& candidate : target->to) {
    if (candidate.type() != type) {
      throw Error(errc::invalid_address, "relay", candidate.to_string(),
                  type == Type::stream ? "FROM is a stream address, TO is not"
                                       : "FROM is a datagram address, TO is not");
    }
  }
  if (type == Type::dgram &&
      (listen_on.family() == Family::local || target->to.front().family() == Family::local)) {
    // Each association would need its own autobound name for replies to come back, and
    // datagrams up to SO_RCVBUF: not done, so refused rather than half working.
    throw Error(std::make_error_code(std::errc::invalid_argument), "relay",
                std::string(listen_on.family() == Family::local ? from : to),
                "unixgram: is not supported by relay; use udp:// or a stream address");
  }
  target->to_text = target->to.front().to_string();
  ServeOptions serve_options = options.serve;
  // Per-wait timeouts would cut a direction quiet while the other streams: the relay's
  // idle timeout watches both directions instead.
  serve_options.limits.idle_timeout.reset();
  if (serve_options.limits.max_connections == 0) {
    serve_options.limits.max_connections =
        default_relay_limit(type == Type::stream ? fds_per_stream : 1, serve_options.workers);
  }
  // Checked once bound (port 0 resolved), before any client is served.
  serve_options.on_listening =
      [target, user = std::move(serve_options.on_listening)](const Address& bound) {
        for (const Address& candidate : target->to) {
          if (reaches_itself(candidate, bound)) {
            throw Error(std::make_error_code(std::errc::invalid_argument), "relay",
                        candidate.to_string(),
                        "TO is FROM's own address (" + bound.to_string() +
                            "): the relay would connect to itself");
          }
        }
        if (user) user(bound);
      };
  options.serve.limits.max_connections = serve_options.limits.max_connections;
  target->options = std::move(options);
  const RelayTarget* shared = target.get();
  if (type == Type::dgram) {
    return serve_datagrams(
        from, [shared](AsyncSocket& socket) { return relay_datagrams(socket, *shared); },
        serve_options);
  }
  return serve(
      from, [shared](AsyncSocket& conn) { return relay_stream_client(conn, *shared); },
      serve_options);
}

}  // namespace wire
