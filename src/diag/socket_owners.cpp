#include "socket_owners.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "wire/error.hpp"

namespace wire::diag::internal {
namespace {

using Directory = std::unique_ptr<DIR, int (*)(DIR*)>;

// "socket:[1234]" -> 1234; 0 for any other link.
std::uint64_t socket_inode(std::string_view link) {
  constexpr std::string_view prefix = "socket:[";
  if (link.size() < prefix.size() + 2 || link.substr(0, prefix.size()) != prefix ||
      link.back() != ']') {
    return 0;
  }
  std::uint64_t inode = 0;
  const char* first = link.data() + prefix.size();
  const char* last = link.data() + link.size() - 1;
  const auto [end, error] = std::from_chars(first, last, inode);
  return error == std::errc() && end == last ? inode : 0;
}

// A pid directory's name as a number; 0 for "self", "net", "sys"...
pid_t pid_of(const char* name) {
  pid_t pid = 0;
  const std::string_view text(name);
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), pid);
  return error == std::errc() && end == text.data() + text.size() ? pid : 0;
}

// A small file under /proc (`path` relative to it), "" when it cannot be read (gone).
std::string read_small(int proc_fd, const std::string& path, std::size_t limit) {
  const int fd = ::openat(proc_fd, path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text(limit, '\0');
  ssize_t n;
  do {
    n = ::read(fd, text.data(), limit);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return text;
}

// The comm of `pid` from /proc/PID/comm, "" when it has gone.
std::string process_name(int proc_fd, pid_t pid) {
  std::string name = read_small(proc_fd, std::to_string(pid) + "/comm", 64);
  if (!name.empty() && name.back() == '\n') name.pop_back();
  return name;
}

enum class Scan { done, gone, denied };

// What a process's /proc/PID/stat says: its state letter and flags ('\0' when unreadable).
struct ProcessStat {
  char state = '\0';
  unsigned long flags = 0;
};

ProcessStat process_stat(int proc_fd, pid_t pid) {
  ProcessStat stat;
  const std::string text = read_small(proc_fd, std::to_string(pid) + "/stat", 512);
  // "pid (comm) S ppid pgrp session tty tpgid flags ...": the comm may hold ')' and spaces,
  // so the fields are counted from its last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) return stat;
  unsigned long flags = 0;
  char state = '\0';
  if (std::sscanf(text.c_str() + close + 1, " %c %*d %*d %*d %*d %*d %lu", &state, &flags) == 2) {
    stat.state = state;
    stat.flags = flags;
  }
  return stat;
}

// A fd dir that refuses us may belong to a process with no files to show: a zombie, or one
// exiting (its fd dir turns root's once its memory is gone, even to its own user), or a
// kernel thread. Those hold no sockets; calling them unreadable sent users to run as root
// for nothing (the hostile review saw it for every kernel thread, and under fork churn).
bool holds_no_files(int proc_fd, pid_t pid) {
  constexpr unsigned long kernel_thread = 0x00200000;  // PF_KTHREAD
  const ProcessStat stat = process_stat(proc_fd, pid);
  return stat.state == 'Z' || stat.state == 'X' || (stat.flags & kernel_thread) != 0;
}

// Adds to `owners` the sockets in one fd dir of `pid` (`path` under /proc), counting its
// fds in `entries`. A fd dir that lists but refuses its links (the ptrace check is made per
// link) is denied too: its sockets would otherwise go missing without a word.
Scan scan_fd_dir(int proc_fd, pid_t pid, const std::string& path, SocketOwners& owners,
                 std::size_t& entries) {
  const int dir_fd = ::openat(proc_fd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    return errno == ENOENT || errno == ESRCH ? Scan::gone : Scan::denied;
  }
  const Directory dir(::fdopendir(dir_fd), ::closedir);
  if (!dir) {
    ::close(dir_fd);
    return Scan::denied;
  }
  const int own_dir_fd = pid == ::getpid() ? dir_fd : -1;
  const std::size_t first = owners.held.size();
  const auto drop_found = [&](Scan scan) {
    owners.held.resize(first);
    return scan;
  };
  for (;;) {
    errno = 0;
    const ::dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      // An exiting process's fd dir can fail to read (ENOENT): it is gone, not hiding.
      if (errno == ENOENT || errno == ESRCH) return drop_found(Scan::gone);
      if (errno != 0) return drop_found(Scan::denied);
      break;
    }
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    ++entries;
    char link[64];
    const ssize_t length = ::readlinkat(dir_fd, entry->d_name, link, sizeof link);
    if (length < 0) {
      if (errno == ESRCH) return drop_found(Scan::gone);
      if (errno == EACCES || errno == EPERM) return drop_found(Scan::denied);
      // ENOENT: closed since the listing. Anything else (ENAMETOOLONG: a file whose path is
      // longer than PATH_MAX) is not a socket, whose link is short: one such fd must not hide
      // the process's sockets (the hostile review did that with a deep directory).
      continue;
    }
    const std::uint64_t inode =
        socket_inode(std::string_view(link, static_cast<std::size_t>(length)));
    if (inode == 0) continue;
    const int fd = pid_of(entry->d_name);
    if (fd == own_dir_fd) continue;
    owners.held.push_back(HeldSocket{inode, pid, fd});
  }
  return Scan::done;
}

// A process whose main thread has exited while others run shows an empty (or refused) fd
// dir under its pid, its state Z; its files are still there under a live thread's
// /proc/PID/task/TID/fd (ss and lsof miss them; the hostile review found it).
Scan scan_live_thread(int proc_fd, pid_t pid, SocketOwners& owners) {
  const std::string tasks = std::to_string(pid) + "/task";
  const int tasks_fd = ::openat(proc_fd, tasks.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tasks_fd < 0) return Scan::gone;
  const Directory dir(::fdopendir(tasks_fd), ::closedir);
  if (!dir) {
    ::close(tasks_fd);
    return Scan::gone;
  }
  Scan result = Scan::done;
  while (const ::dirent* entry = ::readdir(dir.get())) {
    const pid_t tid = pid_of(entry->d_name);
    if (tid <= 0 || tid == pid) continue;
    std::size_t entries = 0;
    const Scan scan =
        scan_fd_dir(proc_fd, pid, tasks + "/" + entry->d_name + "/fd", owners, entries);
    if (scan == Scan::done && entries > 0) return Scan::done;
    if (scan == Scan::denied) result = Scan::denied;
  }
  return result;
}

// Adds to `owners` the sockets among `pid`'s fds.
Scan scan_process(int proc_fd, pid_t pid, SocketOwners& owners) {
  const std::size_t first = owners.held.size();
  std::size_t entries = 0;
  Scan scan = scan_fd_dir(proc_fd, pid, std::to_string(pid) + "/fd", owners, entries);
  if ((scan == Scan::done && entries == 0) || scan == Scan::denied) {
    const ProcessStat stat = process_stat(proc_fd, pid);
    if (stat.state == 'Z') {
      const Scan threads = scan_live_thread(proc_fd, pid, owners);
      // A true zombie has no live thread: it holds nothing, and is not unreadable.
      scan = threads == Scan::denied ? Scan::denied : Scan::done;
    } else if (scan == Scan::denied && holds_no_files(proc_fd, pid)) {
      scan = Scan::done;
    }
  }
  if (scan == Scan::done && owners.held.size() > first) {
    owners.names.emplace_back(pid, process_name(proc_fd, pid));
  }
  return scan;
}

// The process a thread id belongs to (itself for a process), from /proc/ID/status.
pid_t thread_group_of(int proc_fd, pid_t id) {
  const std::string text = read_small(proc_fd, std::to_string(id) + "/status", 4096);
  const auto line = text.find("\nTgid:");
  long tgid = 0;
  if (line != std::string::npos && std::sscanf(text.c_str() + line + 6, " %ld", &tgid) == 1 &&
      tgid > 0) {
    return static_cast<pid_t>(tgid);
  }
  return id;
}

int open_proc() {
  const int fd = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw Error(detail::last_error(), "sockets", "/proc");
  return fd;
}

}  // namespace

