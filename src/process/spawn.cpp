#include "wire/process/spawn.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>

extern char** environ;

namespace wire {
namespace {

// By syscall: glibc 2.36's <sys/pidfd.h> declares these without extern "C" (fixed in 2.37), so
// C++ cannot link against them.
int open_pidfd(::pid_t pid) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
}
int signal_pidfd(int pidfd, int sig) noexcept {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0u));
}

bool has_nul(const std::string& text) {
  return text.find('\0') != std::string::npos;
}

std::error_code invalid() {
  return std::make_error_code(std::errc::invalid_argument);
}

// Where the listen_fds go in the child: 3, 4, ... (SD_LISTEN_FDS_START).
constexpr int first_listen_fd = 3;

// systemd's rule for a name in LISTEN_FDNAMES (fdname_is_valid): it must survive the join
// with ':' and a log line.
bool valid_listen_name(const std::string& name) {
  return !name.empty() && name.size() <= 255 && std::all_of(name.begin(), name.end(), [](char c) {
    return c >= ' ' && c < 127 && c != ':';
  });
}

// Every {source, child number}: pass_fds, then listen_fds at 3, 4, ...
std::vector<std::pair<int, int>> all_mappings(const SpawnOptions& options) {
  std::vector<std::pair<int, int>> mappings = options.pass_fds;
  for (std::size_t i = 0; i < options.listen_fds.size(); ++i) {
    mappings.emplace_back(options.listen_fds[i].first, first_listen_fd + static_cast<int>(i));
  }
  return mappings;
}

// Checks what spawn() can check before starting anything; {} when all is well.
std::error_code check(const std::vector<std::string>& argv, const SpawnOptions& options,
                      const std::vector<std::pair<int, int>>& mappings) {
  if (argv.empty() || argv[0].empty()) return invalid();
  if (std::any_of(argv.begin(), argv.end(), has_nul) || has_nul(options.cwd)) return invalid();
  if (options.env && std::any_of(options.env->begin(), options.env->end(), has_nul)) {
    return invalid();
  }
  for (const auto& listener : options.listen_fds) {
    if (!valid_listen_name(listener.second)) return invalid();
  }
  std::vector<int> targets;
  for (const auto& [source, target] : mappings) {
    if (target < 0) return invalid();
    targets.push_back(target);
  }
  std::sort(targets.begin(), targets.end());
  if (std::adjacent_find(targets.begin(), targets.end()) != targets.end()) return invalid();
  return {};
}

// posix_spawn's two handles, destroyed on every path.
struct SpawnPlan {
  ::posix_spawn_file_actions_t actions;
  ::posix_spawnattr_t attributes;
  SpawnPlan() {
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawnattr_init(&attributes);
  }
  ~SpawnPlan() {
    ::posix_spawnattr_destroy(&attributes);
    ::posix_spawn_file_actions_destroy(&actions);
  }
  SpawnPlan(const SpawnPlan&) = delete;
  SpawnPlan& operator=(const SpawnPlan&) = delete;
};

std::error_code from_rc(int rc) {
  return {rc, std::system_category()};
}

// A pidfd for the child just started, or (killing and reaping it) the error.
Result<ChildProcess> own_child(::pid_t pid) {
  const int pidfd = open_pidfd(pid);
  if (pidfd < 0) {
    const auto ec = detail::last_error();
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return ec;
  }
  return ChildProcess(pid, OwnedFd(pidfd));
}

// The environment for a socket-activated child: `base` without its LISTEN_* variables, then
// LISTEN_FDS, LISTEN_FDNAMES, and last LISTEN_PID with room for the digits the child writes.
constexpr std::string_view listen_pid_prefix = "LISTEN_PID=";
constexpr std::size_t pid_digits_room = 24;  // any pid_t in decimal, and its NUL

