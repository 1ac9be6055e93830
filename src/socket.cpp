#include "wire/socket.hpp"

#include <fcntl.h>
#include <netinet/udp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "io.hpp"

namespace wire {
namespace {

int native_family(Family family) {
  switch (family) {
    case Family::inet:
      return AF_INET;
    case Family::inet6:
      return AF_INET6;
    case Family::local:
      return AF_UNIX;
    case Family::unspecified:
      break;
  }
  return AF_UNSPEC;
}

int native_type(Type type) {
  return type == Type::stream ? SOCK_STREAM : SOCK_DGRAM;
}

std::error_code set_nonblocking(int fd, bool on) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return detail::last_error();
  int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0) return detail::last_error();
  return {};
}

bool is_retryable(int error) {
  return error == EINTR || error == EAGAIN || error == EWOULDBLOCK;
}

// accept4 reports some errors of the new connection rather than of the listener; the
// listener is fine and the next accept may succeed (accept(2), "Error handling").
bool is_transient_accept_error(int error) {
  switch (error) {
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

// The throwing layer. `describe` names the socket and runs only on failure: the success
// path of every call stays one syscall (a getpeername per recv doubled its cost).
template <class T, class Operation, class Describe>
T unwrap(Result<T>&& result, Operation&& operation, Describe&& describe) {
  if (!result) throw Error(result.error(), std::string(operation), describe());
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

struct Named {
  int value;
  const char* name;
};

constexpr Named named(int value, const char* name) {
  return Named{value, name};
}

// What error messages call levels and options: the common ones by their C names.
#define WIRE_NAMED(x) named((x), #x)
constexpr Named levels[] = {
    WIRE_NAMED(SOL_SOCKET),  WIRE_NAMED(IPPROTO_IP),  WIRE_NAMED(IPPROTO_IPV6),
    WIRE_NAMED(IPPROTO_TCP), WIRE_NAMED(IPPROTO_UDP),
};
constexpr Named socket_options[] = {
    WIRE_NAMED(SO_REUSEADDR),    WIRE_NAMED(SO_REUSEPORT),    WIRE_NAMED(SO_KEEPALIVE),
    WIRE_NAMED(SO_BROADCAST),    WIRE_NAMED(SO_LINGER),       WIRE_NAMED(SO_RCVBUF),
    WIRE_NAMED(SO_SNDBUF),       WIRE_NAMED(SO_RCVBUFFORCE),  WIRE_NAMED(SO_SNDBUFFORCE),
    WIRE_NAMED(SO_RCVLOWAT),     WIRE_NAMED(SO_SNDLOWAT),     WIRE_NAMED(SO_RCVTIMEO),
    WIRE_NAMED(SO_SNDTIMEO),     WIRE_NAMED(SO_ERROR),        WIRE_NAMED(SO_TYPE),
    WIRE_NAMED(SO_DOMAIN),       WIRE_NAMED(SO_PROTOCOL),     WIRE_NAMED(SO_ACCEPTCONN),
    WIRE_NAMED(SO_BINDTODEVICE), WIRE_NAMED(SO_DONTROUTE),    WIRE_NAMED(SO_OOBINLINE),
    WIRE_NAMED(SO_PRIORITY),     WIRE_NAMED(SO_MARK),         WIRE_NAMED(SO_PEERCRED),
    WIRE_NAMED(SO_PASSCRED),     WIRE_NAMED(SO_TIMESTAMP),    WIRE_NAMED(SO_TIMESTAMPNS),
    WIRE_NAMED(SO_BUSY_POLL),    WIRE_NAMED(SO_INCOMING_CPU), WIRE_NAMED(SO_ZEROCOPY),
};
constexpr Named ip_options[] = {
    WIRE_NAMED(IP_TOS),
    WIRE_NAMED(IP_TTL),
    WIRE_NAMED(IP_OPTIONS),
    WIRE_NAMED(IP_PKTINFO),
    WIRE_NAMED(IP_RECVTTL),
    WIRE_NAMED(IP_RECVTOS),
    WIRE_NAMED(IP_RECVERR),
    WIRE_NAMED(IP_MTU_DISCOVER),
    WIRE_NAMED(IP_MTU),
    WIRE_NAMED(IP_FREEBIND),
    WIRE_NAMED(IP_TRANSPARENT),
    WIRE_NAMED(IP_BIND_ADDRESS_NO_PORT),
    WIRE_NAMED(IP_MULTICAST_IF),
    WIRE_NAMED(IP_MULTICAST_TTL),
    WIRE_NAMED(IP_MULTICAST_LOOP),
    WIRE_NAMED(IP_MULTICAST_ALL),
    WIRE_NAMED(IP_ADD_MEMBERSHIP),
    WIRE_NAMED(IP_DROP_MEMBERSHIP),
    WIRE_NAMED(IP_ADD_SOURCE_MEMBERSHIP),
    WIRE_NAMED(IP_DROP_SOURCE_MEMBERSHIP),
};
constexpr Named ipv6_options[] = {
    WIRE_NAMED(IPV6_V6ONLY),
    WIRE_NAMED(IPV6_UNICAST_HOPS),
    WIRE_NAMED(IPV6_TCLASS),
    WIRE_NAMED(IPV6_RECVPKTINFO),
    WIRE_NAMED(IPV6_RECVHOPLIMIT),
    WIRE_NAMED(IPV6_RECVTCLASS),
    WIRE_NAMED(IPV6_RECVERR),
    WIRE_NAMED(IPV6_MTU_DISCOVER),
    WIRE_NAMED(IPV6_MTU),
    WIRE_NAMED(IPV6_MULTICAST_IF),
    WIRE_NAMED(IPV6_MULTICAST_HOPS),
    WIRE_NAMED(IPV6_MULTICAST_LOOP),
    WIRE_NAMED(IPV6_MULTICAST_ALL),
    WIRE_NAMED(IPV6_ADD_MEMBERSHIP),
    WIRE_NAMED(IPV6_DROP_MEMBERSHIP),
    WIRE_NAMED(IPV6_FREEBIND),
    WIRE_NAMED(IPV6_TRANSPARENT),
};
constexpr Named tcp_options[] = {
    WIRE_NAMED(TCP_NODELAY),       WIRE_NAMED(TCP_MAXSEG),       WIRE_NAMED(TCP_CORK),
    WIRE_NAMED(TCP_KEEPIDLE),      WIRE_NAMED(TCP_KEEPINTVL),    WIRE_NAMED(TCP_KEEPCNT),
    WIRE_NAMED(TCP_SYNCNT),        WIRE_NAMED(TCP_LINGER2),      WIRE_NAMED(TCP_DEFER_ACCEPT),
    WIRE_NAMED(TCP_WINDOW_CLAMP),  WIRE_NAMED(TCP_INFO),         WIRE_NAMED(TCP_QUICKACK),
    WIRE_NAMED(TCP_CONGESTION),    WIRE_NAMED(TCP_USER_TIMEOUT), WIRE_NAMED(TCP_FASTOPEN),
    WIRE_NAMED(TCP_NOTSENT_LOWAT),
};
constexpr Named udp_options[] = {
    WIRE_NAMED(UDP_CORK),
    WIRE_NAMED(UDP_SEGMENT),
    WIRE_NAMED(UDP_GRO),
};
#undef WIRE_NAMED

template <std::size_t N>
const char* name_in(const Named (&table)[N], int value) {
  for (const Named& entry : table) {
    if (entry.value == value) return entry.name;
  }
  return nullptr;
}

// "IPPROTO_IP, IP_TOS" for error messages; numbers for what the tables do not know.
std::string option_text(int level, int name) {
  const char* level_name = name_in(levels, level);
  const char* option_name = level == SOL_SOCKET     ? name_in(socket_options, name)
                            : level == IPPROTO_IP   ? name_in(ip_options, name)
                            : level == IPPROTO_IPV6 ? name_in(ipv6_options, name)
                            : level == IPPROTO_TCP  ? name_in(tcp_options, name)
                            : level == IPPROTO_UDP  ? name_in(udp_options, name)
                                                    : nullptr;
  std::string text = level_name ? level_name : "level " + std::to_string(level);
  text += ", ";
  text += option_name ? option_name : std::to_string(name);
  return text;
}

bool is_tcp(const Socket& socket) {
  return socket.type() == Type::stream &&
         (socket.family() == Family::inet || socket.family() == Family::inet6);
}

// The kernel's limits (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT in net/tcp.h).
constexpr std::int64_t max_keepalive_seconds = 32767;
constexpr int max_keepalive_count = 127;

// Why `settings` cannot be given to the kernel: which field breaks which rule, for a
// message "keepalive FIELD must be RULE". Static strings: the nothrow path must not allocate.
struct KeepAliveProblem {
  const char* field = nullptr;  // nullptr: no problem
  const char* rule = nullptr;
};

KeepAliveProblem keepalive_problem(const KeepAlive& settings) noexcept {
  using namespace std::chrono;
  const std::pair<nanoseconds, const char*> durations[] = {{settings.idle, "idle"},
                                                           {settings.interval, "interval"}};
  for (const auto& [duration, field] : durations) {
    if (duration <= nanoseconds::zero()) return {field, "positive"};
    if (duration % seconds(1) != nanoseconds::zero()) {
      return {field, "whole seconds (the kernel counts seconds)"};
    }
    if (duration > seconds(max_keepalive_seconds)) return {field, "at most 32767 s"};
  }
  if (settings.count < 1 || settings.count > max_keepalive_count) return {"count", "1 to 127"};
  return {};
}

std::string duration_text(std::chrono::nanoseconds d) {
  using namespace std::chrono;
  if (d % seconds(1) == nanoseconds::zero()) return std::to_string(d / seconds(1)) + " s";
  if (d % milliseconds(1) == nanoseconds::zero())
    return std::to_string(d / milliseconds(1)) + " ms";
  return std::to_string(d.count()) + " ns";
}

}  // namespace

Socket::Socket(Family family, Type type, int protocol) {
  auto created = create(family, type, std::nothrow, protocol);
  if (!created) {
    throw Error(created.error(), "socket",
                std::string(family == Family::inet    ? "inet"
                            : family == Family::inet6 ? "inet6"
                            : family == Family::local ? "unix"
                                                      : "unspecified") +
                    (type == Type::stream ? " stream" : " dgram"));
  }
  *this = std::move(*created);
}

Result<Socket> Socket::create(Family family, Type type, std::nothrow_t, int protocol) noexcept {
  int fd = ::socket(native_family(family), native_type(type) | SOCK_CLOEXEC, protocol);
  if (fd < 0) return detail::last_error();
  Socket s;
  s.fd_ = fd;
  s.family_ = family;
  s.type_ = type;
  return s;
}

Result<Socket> Socket::adopt(int fd, std::nothrow_t) noexcept {
  int type = 0;
  ::socklen_t type_len = sizeof type;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &type_len) < 0) return detail::last_error();
  if (type != SOCK_STREAM && type != SOCK_DGRAM) {
    return std::make_error_code(std::errc::operation_not_supported);
  }
  ::sockaddr_storage ss{};
  ::socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<::sockaddr*>(&ss), &len) < 0) return detail::last_error();
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return detail::last_error();
  Socket s;
  s.fd_ = fd;
  s.family_ =
      Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len, Type::stream).family();
  s.type_ = type == SOCK_STREAM ? Type::stream : Type::dgram;
  s.timeout_ns_ = (flags & O_NONBLOCK) ? 0 : -1;
  return s;
}

