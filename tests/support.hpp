// Test support: fd-leak checking and loopback helpers shared by the test files.
#pragma once

#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "wire/owned_fd.hpp"
#include "wire/wire.hpp"

namespace wire {
// GoogleTest prints Addresses as text in failure messages.
inline void PrintTo(const Address& address, std::ostream* os) {
  *os << address.to_string();
}
}  // namespace wire

namespace wire::test {

// What `call` throws as a wire::Error, or "(no error)".
inline std::string error_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A pipe whose ends close with the object (close-on-exec).
struct Pipe {
  OwnedFd read_end, write_end;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    read_end = OwnedFd(fds[0]);
    write_end = OwnedFd(fds[1]);
  }
};

inline int open_fd_count() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir) != nullptr) ++count;
    ::closedir(dir);
  }
  return count;
}

// Every test checks that it closed every fd it opened.
class Test : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_before_) << "the test leaked file descriptors";
  }

 private:
  int fds_before_ = 0;
};

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "wire-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  // Writes `content` to the file `name` in this folder; its path.
  std::string write(const std::string& name, const std::string& content) const {
    const std::string path = file(name);
    std::ofstream out(path, std::ios::binary);
    out << content;
    if (!out.flush()) throw std::runtime_error("cannot write " + path);
    return path;
  }

 private:
  std::filesystem::path path_;
};

// Whether ::1 can be bound here; IPv6 tests skip with this reason when not.
inline bool ipv6_loopback_available() {
  auto s = Socket::create(Family::inet6, Type::stream, std::nothrow);
  if (!s) return false;
  return bool(s->bind(Address::parse("tcp://[::1]:0"), std::nothrow));
}

// A listening TCP socket on 127.0.0.1 with an ephemeral port.
inline Socket loopback_listener(const char* address = "tcp://127.0.0.1:0") {
  return create_server(address);
}

// Both ends of a loopback TCP connection, as AsyncSockets on `loop`.
struct AsyncPair {
  AsyncSocket near;
  AsyncSocket far;
};
inline AsyncPair async_pair(EventLoop& loop) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  Socket client = create_connection(listener.local_address().to_string());
  auto [server_side, peer] = listener.accept();
  return {AsyncSocket(loop, std::move(client)), AsyncSocket(loop, std::move(server_side))};
}

// The code of the wire::Error `task` throws, or {} when it finishes.
template <class T>
std::error_code error_from(EventLoop& loop, Task<T> task) {
  try {
    (void)loop.run_until_complete(std::move(task));
  } catch (const Error& e) {
    return e.code();
  }
  return {};
}

// rot13 of the lower-case letters, in place: its own inverse.
inline void rot13(char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    char& c = p[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>('a' + (c - 'a' + 13) % 26);
  }
}
inline std::string rot13(std::string text) {
  rot13(text.data(), text.size());
  return text;
}

// A transport layered on another, as TLS would be on a socket: every verb goes to the inner
// one, so a test's transport overrides only the verbs it changes. send_file and
// write_some_corked are Transport's defaults (through this transport's write_some), as a
// transport that changes the bytes must have them. Owns the inner transport or borrows it.
class LayeredTransport : public Transport {
 public:
  explicit LayeredTransport(std::unique_ptr<Transport> inner)
      : owned_(std::move(inner)), inner_(*owned_) {}
  explicit LayeredTransport(Transport& inner) : inner_(inner) {}
  Result<std::size_t> read_some(std::span<char> into) noexcept override {
    return inner_.read_some(into);
  }
  Result<std::size_t> write_some(std::string_view data) noexcept override {
    return inner_.write_some(data);
  }
  Task<Result<void>> wait(Events direction) override { return inner_.wait(direction); }
  Result<void> wait_blocking(
      Events direction,
      std::optional<std::chrono::steady_clock::time_point> deadline) noexcept override {
    return inner_.wait_blocking(direction, deadline);
  }
  Result<void> shutdown() noexcept override { return inner_.shutdown(); }
  void close() noexcept override { inner_.close(); }
  bool is_open() const noexcept override { return inner_.is_open(); }
  std::string describe(Events direction) const override { return inner_.describe(direction); }
  void set_timeout(std::optional<std::chrono::nanoseconds> timeout) noexcept override {
    inner_.set_timeout(timeout);
  }
  std::optional<std::chrono::nanoseconds> timeout() const noexcept override {
    return inner_.timeout();
  }