std::vector<std::string> activation_env(const SpawnOptions& options) {
  std::vector<std::string> env;
  auto keep = [&env](std::string_view entry) {
    if (!entry.starts_with("LISTEN_PID=") && !entry.starts_with("LISTEN_FDS=") &&
        !entry.starts_with("LISTEN_FDNAMES=")) {
      env.emplace_back(entry);
    }
  };
  if (options.env) {
    for (const auto& entry : *options.env) keep(entry);
  } else {
    for (char** entry = environ; *entry != nullptr; ++entry) keep(*entry);
  }
  env.push_back("LISTEN_FDS=" + std::to_string(options.listen_fds.size()));
  std::string names = "LISTEN_FDNAMES=";
  for (std::size_t i = 0; i < options.listen_fds.size(); ++i) {
    if (i > 0) names += ':';
    names += options.listen_fds[i].second;
  }
  env.push_back(std::move(names));
  env.push_back(std::string(listen_pid_prefix) + std::string(pid_digits_room, '\0'));
  return env;
}

// Where a program name is looked for, in order, as posix_spawnp and execvp look: the name
// itself when it holds a '/', else in each directory of this process's PATH (an empty entry
// is the working directory).
std::vector<std::string> program_paths(const std::string& name) {
  if (name.find('/') != std::string::npos) return {name};
  const char* path = std::getenv("PATH");
  const std::string_view dirs = path != nullptr ? path : "/bin:/usr/bin";  // glibc's default
  std::vector<std::string> paths;
  for (std::size_t start = 0;;) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string_view dir = dirs.substr(start, end - start);
    paths.push_back(dir.empty() ? name : std::string(dir) + "/" + name);
    if (end == dirs.size()) break;
    start = end + 1;
  }
  return paths;
}

// Everything the forked child needs, made before the fork: the child allocates nothing
// (another thread may have held malloc's lock at the fork) and calls only async-signal-safe
// functions.
struct ForkPlan {
  std::vector<std::pair<int, int>> moves;  // {copy above every target, child number}
  std::vector<int> to_close;               // 3 .. highest target, not targets
  int first_free = 3;                      // everything from here is closed, but report_fd
  int report_fd = -1;                      // the exec's errno goes here, if it fails
  int fd_limit = 0;                        // for closing one by one without close_range
  const char* cwd = nullptr;
  std::vector<const char*> programs;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  char* pid_digits = nullptr;  // pid_digits_room bytes in LISTEN_PID's entry
};

void close_fds_between(int first, int last, int fd_limit) noexcept {
  if (first > last) return;
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0u) ==
      0) {
    return;
  }
  for (int fd = first; fd <= last && fd < fd_limit; ++fd) ::close(fd);
}

[[noreturn]] void report_and_exit(int report_fd, int error) noexcept {
  while (::write(report_fd, &error, sizeof error) < 0 && errno == EINTR) {
  }
  ::_exit(127);
}

// The child's side of the fork. Every signal is blocked on entry (the parent blocked them
// around fork), so no handler of the parent's runs here; handlers are reset to the default,
// then the mask emptied just before exec, as posix_spawn leaves them.
[[noreturn]] void run_child(const ForkPlan& plan) noexcept {
  for (int sig = 1; sig < NSIG; ++sig) {
    struct ::sigaction current {};
    if (::sigaction(sig, nullptr, &current) != 0) continue;  // 32, 33: glibc's own
    if (current.sa_handler == SIG_IGN || current.sa_handler == SIG_DFL) continue;
    struct ::sigaction by_default {};
    by_default.sa_handler = SIG_DFL;
    ::sigaction(sig, &by_default, nullptr);
  }
  for (const auto& [copy, target] : plan.moves) {
    // dup2 clears FD_CLOEXEC on the new number: the program keeps it across exec.
    if (::dup2(copy, target) < 0) report_and_exit(plan.report_fd, errno);
  }
  for (const int fd : plan.to_close) ::close(fd);
  close_fds_between(plan.first_free, plan.report_fd - 1, plan.fd_limit);
  close_fds_between(plan.report_fd + 1, std::numeric_limits<int>::max(), plan.fd_limit);
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) report_and_exit(plan.report_fd, errno);

  // LISTEN_PID: this process's pid, by hand (snprintf is not async-signal-safe).
  char digits[pid_digits_room];
  int count = 0;
  for (auto pid = static_cast<unsigned long>(::getpid()); pid > 0 || count == 0; pid /= 10) {
    digits[count++] = static_cast<char>('0' + pid % 10);
  }
  for (int i = 0; i < count; ++i) plan.pid_digits[i] = digits[count - 1 - i];
  plan.pid_digits[count] = '\0';

  ::sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // execvp's rules: a directory without the program (or one that cannot be searched) is
  // skipped; EACCES is reported only when no later directory has a program to run.
  int error = ENOENT;
  bool denied = false;
  for (const char* program : plan.programs) {
    ::execve(program, plan.argv, plan.envp);
    error = errno;
    if (error == EACCES) {
      denied = true;
    } else if (error != ENOENT && error != ENOTDIR && error != ESTALE && error != ENODEV &&
               error != ETIMEDOUT) {
      break;
    }
  }
  report_and_exit(plan.report_fd, denied && (error == ENOENT || error == ENOTDIR) ? EACCES : error);
}