Socket Socket::adopt(int fd) {
  return unwrap(adopt(fd, std::nothrow), "adopt",
                [&] { return std::string("fd " + std::to_string(fd)); });
}

Result<std::pair<Socket, Socket>> Socket::pair(Type type, std::nothrow_t) noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, native_type(type) | SOCK_CLOEXEC, 0, fds) < 0) {
    return detail::last_error();
  }
  std::pair<Socket, Socket> sockets;
  for (int i = 0; i < 2; ++i) {
    Socket& s = i == 0 ? sockets.first : sockets.second;
    s.fd_ = fds[i];
    s.family_ = Family::local;
    s.type_ = type;
  }
  return sockets;
}

std::pair<Socket, Socket> Socket::pair(Type type) {
  return unwrap(pair(type, std::nothrow), "socketpair",
                [&] { return std::string(type == Type::stream ? "unix" : "unixgram"); });
}

void Socket::remember_peer(const Address& peer) noexcept {
  const bool ip = peer.family() == Family::inet || peer.family() == Family::inet6;
  if (!ip || peer.native_size() > sizeof peer_bytes_) {
    peer_size_ = 0;
    return;
  }
  std::memcpy(peer_bytes_, peer.native(), peer.native_size());
  peer_size_ = static_cast<std::uint8_t>(peer.native_size());
}