 protected:
  Transport& inner() noexcept { return inner_; }

 private:
  std::unique_ptr<Transport> owned_;
  Transport& inner_;
};

// rot13 on the way in and out: AsyncStream (and HTTP over it) reads and writes through it
// unchanged. Files go through the default send_file (read, then write_some), as with TLS.
class Rot13Transport final : public LayeredTransport {
 public:
  using LayeredTransport::LayeredTransport;
  Result<std::size_t> read_some(std::span<char> into) noexcept override {
    auto n = inner().read_some(into);
    if (n) rot13(into.data(), *n);
    return n;
  }
  Result<std::size_t> write_some(std::string_view data) noexcept override {
    return inner().write_some(rot13(std::string(data)));
  }
  std::string describe(Events direction) const override {
    return "rot13 over " + LayeredTransport::describe(direction);
  }
};

// RLIMIT_NOFILE's soft limit raised to at least `wanted` while it lives, then restored; ok()
// is false when the hard limit is lower (the test skips). Declared before the fds it is for,
// so they are closed before the limit comes back down.
class RaisedFdLimit {
 public:
  explicit RaisedFdLimit(::rlim_t wanted) {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0 || saved_.rlim_max < wanted) return;
    ::rlimit raised = saved_;
    raised.rlim_cur = std::max(saved_.rlim_cur, wanted);
    ok_ = ::setrlimit(RLIMIT_NOFILE, &raised) == 0;
  }
  RaisedFdLimit(const RaisedFdLimit&) = delete;
  RaisedFdLimit& operator=(const RaisedFdLimit&) = delete;
  ~RaisedFdLimit() {
    if (ok_) ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  bool ok() const noexcept { return ok_; }

 private:
  ::rlimit saved_{};
  bool ok_ = false;
};

// Reads until `size` bytes came or the peer closed.
inline Task<std::string> read_bytes(AsyncSocket& conn, std::size_t size) {
  std::string got;
  char buffer[4096];
  while (got.size() < size) {
    const std::size_t n = co_await conn.recv(std::span<char>(buffer, sizeof buffer));
    if (n == 0) break;
    got.append(buffer, n);
  }
  co_return got;
}

}  // namespace wire::test

namespace wire::test {

// A loopback listener that never accepts and whose backlog is full, so a new connect to it
// stays in SYN_SENT: the kernel drops SYNs once the accept queue is full. Connect attempts
// to address() hang until their own timeout. At 127.0.0.1 by default, or at any address
// (::1 included; port 0 picks one).
class Blackhole {
 public:
  Blackhole() : Blackhole(Address::parse("tcp://127.0.0.1:0")) {}
  explicit Blackhole(const Address& at)
      : listener_(create_server(at, ServerOptions{.backlog = 0})) {
    address_ = listener_.local_address();
    for (int i = 0; i < 16; ++i) {
      Socket s(address_.family(), Type::stream);
      s.set_timeout(std::chrono::milliseconds(200));
      auto r = s.connect(address_, std::nothrow);
      if (!r) {
        if (r.error() != errc::timed_out)
          throw Error(r.error(), "fill backlog", address_.to_string());
        return;  // this one hung: the queue is full
      }
      fillers_.push_back(std::move(s));
    }
    throw std::runtime_error("backlog never filled");
  }
  const Address& address() const { return address_; }

 private:
  Socket listener_;
  Address address_;
  std::vector<Socket> fillers_;
};

}  // namespace wire::test

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>

extern char** environ;