// spawn() with listen_fds: fork; the fds and LISTEN_PID are set in the child; exec.
Result<ChildProcess> start_activated(const std::vector<std::string>& argv,
                                     const SpawnOptions& options,
                                     const std::vector<std::pair<int, int>>& mappings,
                                     const std::vector<OwnedFd>& copies, int highest_target) {
  ForkPlan plan;
  for (std::size_t i = 0; i < copies.size(); ++i) {
    plan.moves.emplace_back(copies[i].fd(), mappings[i].second);
  }
  std::vector<bool> is_target(static_cast<std::size_t>(highest_target) + 1, false);
  for (const auto& mapping : mappings) is_target[mapping.second] = true;
  for (int fd = 3; fd <= highest_target; ++fd) {
    if (!is_target[fd]) plan.to_close.push_back(fd);
  }
  plan.first_free = highest_target + 1;
  ::rlimit limit{};
  constexpr int most = 1 << 20;
  plan.fd_limit = ::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < most
                      ? static_cast<int>(limit.rlim_cur)
                      : most;
  if (!options.cwd.empty()) plan.cwd = options.cwd.c_str();
  const std::vector<std::string> programs = program_paths(argv[0]);
  for (const auto& program : programs) plan.programs.push_back(program.c_str());

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings = activation_env(options);
  std::vector<char*> env;
  env.reserve(env_strings.size() + 1);
  for (auto& entry : env_strings) env.push_back(entry.data());
  env.push_back(nullptr);
  plan.argv = args.data();
  plan.envp = env.data();
  plan.pid_digits = env_strings.back().data() + listen_pid_prefix.size();

  // The report pipe's write end sits above every target, where the child keeps it open
  // (close-on-exec) while it closes the rest: EOF on the read end means the exec happened.
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return detail::last_error();
  OwnedFd report_read(ends[0]), report_low(ends[1]);
  OwnedFd report_write(::fcntl(report_low.fd(), F_DUPFD_CLOEXEC, plan.first_free));
  if (!report_write) return detail::last_error();
  report_low.close();
  plan.report_fd = report_write.fd();

  ::sigset_t all, previous;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const ::pid_t pid = ::fork();
  if (pid == 0) run_child(plan);
  const int fork_error = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (pid < 0) return from_rc(fork_error);
  report_write.close();

  int child_error = 0;
  ::ssize_t n;
  while ((n = ::read(report_read.fd(), &child_error, sizeof child_error)) < 0 && errno == EINTR) {
  }
  if (n == static_cast<::ssize_t>(sizeof child_error)) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return from_rc(child_error);
  }
  return own_child(pid);
}

