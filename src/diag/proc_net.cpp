#include "proc_net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string_view>

#include "socket_state.hpp"

namespace wire::diag::internal {
namespace {

// The whole file in one string: the tables are read once per call, and line by line through
// iostreams they cost more than the kernel takes to print them. nullopt when it is missing.
std::optional<std::string> read_whole(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

// Splits off the next space-separated field of `line`; empty at the end.
std::string_view next_field(std::string_view& line) {
  const auto start = line.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(start);
  const auto end = line.find(' ');
  const std::string_view field = line.substr(0, end);
  line.remove_prefix(end == std::string_view::npos ? line.size() : end);
  return field;
}

template <class Number>
bool parse_number(std::string_view text, Number& value, int base) {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return error == std::errc() && end == text.data() + text.size();
}

// Calls `row(line)` for every line after the header.
template <class Row>
void for_each_row(const std::string& text, Row&& row) {
  std::string_view rest(text);
  bool header = true;
  while (!rest.empty()) {
    const auto newline = rest.find('\n');
    const std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (header) {
      header = false;
      continue;
    }
    row(line);
  }
}

// "0100007F:1F40": the kernel prints each 32-bit word of the address with %08X of its
// in-memory value, so the bytes come back by storing the parsed words in host order.
bool inet_address(std::string_view hex, bool v6, std::string& text, std::uint16_t& port,
                  bool& unspecified) {
  const auto colon = hex.find(':');
  if (colon == std::string_view::npos) return false;
  const std::size_t words = v6 ? 4 : 1;
  if (colon != words * 8 || !parse_number(hex.substr(colon + 1), port, 16)) return false;
  unsigned char bytes[16] = {};
  for (std::size_t i = 0; i < words; ++i) {
    std::uint32_t word = 0;
    if (!parse_number(hex.substr(i * 8, 8), word, 16)) return false;
    std::memcpy(bytes + i * 4, &word, 4);
  }
  unspecified = port == 0 && hex.substr(0, colon).find_first_not_of('0') == std::string_view::npos;
  char address[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes, address, sizeof address);
  text = v6 ? "[" + std::string(address) + "]:" + std::to_string(port)
            : std::string(address) + ":" + std::to_string(port);
  return true;
}

// "sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout inode ..."
void read_inet(const std::string& path, FdKind kind, bool v6, std::vector<ProcNetRow>& rows) {
  const auto text = read_whole(path);
  if (!text) return;
  for_each_row(*text, [&](std::string_view line) {
    const std::string_view slot = next_field(line), local = next_field(line),
                           remote = next_field(line), state = next_field(line),
                           queues = next_field(line);
    next_field(line);  // tr:tm->when
    next_field(line);  // retrnsmt
    const std::string_view uid = next_field(line);
    next_field(line);  // timeout
    const std::string_view inode = next_field(line);
    ProcNetRow r;
    r.kind = kind;
    bool unspecified = false, peer_unspecified = false;
    const auto colon = queues.find(':');
    if (slot.empty() || colon == std::string_view::npos ||
        !inet_address(local, v6, r.local, r.local_port, unspecified) ||
        !inet_address(remote, v6, r.peer, r.peer_port, peer_unspecified) ||
        !parse_number(state, r.state, 16) ||
        !parse_number(queues.substr(0, colon), r.send_queue, 16) ||
        !parse_number(queues.substr(colon + 1), r.recv_queue, 16) ||
        !parse_number(uid, r.uid, 10) || !parse_number(inode, r.inode, 10)) {
      return;
    }
    if (peer_unspecified) r.peer.clear();
    rows.push_back(std::move(r));
  });
}

// Whether `text` is `width` hex digits, as the kernel's %0NX prints them.
bool is_hex(std::string_view text, std::size_t width) {
  return text.size() == width &&
         text.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos;
}

// Takes the field of exactly `width` characters at the start of `line` and the one space after
// it; false when the line is not laid out so.
bool fixed_field(std::string_view& line, std::size_t width, std::string_view& field) {
  if (line.size() <= width || line[width] != ' ') return false;
  field = line.substr(0, width);
  line.remove_prefix(width + 1);
  return true;
}

// One row of /proc/net/unix, checked against the whole of af_unix.c's seq_show format:
// "%pK: %08X %08X %08X %04X %02X %5lu", then " NAME" when the socket has one. The socket's
// address (%pK) is 8 or 16 hex digits (zeros when kptr_restrict hides it), or the
// "(ptrval)" placeholder of a kernel whose hashing is not ready yet.
bool parse_unix_row(std::string_view line, ProcNetRow& r, unsigned long& flag_bits,
                    unsigned& socket_state) {
  const auto colon = line.find(": ");
  if (colon == std::string_view::npos) return false;
  const std::string_view address = line.substr(0, colon);
  if (!is_hex(address, 16) && !is_hex(address, 8) && address != "(____ptrval____)" &&
      address != "(ptrval)") {
    return false;
  }
  line.remove_prefix(colon + 2);
  std::string_view refcount, protocol, flags, type, state;
  unsigned type_code = 0;
  if (!fixed_field(line, 8, refcount) || !is_hex(refcount, 8) || !fixed_field(line, 8, protocol) ||
      !is_hex(protocol, 8) || !fixed_field(line, 8, flags) || !parse_number(flags, flag_bits, 16) ||
      !fixed_field(line, 4, type) || !parse_number(type, type_code, 16) ||
      !fixed_field(line, 2, state) || !parse_number(state, socket_state, 16)) {
    return false;
  }
  // %5lu: right-aligned in five columns, so short inodes come with leading spaces.
  const auto digits = line.find_first_not_of(' ');
  if (digits == std::string_view::npos) return false;
  const auto inode_end = std::min(line.find(' ', digits), line.size());
  if (inode_end < 5 || (digits > 0 && inode_end != 5) ||
      !parse_number(line.substr(digits, inode_end - digits), r.inode, 10)) {
    return false;
  }
  line.remove_prefix(inode_end);
  if (!line.empty()) {
    if (line.size() < 2) return false;  // " " and no name
    r.local = std::string(line.substr(1));
  }
  r.kind = type_code == SOCK_STREAM      ? FdKind::unix_stream
           : type_code == SOCK_DGRAM     ? FdKind::unix_dgram
           : type_code == SOCK_SEQPACKET ? FdKind::unix_seqpacket
                                         : FdKind::socket;
  return true;
}

// "Num RefCount Protocol Flags Type St Inode [Path]". The name is everything after the
// inode's separating space, and the kernel prints its bytes as they are (a NUL as '@'), so a
// name may hold a newline: a line that is not a whole row is the rest of the previous row's
// name. A line that is a whole row cannot be told from one a name forged (sock_diag can:
// it is the first choice); the callers never let such a row replace one they already have.
void read_unix(const std::string& path, std::vector<ProcNetRow>& rows) {
  constexpr unsigned long listening_flag = 0x10000;  // __SO_ACCEPTCON
  const auto text = read_whole(path);
  if (!text) return;
  const std::size_t first = rows.size();
  for_each_row(*text, [&](std::string_view line) {
    ProcNetRow r;
    unsigned long flag_bits = 0;
    unsigned socket_state = 0;
    if (!parse_unix_row(line, r, flag_bits, socket_state)) {
      if (rows.size() > first && !rows.back().local.empty()) {
        rows.back().local += '\n';
        rows.back().local += line;
      }
      return;
    }
    // St is the socket's SS_* state (1 unconnected, 2 connecting, 3 connected, 4
    // disconnecting), which becomes the TCP-style code sock_diag would report.
    switch (socket_state) {
      case 1:
        r.state = (flag_bits & listening_flag) ? tcp_listen : tcp_close;
        break;
      case 2:
        r.state = tcp_syn_sent;
        break;
      case 3:
        r.state = tcp_established;
        break;
      case 4:
        r.state = tcp_closing;
        break;
      default:
        r.state = 0;
    }
    rows.push_back(std::move(r));
  });
}

// "sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode"
void read_netlink(const std::string& path, std::vector<ProcNetRow>& rows) {
  const auto text = read_whole(path);
  if (!text) return;
  for_each_row(*text, [&](std::string_view line) {
    next_field(line);  // sk
    const std::string_view protocol = next_field(line), portid = next_field(line);
    next_field(line);  // Groups
    const std::string_view rmem = next_field(line), wmem = next_field(line);
    next_field(line);  // Dump
    next_field(line);  // Locks
    next_field(line);  // Drops
    const std::string_view inode = next_field(line);
    ProcNetRow r;
    r.kind = FdKind::netlink;
    long port = 0;
    if (!parse_number(protocol, r.netlink_protocol, 10) || !parse_number(portid, port, 10) ||
        !parse_number(rmem, r.recv_queue, 10) || !parse_number(wmem, r.send_queue, 10) ||
        !parse_number(inode, r.inode, 10)) {
      return;
    }
    r.local = std::to_string(port);
    rows.push_back(std::move(r));
  });
}

}  // namespace

std::vector<ProcNetRow> read_proc_net(const std::string& net_dir, unsigned tables) {
  std::vector<ProcNetRow> rows;
  if (tables & proc_tcp) read_inet(net_dir + "/tcp", FdKind::tcp, false, rows);
  if (tables & proc_tcp6) read_inet(net_dir + "/tcp6", FdKind::tcp6, true, rows);
  if (tables & proc_udp) read_inet(net_dir + "/udp", FdKind::udp, false, rows);
  if (tables & proc_udp6) read_inet(net_dir + "/udp6", FdKind::udp6, true, rows);
  if (tables & proc_unix) read_unix(net_dir + "/unix", rows);
  if (tables & proc_netlink) read_netlink(net_dir + "/netlink", rows);
  return rows;
}

}  // namespace wire::diag::internal