Address Socket::remembered_peer() const noexcept {
  return Address::from_sockaddr(reinterpret_cast<const ::sockaddr*>(peer_bytes_), peer_size_,
                                type_);
}

Socket::Socket(Socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      family_(other.family_),
      type_(other.type_),
      timeout_ns_(other.timeout_ns_),
      peer_size_(other.peer_size_) {
  std::memcpy(peer_bytes_, other.peer_bytes_, sizeof peer_bytes_);
}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    family_ = other.family_;
    type_ = other.type_;
    timeout_ns_ = other.timeout_ns_;
    std::memcpy(peer_bytes_, other.peer_bytes_, sizeof peer_bytes_);
    peer_size_ = other.peer_size_;
  }
  return *this;
}

Socket::~Socket() {
  close();
}

int Socket::fileno() const {
  if (fd_ < 0) throw Error(errc::socket_closed, "fileno", "");
  return fd_;
}

int Socket::detach() {
  if (fd_ < 0) throw Error(errc::socket_closed, "detach", "");
  return std::exchange(fd_, -1);
}

void Socket::close() noexcept {
  if (fd_ >= 0) ::close(std::exchange(fd_, -1));
}

std::string Socket::local_text() const {
  if (fd_ < 0) return "(closed socket)";
  auto local = local_address(std::nothrow);
  if (local && !local->empty()) {
    std::string text = local->to_string();
    if (text != "unix:" && text != "unixgram:") return text;
  }
  return "fd " + std::to_string(fd_);
}

