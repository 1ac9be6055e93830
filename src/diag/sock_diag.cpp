#include "sock_diag.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>

#include "wire/error.hpp"

namespace wire::diag::internal {
namespace {

[[noreturn]] void fail(int error, const char* what) {
  throw Error(std::error_code(error, std::system_category()), "sock_diag", what);
}

// A NETLINK_SOCK_DIAG socket; owns its fd. One request at a time: dump() sends it and reads
// every part of the answer up to NLMSG_DONE.
class DiagSocket {
 public:
  DiagSocket() : fd_(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {
    if (fd_ < 0) fail(errno, "socket");
    // The kernel fills each read up to 32 KiB (less with small pages); a buffer that size
    // or more takes a dump in as few reads as ss does.
    buffer_.resize(64 * 1024);
  }
  ~DiagSocket() { ::close(fd_); }
  DiagSocket(const DiagSocket&) = delete;
  DiagSocket& operator=(const DiagSocket&) = delete;

  // Sends `request` (the payload after the nlmsghdr) as a dump and calls on_message(header)
  // for each answer.
  template <class OnMessage>
  void dump(const std::string& request, const char* what, OnMessage&& on_message,
            __u16 type = SOCK_DIAG_BY_FAMILY) {
    std::string message(NLMSG_HDRLEN, '\0');
    message += request;
    nlmsghdr header{};
    header.nlmsg_len = static_cast<__u32>(message.size());
    header.nlmsg_type = type;
    header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.nlmsg_seq = ++sequence_;
    std::memcpy(message.data(), &header, sizeof header);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    for (;;) {
      const ssize_t sent = ::sendto(fd_, message.data(), message.size(), 0,
                                    reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel);
      if (sent >= 0) break;
      if (errno != EINTR) fail(errno, what);
    }
    for (;;) {
      iovec part{buffer_.data(), buffer_.size()};
      msghdr received{};
      received.msg_iov = &part;
      received.msg_iovlen = 1;
      const ssize_t length = ::recvmsg(fd_, &received, 0);
      if (length < 0) {
        if (errno == EINTR) continue;
        fail(errno, what);
      }
      if (received.msg_flags & MSG_TRUNC) fail(EMSGSIZE, what);
      if (length == 0) fail(EPROTO, what);
      auto remaining = static_cast<unsigned>(length);
      for (auto* h = reinterpret_cast<const nlmsghdr*>(buffer_.data()); NLMSG_OK(h, remaining);
           h = NLMSG_NEXT(h, remaining)) {
        if (h->nlmsg_seq != sequence_) continue;  // not an answer to this request
        if (h->nlmsg_type == NLMSG_DONE) {
          // A dump that fails part-way ends with DONE carrying the negative errno.
          int error = 0;
          if (h->nlmsg_len >= NLMSG_LENGTH(sizeof error)) {
            std::memcpy(&error, NLMSG_DATA(h), sizeof error);
          }
          if (error < 0) fail(-error, what);
          return;
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          nlmsgerr error{};
          if (h->nlmsg_len < NLMSG_LENGTH(sizeof error)) fail(EPROTO, what);
          std::memcpy(&error, NLMSG_DATA(h), sizeof error);
          if (error.error == 0) continue;  // an acknowledgement
          fail(-error.error, what);
        }
        on_message(h);
      }
    }
  }

 private:
  int fd_;
  std::string buffer_;
  __u32 sequence_ = 0;
};

template <class T>
void append(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof value);
}

// "sport = :P or dport = :P" in the kernel's filter language, laid out as ss lays it out: a
// condition whose `yes` falls through and whose `no` skips past it, an always-taken JMP to
// the end after the first (accept), and for the last a `no` 4 bytes past the end (reject).
// Ports are compared in host order; the value rides in the `no` field of a second op.
std::string port_bytecode(std::uint16_t port) {
  std::string code;
  const auto op = [&code](unsigned char opcode, unsigned char yes, unsigned short no) {
    append(code, inet_diag_bc_op{opcode, yes, no});
  };
  op(INET_DIAG_BC_S_EQ, 8, 12);
  op(0, 0, port);
  op(INET_DIAG_BC_JMP, 4, 12);  // sport matched: to the end (yes is never taken)
  op(INET_DIAG_BC_D_EQ, 8, 12);
  op(0, 0, port);
  return code;
}

std::string inet_text(int family, const __be32* words, __be16 port_be, bool& unspecified) {
  unsigned char bytes[16];
  const std::size_t size = family == AF_INET6 ? 16 : 4;
  std::memcpy(bytes, words, size);
  const std::uint16_t port = ntohs(port_be);
  unspecified = port == 0;
  for (std::size_t i = 0; unspecified && i < size; ++i) unspecified = bytes[i] == 0;
  // Built in place, one string per address: a dump of 20,000 sockets makes 40,000 of them.
  char text[INET6_ADDRSTRLEN + 8] = {'['};
  char* end = text;
  if (family == AF_INET6) {
    ::inet_ntop(family, bytes, text + 1, INET6_ADDRSTRLEN);
    end = text + 1 + std::strlen(text + 1);
    *end++ = ']';
  } else {
    // glibc's inet_ntop formats IPv4 with sprintf: a tenth of the dump's own time (perf).
    for (std::size_t i = 0; i < 4; ++i) {
      if (i > 0) *end++ = '.';
      end = std::to_chars(end, text + sizeof text, bytes[i]).ptr;
    }
  }
  *end++ = ':';
  end = std::to_chars(end, text + sizeof text, port).ptr;
  return std::string(text, end);
}

// The bytecode attribute that keeps only sockets with `port` at either end.
void append_port_filter(std::string& payload, std::uint16_t port) {
  const std::string code = port_bytecode(port);
  nlattr attribute{};
  attribute.nla_len = static_cast<__u16>(NLA_HDRLEN + code.size());
  attribute.nla_type = INET_DIAG_REQ_BYTECODE;
  append(payload, attribute);
  payload += code;
}

// family AF_UNSPEC: both families in one dump, through the older TCPDIAG_GETSOCK request,
// whose dump walks the kernel's TCP hash table once for both: a dump per family walks all
// of it twice (262,144 buckets here, 6 ms of a 50 ms `ss -tan`).
void dump_inet(DiagSocket& diag, const SocketQuery& query, int family, Protocol protocol,
               std::vector<SocketInfo>& out) {
  // A FIN-WAIT-2 socket that was closed is a timewait socket (hashed as TIME-WAIT, shown by
  // its substate), and a SYN-RECV one is a request socket: ask for those too, so that the
  // states asked for all come, and select on the state reported.
  std::uint32_t states = query.states;
  if (states & state_bit(tcp_fin_wait2)) states |= state_bit(tcp_time_wait);
  if (states & state_bit(tcp_syn_recv)) states |= state_bit(tcp_new_syn_recv);
  // A TCP socket bound but neither listening nor connected is dumped (since 6.7) only when
  // this bit is asked for, and then reported as CLOSE (UNCONN): ask for it whenever CLOSE is
  // wanted, or `--state closed` would drop what the unfiltered list shows as UNCONN.
  constexpr unsigned tcp_bound_inactive = 13;
  if (states & state_bit(tcp_close)) states |= 1u << tcp_bound_inactive;
  std::string payload;
  __u16 type = SOCK_DIAG_BY_FAMILY;
  if (family == AF_UNSPEC) {
    inet_diag_req request{};
    request.idiag_family = AF_INET;  // not read by a dump: it sets AF_UNSPEC itself
    request.idiag_states = states;
    append(payload, request);
    type = TCPDIAG_GETSOCK;
  } else {
    inet_diag_req_v2 request{};
    request.sdiag_family = static_cast<__u8>(family);
    request.sdiag_protocol = protocol == Protocol::tcp ? IPPROTO_TCP : IPPROTO_UDP;
    request.idiag_states = states;
    append(payload, request);
  }
  if (query.port) append_port_filter(payload, *query.port);
  const char* what = protocol == Protocol::tcp ? (family == AF_INET6 ? "tcp6" : "tcp")
                                               : (family == AF_INET ? "udp" : "udp6");
  diag.dump(
      payload, what,
      [&](const nlmsghdr* h) {
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return;
        inet_diag_msg m;
        std::memcpy(&m, NLMSG_DATA(h), sizeof m);
        const unsigned state =
            m.idiag_state == tcp_new_syn_recv ? unsigned{tcp_syn_recv} : unsigned{m.idiag_state};
        if (!query.wants_state(state)) return;
        SocketInfo info;
        info.protocol = protocol;
        info.family = m.idiag_family;
        info.state = std::string(state_name(state));
        info.recv_queue = m.idiag_rqueue;
        info.send_queue = m.idiag_wqueue;
        bool unspecified = false;
        info.local = inet_text(m.idiag_family, m.id.idiag_src, m.id.idiag_sport, unspecified);
        info.peer = inet_text(m.idiag_family, m.id.idiag_dst, m.id.idiag_dport, unspecified);
        if (unspecified) info.peer.clear();
        info.inode = m.idiag_inode;
        info.uid = m.idiag_uid;
        out.push_back(std::move(info));
      },
      type);
}

// A Unix name as ss and /proc/net/unix show it: a path up to its NUL, an abstract name as
// '@' and its bytes with every NUL as '@'.
std::string unix_name(const char* bytes, std::size_t length) {
  if (length == 0) return {};
  if (bytes[0] != '\0') return std::string(bytes, ::strnlen(bytes, length));
  std::string name(bytes, length);
  for (char& c : name) {
    if (c == '\0') c = '@';
  }
  return name;
}

void dump_unix(DiagSocket& diag, const SocketQuery& query, std::vector<SocketInfo>& out) {
  unix_diag_req request{};
  request.sdiag_family = AF_UNIX;
  // Every state: a peer is named from its own row, which a state filter would leave out.
  request.udiag_states = all_states;
  request.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN | UDIAG_SHOW_UID;
  std::string payload;
  append(payload, request);
  std::vector<std::pair<SocketInfo, unsigned>> all;  // with the state's code
  diag.dump(payload, "unix", [&](const nlmsghdr* h) {
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(unix_diag_msg))) return;
    unix_diag_msg m;
    std::memcpy(&m, NLMSG_DATA(h), sizeof m);
    SocketInfo info;
    info.protocol = m.udiag_type == SOCK_DGRAM       ? Protocol::unix_dgram
                    : m.udiag_type == SOCK_SEQPACKET ? Protocol::unix_seqpacket
                                                     : Protocol::unix_stream;
    info.family = AF_UNIX;
    info.inode = m.udiag_ino;
    auto* attribute = reinterpret_cast<const rtattr*>(static_cast<const char*>(NLMSG_DATA(h)) +
                                                      NLMSG_ALIGN(sizeof m));
    auto remaining = static_cast<unsigned>(h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof m)));
    for (; RTA_OK(attribute, remaining); attribute = RTA_NEXT(attribute, remaining)) {
      const auto* data = static_cast<const char*>(RTA_DATA(attribute));
      const std::size_t size = RTA_PAYLOAD(attribute);
      std::uint32_t words[2] = {};
      std::memcpy(words, data, std::min(size, sizeof words));
      switch (attribute->rta_type) {
        case UNIX_DIAG_NAME:
          info.local = unix_name(data, size);
          break;
        case UNIX_DIAG_PEER:
          info.peer_inode = words[0];
          break;
        case UNIX_DIAG_RQLEN:
          info.recv_queue = words[0];
          info.send_queue = words[1];
          break;
        case UNIX_DIAG_UID:
          info.uid = words[0];
          break;
        default:
          break;
      }
    }
    all.emplace_back(std::move(info), m.udiag_state);
  });
  // Every peer named before any row is moved out (a name read after its row left is gone).
  std::unordered_map<std::uint64_t, const std::string*> names;
  for (const auto& [s, state] : all) names.emplace(s.inode, &s.local);
  for (auto& [s, state] : all) {
    if (s.peer_inode == 0) continue;
    if (const auto peer = names.find(s.peer_inode); peer != names.end()) s.peer = *peer->second;
  }
  for (auto& [s, state] : all) {
    if (!query.wants(s.protocol) || !query.wants_state(state)) continue;
    s.state = std::string(state_name(state));
    out.push_back(std::move(s));
  }
}

