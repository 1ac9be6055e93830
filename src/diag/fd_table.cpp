#include "wire/diag/fd_table.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <unordered_map>

#include "../json_string.hpp"
#include "proc_net.hpp"
#include "sock_diag.hpp"
#include "socket_query.hpp"
#include "socket_state.hpp"
#include "wire/error.hpp"

namespace wire::diag {
namespace {

// A socket as fd_table shows it: from a /proc/PID/net table, or for Unix from unix_diag.
struct SocketRow {
  FdKind kind = FdKind::socket;
  std::string local, peer, state;
  std::uint64_t recv_queue = 0, send_queue = 0;
  std::uint64_t peer_inode = 0;  // unix from netlink
  int netlink_protocol = -1;     // netlink sockets: NETLINK_ROUTE...; `local` is the portid
};

// Keyed by inode. The first row for an inode stays: a later one, from another table or the
// same, is either a kernel race or a row a Unix name forged in /proc/net/unix, and must not
// turn a TCP listener into someone's socket.
using SocketTable = std::unordered_map<std::uint64_t, SocketRow>;

std::string netlink_protocol(int protocol) {
  switch (protocol) {
    case 0:
      return "route";
    case 4:
      return "sock_diag";
    case 9:
      return "audit";
    case 15:
      return "kobject_uevent";
    case 16:
      return "generic";
    default:
      return "protocol " + std::to_string(protocol);
  }
}

// "LOCAL" or "LOCAL <- PEER" ("* <- PEER" for an unnamed Unix socket, as ss shows it);
// netlink sockets are named by protocol and portid.
std::string socket_target(const SocketRow& row) {
  if (row.kind == FdKind::netlink) {
    return netlink_protocol(row.netlink_protocol) + " portid " + row.local;
  }
  if (row.peer.empty()) return row.local;
  return (row.local.empty() ? "*" : row.local) + " <- " + row.peer;
}

SocketRow from_proc(const internal::ProcNetRow& row) {
  SocketRow r;
  r.kind = row.kind;
  r.local = row.local;
  r.peer = row.peer;
  if (row.kind != FdKind::netlink) r.state = std::string(internal::state_name(row.state));
  r.recv_queue = row.recv_queue;
  r.send_queue = row.send_queue;
  r.netlink_protocol = row.netlink_protocol;
  return r;
}

// A Unix peer as ss shows it: its name, or "* INODE" when it has none.
SocketRow from_unix_diag(SocketInfo&& s) {
  SocketRow r;
  r.kind = s.protocol == Protocol::unix_dgram       ? FdKind::unix_dgram
           : s.protocol == Protocol::unix_seqpacket ? FdKind::unix_seqpacket
                                                    : FdKind::unix_stream;
  r.local = std::move(s.local);
  if (s.peer_inode != 0) r.peer = s.peer.empty() ? "* " + std::to_string(s.peer_inode) : s.peer;
  r.state = std::move(s.state);
  r.recv_queue = s.recv_queue;
  r.send_queue = s.send_queue;
  r.peer_inode = s.peer_inode;
  return r;
}

// Whether `proc` is in this process's network namespace: only then is our unix_diag dump
// the one its sockets are in.
bool in_our_netns(const std::string& proc) {
  struct ::stat ours {
  }, theirs{};
  return ::stat("/proc/self/ns/net", &ours) == 0 &&
         ::stat((proc + "/ns/net").c_str(), &theirs) == 0 && ours.st_dev == theirs.st_dev &&
         ours.st_ino == theirs.st_ino;
}

void add_proc_rows(SocketTable& table, const std::string& proc, unsigned tables) {
  for (const auto& row : internal::read_proc_net(proc + "/net", tables)) {
    table.try_emplace(row.inode, from_proc(row));
  }
}

// The process's sockets, inet first: their tables hold no name anyone chose, so a row a
// Unix name forges can never replace one. Unix rows come from unix_diag, which gives each
// name with its exact length, when the process is in our namespace and netlink is not
// refused; otherwise from /proc/PID/net/unix, whose limits docs/design/diag.md names.
SocketTable read_sockets(const std::string& proc) {
  SocketTable table;
  add_proc_rows(
      table, proc,
      internal::proc_tcp | internal::proc_tcp6 | internal::proc_udp | internal::proc_udp6);
  bool unix_read = false;
  if (in_our_netns(proc)) {
    internal::SocketQuery unix_only;
    unix_only.tcp = unix_only.udp = false;
    try {
      for (auto& s : internal::sock_diag_sockets(unix_only)) {
        const auto inode = s.inode;
        table.try_emplace(inode, from_unix_diag(std::move(s)));
      }
      unix_read = true;
    } catch (const Error& e) {
      // Refused (a sandbox, no unix_diag): /proc has the rows. Anything else is a bug to see.
      if (!internal::is_refusal(e.code())) throw;
    }
  }
  add_proc_rows(table, proc, internal::proc_netlink | (unix_read ? 0u : internal::proc_unix));
  return table;
}

// "socket:[1234]" -> 1234 for prefix "socket:"; 0 when the link is not of that form.
std::uint64_t bracketed_inode(std::string_view link, std::string_view prefix) {
  if (link.substr(0, prefix.size()) != prefix) return 0;
  link.remove_prefix(prefix.size());
  if (link.size() < 3 || link.front() != '[' || link.back() != ']') return 0;
  return std::strtoull(std::string(link.substr(1, link.size() - 2)).c_str(), nullptr, 10);
}

// "anon_inode:[eventfd]" and "anon_inode:inotify" both name "eventfd" / "inotify".
FdKind anon_inode_kind(std::string_view name) {
  if (!name.empty() && name.front() == '[' && name.back() == ']') {
    name = name.substr(1, name.size() - 2);
  }
  if (name == "eventpoll") return FdKind::epoll;
  if (name == "eventfd") return FdKind::eventfd;
  if (name == "timerfd") return FdKind::timerfd;
  if (name == "signalfd") return FdKind::signalfd;
  if (name == "pidfd") return FdKind::pidfd;
  if (name == "io_uring") return FdKind::io_uring;
  return FdKind::anon_inode;
}

// The octal `flags:` line of /proc/PID/fdinfo/N; false when the fd is gone.
bool read_open_flags(const std::string& path, std::uint32_t& flags) {
  std::ifstream in(path);
  if (!in) return false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("flags:", 0) == 0) {
      flags = static_cast<std::uint32_t>(std::strtoul(line.c_str() + 6, nullptr, 8));
      return true;
    }
  }
  return false;
}

