#include "wire/server.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "handoff_control.hpp"
#include "wire/handoff.hpp"
#include "wire/socket_file.hpp"

namespace wire {
namespace {

// fds kept free for everything that is not a connection (files, resolver, logs).
constexpr std::size_t reserved_fds = 32;

// Workers share the process's fds. The select selector cannot watch an fd at or above
// FD_SETSIZE, so under it that is the ceiling whatever RLIMIT_NOFILE allows: a connection
// accepted above it could never be waited on.
std::size_t default_max_connections(int workers, SelectorKind kind) {
  ::rlimit limit{};
  std::size_t fds = 1024;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    fds = static_cast<std::size_t>(limit.rlim_cur);
  }
  if (kind == SelectorKind::select) fds = std::min<std::size_t>(fds, FD_SETSIZE);
  std::size_t usable = fds > 2 * reserved_fds ? fds - reserved_fds : fds / 2;
  return std::max<std::size_t>(1, usable / static_cast<std::size_t>(std::max(1, workers)));
}

// Out of fds, or (on the select selector) out of fds below FD_SETSIZE.
bool is_fd_exhaustion(std::error_code ec) {
  return ec == std::errc::too_many_files_open || ec == std::errc::too_many_files_open_in_system ||
         ec == std::errc::no_buffer_space || ec == std::errc::not_enough_memory ||
         ec == errc::beyond_select_limit;
}

// Loops of the serve() calls running in this process, for stop_serving() and signals.
constexpr std::size_t max_serving_loops = 1024;
std::array<std::atomic<EventLoop*>, max_serving_loops> serving_loops{};
std::atomic<bool> stop_requested{false};
// stop_serving() calls since serve() began: a worker slow to leave its first run() can see
// the first and second as one wake-up, and must still cut the grace short.
std::atomic<int> stop_calls{0};
std::atomic<int> stoppers_running{0};  // stop_serving() calls between reading and using a slot

class ServingRegistration {
 public:
  explicit ServingRegistration(EventLoop& loop) {
    for (auto& slot : serving_loops) {
      EventLoop* empty = nullptr;
      if (slot.compare_exchange_strong(empty, &loop)) {
        slot_ = &slot;
        break;
      }
    }
    if (stop_requested.load()) loop.stop();
  }
  ~ServingRegistration() {
    if (slot_ == nullptr) return;
    slot_->store(nullptr);
    // A stop_serving() (a signal handler on another thread) may have read the pointer just
    // before: the loop, and its eventfd, must outlive that call.
    while (stoppers_running.load() != 0) std::this_thread::yield();
  }

 private:
  std::atomic<EventLoop*>* slot_ = nullptr;
};

// The first signal stops gracefully; a second one cuts the grace short (the loops are
// stopped again, and Server::shutdown cancels what is left at once).
extern "C" void on_stop_signal(int) {
  const int saved = errno;
  stop_serving();
  errno = saved;
}

class SignalScope {
 public:
  explicit SignalScope(bool enabled) : enabled_(enabled) {
    if (!enabled_) return;
    struct ::sigaction action {};
    action.sa_handler = on_stop_signal;
    ::sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, &previous_int_);
    ::sigaction(SIGTERM, &action, &previous_term_);
  }
  ~SignalScope() {
    if (!enabled_) return;
    ::sigaction(SIGINT, &previous_int_, nullptr);
    ::sigaction(SIGTERM, &previous_term_, nullptr);
  }

 private:
  bool enabled_;
  struct ::sigaction previous_int_ {};
  struct ::sigaction previous_term_ {};
};