// How many sockets the dumps may bring, from /proc/net/sockstat{,6} ("TCP: inuse N orphan O
// tw T ..."): the list is reserved once instead of growing by moves of 20,000 SocketInfos
// (perf showed the growth beside the kernel's own dump). A guess only: 0 when unreadable.
std::size_t expected_sockets(const SocketQuery& query) {
  std::size_t total = 0;
  for (const char* path : {"/proc/net/sockstat", "/proc/net/sockstat6"}) {
    std::FILE* file = std::fopen(path, "re");
    if (file == nullptr) continue;
    char line[256];
    while (std::fgets(line, sizeof line, file) != nullptr) {
      unsigned long inuse = 0, orphan = 0, tw = 0;
      const bool tcp = std::strncmp(line, "TCP", 3) == 0;
      const bool udp = std::strncmp(line, "UDP:", 4) == 0 || std::strncmp(line, "UDP6:", 5) == 0;
      if (tcp && query.wants(Protocol::tcp) &&
          std::sscanf(std::strchr(line, ':') + 1, " inuse %lu orphan %lu tw %lu", &inuse, &orphan,
                      &tw) >= 1) {
        total += inuse + tw;
      } else if (udp && query.wants(Protocol::udp) &&
                 std::sscanf(std::strchr(line, ':') + 1, " inuse %lu", &inuse) == 1) {
        total += inuse;
      } else if (std::strncmp(line, "sockets:", 8) == 0 && query.wants(Protocol::unix_stream)) {
        std::sscanf(line + 8, " used %lu", &inuse);
        total += inuse;
      }
    }
    std::fclose(file);
  }
  return std::min<std::size_t>(total, 1 << 22);
}

