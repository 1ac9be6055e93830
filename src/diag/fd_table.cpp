#include "wire/diag/fd_table.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "wire/error.hpp"

namespace wire::diag {
namespace {

// One row of /proc/PID/net/{tcp,tcp6,udp,udp6,unix,netlink}, keyed by socket inode.
struct SocketRow {
  FdKind kind = FdKind::socket;
  std::string local;
  std::string peer;
  std::string state;
  std::uint64_t recv_queue = 0;
  std::uint64_t send_queue = 0;
  std::string target;  // set when it is not "LOCAL" / "LOCAL <- PEER" (unix, netlink)
};
using SocketTable = std::unordered_map<std::uint64_t, SocketRow>;

// Codes 01..0B of include/net/tcp_states.h, in the words ss uses. UDP uses 01 and 07 too.
std::string tcp_state(unsigned code) {
  static const char* const names[] = {"UNKNOWN",    "ESTAB",      "SYN-SENT",  "SYN-RECV",
                                      "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN",
                                      "CLOSE-WAIT", "LAST-ACK",   "LISTEN",    "CLOSING"};
  return code < std::size(names) ? names[code] : "UNKNOWN";
}

// The kernel prints each 32-bit word of an address with %08X of its in-memory value, so the
// bytes come back by storing the parsed words in host order; the port is a plain number.
std::string inet_address(const std::string& hex_address, bool v6) {
  const auto colon = hex_address.find(':');
  if (colon == std::string::npos) return {};
  const std::string words = hex_address.substr(0, colon);
  const unsigned port = std::stoul(hex_address.substr(colon + 1), nullptr, 16);
  unsigned char bytes[16] = {};
  const std::size_t count = v6 ? 4 : 1;
  if (words.size() != count * 8) return {};
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint32_t word = std::stoul(words.substr(i * 8, 8), nullptr, 16);
    std::memcpy(bytes + i * 4, &word, 4);
  }
  char text[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, text, sizeof text);
  return v6 ? "[" + std::string(text) + "]:" + std::to_string(port)
            : std::string(text) + ":" + std::to_string(port);
}

bool is_unspecified_peer(const std::string& hex_address) {
  return hex_address.find_first_not_of("0:") == std::string::npos;
}

// /proc/PID/net/tcp and friends: "sl local rem st tx:rx tr:when retrnsmt uid timeout inode".
void read_inet(const std::string& path, FdKind kind, bool v6, SocketTable& table) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
    std::uint64_t inode = 0;
    if (!(row >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode)) {
      continue;
    }
    SocketRow r;
    r.kind = kind;
    try {
      r.local = inet_address(local, v6);
      if (!is_unspecified_peer(remote)) r.peer = inet_address(remote, v6);
      r.state = tcp_state(std::stoul(state, nullptr, 16));
      const auto colon = queues.find(':');
      r.send_queue = std::stoull(queues.substr(0, colon), nullptr, 16);
      if (colon != std::string::npos)
        r.recv_queue = std::stoull(queues.substr(colon + 1), nullptr, 16);
    } catch (const std::exception&) {
      continue;  // a line this kernel formats differently: the fd stays a plain "socket"
    }
    table[inode] = std::move(r);
  }
}