// A listener's copy, for a worker that shares its queue.
Socket duplicate(const Socket& listener) {
  const int copy = ::fcntl(listener.fileno(), F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throw Error(detail::last_error(), "dup", listener.local_address().to_string());
  auto adopted = Socket::adopt(copy, std::nothrow);
  if (!adopted) {
    ::close(copy);  // adopt failed, so the copy is still ours to close
    throw Error(adopted.error(), "adopt", listener.local_address().to_string());
  }
  return std::move(*adopted);
}
// One listener per worker: SO_REUSEPORT for IP (the kernel spreads connections), a dup of
// the first for Unix sockets (the workers share its queue).
std::vector<Socket> open_listeners(const Address& address, ServeOptions& options) {
  const int workers = std::max(1, options.workers);
  ServerOptions socket_options = options.socket;
  const bool ip = address.family() != Family::local;
  if (ip && workers > 1) socket_options.reuse_port = true;
  std::vector<Socket> listeners;
  listeners.push_back(create_server(address, socket_options));
  const Address bound = listeners.front().local_address();
  for (int i = 1; i < workers; ++i) {
    if (ip) {
      listeners.push_back(create_server(bound, socket_options));
    } else {
      listeners.push_back(duplicate(listeners.front()));
    }
  }
  return listeners;
}

template <class Worker>
void run_workers(std::vector<Socket>& sockets, Worker worker) {
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < sockets.size(); ++i) {
    threads.emplace_back([&worker, &sockets, i] { worker(std::move(sockets[i]), i); });
  }
  worker(std::move(sockets[0]), std::size_t{0});
  for (auto& t : threads) t.join();
}

}  // namespace

// A connection's record. While parked (idle, no coroutine frame) it waits for readability
// with its own waiter and idle timer, the two bases, rather than a member that points back
// here: the pointer cost 8 bytes, which put every idle connection's record in the next
// malloc size class (160 bytes instead of 144). While the handler runs, the waiter's handle
// is the handler's frame (owned by the loop), for cancel_all: the two never overlap.
struct Server::Connection : detail::IoWaiter, detail::TimerNode {
  detail::IoWaiter& park_waiter() noexcept { return *this; }
  detail::TimerNode& idle_timer() noexcept { return *this; }
  static Connection* of(detail::IoWaiter* waiter) noexcept {
    return static_cast<Connection*>(waiter);
  }
  static Connection* of(detail::TimerNode* timer) noexcept {
    return static_cast<Connection*>(timer);
  }

  AsyncSocket socket;
  Server* server = nullptr;  // null once the server is gone
  std::uint32_t index = 0;
  bool parked = false;
};
const detail::IoOps Server::park_ops{
    // Readable: the loop lets go of the waiter, then complete runs the handler again.
    [](detail::IoWaiter*) noexcept { return true; },
    // Closed under the parked connection (a graceful stop closing idle ones): it ends.
    [](detail::IoWaiter* w, std::error_code) noexcept {
      Connection* connection = Connection::of(w);
      Server* server = connection->server;
      if (connection->idle_timer().armed()) server->loop_.disarm(connection->idle_timer());
      connection->parked = false;
      end_connection(connection);
    },
    // The handler runs again, in a new frame (if that fails, the connection ends here,
    // once: the loop no longer holds the waiter inside it).
    [](detail::IoWaiter* w) noexcept {
      Connection* connection = Connection::of(w);
      connection->server->unpark(connection);
    },
};

// Suspends the accept loop while the server is at max_connections.
class Server::SlotAwaitable {
 public:
  explicit SlotAwaitable(Server& server) : server_(server) {}
  bool await_ready() const noexcept {
    return server_.connections_.size() < server_.max_connections_ || !server_.listener_.is_open();
  }
  void await_suspend(std::coroutine_handle<> handle) noexcept { server_.paused_accept_ = handle; }
  void await_resume() const noexcept {}
  ~SlotAwaitable() { server_.paused_accept_ = {}; }

 private:
  Server& server_;
};

Server::Server(EventLoop& loop, Socket listener, ConnectionHandler handler, ServerLimits limits,
               std::shared_ptr<ConnectionCounters> counters)
    : loop_(loop),
      listener_(loop, std::move(listener)),
      handler_(std::move(handler)),
      limits_(limits),
      counters_(std::move(counters)),
      max_connections_(limits.max_connections != 0
                           ? limits.max_connections
                           : default_max_connections(1, loop.selector().kind())) {}

Server::~Server() {
  loop_.cancel(start_timer_);
  loop_.cancel(grace_timer_);
  accept_task_.reset();
  // The connections' tasks belong to the loop, which frees their records when it destroys
  // them; from now on they must not call back into this server (nor count their end: they
  // are counted as ended here, the serving being over).
  if (counters_) counters_->closed.fetch_add(connections_.size(), std::memory_order_release);
  for (Connection* connection : connections_) {
    if (connection->parked) {  // no task holds it: it ends here
      loop_.cancel_io(connection->park_waiter());
      if (connection->idle_timer().armed()) loop_.disarm(connection->idle_timer());
      connection->server = nullptr;
      end_connection(connection);
    } else {
      connection->server = nullptr;
    }
  }
  connections_.clear();
}