[[noreturn]] void fail(int error, pid_t pid) {
  throw Error(std::error_code(error, std::system_category()), "fds", std::to_string(pid));
}

}  // namespace

std::string_view kind_name(FdKind kind) noexcept {
  switch (kind) {
    case FdKind::regular_file:
      return "file";
    case FdKind::directory:
      return "dir";
    case FdKind::pipe:
      return "pipe";
    case FdKind::fifo:
      return "fifo";
    case FdKind::tcp:
      return "tcp";
    case FdKind::tcp6:
      return "tcp6";
    case FdKind::udp:
      return "udp";
    case FdKind::udp6:
      return "udp6";
    case FdKind::unix_stream:
      return "unix-stream";
    case FdKind::unix_dgram:
      return "unix-dgram";
    case FdKind::unix_seqpacket:
      return "unix-seqpacket";
    case FdKind::netlink:
      return "netlink";
    case FdKind::socket:
      return "socket";
    case FdKind::epoll:
      return "epoll";
    case FdKind::eventfd:
      return "eventfd";
    case FdKind::timerfd:
      return "timerfd";
    case FdKind::signalfd:
      return "signalfd";
    case FdKind::pidfd:
      return "pidfd";
    case FdKind::io_uring:
      return "io_uring";
    case FdKind::anon_inode:
      return "anon-inode";
    case FdKind::char_device:
      return "char-device";
    case FdKind::block_device:
      return "block-device";
    case FdKind::other:
      return "other";
  }
  return "other";
}

bool FdInfo::is_socket() const noexcept {
  switch (kind) {
    case FdKind::tcp:
    case FdKind::tcp6:
    case FdKind::udp:
    case FdKind::udp6:
    case FdKind::unix_stream:
    case FdKind::unix_dgram:
    case FdKind::unix_seqpacket:
    case FdKind::netlink:
    case FdKind::socket:
      return true;
    default:
      return false;
  }
}