std::string Socket::peer_text() const {
  if (fd_ < 0) return "(closed socket)";
  if (peer_size_ != 0) {
    std::string text = remembered_peer().to_string();
    if (text != "unix:" && text != "unixgram:") return text;
  }
  auto peer = peer_address(std::nothrow);
  if (peer && !peer->empty()) {
    std::string text = peer->to_string();
    if (text != "unix:" && text != "unixgram:") return text;
  }
  // The peer has no name (an unbound Unix client) or was never known: say whose peer it
  // is. A bare local address here read as the peer's ("send tcp://127.0.0.1:50252").
  const std::string local = local_text();
  if (fd_ >= 0 && local.rfind("fd ", 0) != 0) return "peer of " + local;
  return local;
}

Result<void> Socket::bind(const Address& address, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (::bind(fd_, address.native(), address.native_size()) < 0) return detail::last_error();
  return {};
}

void Socket::bind(const Address& address) {
  unwrap(bind(address, std::nothrow), "bind",
         [&] { return std::string(fd_ < 0 ? local_text() : address.to_string()); });
}

Result<void> Socket::listen(int backlog, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (::listen(fd_, backlog) < 0) return detail::last_error();
  return {};
}

void Socket::listen(int backlog) {
  unwrap(listen(backlog, std::nothrow), "listen", [&] { return std::string(local_text()); });
}

Result<Socket::Accepted> Socket::accept(std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  ::sockaddr_storage ss{};
  ::socklen_t len = 0;
  const int flags = SOCK_CLOEXEC | (timeout_ns_ >= 0 ? SOCK_NONBLOCK : 0);
  detail::Waiter waiter(timeout_ns_);
  Result<std::size_t> fd = std::error_code();
  do {
    fd = detail::retry_io(fd_, POLLIN, waiter, [&] {
      len = sizeof ss;
      return ::accept4(fd_, reinterpret_cast<::sockaddr*>(&ss), &len, flags);
    });
  } while (!fd && fd.error().category() == std::system_category() &&
           is_transient_accept_error(fd.error().value()));
  if (!fd) return fd.error();
  Accepted accepted;
  accepted.socket.fd_ = static_cast<int>(*fd);
  accepted.socket.family_ = family_;
  accepted.socket.type_ = type_;
  accepted.socket.timeout_ns_ = timeout_ns_;
  accepted.peer = Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len, type_);
  accepted.socket.remember_peer(accepted.peer);
  return accepted;
}

