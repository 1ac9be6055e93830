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
#include <cstring>

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

// Checks what spawn() can check before starting anything; {} when all is well.
std::error_code check(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (argv.empty() || argv[0].empty()) return invalid();
  if (std::any_of(argv.begin(), argv.end(), has_nul) || has_nul(options.cwd)) return invalid();
  if (options.env && std::any_of(options.env->begin(), options.env->end(), has_nul)) {
    return invalid();
  }
  std::vector<int> targets;
  for (const auto& [source, target] : options.pass_fds) {
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

Result<ChildProcess> start(const std::vector<std::string>& argv, const SpawnOptions& options) {
  if (auto ec = check(argv, options)) return ec;

  int highest_target = 2;
  for (const auto& mapping : options.pass_fds)
    highest_target = std::max(highest_target, mapping.second);

  // Each source is first copied above every target number (close-on-exec, in this process),
  // and the child dup2s the copies into place: a source whose number is another mapping's
  // target can then never be overwritten before it is used. It also finds a bad source here,
  // with its number, instead of as a failed spawn.
  std::vector<OwnedFd> copies;
  copies.reserve(options.pass_fds.size());
  for (const auto& mapping : options.pass_fds) {
    const int copy = ::fcntl(mapping.first, F_DUPFD_CLOEXEC, highest_target + 1);
    if (copy < 0) return detail::last_error();
    copies.emplace_back(copy);
  }

  SpawnPlan plan;
  for (std::size_t i = 0; i < copies.size(); ++i) {
    // dup2 clears FD_CLOEXEC on the new number: the child keeps it across exec.
    if (int rc = ::posix_spawn_file_actions_adddup2(&plan.actions, copies[i].fd(),
                                                    options.pass_fds[i].second)) {
      return from_rc(rc);
    }
  }
  // Everything else goes: the numbers between 3 and the highest target that are not targets
  // (closing one that is not open is not an error for posix_spawn), then every number above
  // (the copies too) with closefrom in the child, which also catches fds other threads opened
  // without O_CLOEXEC while this ran.
  std::vector<bool> is_target(static_cast<std::size_t>(highest_target) + 1, false);
  for (const auto& mapping : options.pass_fds) is_target[mapping.second] = true;
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

// What the message says beyond the errno: which argument was at fault.
std::string reason(std::error_code ec, const std::vector<std::string>& argv,
                   const SpawnOptions& options) {
  if (ec == std::errc::invalid_argument) {
    if (argv.empty() || argv[0].empty()) return "no program given";
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