std::span<const HeldSocket> SocketOwners::holding(std::uint64_t inode) const {
  const auto [from, to] =
      std::equal_range(held.begin(), held.end(), HeldSocket{inode, 0, 0},
                       [](const HeldSocket& a, const HeldSocket& b) { return a.inode < b.inode; });
  return {from, to};
}

const std::string& SocketOwners::name_of(pid_t pid) const {
  static const std::string none;
  const auto found =
      std::lower_bound(names.begin(), names.end(), pid,
                       [](const std::pair<pid_t, std::string>& a, pid_t b) { return a.first < b; });
  return found != names.end() && found->first == pid ? found->second : none;
}

SocketOwners scan_socket_owners() {
  const int proc_fd = open_proc();
  std::vector<pid_t> pids;
  {
    const Directory proc(::fdopendir(::dup(proc_fd)), ::closedir);
    if (!proc) {
      const auto error = detail::last_error();
      ::close(proc_fd);
      throw Error(error, "sockets", "/proc");
    }
    for (;;) {
      errno = 0;
      const ::dirent* entry = ::readdir(proc.get());
      if (entry == nullptr) {
        if (errno != 0) {
          const auto error = detail::last_error();
          ::close(proc_fd);
          throw Error(error, "sockets", "/proc");
        }
        break;
      }
      if (const pid_t pid = pid_of(entry->d_name); pid > 0) pids.push_back(pid);
    }
  }
  // One readlinkat per fd of the machine is the whole cost (20,000 fds: 0.1 s, 5 us each in
  // the kernel's dentry lookups), and it spreads over cores: up to 4 threads take the next
  // process in turn, so two large processes are read at once. Each thread fills its own
  // SocketOwners; proc_fd is only read.
  const unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  std::vector<SocketOwners> parts(threads);
  std::atomic<std::size_t> next{0};
  const auto work = [&](SocketOwners& part) {
    for (std::size_t i = next++; i < pids.size(); i = next++) {
      if (scan_process(proc_fd, pids[i], part) == Scan::denied) {
        part.unreadable.push_back(pids[i]);
      }
    }
  };
  {
    std::vector<std::jthread> helpers;
    for (unsigned t = 1; t < threads && pids.size() > 1; ++t) {
      helpers.emplace_back([&, t] { work(parts[t]); });
    }
    work(parts[0]);
  }
  ::close(proc_fd);
  SocketOwners owners = std::move(parts[0]);
  for (std::size_t t = 1; t < parts.size(); ++t) {
    auto& part = parts[t];
    owners.held.insert(owners.held.end(), part.held.begin(), part.held.end());
    owners.names.insert(owners.names.end(), std::make_move_iterator(part.names.begin()),
                        std::make_move_iterator(part.names.end()));
    owners.unreadable.insert(owners.unreadable.end(), part.unreadable.begin(),
                             part.unreadable.end());
  }
  std::sort(owners.held.begin(), owners.held.end());
  std::sort(owners.names.begin(), owners.names.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::sort(owners.unreadable.begin(), owners.unreadable.end());
  return owners;
}

SocketOwners scan_socket_owners_of(pid_t pid) {
  const auto fail = [pid](int error) -> SocketOwners {
    throw Error(std::error_code(error, std::system_category()), "sockets",
                "pid " + std::to_string(pid));
  };
  if (pid <= 0) return fail(ESRCH);
  const int proc_fd = open_proc();
  // A thread's id reads as a process under /proc (hidden from its listing): its fds are the
  // process's, and so is its name as an owner.
  pid = thread_group_of(proc_fd, pid);
  SocketOwners owners;
  struct ::stat before {};
  const std::string pid_dir = std::to_string(pid);
  Scan scan = Scan::gone;
  if (::fstatat(proc_fd, pid_dir.c_str(), &before, 0) == 0) {
    scan = scan_process(proc_fd, pid, owners);
  }
  // A process that exited during the scan leaves links that vanish: no process, not no
  // sockets.
  struct ::stat after {};
  if (scan == Scan::done && ::fstatat(proc_fd, pid_dir.c_str(), &after, 0) != 0) {
    scan = Scan::gone;
  }
  ::close(proc_fd);
  if (scan == Scan::gone) return fail(ESRCH);
  if (scan == Scan::denied) return fail(EACCES);
  std::sort(owners.held.begin(), owners.held.end());
  return owners;
}

}  // namespace wire::diag::internal