Result<ChildProcess> start(const std::vector<std::string>& argv, const SpawnOptions& options) {
  const std::vector<std::pair<int, int>> mappings = all_mappings(options);
  if (auto ec = check(argv, options, mappings)) return ec;

  int highest_target = 2;
  for (const auto& mapping : mappings) highest_target = std::max(highest_target, mapping.second);

  // Each source is first copied above every target number (close-on-exec, in this process),
  // and the child dup2s the copies into place: a source whose number is another mapping's
  // target can then never be overwritten before it is used. It also finds a bad source here,
  // with its number, instead of as a failed spawn.
  std::vector<OwnedFd> copies;
  copies.reserve(mappings.size());
  for (const auto& mapping : mappings) {
    const int copy = ::fcntl(mapping.first, F_DUPFD_CLOEXEC, highest_target + 1);
    if (copy < 0) return detail::last_error();
    copies.emplace_back(copy);
  }
  if (!options.listen_fds.empty()) {
    return start_activated(argv, options, mappings, copies, highest_target);
  }

  SpawnPlan plan;
  for (std::size_t i = 0; i < copies.size(); ++i) {
    // dup2 clears FD_CLOEXEC on the new number: the child keeps it across exec.
    if (int rc =
            ::posix_spawn_file_actions_adddup2(&plan.actions, copies[i].fd(), mappings[i].second)) {
      return from_rc(rc);
    }
  }
  // Everything else goes: the numbers between 3 and the highest target that are not targets
  // (closing one that is not open is not an error for posix_spawn), then every number above
  // (the copies too) with closefrom in the child, which also catches fds other threads opened
  // without O_CLOEXEC while this ran.
  std::vector<bool> is_target(static_cast<std::size_t>(highest_target) + 1, false);
  for (const auto& mapping : mappings) is_target[mapping.second] = true;
  for (int fd = 3; fd <= highest_target; ++fd) {
    if (is_target[fd]) continue;
    if (int rc = ::posix_spawn_file_actions_addclose(&plan.actions, fd)) return from_rc(rc);
  }
  if (int rc = ::posix_spawn_file_actions_addclosefrom_np(&plan.actions, highest_target + 1)) {
    return from_rc(rc);
  }
  if (!options.cwd.empty()) {
    if (int rc = ::posix_spawn_file_actions_addchdir_np(&plan.actions, options.cwd.c_str())) {
      return from_rc(rc);
    }
  }
  // A thread that blocked SIGTERM for itself (to sigwait on it, say) must not hand a child
  // that cannot be stopped.
  ::sigset_t none;
  ::sigemptyset(&none);
  ::posix_spawnattr_setsigmask(&plan.attributes, &none);
  ::posix_spawnattr_setflags(&plan.attributes, POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  if (options.env) {
    env.reserve(options.env->size() + 1);
    for (const auto& entry : *options.env) env.push_back(const_cast<char*>(entry.c_str()));
    env.push_back(nullptr);
  }

  // glibc's posix_spawn reports the exec's own errno when it fails (the child shares memory
  // with this process until exec), so "no such program" is an error here, not an exit 127.
  ::pid_t pid = -1;
  if (int rc = ::posix_spawnp(&pid, args[0], &plan.actions, &plan.attributes, args.data(),
                              options.env ? env.data() : environ)) {
    return from_rc(rc);
  }
  return own_child(pid);
}

// What the message says beyond the errno: which argument was at fault.
std::string reason(std::error_code ec, const std::vector<std::string>& argv,
                   const SpawnOptions& options) {
  if (ec == std::errc::invalid_argument) {
    if (argv.empty() || argv[0].empty()) return "no program given";
    for (const auto& [source, name] : options.listen_fds) {
      if (!valid_listen_name(name)) {
        return "listen_fds: name '" + detail::printable(name) +
               "' is not 1-255 printable ASCII characters without ':'";
      }
    }
    const int listen_end = first_listen_fd + static_cast<int>(options.listen_fds.size());
    for (const auto& [source, target] : options.pass_fds) {
      if (target >= first_listen_fd && target < listen_end) {
        return "pass_fds: child fd " + std::to_string(target) + " is taken by listen_fds (fds " +
               std::to_string(first_listen_fd) + "-" + std::to_string(listen_end - 1) + ")";
      }
    }
    for (const auto& [source, target] : options.pass_fds) {
      if (target < 0) return "pass_fds: child fd " + std::to_string(target) + " is negative";
      const auto same = std::count_if(options.pass_fds.begin(), options.pass_fds.end(),
                                      [&](const auto& m) { return m.second == target; });
      if (same > 1) return "pass_fds: child fd " + std::to_string(target) + " is named twice";
    }
    ::rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
      for (const auto& [source, target] : options.pass_fds) {
        if (static_cast<::rlim_t>(target) + 1 >= limit.rlim_cur) {
          return "pass_fds: child fd " + std::to_string(target) +
                 " is not below the fd limit (RLIMIT_NOFILE " + std::to_string(limit.rlim_cur) +
                 ") less one";
        }
      }
    }
    return "an argument, env entry or cwd holds a NUL byte";
  }
  if (ec == std::errc::bad_file_descriptor) {
    for (const auto& [source, target] : options.pass_fds) {
      if (::fcntl(source, F_GETFD) < 0) {
        return "pass_fds: fd " + std::to_string(source) + " is not open: " + ec.message();
      }
    }
    for (const auto& [source, name] : options.listen_fds) {
      if (::fcntl(source, F_GETFD) < 0) {
        return "listen_fds: fd " + std::to_string(source) + " is not open: " + ec.message();
      }
    }
  }
  if (!options.cwd.empty()) {
    struct ::stat st {};
    if (::stat(options.cwd.c_str(), &st) != 0) {
      return "cwd " + options.cwd + ": " + std::strerror(errno);
    }
    if (!S_ISDIR(st.st_mode)) return "cwd " + options.cwd + ": not a directory";
  }
  return ec.message();
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited()) return "exit code " + std::to_string(code);
  const char* name = ::strsignal(signal);
  return "killed by signal " + std::to_string(signal) +
         (name ? std::string(" (") + name + ")" : "");
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::move(other.pidfd_)),
      status_(std::exchange(other.status_, std::nullopt)) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    reset();
    pid_ = std::exchange(other.pid_, -1);
    pidfd_ = std::move(other.pidfd_);
    status_ = std::exchange(other.status_, std::nullopt);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  reset();
}

