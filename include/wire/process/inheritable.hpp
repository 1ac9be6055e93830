// wire/process/inheritable.hpp — whether an fd survives exec: Python's os.set_inheritable.
//
//   wire::set_inheritable(sock.fileno(), true);   // FD_CLOEXEC off: the next exec keeps it
//   ::execl("/usr/bin/worker", "worker", std::to_string(sock.fileno()).c_str(), nullptr);
//
// Every fd wire opens is close-on-exec, so nothing leaks into a program started by another
// thread. wire::spawn (wire/process/spawn.hpp) never needs this: its pass_fds hands exactly
// the fds named, at the numbers asked, and leaves the flag alone in this process. This is for
// code that execs by other means; while the flag is off, every child started by any thread
// (system(), popen(), a library's fork) inherits the fd too, so turn it off again soon.
#pragma once

#include "wire/error.hpp"

namespace wire {

// FD_CLOEXEC off (inheritable) or on.
void set_inheritable(int fd, bool inheritable);
Result<void> set_inheritable(int fd, bool inheritable, std::nothrow_t) noexcept;
// Whether FD_CLOEXEC is off.
bool is_inheritable(int fd);
Result<bool> is_inheritable(int fd, std::nothrow_t) noexcept;

}  // namespace wire