std::vector<FdInfo> fd_table(pid_t pid) {
  if (pid <= 0) fail(ESRCH, pid);
  const std::string proc = "/proc/" + std::to_string(pid);
  struct ::stat process {};
  if (::stat(proc.c_str(), &process) != 0) fail(errno == ENOENT ? ESRCH : errno, pid);
  const std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir((proc + "/fd").c_str()), ::closedir);
  if (!dir) fail(errno == ENOENT ? ESRCH : errno, pid);
  // Our own listing's fd is an artefact of looking, not one of the process's fds.
  const int own_dir_fd = pid == ::getpid() ? ::dirfd(dir.get()) : -1;
  std::vector<int> numbers;
  int read_error = 0;
  for (;;) {
    errno = 0;  // readdir's end and its failure differ only in errno
    const ::dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      read_error = errno;
      break;
    }
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own_dir_fd) numbers.push_back(fd);
  }
  if (read_error != 0) fail(read_error, pid);
  std::sort(numbers.begin(), numbers.end());

  bool sockets_read = false;
  SocketTable sockets;
  std::vector<FdInfo> table;
  for (const int fd : numbers) {
    const std::string link_path = proc + "/fd/" + std::to_string(fd);
    char buffer[4096];
    const ssize_t length = ::readlink(link_path.c_str(), buffer, sizeof buffer);
    std::string link;
    if (length >= 0) {
      link.assign(buffer, static_cast<std::size_t>(length));
    } else if (errno == ENOENT) {
      continue;  // closed since the listing
    } else if (errno != ENAMETOOLONG) {
      fail(errno, pid);
    }
    // ENAMETOOLONG: a file whose path is longer than PATH_MAX cannot be named, but stat()
    // through the link still says what it is; one such fd must not hide the whole table.
    FdInfo info;
    info.fd = fd;
    if (!read_open_flags(proc + "/fdinfo/" + std::to_string(fd), info.open_flags)) continue;
    info.cloexec = (info.open_flags & O_CLOEXEC) != 0;
    info.nonblock = (info.open_flags & O_NONBLOCK) != 0;
    info.target = length >= 0 ? link : "(a path longer than PATH_MAX)";
    if (const auto inode = bracketed_inode(link, "socket:")) {
      info.inode = inode;
      if (!sockets_read) {
        sockets = read_sockets(proc);
        sockets_read = true;
      }
      info.kind = FdKind::socket;
      if (const auto found = sockets.find(inode); found != sockets.end()) {
        const SocketRow& row = found->second;
        info.kind = row.kind;
        info.local = row.local;
        info.peer = row.peer;
        info.peer_inode = row.peer_inode;
        info.state = row.state;
        info.recv_queue = row.recv_queue;
        info.send_queue = row.send_queue;
        info.target = socket_target(row);
      }
    } else if (const auto pipe_inode = bracketed_inode(link, "pipe:")) {
      info.inode = pipe_inode;
      info.kind = FdKind::pipe;
    } else if (link.rfind("anon_inode:", 0) == 0) {
      info.kind = anon_inode_kind(std::string_view(link).substr(11));
    } else if (link.rfind("pidfd:", 0) == 0) {
      info.kind = FdKind::pidfd;  // kernels with pidfs name it so
    } else {
      struct ::stat st {};
      if (::stat(link_path.c_str(), &st) != 0) {
        if (errno == ENOENT) continue;
        info.kind = FdKind::other;  // a deleted file's link still reads; say what is known
      } else if (S_ISREG(st.st_mode)) {
        info.kind = FdKind::regular_file;
      } else if (S_ISDIR(st.st_mode)) {
        info.kind = FdKind::directory;
      } else if (S_ISFIFO(st.st_mode)) {
        info.kind = FdKind::fifo;
      } else if (S_ISCHR(st.st_mode)) {
        info.kind = FdKind::char_device;
      } else if (S_ISBLK(st.st_mode)) {
        info.kind = FdKind::block_device;
      } else if (S_ISSOCK(st.st_mode)) {
        info.kind = FdKind::socket;
      }
    }
    table.push_back(std::move(info));
  }
  // A process that exited during the scan leaves links that vanish: no process, not no fds.
  struct ::stat still {};
  if (::stat(proc.c_str(), &still) != 0 && errno == ENOENT) fail(ESRCH, pid);
  return table;
}

std::string to_json(const std::vector<FdInfo>& table) {
  std::string out = "[";
  for (std::size_t i = 0; i < table.size(); ++i) {
    const FdInfo& f = table[i];
    out += i == 0 ? "\n  {" : ",\n  {";
    out += "\"fd\": " + std::to_string(f.fd) + ", \"kind\": ";
    wire::internal::append_json_string(out, kind_name(f.kind));
    out += ", \"target\": ";
    wire::internal::append_json_string(out, f.target);
    out += ", \"local\": ";
    wire::internal::append_json_string(out, f.local);
    out += ", \"peer\": ";
    wire::internal::append_json_string(out, f.peer);
    out += ", \"inode\": " + std::to_string(f.inode);
    out += ", \"peer_inode\": " + std::to_string(f.peer_inode);
    out += std::string(", \"cloexec\": ") + (f.cloexec ? "true" : "false");
    out += std::string(", \"nonblock\": ") + (f.nonblock ? "true" : "false");
    out += ", \"state\": ";
    wire::internal::append_json_string(out, f.state);
    out += ", \"recv_queue\": " + std::to_string(f.recv_queue);
    out += ", \"send_queue\": " + std::to_string(f.send_queue) + "}";
  }
  out += table.empty() ? "]\n" : "\n]\n";
  return out;
}

}  // namespace wire::diag
