#include "wire/handoff.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "handoff_control.hpp"
#include "wire/connect.hpp"
#include "wire/process/fd_passing.hpp"
#include "wire/process/peer_credentials.hpp"

namespace wire {
namespace {

// The conversation, one line each way at a time:
//   successor: "wire-handoff take\n"
//   server:    "wire-handoff 1 COUNT\nADDRESS\n...\n\n" with the COUNT listeners attached
//              (in pieces of at most 253 fds; each later piece is one byte, "+")
//   successor: "ready\n"   (serving them)
//   server:    "bye\n"     (no longer accepting)
constexpr std::string_view request_line = "wire-handoff take\n";
constexpr std::string_view header_start = "wire-handoff 1 ";
constexpr std::size_t max_header = 64 * 1024;

std::error_code errno_code(int e) {
  return {e, std::generic_category()};
}

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string octal_mode(::mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Refuses a folder another user owns or may enter.
void check_private_folder(const std::string& folder, const char* operation) {
  struct ::stat st {};
  if (::lstat(folder.c_str(), &st) != 0) throw Error(errno_code(errno), operation, folder);
  if (!S_ISDIR(st.st_mode)) {
    throw Error(errno_code(ENOTDIR), operation, folder, "the control folder is not a directory");
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    throw Error(errno_code(EPERM), operation, folder,
                "the control folder is not private (owner uid " + std::to_string(st.st_uid) +
                    ", mode " + octal_mode(st.st_mode) + "; it must be ours and 0700): refusing");
  }
}

// A line read from `text` at `from`, without its newline; false when none is complete.
bool next_line(const std::string& text, std::size_t& from, std::string& line) {
  const auto end = text.find('\n', from);
  if (end == std::string::npos) return false;
  line = text.substr(from, end - from);
  from = end + 1;
  return true;
}

std::string control_error_text(std::error_code ec) {
  if (ec == errc::timed_out) return "did not answer in time";
  return ec.message();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// The successor's side.

namespace {
// Thrown by take_over_once when the server reset the connection before a byte of its answer:
// we waited in its queue while it handed over to another successor (closing its control
// socket resets whoever is still queued), or while it stopped.
struct ResetWhileQueued {};
}  // namespace

Takeover take_over_once(const std::string& control_path, std::chrono::milliseconds timeout) {
  const char* operation = "take over";
  // The server that handed over last closes its control socket a moment before its
  // successor's replaces it: a refusal is tried again for a short while, then reported.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(1));
  Socket channel;
  for (;;) {
    Socket attempt(Family::local, Type::stream);
    auto connected = attempt.connect(Address::unix_path(control_path), std::nothrow);
    if (connected) {
      channel = std::move(attempt);
      break;
    }
    const std::error_code ec = connected.error();
    if ((ec == std::errc::connection_refused || ec == std::errc::no_such_file_or_directory) &&
        std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    throw Error(ec, operation, control_path,
                ec == std::errc::connection_refused
                    ? "nothing to take over (the control socket is stale: its server is gone)"
                    : ec.message());
  }
  const Credentials server = peer_credentials(channel);
  if (server.uid != ::geteuid()) {
    throw Error(errno_code(EPERM), operation, control_path,
                "the server there runs as uid " + std::to_string(server.uid) + ", not as us");
  }
  channel.set_timeout(timeout);
  if (auto sent = channel.send_all(request_line, std::nothrow); !sent) {
    if (sent.error() == std::errc::connection_reset || sent.error() == std::errc::broken_pipe) {
      throw ResetWhileQueued{};
    }
    throw Error(sent.error(), operation, control_path, sent.error().message());
  }

  std::string header;
  std::vector<Socket> listeners;
  std::size_t expected = 0;
  bool have_count = false;
  std::vector<std::string> addresses;
  for (;;) {
    auto got = recv_fds(channel, max_fds_per_message, 4096, std::nothrow);
    if (!got) {
      if (got.error() == std::errc::connection_reset && header.empty() && listeners.empty()) {
        throw ResetWhileQueued{};
      }
      throw Error(got.error(), operation, control_path,
                  "receiving the listeners: " + control_error_text(got.error()));
    }
    if (got->bytes.empty()) {
      throw Error(errno_code(ECONNRESET), operation, control_path,
                  "the server closed the control connection (is it stopping?)");
    }
    header += got->bytes;
    for (auto& fd : got->fds) {
      if (!std::holds_alternative<Socket>(fd)) {
        throw Error(errno_code(EPROTO), operation, control_path,
                    "received an fd that is not a socket");
      }
      listeners.push_back(std::move(std::get<Socket>(fd)));
    }
    if (header.size() > max_header) {
      throw Error(errno_code(EPROTO), operation, control_path, "the header is too long");
    }
    if (!have_count) {
      std::size_t at = 0;
      std::string first;
      if (!next_line(header, at, first)) continue;
      if (first.rfind(header_start, 0) != 0) {
        throw Error(errno_code(EPROTO), operation, control_path,
                    "not a wire control socket (it said '" + detail::printable(first) + "')");
      }
      expected = std::strtoul(first.c_str() + header_start.size(), nullptr, 10);
      if (expected == 0) throw Error(errno_code(EPROTO), operation, control_path, "no listeners");
      have_count = true;
    }
    const auto end = header.find("\n\n");
    if (end != std::string::npos && listeners.size() >= expected) break;
  }
  if (listeners.size() != expected) {
    throw Error(errno_code(EPROTO), operation, control_path,
                "expected " + std::to_string(expected) + " listeners, got " +
                    std::to_string(listeners.size()));
  }
  Takeover takeover;
  takeover.listeners = std::move(listeners);
  takeover.previous_pid = server.pid;
  takeover.control_path = control_path;
  // Their status flags (O_NONBLOCK) are left alone: they are the previous server's too, and
  // a listener made blocking under its loop would hang it in accept().
  takeover.channel_ = std::move(channel);
  return takeover;
}

Takeover take_over(const std::string& control_path, std::chrono::milliseconds timeout) {
  const char* operation = "take over";
  check_private_folder(parent_of(control_path), operation);
  struct ::stat st {};
  if (::lstat(control_path.c_str(), &st) != 0) {
    const int e = errno;
    throw Error(errno_code(e), operation, control_path,
                e == ENOENT ? "nothing to take over (no server's control socket there)"
                            : std::error_code(e, std::generic_category()).message());
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw Error(errno_code(ENOTSOCK), operation, control_path, "not a control socket");
  }
  // Queued behind another successor, we are reset when it takes over: the path is then its
  // control socket, where we ask again (as long as `timeout` lasts).
  const auto give_up = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    try {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      return take_over_once(control_path, std::max(left, std::chrono::milliseconds(1)));
    } catch (const ResetWhileQueued&) {
      if (std::chrono::steady_clock::now() >= give_up) {
        throw Error(errno_code(ECONNRESET), operation, control_path,
                    "the server handed over to another successor (or stopped) while we waited "
                    "for our turn, and no server took our request since");
      }
    }
  }
}

void Takeover::ready(std::chrono::milliseconds timeout) {
  const char* operation = "take over";
  channel_.set_timeout(timeout);
  if (auto sent = channel_.send_all("ready\n", std::nothrow); !sent) {
    throw Error(sent.error(), operation, control_path,
                "the previous server gave up waiting for us: " + sent.error().message());
  }
  std::string answer;
  while (answer.find('\n') == std::string::npos && answer.size() < 64) {
    auto got = channel_.recv(64, std::nothrow);
    if (!got) {
      throw Error(got.error(), operation, control_path,
                  "the previous server did not confirm: " + control_error_text(got.error()));
    }
    if (got->empty()) break;
    answer += *got;
  }
  if (answer != "bye\n") {
    throw Error(errno_code(ECONNRESET), operation, control_path,
                "the previous server did not confirm (it gave up waiting for us, or is gone)");
  }
  channel_.close();
}

// ---------------------------------------------------------------------------------------
// Paths.

std::string control_folder() {
  const char* runtime = ::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return std::string(runtime) + "/wire";
  return "/tmp/wire-" + std::to_string(::geteuid());
}

std::string default_control_path(const Address& address) {
  std::string name;
  std::string whole;  // what the name must tell apart from every other address
  if (address.family() == Family::local) {
    std::string path = address.path();
    if (!address.is_abstract() && !path.empty() && path.front() != '/') {
      // unix:app.sock is another socket in every folder: named by where it really is.
      char cwd[4096];
      if (::getcwd(cwd, sizeof cwd) != nullptr) path = std::string(cwd) + "/" + path;
    }
    whole = address.is_abstract() ? "@" + path : path;
    name = "unix-" + whole;
  } else {
    name = "tcp-" + address.host() + "-" + std::to_string(address.port());
  }
  // A file name: '/' and anything unprintable become '_', and a long one is cut. A Unix
  // path always gets a hash of its whole (absolute) path: '_' and '/' would otherwise meet.
  std::uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : whole.empty() ? name : whole) hash = (hash ^ c) * 1099511628211ull;
  for (char& c : name) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-' || c == '@' || c == ':';
    if (!plain) c = '_';
  }
  char suffix[24];
  std::snprintf(suffix, sizeof suffix, "-%016llx", static_cast<unsigned long long>(hash));
  if (!whole.empty()) {
    name = name.substr(0, 40) + suffix;
  } else if (name.size() > 40) {
    name = name.substr(0, 23) + suffix;
  }
  return control_folder() + "/" + name;
}

std::optional<std::string> handoff_path_from_environment() {
  const char* value = ::getenv("WIRE_HANDOFF");
  if (value == nullptr) return std::nullopt;
  std::string path = value;
  ::unsetenv("WIRE_HANDOFF");
  if (path.empty()) return std::nullopt;
  return path;
}

// ---------------------------------------------------------------------------------------
// The serving side.

namespace detail {

namespace {
constexpr std::chrono::milliseconds request_timeout{1000};
}  // namespace

void ensure_private_folder(const std::string& folder) {
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    throw Error(errno_code(errno), "control", folder);
  }
  check_private_folder(folder, "control");
}

namespace {
// A socket left at NAME.new.PID by a successor that died before publishing it: nobody will
// ever remove it but us. Only sockets of pids that no longer exist go.
void remove_stale_temporaries(const std::string& path) {
  const std::string folder = parent_of(path);
  const auto slash = path.find_last_of('/');
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".new.";
  DIR* dir = ::opendir(folder.c_str());
  if (dir == nullptr) return;
  while (const ::dirent* entry = ::readdir(dir)) {
    const std::string_view name(entry->d_name);
    if (!name.starts_with(prefix) || name.size() == prefix.size()) continue;
    const std::string_view digits = name.substr(prefix.size());
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        digits.size() > 9) {
      continue;
    }
    const auto pid = static_cast<::pid_t>(std::strtol(std::string(digits).c_str(), nullptr, 10));
    if (pid <= 0 || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    const std::string stale = folder + "/" + std::string(name);
    struct ::stat st {};
    if (::lstat(stale.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(stale.c_str());
  }
  ::closedir(dir);
}

// Whatever is at `path` must be a socket (ours to replace) or nothing: a file or a link
// there is someone's data, never replaced; a symlink is not followed.
void check_replaceable(const std::string& path) {
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw Error(errno_code(errno), "control", path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    throw Error(errno_code(EEXIST), "control", path, "exists and is not a socket: not replaced");
  }
}
}  // namespace

ControlEndpoint::ControlEndpoint(const std::string& path, bool replace_live) : path_(path) {
  ensure_private_folder(parent_of(path));
  // Everything publish() needs is checked now: a successor must fail before it says ready,
  // never after (its predecessor would stop and leave the port to nobody).
  check_replaceable(path);
  remove_stale_temporaries(path);
  if (!replace_live) {
    // Someone serving there already: refuse rather than steal its successors.
    Socket probe(Family::local, Type::stream);
    if (probe.connect(Address::unix_path(path), std::nothrow)) {
      throw Error(errno_code(EADDRINUSE), "control", path,
                  "another server answers on this control socket (give another --control)");
    }
  }
  temporary_ = path + ".new." + std::to_string(::getpid());
  ServerOptions options;
  options.unix_mode = 0600;
  options.backlog = 16;
  listener_ = create_server(Address::unix_path(temporary_), options);
}

ControlEndpoint::~ControlEndpoint() {
  if (!temporary_.empty()) ::unlink(temporary_.c_str());  // never published
}

void ControlEndpoint::publish() {
  if (temporary_.empty()) return;
  if (::rename(temporary_.c_str(), path_.c_str()) != 0) {
    throw Error(errno_code(errno), "control", path_);
  }
  temporary_.clear();
  file_ = std::make_unique<SocketFile>(Address::unix_path(path_));
}

void ControlEndpoint::abandon() noexcept {
  if (!temporary_.empty()) ::unlink(temporary_.c_str());
  temporary_.clear();
}

void ControlEndpoint::keep() noexcept {
  if (file_) file_->keep();
}

namespace {
// The restart signal's handler writes a byte here, which wakes restart_loop on its loop.
std::atomic<int> restart_wake_fd{-1};
struct ::sigaction previous_restart_action {};

extern "C" void on_restart_signal(int) {
  const int saved = errno;
  const int fd = restart_wake_fd.load();
  if (fd >= 0) (void)::send(fd, "r", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
  errno = saved;
}

// This program's own arguments, as the kernel keeps them.
std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::size_t from = 0;
  while (from < all.size()) {
    const auto end = all.find('\0', from);
    args.push_back(all.substr(from, end == std::string::npos ? std::string::npos : end - from));
    if (end == std::string::npos) break;
    from = end + 1;
  }
  if (args.empty()) args.emplace_back("wire");
  // The same binary, wherever it was started from: /proc/self/exe, named by its own path
  // while that is still the same file (so ps and ss show its name, not "exe").
  args[0] = "/proc/self/exe";
  char target[4096];
  const ::ssize_t n = ::readlink("/proc/self/exe", target, sizeof target - 1);
  struct ::stat running {};
  struct ::stat named {};
  if (n > 0) {
    target[n] = '\0';
    if (::stat("/proc/self/exe", &running) == 0 && ::stat(target, &named) == 0 &&
        running.st_dev == named.st_dev && running.st_ino == named.st_ino) {
      args[0] = target;
    }
  }
  return args;
}

// This environment for a successor: WIRE_HANDOFF names the control socket; socket
// activation variables meant for this process are not passed on.
std::vector<std::string> successor_environment(const std::string& control) {
  std::vector<std::string> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (text.starts_with("WIRE_HANDOFF=") || text.starts_with("LISTEN_FDS=") ||
        text.starts_with("LISTEN_PID=") || text.starts_with("LISTEN_FDNAMES=")) {
      continue;
    }
    env.emplace_back(text);
  }
  env.push_back("WIRE_HANDOFF=" + control);
  return env;
}
}  // namespace

RestartSignal::RestartSignal(int signal_number) : signal_number_(signal_number) {
  auto [reader, writer] = Socket::pair(Type::stream);
  reader_ = std::move(reader);
  restart_wake_fd.store(writer.detach());
  struct ::sigaction action {};
  action.sa_handler = on_restart_signal;
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(signal_number_, &action, &previous_restart_action);
}

RestartSignal::~RestartSignal() {
  ::sigaction(signal_number_, &previous_restart_action, nullptr);
  const int fd = restart_wake_fd.exchange(-1);
  if (fd >= 0) ::close(fd);
}

ControlServer::ControlServer(EventLoop& loop, Socket listener,
                             std::function<std::vector<Socket>()> copy_listeners,
                             Socket restart_reader, const ServeOptions& options,
                             std::function<void()> on_handed_off)
    : loop_(loop),
      listener_(loop, std::move(listener)),
      copy_listeners_(std::move(copy_listeners)),
      options_(options),
      on_handed_off_(std::move(on_handed_off)) {
  if (restart_reader.is_open()) restart_wake_ = AsyncSocket(loop_, std::move(restart_reader));
}

ControlServer::~ControlServer() {
  loop_.cancel(start_timer_);
  accept_task_.reset();
  restart_task_.reset();
  // A successor started on the signal runs on: it is ours to reap only while we live.
  reap_restarts();
  for (ChildProcess& child : restarted_) (void)child.release();
}

void ControlServer::start() {
  accept_task_ = accept_loop();
  if (restart_wake_.is_open()) restart_task_ = restart_loop();
  start_timer_ = loop_.call_later(std::chrono::nanoseconds(0), [this] {
    start_timer_ = 0;
    accept_task_.handle().resume();
    if (restart_task_.handle()) restart_task_.handle().resume();
  });
}

void ControlServer::report(const std::string& message) const {
  if (!options_.on_handoff) return;
  try {
    options_.on_handoff(message);
  } catch (...) {
  }
}

void ControlServer::reap_restarts() noexcept {
  for (auto it = restarted_.begin(); it != restarted_.end();) {
    auto status = it->wait_for(std::chrono::milliseconds(0), std::nothrow);
    if (status && *status) {
      if (!handed_off_) {
        report("restart: the new process (pid " + std::to_string(it->pid()) + ") ended with " +
               (*status)->describe() + " before taking over; still serving");
      }
      it = restarted_.erase(it);
    } else {
      ++it;
    }
  }
}

Task<void> ControlServer::accept_loop() {
  while (listener_.is_open() && !handed_off_) {
    auto accepted = co_await listener_.accept(std::nothrow);
    if (!accepted) {
      if (accepted.error() == errc::socket_closed) break;
      co_await loop_.sleep(std::chrono::milliseconds(100));  // out of fds: try again later
      continue;
    }
    co_await converse(std::move(accepted->socket));
  }
}

Task<void> ControlServer::converse(AsyncSocket conn) {
  auto who = peer_credentials(conn.socket(), std::nothrow);
  if (!who) co_return;
  const std::string pid = std::to_string(who->pid);
  if (who->uid != ::geteuid()) {
    report("refused a takeover by pid " + pid + ": it runs as uid " + std::to_string(who->uid) +
           ", not " + std::to_string(::geteuid()));
    co_return;
  }
  // The request: a peer that closes without one was only looking (is anyone serving?). A
  // successor sends it at once; one that does not within request_timeout is dropped, since
  // conversations go one at a time and it would hold up every takeover behind it.
  const auto request_deadline = std::chrono::steady_clock::now() + request_timeout;
  std::string request;
  while (request.find('\n') == std::string::npos) {
    const auto left = request_deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::nanoseconds(0)) break;
    conn.set_timeout(left);
    auto data = co_await conn.recv_pooled(std::nothrow);
    if (!data) {
      if (data.error() == errc::timed_out) {
        report("dropped pid " + pid + " on the control socket: no request within " +
               std::to_string(request_timeout.count()) + " ms");
      }
      co_return;
    }
    if (data->empty()) co_return;
    request.append(data->view());
    if (request.size() > 256) break;
  }
  conn.set_timeout(options_.handoff_timeout);
  if (request != request_line) {
    report("ignored pid " + pid + " on the control socket: not a takeover request");
    co_return;
  }
  // Copies, held for this conversation only: each stays valid whatever its worker does.
  const std::vector<Socket> listeners = copy_listeners_();
  if (listeners.empty()) {
    report("handoff to pid " + pid + " refused: this server is stopping (or out of fds)");
    co_return;
  }
  std::string header = std::string(header_start) + std::to_string(listeners.size()) + "\n";
  for (const Socket& listener : listeners) {
    auto address = listener.local_address(std::nothrow);
    header += address ? address->to_string() : std::string("?");
    header += '\n';
  }
  header += '\n';
  std::vector<int> fds;
  for (const Socket& listener : listeners) fds.push_back(listener.fileno());
  for (std::size_t from = 0; from < fds.size(); from += max_fds_per_message) {
    const std::size_t count = std::min(max_fds_per_message, fds.size() - from);
    const std::span<const int> piece(fds.data() + from, count);
    auto sent =
        co_await send_fds(conn, piece, from == 0 ? std::string_view(header) : "+", std::nothrow);
    if (!sent) {
      report("handoff to pid " + pid + " failed: " + sent.error().message() + "; still serving");
      co_return;
    }
  }
  std::string answer;
  while (answer.find('\n') == std::string::npos && answer.size() < 64) {
    auto data = co_await conn.recv_pooled(std::nothrow);
    if (!data || data->empty()) {
      const std::string why =
          !data ? (data.error() == errc::timed_out
                       ? "it did not say ready within " +
                             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                options_.handoff_timeout)
                                                .count()) +
                             " ms"
                       : data.error().message())
                : "it closed the control connection before saying ready";
      report("handoff to pid " + pid + " failed: " + why + "; still serving");
      co_return;
    }
    answer.append(data->view());
  }
  if (answer != "ready\n") {
    report("handoff to pid " + pid + " failed: it did not say ready; still serving");
    co_return;
  }
  handed_off_ = true;
  // From now on the successor owns the path; what is left is to stop accepting and drain.
  (void)co_await conn.send_all("bye\n", std::nothrow);
  report("handed over to pid " + pid + "; finishing the open connections");
  listener_.close();
  on_handed_off_();
}

Task<void> ControlServer::restart_loop() {
  char signal_bytes[64];
  for (;;) {
    auto woken = co_await restart_wake_.recv(std::span<char>(signal_bytes), std::nothrow);
    if (!woken || *woken == 0) co_return;
    if (handed_off_) continue;
    reap_restarts();
    if (!restarted_.empty()) {
      report("restart: a new process (pid " + std::to_string(restarted_.back().pid()) +
             ") is still starting; signal ignored");
      continue;
    }
    try {
      SpawnOptions spawn_options;
      spawn_options.env = successor_environment(options_.control);
      restarted_.push_back(spawn(own_command_line(), spawn_options));
      report("restart: started pid " + std::to_string(restarted_.back().pid()) + " to take over");
    } catch (const std::exception& e) {
      report(std::string("restart failed: ") + e.what() + "; still serving");
      continue;
    }
    // Watch it until it took over or ended, so a failed start is reported (and reaped).
    while (!restarted_.empty() && !handed_off_) {
      co_await loop_.sleep(std::chrono::milliseconds(20));
      reap_restarts();
    }
  }
}

}  // namespace detail
}  // namespace wire
