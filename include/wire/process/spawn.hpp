// wire/process/spawn.hpp — start a program with exactly the fds you choose, at the numbers you
// choose: Python's subprocess.Popen(args, pass_fds=..., env=..., cwd=...).
//
//   auto [conn, peer] = listener.accept();
//   wire::ChildProcess worker = wire::spawn(
//       {"/usr/bin/worker", "--fd", "3"},
//       {.pass_fds = {{conn.fileno(), 3}}});   // the connection is fd 3 in the worker
//   conn.close();                              // ours goes; the worker's copy stays open
//   wire::ExitStatus status = worker.wait();
//   if (!status.success()) std::fprintf(stderr, "worker: %s\n", status.describe().c_str());
//
// The child gets fds 0, 1 and 2 as this process has them (unless pass_fds names them:
// {{pipe_write, 1}} makes a pipe its stdout), the fds in pass_fds at the numbers asked, and
// nothing else: every other fd is closed in the child before exec, including fds other
// threads open at that moment without O_CLOEXEC. The fds in this process are untouched
// (neither closed nor made inheritable), so a source may be passed to several children.
// Mappings may cross ({{3, 4}, {4, 3}} swaps two fds): they are resolved through copies.
//
// An exec that fails (no such program, not executable) fails spawn() in this process with
// that errno (ENOENT, EACCES); no child is left behind. A program name without a '/' is looked
// for in this process's PATH (not in options.env). A relative path is taken from options.cwd
// when set. The child starts with no signals blocked; ignored signals stay ignored (exec keeps
// them), as with any exec.
//
// With listen_fds (socket activation) the child is started by fork rather than posix_spawn:
// LISTEN_PID must be the child's own pid, known only in the child, which writes it into an
// environment prepared beforehand (nothing allocated after the fork) just before its exec.
// The fds, the closing of all others, the signal mask and the errors are as above.
//
// Ownership: a ChildProcess owns the child's pidfd (pidfd_open, close-on-exec) and the duty to
// reap the child. It is move-only. Its destructor never leaves a zombie silently: a child that
// has not been waited for is killed (SIGKILL) and reaped there (which waits as long as the
// kernel takes to end it). To let a child outlive the
// object, call release(): the pidfd is closed and reaping is the caller's job (waitpid), or
// init's once this process exits. Needs Linux 5.3+ (pidfd_open).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wire/error.hpp"
#include "wire/owned_fd.hpp"

namespace wire {

struct SpawnOptions {
  // {fd in this process, the number it gets in the child}. Each child number at most once.
  std::vector<std::pair<int, int>> pass_fds{};
  // "NAME=value" strings; nullopt: this process's environment.
  std::optional<std::vector<std::string>> env{};
  // The child's working directory; empty: this process's.
  std::string cwd{};
  // Socket activation (wire/process/socket_activation.hpp): {fd in this process, its name}.
  // The child gets them at 3, 4, ... in this order, with LISTEN_FDS, LISTEN_FDNAMES and
  // LISTEN_PID (the child's own pid) set in its environment and any LISTEN_* of `env` (or of
  // this process's) left out. A name is 1-255 printable ASCII characters without ':'.
  // pass_fds may not use the numbers they take.
  std::vector<std::pair<int, std::string>> listen_fds{};
};

// How a child ended: an exit code, or the signal that killed it.
struct ExitStatus {
  int code = 0;    // exit code when exited() (0-255)
  int signal = 0;  // the signal that killed it, 0 when it exited
  bool exited() const noexcept { return signal == 0; }
  bool success() const noexcept { return signal == 0 && code == 0; }
  // "exit code 3", "killed by signal 15 (Terminated)".
  std::string describe() const;
};

class ChildProcess {
 public:
  ChildProcess() noexcept = default;
  ChildProcess(::pid_t pid, OwnedFd pidfd) noexcept : pid_(pid), pidfd_(std::move(pidfd)) {}
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Kills (SIGKILL) and reaps a child not yet waited for; see the header comment.
  ~ChildProcess();

  // The child's pid (still reported after wait(); -1 after release() or when empty).
  ::pid_t pid() const noexcept { return pid_; }
  // The pidfd: poll it (readable once the child exits). -1 once waited for or released.
  int pidfd() const noexcept { return pidfd_.fd(); }
  // Whether the child has been waited for (its status is known and it is reaped).
  bool reaped() const noexcept { return status_.has_value(); }

  // Blocks until the child exits, reaps it and returns how it ended (the same status again
  // on later calls).
  ExitStatus wait();
  Result<ExitStatus> wait(std::nothrow_t) noexcept;
  // The same, giving up after `limit`: nullopt (the child keeps running) if it has not exited.
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds limit);
  Result<std::optional<ExitStatus>> wait_for(std::chrono::milliseconds limit,
                                             std::nothrow_t) noexcept;
  // Sends `sig` through the pidfd (never to a recycled pid). ESRCH once reaped.
  void kill(int sig = SIGTERM);
  Result<void> kill(int sig, std::nothrow_t) noexcept;
  // Lets the child go: returns its pid, closes the pidfd; the caller reaps it.
  ::pid_t release() noexcept;

 private:
  void reset() noexcept;
  ::pid_t pid_ = -1;
  OwnedFd pidfd_;
  std::optional<ExitStatus> status_;
};

// Starts argv[0] with arguments argv[1...]. Errors: EINVAL for an empty argv, a child fd
// below 0 or named twice, a NUL byte in a string, or a listen_fds name that is not valid; EBADF for
// a source fd that is not open; the exec's errno (ENOENT, EACCES) when the program cannot run;
// chdir's for a bad cwd.
ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});
Result<ChildProcess> spawn(const std::vector<std::string>& argv, const SpawnOptions& options,
                           std::nothrow_t) noexcept;

}  // namespace wire