Socket::Accepted Socket::accept() {
  return unwrap(accept(std::nothrow), "accept", [&] { return std::string(local_text()); });
}

Result<void> Socket::connect(const Address& address, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (::connect(fd_, address.native(), address.native_size()) == 0) {
    remember_peer(address);
    return {};
  }
  int error = errno;
  // A connect that was interrupted, or is in progress on a non-blocking fd, goes on in the
  // kernel; calling connect again would fail with EALREADY, so wait for it to finish instead.
  if (error == EINPROGRESS && timeout_ns_ == 0) return detail::last_error();
  if (error != EINPROGRESS && error != EINTR) return std::error_code(error, std::system_category());
  detail::Waiter waiter(timeout_ns_ < 0 ? -1 : timeout_ns_);
  if (auto ec = waiter.wait(fd_, POLLOUT)) return ec;
  return finish_connect(address, std::nothrow);
}

Result<void> Socket::finish_connect(const Address& address, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  int so_error = 0;
  ::socklen_t len = sizeof so_error;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0) return detail::last_error();
  if (so_error != 0) return std::error_code(so_error, std::system_category());
  remember_peer(address);
  return {};
}

void Socket::connect(const Address& address) {
  unwrap(connect(address, std::nothrow), "connect", [&] {
    return std::string(fd_ < 0 ? local_text() : address.with_type(type_).to_string());
  });
}

Result<std::size_t> Socket::send(std::string_view data, std::nothrow_t, int flags) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  detail::Waiter waiter(timeout_ns_);
  return detail::retry_io(fd_, POLLOUT, waiter, [&] {
    return ::send(fd_, data.data(), data.size(), flags | MSG_NOSIGNAL);
  });
}

std::size_t Socket::send_slow(std::string_view data, int flags, int failed_with) {
  if (failed_with != 0 && !is_retryable(failed_with)) {
    throw Error(std::error_code(failed_with, std::system_category()), "send", peer_text());
  }
  return unwrap(send(data, std::nothrow, flags), "send", [&] { return peer_text(); });
}

Result<void> Socket::send_all(std::string_view data, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  detail::Waiter waiter(timeout_ns_);
  while (!data.empty()) {
    auto n = detail::retry_io(fd_, POLLOUT, waiter,
                              [&] { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL); });
    if (!n) return n.error();
    data.remove_prefix(*n);
  }
  return {};
}

void Socket::send_all(std::string_view data) {
  unwrap(send_all(data, std::nothrow), "send_all", [&] { return std::string(peer_text()); });
}

Result<std::size_t> Socket::recv(std::span<char> buffer, std::nothrow_t, int flags) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  detail::Waiter waiter(timeout_ns_);
  return detail::retry_io(fd_, POLLIN, waiter,
                          [&] { return ::recv(fd_, buffer.data(), buffer.size(), flags); });
}

std::size_t Socket::recv_slow(std::span<char> buffer, int flags, int failed_with) {
  if (failed_with != 0 && !is_retryable(failed_with)) {
    throw Error(std::error_code(failed_with, std::system_category()), "recv", peer_text());
  }
  return unwrap(recv(buffer, std::nothrow, flags), "recv", [&] { return peer_text(); });
}

Result<std::string> Socket::recv(std::size_t max_bytes, std::nothrow_t, int flags) noexcept {
  std::string data;
  try {
    data.resize(max_bytes);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  auto n = recv(std::span<char>(data), std::nothrow, flags);
  if (!n) return n.error();
  data.resize(*n);
  return data;
}

std::string Socket::recv(std::size_t max_bytes, int flags) {
  return unwrap(recv(max_bytes, std::nothrow, flags), "recv",
                [&] { return std::string(peer_text()); });
}

Result<std::size_t> Socket::sendto(std::string_view data, const Address& to,
                                   std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  detail::Waiter waiter(timeout_ns_);
  return detail::retry_io(fd_, POLLOUT, waiter, [&] {
    return ::sendto(fd_, data.data(), data.size(), MSG_NOSIGNAL, to.native(), to.native_size());
  });
}

std::size_t Socket::sendto(std::string_view data, const Address& to) {
  return unwrap(sendto(data, to, std::nothrow), "sendto",
                [&] { return std::string(to.with_type(type_).to_string()); });
}

Result<Socket::Received> Socket::recvfrom(std::span<char> buffer, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  ::sockaddr_storage ss{};
  ::socklen_t len = 0;
  // MSG_TRUNC makes a datagram socket return the datagram's real length, which tells us
  // whether it was cut; on a stream socket it would discard data instead.
  const int flags = type_ == Type::dgram ? MSG_TRUNC : 0;
  detail::Waiter waiter(timeout_ns_);
  auto n = detail::retry_io(fd_, POLLIN, waiter, [&] {
    len = sizeof ss;
    return ::recvfrom(fd_, buffer.data(), buffer.size(), flags, reinterpret_cast<::sockaddr*>(&ss),
                      &len);
  });
  if (!n) return n.error();
  Received received;
  received.size = std::min(*n, buffer.size());
  received.truncated = *n > buffer.size();
  received.from = Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len, type_);
  return received;
}