Address Server::local_address() const {
  return listener_.socket().local_address();
}

void Server::start() {
  accept_task_ = accept_loop();
  start_timer_ = loop_.call_later(std::chrono::nanoseconds(0), [this] {
    start_timer_ = 0;
    accept_task_.handle().resume();
  });
}

Task<void> Server::accept_loop() {
  while (listener_.is_open()) {
    co_await SlotAwaitable(*this);
    if (!listener_.is_open()) break;
    auto accepted = co_await listener_.accept(std::nothrow);
    if (!accepted) {
      const std::error_code error = accepted.error();
      if (error == errc::socket_closed) break;
      if (is_fd_exhaustion(error)) ++fd_exhaustion_;
      // The select limit refused a client (closed at once, not left in the backlog): said
      // once, as it is this server's configuration that is at fault, then counted.
      if (error == errc::beyond_select_limit && !said_select_limit_) {
        said_select_limit_ = true;
        loop_.report(std::make_exception_ptr(
            Error(error, "accept", listener_.socket().describe(),
                  "a connection was refused: every fd below FD_SETSIZE (1024) is in use, "
                  "which is all the select selector can watch; use the poll or epoll selector")));
      }
      // Out of fds (or another accept failure): keep serving the connections we have and try
      // again after a pause, instead of spinning on a listener that stays readable. Clients
      // wait in the backlog meanwhile.
      co_await loop_.sleep(limits_.accept_retry_delay);
      continue;
    }
    ++accepted_;
    // A handler that throws before its first suspension, or a record that cannot be
    // allocated, costs that one connection (closed at once), never the accept loop: it is
    // counted, reported, and the next client is accepted.
    try {
      start_connection(std::move(accepted->socket));
    } catch (...) {
      ++handler_failures_;
      loop_.report(std::current_exception());
    }
  }
}

void Server::start_connection(AsyncSocket socket) {
  static_assert(sizeof(Connection) <= 136,
                "an idle connection's record fits malloc's 144-byte class");
  auto connection = std::make_unique<Connection>();
  connection->socket = std::move(socket);
  connection->server = this;
  connection->index = static_cast<std::uint32_t>(connections_.size());
  if (limits_.idle_timeout) connection->socket.set_timeout(limits_.idle_timeout);
  connections_.push_back(connection.get());
  // Counted before the handler runs: it may end the connection (and count that) at once.
  if (counters_) counters_->accepted.fetch_add(1, std::memory_order_relaxed);
  try {
    run_handler(connection.get());
  } catch (...) {
    connections_.pop_back();
    if (counters_) counters_->accepted.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
  connection.release();  // from now on connection_done or end_connection frees it
}

void Server::run_handler(Connection* connection) {
  Task<void> task = handler_(connection->socket);
  const std::coroutine_handle<> handle = task.handle();
  loop_.spawn(std::move(task), &Server::connection_done, connection);
  connection->park_waiter().handle = handle;
}

// The handler's frame is gone. If it left the connection parkable, park it: keep only
// this record, registered for readability, and run the handler again when the peer speaks.
// Otherwise close the socket at once (no CLOSE_WAIT) and free the slot.
void Server::connection_done(void* context, std::exception_ptr error) noexcept {
  auto* connection = static_cast<Connection*>(context);
  connection->park_waiter().handle = {};
  Server* server = connection->server;
  if (error) {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      // A peer that resets, vanishes or idles out ends its own connection and nothing else;
      // a connection this process cannot wait on is its own limit, and is said.
      if (server != nullptr && e.code() == errc::beyond_select_limit) server->loop_.report(error);
    } catch (...) {
      if (server != nullptr) server->loop_.report(error);
    }
  } else if (server != nullptr && connection->socket.is_open() && connection->socket.parkable() &&
             // Stopping: a connection marked idle (nothing in flight) ends now; any other
             // (a byte stream quiet for a moment) is kept until the grace period is over.
             // Draining, it is kept parked: its next request may already be on its way.
             !(server->stopping_ && !server->draining_ && connection->socket.idle()) &&
             server->park(connection)) {
    return;
  }
  end_connection(connection);
}