namespace wire::test {

// A child process with its stdout on a pipe (read through a wire::Stream) or in a file, and
// its stdin from a file or /dev/null. Killed on destruction if still running.
class Child {
 public:
  struct Options {
    std::string stdin_path = "/dev/null";
    std::string stdout_path;  // empty: a pipe, read with read_line/read_all
    bool stderr_to_stdout = false;
    std::string stderr_path;  // empty: inherited (or merged with stdout)

    static Options merged() {
      Options o;
      o.stderr_to_stdout = true;
      return o;
    }
    static Options files(std::string in, std::string out) {
      Options o;
      o.stdin_path = std::move(in);
      o.stdout_path = std::move(out);
      return o;
    }
  };
  explicit Child(std::vector<std::string> args) : Child(std::move(args), Options{}) {}
  Child(std::vector<std::string> args, Options options) {
    int out[2] = {-1, -1};
    ::posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, 0, options.stdin_path.c_str(), O_RDONLY, 0);
    if (options.stdout_path.empty()) {
      if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
      ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    } else {
      ::posix_spawn_file_actions_addopen(&actions, 1, options.stdout_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    if (options.stderr_to_stdout) ::posix_spawn_file_actions_adddup2(&actions, 1, 2);
    if (!options.stderr_path.empty()) {
      ::posix_spawn_file_actions_addopen(&actions, 2, options.stderr_path.c_str(),
                                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    if (out[1] >= 0) ::close(out[1]);
    if (rc != 0) {
      if (out[0] >= 0) ::close(out[0]);
      pid_ = -1;
      throw std::runtime_error("posix_spawn " + args[0] + ": " + std::strerror(rc));
    }
    if (out[0] >= 0) {
      out_fd_ = out[0];
      out_ = std::make_unique<Stream>(out_fd_, std::chrono::seconds(20));
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    out_.reset();
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  pid_t pid() const { return pid_; }
  std::string read_line() { return out_->read_line(); }
  // Exactly `n` bytes of its output (binary data); throws at EOF or after 20 s.
  std::string read_exactly(std::size_t n) { return out_->read_exact(n); }
  std::string read_all() {
    std::string all;
    for (std::string chunk; !(chunk = out_->read(4096)).empty();) all += chunk;
    return all;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  // The exit code (128 + signal when killed) if the child ends within `limit`, with the
  // CPU it used in `usage`; nullopt (and the child left running) otherwise.
  std::optional<int> wait_at_most(std::chrono::milliseconds limit, ::rusage* usage = nullptr) {
    for (auto waited = std::chrono::milliseconds(0); waited <= limit;
         waited += std::chrono::milliseconds(10)) {
      int status = 0;
      if (::wait4(pid_, &status, WNOHANG, usage) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }
  // Seconds of CPU (user + system) the running child has used so far, from /proc.
  double cpu_seconds() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Fields after the command name, which ends at the last ')': state is field 3, utime
    // and stime are fields 14 and 15.
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long long ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i >= 14) ticks += std::stoull(field);
    }
    return static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
  // The exit code (128 + signal when killed); fails the test after 20 s.
  int wait() {
    int status = 0;
    for (int i = 0; i < 2000; ++i) {
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    throw std::runtime_error("child did not exit within 20 s");
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::unique_ptr<Stream> out_;
};

// nginx from Debian serving `root` on 127.0.0.1 at a free port, its files (config, pid,
// temp paths) in `dir`, with `http_directives` (e.g. "gzip on;") in its http block. Stopped
// with the object. Tests skip when !available() (make test installs it).
class Nginx {
 public:
  static constexpr const char* binary = "/usr/sbin/nginx";
  static bool available() { return ::access(binary, X_OK) == 0; }

  Nginx(const TempDir& dir, const std::string& root, const std::string& http_directives = "") {
    {
      // A free loopback port: bind port 0, read it, release it for nginx.
      Socket probe = create_server("tcp://127.0.0.1:0");
      port_ = probe.local_address().port();
    }
    const std::string tmp = dir.file("nginx-tmp");
    std::filesystem::create_directories(tmp);
    std::ofstream(dir.file("nginx.conf"))
        << "daemon off;\nmaster_process off;\nworker_processes 1;\npid " << dir.file("nginx.pid")
        << ";\nerror_log stderr;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n"
        << "  client_body_temp_path " << tmp << ";\n  proxy_temp_path " << tmp
        << ";\n  fastcgi_temp_path " << tmp << ";\n  uwsgi_temp_path " << tmp
        << ";\n  scgi_temp_path " << tmp << ";\n  " << http_directives
        << "\n  server {\n    listen 127.0.0.1:" << port_ << ";\n    root " << root
        << ";\n  }\n}\n";
    child_ = std::make_unique<Child>(
        std::vector<std::string>{binary, "-c", dir.file("nginx.conf"), "-p", dir.file("")},
        Child::Options::merged());
    for (int i = 0; i < 250; ++i) {
      if (create_connection(std::vector<Address>{Address::inet("127.0.0.1", port_)},
                            std::chrono::seconds(1), std::nothrow)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("nginx did not start");
  }
  ~Nginx() {
    child_->signal(SIGQUIT);
    (void)child_->wait_at_most(std::chrono::seconds(5));
  }
  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

 private:
  std::uint16_t port_ = 0;
  std::unique_ptr<Child> child_;
};

// Helpers the CLI and relay tests share.

// A file's bytes ("" if it cannot be read).
inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline bool exists(const std::string& path) {
  struct ::stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// `size` pseudo-random bytes (xorshift32: every byte value, the same for the same seed).
inline std::string random_bytes(std::size_t size, std::uint32_t seed = 2463534242u) {
  std::string data(size, '\0');
  for (auto& c : data) {
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    c = static_cast<char>(seed);
  }
  return data;
}

// Waits up to 5 s for a Unix socket at `path` to be ready: a datagram socket once bound, a
// stream or seqpacket socket once it listens. The file appears at bind(), before listen():
// a connect in between is refused (seen under ASan). Read from /proc/net/unix, so the wait
// itself never connects (a one-shot `wire listen` would take the probe for its client).
inline bool wait_for_socket(const std::string& path) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream table("/proc/net/unix");
    std::string line;
    std::getline(table, line);  // the header
    while (std::getline(table, line)) {
      if (line.size() < path.size() + 1 ||
          line.compare(line.size() - path.size(), path.size(), path) != 0 ||
          line[line.size() - path.size() - 1] != ' ') {
        continue;
      }
      std::istringstream fields(line);
      std::string slot, refs, protocol, flags, type;
      fields >> slot >> refs >> protocol >> flags >> type;
      const bool listening = (std::stoul(flags, nullptr, 16) & 0x10000) != 0;
      if (type == "0002" || listening) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The address a child prints on its first line ("wire: listening on ADDRESS").
inline Address announced(Child& child) {
  std::string line = child.read_line();
  auto at = line.rfind(" on ");
  if (at == std::string::npos) throw std::runtime_error("unexpected first line: " + line);
  std::string text = line.substr(at + 4);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return Address::parse(text);
}

// Whether `program` is on PATH.
inline bool have_program(const std::string& program) {
  return std::system(("command -v " + program + " >/dev/null 2>&1").c_str()) == 0;
}

// Sockets of this process's server in a TCP state, from /proc/net/tcp and tcp6:
// state "08" is CLOSE_WAIT, "01" ESTABLISHED.
// remote_port 0: any peer. A test that can name both ends should: other tests reuse port
// numbers, and their TIME-WAIT sockets on the same local port would be counted too.
inline int sockets_in_state(std::uint16_t local_port, const char* state,
                            std::uint16_t remote_port = 0) {
  int count = 0;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::FILE* f = std::fopen(table, "r");
    if (f == nullptr) continue;
    char line[512];
    std::fgets(line, sizeof line, f);  // header
    while (std::fgets(line, sizeof line, f) != nullptr) {
      char local[128], remote[128], st[8];
      if (std::sscanf(line, "%*d: %127s %127s %7s", local, remote, st) != 3) continue;
      const char* colon = std::strrchr(local, ':');
      const char* remote_colon = std::strrchr(remote, ':');
      if (colon == nullptr || remote_colon == nullptr) continue;
      if (remote_port != 0 && std::strtoul(remote_colon + 1, nullptr, 16) != remote_port) continue;
      if (std::strtoul(colon + 1, nullptr, 16) == local_port && std::strcmp(st, state) == 0) {
        ++count;
      }
    }
    std::fclose(f);
  }
  return count;
}

}  // namespace wire::test

#include <future>

namespace wire::test {

// serve() on a thread of this process (signals left alone), stopped at destruction.
class BackgroundServer {
 public:
  // `where`: an address for serve() to listen on, or a std::vector<Socket> of listeners.
  template <class Where>
  BackgroundServer(Where where, ConnectionHandler handler, ServeOptions options = {}) {
    options.handle_signals = false;
    std::promise<Address> bound;
    auto bound_future = bound.get_future();
    options.on_listening = [&bound](const Address& a) { bound.set_value(a); };
    thread_ = std::thread([this, where = std::move(where), handler, options]() mutable {
      try {
        exit_code_ = serve(std::move(where), handler, options);
      } catch (const std::exception& e) {
        error_ = e.what();
        exit_code_ = -1;
      }
    });
    if (bound_future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
      throw std::runtime_error("server did not start");
    }
    address_ = bound_future.get();
  }
  ~BackgroundServer() { stop(); }
  int stop() {
    if (thread_.joinable()) {
      stop_serving();
      thread_.join();
    }
    return exit_code_;
  }
  const Address& address() const { return address_; }

 private:
  std::thread thread_;
  Address address_;
  std::atomic<int> exit_code_{-2};
  std::string error_;
};

}  // namespace wire::test

#include <sys/resource.h>

namespace wire::test {

// serve() in a forked child whose RLIMIT_NOFILE leaves `spare_fds` beyond the fds it
// inherited (counted, not the highest number: ctest and shells pass some on at any number).
// The child's address comes back through a pipe; the child is killed with the object.
// fork() copies only the calling thread: the sanitizer runtimes (TSan above all) can hang in
// such a child, so tests using it skip under sanitizers and run in the dev preset.
class StarvedServer {
 public:
  StarvedServer(std::size_t spare_fds, ConnectionHandler handler, ServeOptions options) {
    int port_pipe[2];
    if (::pipe2(port_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork");
    if (pid_ == 0) {
      const ::rlim_t fds = static_cast<::rlim_t>(open_fd_count()) + spare_fds;
      ::rlimit limit{fds, fds};
      ::setrlimit(RLIMIT_NOFILE, &limit);
      options.on_listening = [&](const Address& a) {
        std::uint16_t port = a.port();
        [[maybe_unused]] auto n = ::write(port_pipe[1], &port, sizeof port);
        ::close(port_pipe[1]);
      };
      int code = 1;
      try {
        code = serve("tcp://127.0.0.1:0", std::move(handler), options);
      } catch (...) {
      }
      ::_exit(code);
    }
    ::close(port_pipe[1]);
    std::uint16_t port = 0;
    const bool got = ::read(port_pipe[0], &port, sizeof port) == static_cast<ssize_t>(sizeof port);
    ::close(port_pipe[0]);
    if (!got) throw std::runtime_error("the starved server did not start");
    address_ = Address::inet("127.0.0.1", port);
  }
  StarvedServer(const StarvedServer&) = delete;
  StarvedServer& operator=(const StarvedServer&) = delete;
  ~StarvedServer() {
    if (pid_ > 0 && ::kill(pid_, SIGKILL) == 0) ::waitpid(pid_, nullptr, 0);
  }
  const Address& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // SIGTERM (graceful stop) and the exit code, or -1 if it did not exit normally.
  int stop() {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  Address address_;
};

}  // namespace wire::test