Socket::Received Socket::recvfrom(std::span<char> buffer) {
  return unwrap(recvfrom(buffer, std::nothrow), "recvfrom",
                [&] { return std::string(local_text()); });
}

Result<Socket::Datagram> Socket::recvfrom(std::size_t max_bytes, std::nothrow_t) noexcept {
  Datagram datagram;
  try {
    datagram.data.resize(max_bytes);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  auto received = recvfrom(std::span<char>(datagram.data), std::nothrow);
  if (!received) return received.error();
  datagram.data.resize(received->size);
  datagram.from = received->from;
  return datagram;
}

Socket::Datagram Socket::recvfrom(std::size_t max_bytes) {
  return unwrap(recvfrom(max_bytes, std::nothrow), "recvfrom",
                [&] { return std::string(local_text()); });
}

Result<void> Socket::shutdown(Shutdown how, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (::shutdown(fd_, static_cast<int>(how)) < 0) return detail::last_error();
  return {};
}

void Socket::shutdown(Shutdown how) {
  unwrap(shutdown(how, std::nothrow), "shutdown", [&] { return std::string(peer_text()); });
}

Result<Address> Socket::local_address(std::nothrow_t) const noexcept {
  if (fd_ < 0) return errc::socket_closed;
  ::sockaddr_storage ss{};
  ::socklen_t len = sizeof ss;
  if (::getsockname(fd_, reinterpret_cast<::sockaddr*>(&ss), &len) < 0) return detail::last_error();
  return Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len, type_);
}

Address Socket::local_address() const {
  return unwrap(local_address(std::nothrow), "getsockname", [&] {
    return std::string(fd_ < 0 ? "(closed socket)" : "fd " + std::to_string(fd_));
  });
}

Result<Address> Socket::peer_address(std::nothrow_t) const noexcept {
  if (fd_ < 0) return errc::socket_closed;
  ::sockaddr_storage ss{};
  ::socklen_t len = sizeof ss;
  if (::getpeername(fd_, reinterpret_cast<::sockaddr*>(&ss), &len) < 0) {
    if (peer_size_ != 0) return remembered_peer();  // the kernel forgot it after a reset
    return detail::last_error();
  }
  return Address::from_sockaddr(reinterpret_cast<::sockaddr*>(&ss), len, type_);
}

Address Socket::peer_address() const {
  return unwrap(peer_address(std::nothrow), "getpeername",
                [&] { return std::string(local_text()); });
}

Result<void> Socket::set_timeout(Timeout timeout, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (timeout && timeout->count() < 0) return std::make_error_code(std::errc::invalid_argument);
  if (auto ec = set_nonblocking(fd_, timeout.has_value())) return ec;
  timeout_ns_ = timeout ? timeout->count() : -1;
  return {};
}

void Socket::set_timeout(Timeout timeout) {
  unwrap(set_timeout(timeout, std::nothrow), "set_timeout",
         [&] { return std::string(local_text()); });
}

Timeout Socket::timeout() const noexcept {
  if (timeout_ns_ < 0) return std::nullopt;
  return std::chrono::nanoseconds(timeout_ns_);
}

Result<void> Socket::set_raw_option(int level, int name, const void* value,
                                    ::socklen_t size) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (::setsockopt(fd_, level, name, value, size) < 0) return detail::last_error();
  return {};
}