bool Server::park(Connection* connection) noexcept {
  detail::IoWaiter& waiter = connection->park_waiter();
  waiter.handle = {};
  waiter.ops = &park_ops;
  waiter.fd = connection->socket.socket().is_open() ? connection->socket.socket().fileno() : -1;
  waiter.direction = readable;
  if (loop_.wait_io(waiter)) return false;
  if (auto timeout = connection->socket.timeout()) {
    detail::TimerNode& timer = connection->idle_timer();
    timer.fire = [](detail::TimerNode* t) noexcept {
      Connection* idle = Connection::of(t);  // idle past its timeout: it ends
      idle->server->loop_.cancel_io(idle->park_waiter());
      idle->parked = false;
      end_connection(idle);
    };
    loop_.arm(timer, detail::later(detail::Clock::now(), *timeout));
  }
  connection->parked = true;
  return true;
}

void Server::unpark(Connection* connection) noexcept {
  if (connection->idle_timer().armed()) loop_.disarm(connection->idle_timer());
  connection->parked = false;
  connection->socket.note_readable();
  try {
    run_handler(connection);
  } catch (...) {
    ++handler_failures_;
    loop_.report(std::current_exception());
    end_connection(connection);
  }
}

void Server::end_connection(Connection* connection) noexcept {
  Server* server = connection->server;
  connection->socket.close();
  if (server == nullptr) {
    delete connection;
    return;
  }
  if (server->counters_) server->counters_->closed.fetch_add(1, std::memory_order_release);
  auto& table = server->connections_;
  table[connection->index] = table.back();
  table[connection->index]->index = connection->index;
  table.pop_back();
  if (server->closing_all_) {
    server->ended_while_closing_.push_back(connection);  // close_connections may still hold it
  } else {
    delete connection;
  }
  server->resume_accept();
  // The last connection of a stopping server: shutdown() is done waiting (whatever else
  // the loop holds, such as tasks a handler left behind, is destroyed with the loop).
  if (server->in_shutdown_run_ && table.empty()) server->loop_.stop();
}

void Server::resume_accept() noexcept {
  if (!paused_accept_) return;
  auto handle = std::exchange(paused_accept_, {});
  // From the loop, not from inside the connection that is ending; and only if the server
  // (which owns the accept task) still exists by then.
  try {
    loop_.call_soon([handle, alive = std::weak_ptr<bool>(alive_)] {
      if (!alive.expired()) handle.resume();
    });
  } catch (...) {
    paused_accept_ = handle;
  }
}

void Server::stop_accepting() noexcept {
  listener_.close();
  resume_accept();
}

void Server::close_all() noexcept {
  close_connections(false);
}

void Server::close_connections(bool only_idle) noexcept {
  // Closing wakes a handler, which may finish at once and end its connection: records that
  // end meanwhile are kept until the loop below is done with them.
  closing_all_ = true;
  std::vector<Connection*> open = connections_;
  for (Connection* connection : open) {
    if (!only_idle || connection->socket.idle()) connection->socket.close();
  }
  closing_all_ = false;
  for (Connection* connection : ended_while_closing_) delete connection;
  ended_while_closing_.clear();
}

void Server::cancel_all() noexcept {
  close_connections(false);
  // What is left waits on something other than its socket (a timer, a queue, an upstream
  // that hangs): its frame is destroyed, which cancels the wait and ends the connection.
  closing_all_ = true;
  std::vector<Connection*> open = connections_;
  for (Connection* connection : open) {
    if (!connection->parked && connection->park_waiter().handle)
      loop_.cancel_task(connection->park_waiter().handle);
  }
  closing_all_ = false;
  for (Connection* connection : ended_while_closing_) delete connection;
  ended_while_closing_.clear();
}

void Server::shutdown(std::chrono::nanoseconds grace) {
  stopping_ = true;
  stop_accepting();
  // Connections idle between requests have nothing in flight: close them now.
  close_connections(true);
  wait_for_connections(grace);
}

void Server::drain(std::chrono::nanoseconds grace) {
  stopping_ = true;
  draining_ = true;
  stop_accepting();
  for (Connection* connection : connections_) connection->socket.mark_draining(true);
  wait_for_connections(grace);
}