// Faults in the pages of a large reserved list with one call. Touched one at a time, each
// page is a trap, and on a VM a trap costs 5 us: 20,000 SocketInfos are 830 of them, as long
// as ss takes for its whole dump (perf stat, bench/sockets.sh). Only a hint: kernels before
// 5.14 refuse it, and the pages then come one at a time as before.
void populate(const void* data, std::size_t bytes) {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;
#endif
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto from = (reinterpret_cast<std::uintptr_t>(data) + page - 1) & ~(page - 1);
  const auto to = (reinterpret_cast<std::uintptr_t>(data) + bytes) & ~(page - 1);
  if (to > from) ::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE);
}

}  // namespace

std::vector<SocketInfo> sock_diag_sockets(const SocketQuery& query) {
  DiagSocket diag;
  std::vector<SocketInfo> list;
  if (!query.port && query.states == SocketQuery{}.states) {
    list.reserve(expected_sockets(query));
    populate(list.data(), list.capacity() * sizeof(SocketInfo));
  }
  if (query.wants(Protocol::tcp)) {
    const std::size_t before = list.size();
    try {
      dump_inet(diag, query, AF_UNSPEC, Protocol::tcp, list);
    } catch (const Error& e) {
      // A kernel built without the older request answers it with an error before any
      // socket: ask per family, as for UDP.
      const int code = e.code().value();
      if (code != EINVAL && code != ENOENT && code != EOPNOTSUPP) throw;
      list.resize(before);
      dump_inet(diag, query, AF_INET, Protocol::tcp, list);
      dump_inet(diag, query, AF_INET6, Protocol::tcp, list);
    }
  }
  if (query.wants(Protocol::udp)) {
    dump_inet(diag, query, AF_INET, Protocol::udp, list);
    dump_inet(diag, query, AF_INET6, Protocol::udp, list);
  }
  if (query.wants(Protocol::unix_stream)) dump_unix(diag, query, list);
  return list;
}

bool is_refusal(std::error_code error) noexcept {
  if (error.category() != std::system_category()) return false;
  switch (error.value()) {
    case EPROTONOSUPPORT:  // no NETLINK_SOCK_DIAG in this kernel
    case EAFNOSUPPORT:
    case ESOCKTNOSUPPORT:
    case EOPNOTSUPP:
    case ENOENT:  // no diag handler for this family or protocol (udp_diag not built)
    case EACCES:  // a seccomp filter, an LSM
    case EPERM:
      return true;
    default:
      return false;
  }
}

}  // namespace wire::diag::internal