// /proc/PID/net/unix: "Num RefCount Protocol Flags Type St Inode [Path]".
void read_unix(const std::string& path, SocketTable& table) {
  constexpr unsigned long listening_flag = 0x10000;  // __SO_ACCEPTCON
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string num, refcount, protocol, flags, type, state;
    std::uint64_t inode = 0;
    if (!(row >> num >> refcount >> protocol >> flags >> type >> state >> inode)) continue;
    SocketRow r;
    try {
      const unsigned long type_code = std::stoul(type, nullptr, 16);
      r.kind = type_code == 1   ? FdKind::unix_stream
               : type_code == 2 ? FdKind::unix_dgram
               : type_code == 5 ? FdKind::unix_seqpacket
                                : FdKind::socket;
      const unsigned long state_code = std::stoul(state, nullptr, 16);
      if (state_code == 1) {
        r.state = (std::stoul(flags, nullptr, 16) & listening_flag) ? "LISTEN" : "UNCONN";
      } else if (state_code == 2) {
        r.state = "SYN-SENT";
      } else if (state_code == 3) {
        r.state = "ESTAB";
      } else if (state_code == 4) {
        r.state = "CLOSING";
      } else {
        r.state = "UNKNOWN";
      }
    } catch (const std::exception&) {
      continue;
    }
    std::string name;
    std::getline(row, name);
    if (const auto start = name.find_first_not_of(' '); start != std::string::npos) {
      r.local = name.substr(start);
    }
    r.target = r.local;
    table[inode] = std::move(r);
  }
}

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

// /proc/PID/net/netlink: "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode".
void read_netlink(const std::string& path, SocketTable& table) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream row(line);
    std::string sk, groups;
    int protocol = 0;
    long portid = 0;
    std::uint64_t rmem = 0, wmem = 0, dump = 0, locks = 0, drops = 0, inode = 0;
    if (!(row >> sk >> protocol >> portid >> groups >> rmem >> wmem >> dump >> locks >> drops >>
          inode)) {
      continue;
    }
    SocketRow r;
    r.kind = FdKind::netlink;
    r.local = std::to_string(portid);
    r.target = netlink_protocol(protocol) + " portid " + r.local;
    r.recv_queue = rmem;
    r.send_queue = wmem;
    table[inode] = std::move(r);
  }
}

// Unix and netlink rows carry their own words; an inet socket is "LOCAL" or "LOCAL <- PEER".
std::string socket_target(const SocketRow& row) {
  switch (row.kind) {
    case FdKind::unix_stream:
    case FdKind::unix_dgram:
    case FdKind::unix_seqpacket:
    case FdKind::netlink:
      return row.target;
    default:
      return row.peer.empty() ? row.local : row.local + " <- " + row.peer;
  }
}

SocketTable read_sockets(const std::string& proc) {
  SocketTable table;
  read_inet(proc + "/net/tcp", FdKind::tcp, false, table);
  read_inet(proc + "/net/tcp6", FdKind::tcp6, true, table);
  read_inet(proc + "/net/udp", FdKind::udp, false, table);
  read_inet(proc + "/net/udp6", FdKind::udp6, true, table);
  read_unix(proc + "/net/unix", table);
  read_netlink(proc + "/net/netlink", table);
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

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
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
    if (length < 0) {
      if (errno == ENOENT) continue;  // closed since the listing
      fail(errno, pid);
    }
    FdInfo info;
    info.fd = fd;
    const std::string link(buffer, static_cast<std::size_t>(length));
    if (!read_open_flags(proc + "/fdinfo/" + std::to_string(fd), info.open_flags)) continue;
    info.cloexec = (info.open_flags & O_CLOEXEC) != 0;
    info.nonblock = (info.open_flags & O_NONBLOCK) != 0;
    info.target = link;
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
    append_json_string(out, kind_name(f.kind));
    out += ", \"target\": ";
    append_json_string(out, f.target);
    out += ", \"local\": ";
    append_json_string(out, f.local);
    out += ", \"peer\": ";
    append_json_string(out, f.peer);
    out += ", \"inode\": " + std::to_string(f.inode);
    out += std::string(", \"cloexec\": ") + (f.cloexec ? "true" : "false");
    out += std::string(", \"nonblock\": ") + (f.nonblock ? "true" : "false");
    out += ", \"state\": ";
    append_json_string(out, f.state);
    out += ", \"recv_queue\": " + std::to_string(f.recv_queue);
    out += ", \"send_queue\": " + std::to_string(f.send_queue) + "}";
  }
  out += table.empty() ? "]\n" : "\n]\n";
  return out;
}

}  // namespace wire::diag