void Server::wait_for_connections(std::chrono::nanoseconds grace) {
  if (connections_.empty()) return;
  grace_timer_ = loop_.call_later(grace, [this] {
    grace_timer_ = 0;
    cancel_all();
    loop_.stop();
  });
  // Ends when the last connection ends (end_connection stops the loop), once the grace is
  // over and everything was cancelled, or at once on a second stop request (stop()).
  in_shutdown_run_ = true;
  loop_.run();
  in_shutdown_run_ = false;
  loop_.cancel(grace_timer_);
  grace_timer_ = 0;
  if (!connections_.empty()) cancel_all();
}

void stop_serving() noexcept {
  stop_requested.store(true);
  stop_calls.fetch_add(1);
  stoppers_running.fetch_add(1);
  for (auto& slot : serving_loops) {
    if (EventLoop* loop = slot.load()) loop->stop();
  }
  stoppers_running.fetch_sub(1);
}

namespace {
// What serve() and serve_datagrams() share: the address of the right type and one socket
// per worker.
std::vector<Socket> open_to_serve(std::string_view address, Type type, ServeOptions& options) {
  stop_requested.store(false);
  stop_calls.store(0);
  const Address where = resolve(address).front();
  if (where.type() != type) {
    throw Error(errc::invalid_address, type == Type::stream ? "serve" : "serve_datagrams",
                where.to_string(),
                type == Type::stream ? "not a stream address; use serve_datagrams"
                                     : "not a datagram address; use serve");
  }
  return open_listeners(where, options);
}
}  // namespace

namespace {

// What the workers of one serve() share for a handoff: their loops, to stop them all once
// a successor took over (or could not be told it may).
struct WorkerGroup {
  std::mutex mutex;
  std::vector<EventLoop*> loops;
  std::vector<int> listener_fds;  // every worker's, open until stopping is set
  bool stopping = false;          // under mutex, like the rest
  bool handed_off = false;
  std::exception_ptr failure;

  // Registers a worker's loop; a group already handed over stops it at once.
  void join(EventLoop& loop) {
    std::lock_guard lock(mutex);
    loops.push_back(&loop);
    if (handed_off || failure) loop.stop();
  }
  void leave(EventLoop& loop) {
    std::lock_guard lock(mutex);
    loops.erase(std::find(loops.begin(), loops.end(), &loop));
  }
  void stop_all(bool handoff, std::exception_ptr error = nullptr) {
    std::lock_guard lock(mutex);
    if (handoff) handed_off = true;
    if (error) failure = error;
    for (EventLoop* loop : loops) loop->stop();
  }
  // A worker about to close its listener says so first.
  void stop_accepting() {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  // A copy of every listener for a successor; none once a worker is stopping (its fd may be
  // closed, and its number reused, at any moment after).
  std::vector<Socket> copy_listeners() {
    std::lock_guard lock(mutex);
    std::vector<Socket> copies;
    if (stopping || handed_off) return copies;
    for (int fd : listener_fds) {
      const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (copy < 0) return {};  // out of fds: no handoff this time (it says so)
      auto adopted = Socket::adopt(copy, std::nothrow);
      if (!adopted) {
        ::close(copy);
        return {};
      }
      copies.push_back(std::move(*adopted));
    }
    return copies;
  }
  bool was_handed_off() {
    std::lock_guard lock(mutex);
    return handed_off;
  }
};

void report(const ServeOptions& options, const std::string& line) {
  if (!options.on_handoff) return;
  try {
    options.on_handoff(line);
  } catch (...) {
  }
}

extern "C" void on_ignored_signal(int) {}

// The restart signal of a server that has nothing to restart through: caught and dropped
// (its default action would end the server and every connection). A handler rather than
// SIG_IGN, so a program it starts does not inherit the ignoring.
class IgnoredSignal {
 public:
  explicit IgnoredSignal(int signal_number) : signal_(signal_number) {
    struct ::sigaction action {};
    action.sa_handler = on_ignored_signal;
    action.sa_flags = SA_RESTART;
    ::sigemptyset(&action.sa_mask);
    ::sigaction(signal_, &action, &previous_);
  }
  ~IgnoredSignal() { ::sigaction(signal_, &previous_, nullptr); }
  IgnoredSignal(const IgnoredSignal&) = delete;
  IgnoredSignal& operator=(const IgnoredSignal&) = delete;