void Socket::get_option_exactly(int level, int name, std::span<std::byte> buffer) const {
  const std::string operation = "getsockopt(" + option_text(level, name) + ")";
  auto got = get_option(level, name, buffer, std::nothrow);
  if (!got) throw Error(got.error(), operation, local_text());
  const std::size_t wanted = buffer.size() - 1;
  if (*got != wanted) {
    throw Error(make_error_code(errc::option_size_mismatch), operation, local_text(),
                "the kernel's value has " +
                    (*got > wanted ? "more than " + std::to_string(wanted) : std::to_string(*got)) +
                    " bytes, the type asked for " + std::to_string(wanted));
  }
}

Result<void> Socket::set_option(int level, int name, std::span<const std::byte> value,
                                std::nothrow_t) noexcept {
  return set_raw_option(level, name, value.data(), static_cast<::socklen_t>(value.size()));
}

void Socket::set_option(int level, int name, std::span<const std::byte> value) {
  unwrap(set_option(level, name, value, std::nothrow),
         "setsockopt(" + option_text(level, name) + ")", [&] { return local_text(); });
}

Result<std::size_t> Socket::get_option(int level, int name, std::span<std::byte> buffer,
                                       std::nothrow_t) const noexcept {
  if (fd_ < 0) return errc::socket_closed;
  ::socklen_t len = static_cast<::socklen_t>(buffer.size());
  if (::getsockopt(fd_, level, name, buffer.data(), &len) < 0) return detail::last_error();
  // Some options report the length they would need rather than what fit; never claim more
  // bytes than the buffer holds.
  return std::min<std::size_t>(len, buffer.size());
}

std::size_t Socket::get_option(int level, int name, std::span<std::byte> buffer) const {
  return unwrap(get_option(level, name, buffer, std::nothrow),
                "getsockopt(" + option_text(level, name) + ")", [&] { return local_text(); });
}

Result<void> Socket::set_keepalive(bool on, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (!is_tcp(*this)) return std::make_error_code(std::errc::wrong_protocol_type);
  int value = on ? 1 : 0;
  return set_raw_option(SOL_SOCKET, SO_KEEPALIVE, &value, sizeof value);
}

void Socket::set_keepalive(bool on) {
  if (fd_ >= 0 && !is_tcp(*this)) {
    throw Error(std::make_error_code(std::errc::wrong_protocol_type), "set_keepalive", local_text(),
                "keepalive needs a TCP socket");
  }
  unwrap(set_keepalive(on, std::nothrow), "set_keepalive", [&] { return local_text(); });
}

Result<void> Socket::set_keepalive(const KeepAlive& settings, std::nothrow_t) noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (!is_tcp(*this)) return std::make_error_code(std::errc::wrong_protocol_type);
  if (keepalive_problem(settings).field != nullptr) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  const int values[] = {static_cast<int>(settings.idle / std::chrono::seconds(1)),
                        static_cast<int>(settings.interval / std::chrono::seconds(1)),
                        settings.count, 1};
  const int names[][2] = {{IPPROTO_TCP, TCP_KEEPIDLE},
                          {IPPROTO_TCP, TCP_KEEPINTVL},
                          {IPPROTO_TCP, TCP_KEEPCNT},
                          // Last, so that the first probe is timed by the new idle.
                          {SOL_SOCKET, SO_KEEPALIVE}};
  for (int i = 0; i < 4; ++i) {
    if (auto r = set_raw_option(names[i][0], names[i][1], &values[i], sizeof(int)); !r) return r;
  }
  return {};
}

void Socket::set_keepalive(const KeepAlive& settings) {
  if (fd_ >= 0 && !is_tcp(*this)) {
    throw Error(std::make_error_code(std::errc::wrong_protocol_type), "set_keepalive", local_text(),
                "keepalive needs a TCP socket");
  }
  if (auto problem = keepalive_problem(settings); problem.field != nullptr) {
    const std::string_view field = problem.field;
    const std::string got = field == "idle"       ? duration_text(settings.idle)
                            : field == "interval" ? duration_text(settings.interval)
                                                  : std::to_string(settings.count);
    throw Error(
        std::make_error_code(std::errc::invalid_argument), "set_keepalive", local_text(),
        "keepalive " + std::string(field) + " must be " + problem.rule + " (got " + got + ")");
  }
  unwrap(set_keepalive(settings, std::nothrow), "set_keepalive", [&] { return local_text(); });
}