void ChildProcess::reset() noexcept {
  if (pid_ > 0 && !status_) {
    if (pidfd_) {
      signal_pidfd(pidfd_.fd(), SIGKILL);
    } else {
      ::kill(pid_, SIGKILL);
    }
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
  pidfd_.close();
  status_.reset();
}

Result<ExitStatus> ChildProcess::wait(std::nothrow_t) noexcept {
  if (status_) return *status_;
  if (pid_ <= 0) return std::make_error_code(std::errc::no_child_process);
  int raw = 0;
  for (;;) {
    if (::waitpid(pid_, &raw, 0) == pid_) break;
    if (errno != EINTR) return detail::last_error();
  }
  ExitStatus status;
  if (WIFEXITED(raw)) {
    status.code = WEXITSTATUS(raw);
  } else {
    status.signal = WTERMSIG(raw);
  }
  status_ = status;
  pidfd_.close();  // the process is gone; its pidfd has nothing more to say
  return status;
}

ExitStatus ChildProcess::wait() {
  auto status = wait(std::nothrow);
  if (!status) throw Error(status.error(), "wait", "pid " + std::to_string(pid_));
  return *status;
}

Result<std::optional<ExitStatus>> ChildProcess::wait_for(std::chrono::milliseconds limit,
                                                         std::nothrow_t) noexcept {
  if (status_) return std::optional<ExitStatus>(*status_);
  if (!pidfd_) return std::make_error_code(std::errc::no_child_process);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    ::pollfd p{pidfd_.fd(), POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (n > 0) break;  // the child exited: wait() returns at once
    if (n == 0) return std::optional<ExitStatus>();
    if (errno != EINTR) return detail::last_error();
  }
  auto status = wait(std::nothrow);
  if (!status) return status.error();
  return std::optional<ExitStatus>(*status);
}

std::optional<ExitStatus> ChildProcess::wait_for(std::chrono::milliseconds limit) {
  auto status = wait_for(limit, std::nothrow);
  if (!status) throw Error(status.error(), "wait", "pid " + std::to_string(pid_));
  return *status;
}

Result<void> ChildProcess::kill(int sig, std::nothrow_t) noexcept {
  if (status_ || !pidfd_) return std::make_error_code(std::errc::no_such_process);
  if (signal_pidfd(pidfd_.fd(), sig) < 0) return detail::last_error();
  return {};
}

void ChildProcess::kill(int sig) {
  if (auto r = kill(sig, std::nothrow); !r) {
    throw Error(r.error(), "kill", "pid " + std::to_string(pid_));
  }
}

::pid_t ChildProcess::release() noexcept {
  const ::pid_t pid = status_ ? -1 : pid_;
  pid_ = -1;
  pidfd_.close();
  status_.reset();
  return pid;
}

Result<ChildProcess> spawn(const std::vector<std::string>& argv, const SpawnOptions& options,
                           std::nothrow_t) noexcept {
  try {
    return start(argv, options);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  auto child = spawn(argv, options, std::nothrow);
  if (!child) {
    throw Error(child.error(), "spawn", argv.empty() ? std::string() : argv[0],
                reason(child.error(), argv, options));
  }
  return std::move(*child);
}

}  // namespace wire