 private:
  int signal_;
  struct ::sigaction previous_ {};
};

// What every serve() on stream listeners does once it has one listener per worker.
// `takeover`: they came from a running server, told "ready" once every worker accepts.
// Returns whether a successor took them over.
bool serve_listeners(std::vector<Socket>& listeners, ConnectionHandler& handler,
                     ServeOptions& options, Takeover* takeover) {
  // The control socket, and the listeners' numbers, copied for a successor under the
  // group's lock while no worker is stopping (a stopping worker closes its own).
  std::unique_ptr<detail::ControlEndpoint> control;
  WorkerGroup group;
  if (!options.control.empty()) {
    try {
      control = std::make_unique<detail::ControlEndpoint>(options.control, takeover != nullptr);
      if (takeover == nullptr) control->publish();
    } catch (const Error& e) {
      if (!options.control_optional) throw;
      control.reset();
      report(options, std::string("no control socket (") + e.what() +
                          "): a successor cannot take over this server");
    }
    if (control) {
      for (const Socket& listener : listeners) group.listener_fds.push_back(listener.fileno());
    }
  }
  std::unique_ptr<detail::RestartSignal> restart;
  std::optional<IgnoredSignal> ignored_restart;
  if (control && options.restart_signal > 0) {
    restart = std::make_unique<detail::RestartSignal>(options.restart_signal);
  } else if (options.restart_signal > 0) {
    ignored_restart.emplace(options.restart_signal);
  }
  if (options.on_listening) options.on_listening(listeners.front().local_address());
  SignalScope signals(options.handle_signals);
  ServerLimits limits = options.limits;
  if (limits.max_connections == 0) {
    limits.max_connections =
        default_max_connections(static_cast<int>(listeners.size()), options.selector);
  }
  const std::size_t workers = listeners.size();
  std::atomic<std::size_t> accepting{0};
  // Once every worker accepts: the previous server may stop, and its path is ours.
  auto all_accepting = [&] {
    if (takeover == nullptr) return;
    try {
      takeover->ready(
          std::chrono::duration_cast<std::chrono::milliseconds>(options.handoff_timeout));
    } catch (...) {
      group.stop_all(false, std::current_exception());
      return;
    }
    // From here on we are the only server: nothing may stop us, least of all the control
    // socket (the predecessor is draining). Without one we serve on, and say so.
    std::string published = " (control socket " + takeover->control_path + ")";
    try {
      if (control) control->publish();
    } catch (const std::exception& e) {
      control->abandon();
      published =
          "; serving without a control socket (no handoff from us): " + std::string(e.what());
    }
    if (options.on_handoff) {
      try {
        options.on_handoff("took over from pid " + std::to_string(takeover->previous_pid) +
                           published);
      } catch (...) {
      }
    }
  };
  std::atomic<bool> announced{false};
  run_workers(listeners, [&](Socket listener, std::size_t index) {
    EventLoop loop(options.selector);
    ServingRegistration registration(loop);
    Server server(loop, std::move(listener), handler, limits, options.counters);
    server.start();
    std::unique_ptr<detail::ControlServer> control_server;
    if (index == 0 && control) {
      control_server = std::make_unique<detail::ControlServer>(
          loop, control->take_listener(), [&group] { return group.copy_listeners(); },
          restart ? restart->take_reader() : Socket(), options, [&group] { group.stop_all(true); });
      control_server->start();
    }
    // After the server's own start (timers of one deadline fire in the order armed): by
    // then its accept loop waits on the listener.
    loop.call_later(std::chrono::nanoseconds(0), [&] {
      if (accepting.fetch_add(1) + 1 == workers) all_accepting();
    });
    group.join(loop);
    loop.run();  // until stop_serving(), or a successor took over
    group.stop_accepting();
    control_server.reset();
    if (group.was_handed_off()) {
      // A stop asked for as the handoff ended the loop would be lost in the same run.
      if (stop_requested.load()) loop.stop();
      server.drain(options.drain_grace);
    } else {
      if (options.on_stopping && !announced.exchange(true)) {
        try {
          options.on_stopping(limits.shutdown_grace);
        } catch (...) {
        }
      }
      // The second stop may have come before this worker left its first run(): both woke
      // it once, and the stop flag was cleared on the way out.
      if (stop_calls.load() >= 2) loop.stop();
      server.shutdown(limits.shutdown_grace);
    }
    group.leave(loop);
  });
  const bool handed_off = group.was_handed_off();
  if (control && handed_off) control->keep();
  if (group.failure) std::rethrow_exception(group.failure);
  return handed_off;
}

// The listeners given to serve(): checked, and dup'd for workers beyond them.
void prepare_given(std::vector<Socket>& listeners, const ServeOptions& options) {
  stop_requested.store(false);
  stop_calls.store(0);
  if (listeners.empty()) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "serve", "",
                "no listener given");
  }
  for (const Socket& listener : listeners) {
    int listening = 0;
    int type = 0;
    ::socklen_t size = sizeof listening;
    ::socklen_t type_size = sizeof type;
    if (!listener.is_open() ||
        ::getsockopt(listener.fileno(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 ||
        ::getsockopt(listener.fileno(), SOL_SOCKET, SO_TYPE, &type, &type_size) != 0 ||
        listening == 0 || type != SOCK_STREAM) {
      throw Error(std::make_error_code(std::errc::invalid_argument), "serve",
                  listener.is_open() ? "fd " + std::to_string(listener.fileno()) : "",
                  "not a listening stream socket");
    }
  }
  const std::size_t given = listeners.size();
  for (std::size_t i = given; i < static_cast<std::size_t>(std::max(1, options.workers)); ++i) {
    listeners.push_back(duplicate(listeners[i % given]));
  }
}

}  // namespace

int serve(std::string_view address, ConnectionHandler handler, ServeOptions options) {
  std::vector<Socket> listeners = open_to_serve(address, Type::stream, options);
  // serve() made the socket file, so it removes it when it stops (or on_listening throws),
  // unless a successor serves it now.
  SocketFile file(listeners.front().local_address());
  if (serve_listeners(listeners, handler, options, nullptr)) file.keep();
  return 0;
}

int serve(std::vector<Socket> listeners, ConnectionHandler handler, ServeOptions options) {
  prepare_given(listeners, options);
  serve_listeners(listeners, handler, options, nullptr);
  return 0;
}

int serve(Takeover takeover, ConnectionHandler handler, ServeOptions options) {
  std::vector<Socket> listeners = std::move(takeover.listeners);
  prepare_given(listeners, options);
  // Reachable where the previous server was, so the next successor finds us there.
  if (options.control.empty()) options.control = takeover.control_path;
  // The socket file the previous server made (and kept for us) is ours now: removed when we
  // stop, as a plain serve() removes its own, unless we hand it on in turn.
  std::optional<SocketFile> file;
  if (!listeners.empty()) {
    if (auto local = listeners.front().local_address(std::nothrow)) file.emplace(*local);
  }
  bool handed_on = false;
  try {
    handed_on = serve_listeners(listeners, handler, options, &takeover);
  } catch (...) {
    // Most likely we never said ready: the previous server still serves that file.
    if (file) file->keep();
    throw;
  }
  if (handed_on && file) file->keep();
  return 0;
}

int serve_datagrams(std::string_view address, DatagramHandler handler, ServeOptions options) {
  std::vector<Socket> sockets = open_to_serve(address, Type::dgram, options);
  const SocketFile file(sockets.front().local_address());
  // Datagram servers are not handed over: a restart signal is only ignored.
  std::optional<IgnoredSignal> ignored_restart;
  if (options.restart_signal > 0) ignored_restart.emplace(options.restart_signal);
  if (options.on_listening) options.on_listening(sockets.front().local_address());
  SignalScope signals(options.handle_signals);
  run_workers(sockets, [&](Socket socket, std::size_t) {
    EventLoop loop(options.selector);
    ServingRegistration registration(loop);
    AsyncSocket bound(loop, std::move(socket));
    auto body = [](const DatagramHandler& handler, AsyncSocket& s) -> Task<void> {
      try {
        co_await handler(s);
      } catch (const Error&) {
      }
    };
    loop.spawn(body(handler, bound));
    loop.run();
  });
  return 0;
}

}  // namespace wire