Result<std::optional<KeepAlive>> Socket::keepalive(std::nothrow_t) const noexcept {
  if (fd_ < 0) return errc::socket_closed;
  if (!is_tcp(*this)) return std::make_error_code(std::errc::wrong_protocol_type);
  auto on = get_option<int>(SOL_SOCKET, SO_KEEPALIVE, std::nothrow);
  if (!on) return on.error();
  if (*on == 0) return std::optional<KeepAlive>();
  auto idle = get_option<int>(IPPROTO_TCP, TCP_KEEPIDLE, std::nothrow);
  if (!idle) return idle.error();
  auto interval = get_option<int>(IPPROTO_TCP, TCP_KEEPINTVL, std::nothrow);
  if (!interval) return interval.error();
  auto count = get_option<int>(IPPROTO_TCP, TCP_KEEPCNT, std::nothrow);
  if (!count) return count.error();
  return std::optional<KeepAlive>(
      KeepAlive{std::chrono::seconds(*idle), std::chrono::seconds(*interval), *count});
}

std::optional<KeepAlive> Socket::keepalive() const {
  if (fd_ >= 0 && !is_tcp(*this)) {
    throw Error(std::make_error_code(std::errc::wrong_protocol_type), "keepalive", local_text(),
                "keepalive needs a TCP socket");
  }
  return unwrap(keepalive(std::nothrow), "keepalive", [&] { return local_text(); });
}

Result<void> Socket::set_option(option::Flag option, bool on, std::nothrow_t) noexcept {
  int value = on ? 1 : 0;
  return set_raw_option(option.level, option.name, &value, sizeof value);
}

void Socket::set_option(option::Flag option, bool on) {
  unwrap(set_option(option, on, std::nothrow), (std::string("set_option ") + option.label),
         [&] { return std::string(local_text()); });
}

Result<bool> Socket::get_option(option::Flag option, std::nothrow_t) const noexcept {
  auto value = get_option<int>(option.level, option.name, std::nothrow);
  if (!value) return value.error();
  return *value != 0;
}

bool Socket::get_option(option::Flag option) const {
  return unwrap(get_option(option, std::nothrow), (std::string("get_option ") + option.label),
                [&] { return std::string(local_text()); });
}

Result<void> Socket::set_option(option::Size option, int bytes, std::nothrow_t) noexcept {
  return set_raw_option(option.level, option.name, &bytes, sizeof bytes);
}

void Socket::set_option(option::Size option, int bytes) {
  unwrap(set_option(option, bytes, std::nothrow), (std::string("set_option ") + option.label),
         [&] { return std::string(local_text()); });
}

Result<int> Socket::get_option(option::Size option, std::nothrow_t) const noexcept {
  return get_option<int>(option.level, option.name, std::nothrow);
}

int Socket::get_option(option::Size option) const {
  return unwrap(get_option(option, std::nothrow), (std::string("get_option ") + option.label),
                [&] { return std::string(local_text()); });
}

Result<void> Socket::set_option(option::Linger, std::optional<std::chrono::seconds> linger,
                                std::nothrow_t) noexcept {
  ::linger value{};
  value.l_onoff = linger.has_value() ? 1 : 0;
  value.l_linger = linger ? static_cast<int>(std::max<std::int64_t>(0, linger->count())) : 0;
  return set_raw_option(SOL_SOCKET, SO_LINGER, &value, sizeof value);
}

void Socket::set_option(option::Linger, std::optional<std::chrono::seconds> linger) {
  unwrap(set_option(option::linger, linger, std::nothrow), "set_option linger",
         [&] { return std::string(local_text()); });
}

std::optional<std::chrono::seconds> Socket::get_option(option::Linger) const {
  const ::linger value = unwrap(get_option<::linger>(SOL_SOCKET, SO_LINGER, std::nothrow),
                                "get_option linger", [&] { return std::string(local_text()); });
  if (!value.l_onoff) return std::nullopt;
  return std::chrono::seconds(value.l_linger);
}

Stream Socket::makefile() const {
  if (fd_ < 0) throw Error(errc::socket_closed, "makefile", "");
  return Stream(fd_, timeout());
}

}  // namespace wire
