// wire/socket.hpp — Socket, the sole owner of one socket file descriptor.
//
// Reads like Python's socket module:
//   wire::Socket server(wire::Family::inet, wire::Type::stream);
//   server.bind(wire::Address::parse("127.0.0.1:8080"));
//   server.listen();
//   auto [conn, peer] = server.accept();
//   std::string data = conn.recv(1024);      // "" means the peer closed
//   if (data.empty()) conn.close();
//
// Ownership: a Socket owns its fd from creation (or adopt) until close(), detach() or its
// destructor. It is move-only. Every fd is opened close-on-exec. After close() or detach()
// every call fails with errc::socket_closed; the old fd number is never touched again.
//
// Errors: each call throws wire::Error ("recv tcp://127.0.0.1:5000: Connection reset by peer");
// the overload taking std::nothrow returns Result<T> instead. No error state is kept in the
// object, so one thread may read while another writes.
//
// Timeouts follow Python's settimeout(): std::nullopt blocks, zero is non-blocking (calls that
// would block fail with EAGAIN), a positive duration makes each blocking call fail with
// errc::timed_out after it. send_all spends one deadline on the whole buffer.
//
// Options: the common ones by name, any other by level and name with a typed value, like
// Python's setsockopt/getsockopt (docs/design/socket-options.md says why both):
//   conn.set_option(wire::option::tcp_nodelay, true);
//   conn.set_option(IPPROTO_IP, IP_TOS, 0x10);
//   int tos = conn.get_option<int>(IPPROTO_IP, IP_TOS);
//   conn.set_keepalive(wire::KeepAlive{.idle = 60s, .interval = 10s, .count = 5});
// Multicast helpers for datagram sockets are in wire/multicast.hpp.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <bit>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "wire/address.hpp"
#include "wire/error.hpp"
#include "wire/stream.hpp"

namespace wire {

using Timeout = std::optional<std::chrono::nanoseconds>;

enum class Shutdown { read = SHUT_RD, write = SHUT_WR, both = SHUT_RDWR };

// Socket options by name: sock.set_option(wire::option::tcp_nodelay, true).
namespace option {
struct Flag {  // a boolean option
  int level;
  int name;
  const char* label;
};
struct Size {  // an integer option (buffer sizes; the kernel reports double what was set)
  int level;
  int name;
  const char* label;
};
struct Linger {};  // SO_LINGER: nullopt = off; 0 s = reset the connection on close

inline constexpr Flag reuse_address{SOL_SOCKET, SO_REUSEADDR, "reuse_address"};
inline constexpr Flag reuse_port{SOL_SOCKET, SO_REUSEPORT, "reuse_port"};
inline constexpr Flag keepalive{SOL_SOCKET, SO_KEEPALIVE, "keepalive"};
inline constexpr Flag broadcast{SOL_SOCKET, SO_BROADCAST, "broadcast"};
inline constexpr Flag tcp_nodelay{IPPROTO_TCP, TCP_NODELAY, "tcp_nodelay"};
inline constexpr Flag v6_only{IPPROTO_IPV6, IPV6_V6ONLY, "v6_only"};
inline constexpr Size receive_buffer_size{SOL_SOCKET, SO_RCVBUF, "receive_buffer_size"};
inline constexpr Size send_buffer_size{SOL_SOCKET, SO_SNDBUF, "send_buffer_size"};
inline constexpr Linger linger{};

namespace detail {
template <class T>
inline constexpr bool is_std_array = false;
template <class T, std::size_t N>
inline constexpr bool is_std_array<std::array<T, N>> = true;
}  // namespace detail

// What a raw option value may be: bytes the kernel can copy (int, ::ip_mreqn, ::timeval,
// a char array...). Not a pointer or a view (std::span, std::string_view): their own bytes
// are an address, not the value; pass std::as_bytes(view) to the span overload instead.
// Not bool: the kernel reads boolean options as int and refuses a one-byte bool on most
// of them (EINVAL); pass 1 or 0.
template <class T>
concept RawValue =
    std::is_trivially_copyable_v<T> && !std::is_pointer_v<T> &&
    !std::is_same_v<std::remove_cv_t<T>, bool> &&
    (detail::is_std_array<std::remove_cv_t<T>> || !requires(const T& value) { value.data(); });
}  // namespace option

// TCP keepalive timers (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): after `idle` without
// traffic the kernel sends a probe, then one every `interval`, and resets the connection
// after `count` unanswered probes. The kernel counts whole seconds: a duration that is not
// a whole number of seconds (or not positive) is refused before any syscall.
struct KeepAlive {
  std::chrono::nanoseconds idle;
  std::chrono::nanoseconds interval;
  int count;
  friend bool operator==(const KeepAlive&, const KeepAlive&) = default;
};

class Socket {
 public:
  struct Accepted;  // auto [conn, peer] = server.accept();
  struct Received;
  struct Datagram;

  // A Socket that holds no fd (every call fails with errc::socket_closed).
  Socket() noexcept = default;
  // socket(2) with SOCK_CLOEXEC, like socket.socket(AF_INET, SOCK_STREAM).
  Socket(Family family, Type type, int protocol = 0);
  static Result<Socket> create(Family family, Type type, std::nothrow_t, int protocol = 0) noexcept;
  // Takes ownership of an existing socket fd. On failure (not a socket) the caller still owns fd.
  static Socket adopt(int fd);
  static Result<Socket> adopt(int fd, std::nothrow_t) noexcept;
  // Two connected Unix sockets, like socket.socketpair().
  static std::pair<Socket, Socket> pair(Type type = Type::stream);
  static Result<std::pair<Socket, Socket>> pair(Type type, std::nothrow_t) noexcept;

  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket();

  bool is_open() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return is_open(); }
  // The fd, for select/poll/epoll and debugging. The Socket still owns it.
  int fileno() const;
  // Gives up ownership: the caller must close the returned fd.
  int detach();
  // Closes the fd now (idempotent). close(2) errors are not reported: on Linux the fd is
  // released whatever close returns, and retrying could close someone else's fd.
  void close() noexcept;

  Family family() const noexcept { return family_; }
  Type type() const noexcept { return type_; }

  void bind(const Address& address);
  Result<void> bind(const Address& address, std::nothrow_t) noexcept;
  void listen(int backlog = SOMAXCONN);
  Result<void> listen(int backlog, std::nothrow_t) noexcept;
  // The new connection (close-on-exec, with this socket's timeout) and its peer.
  Accepted accept();
  Result<Accepted> accept(std::nothrow_t) noexcept;
  void connect(const Address& address);
  Result<void> connect(const Address& address, std::nothrow_t) noexcept;
  // Completes a non-blocking connect to `address` once the fd is writable: reports the
  // connect's own error (SO_ERROR), or remembers the peer. For code driving its own selector.
  Result<void> finish_connect(const Address& address, std::nothrow_t) noexcept;

  // May send fewer bytes than given; returns how many. Never raises SIGPIPE.
  std::size_t send(std::string_view data, int flags = 0) {
    // Fast path, inline: a blocking socket whose call succeeds costs exactly the syscall.
    if (timeout_ns_ < 0 && fd_ >= 0) {
      ::ssize_t n = ::send(fd_, data.data(), data.size(), flags | MSG_NOSIGNAL);
      if (n >= 0) return static_cast<std::size_t>(n);
      return send_slow(data, flags, errno);
    }
    return send_slow(data, flags, 0);
  }
  Result<std::size_t> send(std::string_view data, std::nothrow_t, int flags = 0) noexcept;
  // Sends every byte or fails.
  void send_all(std::string_view data);
  Result<void> send_all(std::string_view data, std::nothrow_t) noexcept;
  // Returns the byte count; 0 means the peer closed (for streams).
  std::size_t recv(std::span<char> buffer, int flags = 0) {
    if (timeout_ns_ < 0 && fd_ >= 0) {
      ::ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), flags);
      if (n >= 0) return static_cast<std::size_t>(n);
      return recv_slow(buffer, flags, errno);
    }
    return recv_slow(buffer, flags, 0);
  }
  Result<std::size_t> recv(std::span<char> buffer, std::nothrow_t, int flags = 0) noexcept;
  // Up to max_bytes as a string; "" means the peer closed (Python's b'').
  std::string recv(std::size_t max_bytes, int flags = 0);
  Result<std::string> recv(std::size_t max_bytes, std::nothrow_t, int flags = 0) noexcept;

  std::size_t sendto(std::string_view data, const Address& to);
  Result<std::size_t> sendto(std::string_view data, const Address& to, std::nothrow_t) noexcept;
  // One datagram into buffer; `truncated` when it was longer than the buffer.
  Received recvfrom(std::span<char> buffer);
  Result<Received> recvfrom(std::span<char> buffer, std::nothrow_t) noexcept;
  // auto [data, from] = sock.recvfrom(65536);
  Datagram recvfrom(std::size_t max_bytes);
  Result<Datagram> recvfrom(std::size_t max_bytes, std::nothrow_t) noexcept;

  void shutdown(Shutdown how);
  Result<void> shutdown(Shutdown how, std::nothrow_t) noexcept;

  Address local_address() const;
  Result<Address> local_address(std::nothrow_t) const noexcept;
  // The connected peer (remembered from connect/accept, so it can still be named after a reset).
  Address peer_address() const;
  Result<Address> peer_address(std::nothrow_t) const noexcept;

  // nullopt: blocking; zero: non-blocking; positive: each blocking call fails after it.
  void set_timeout(Timeout timeout);
  Result<void> set_timeout(Timeout timeout, std::nothrow_t) noexcept;
  Timeout timeout() const noexcept;
  // set_blocking(true) is set_timeout(nullopt); set_blocking(false) is set_timeout(0s).
  void set_blocking(bool blocking) {
    set_timeout(blocking ? Timeout{} : Timeout{std::chrono::nanoseconds(0)});
  }

  void set_option(option::Flag option, bool on);
  Result<void> set_option(option::Flag option, bool on, std::nothrow_t) noexcept;
  bool get_option(option::Flag option) const;
  Result<bool> get_option(option::Flag option, std::nothrow_t) const noexcept;
  void set_option(option::Size option, int bytes);
  Result<void> set_option(option::Size option, int bytes, std::nothrow_t) noexcept;
  int get_option(option::Size option) const;
  Result<int> get_option(option::Size option, std::nothrow_t) const noexcept;
  void set_option(option::Linger, std::optional<std::chrono::seconds> linger);
  Result<void> set_option(option::Linger, std::optional<std::chrono::seconds> linger,
                          std::nothrow_t) noexcept;
  std::optional<std::chrono::seconds> get_option(option::Linger) const;

  // Any option, by level and name, with a value of the option's own type:
  //   sock.set_option(IPPROTO_IP, IP_TOS, 0x10);
  //   auto tv = sock.get_option<::timeval>(SOL_SOCKET, SO_RCVTIMEO);
  // Errors name the option: "setsockopt(IPPROTO_IP, IP_TOS) udp://127.0.0.1:5000: ...".
  // A get whose value the kernel reports at another size than sizeof(T) fails with
  // errc::option_size_mismatch: a T half filled would be garbage. The kernel is asked with
  // room for one byte more than T, so that a longer value is caught rather than cut to fit
  // (most options copy min(asked, actual) bytes without a word).
  template <option::RawValue T>
  void set_option(int level, int name, const T& value) {
    set_option(level, name, bytes_of(value));
  }
  template <option::RawValue T>
  Result<void> set_option(int level, int name, const T& value, std::nothrow_t) noexcept {
    return set_option(level, name, bytes_of(value), std::nothrow);
  }
  void set_option(int level, int name, bool value) = delete;  // pass 1 or 0: see RawValue
  template <option::RawValue T>
  T get_option(int level, int name) const {
    std::array<std::byte, sizeof(T) + 1> bytes{};
    get_option_exactly(level, name, bytes);
    return value_of<T>(bytes);
  }
  template <option::RawValue T>
  Result<T> get_option(int level, int name, std::nothrow_t) const noexcept {
    std::array<std::byte, sizeof(T) + 1> bytes{};
    auto size = get_option(level, name, bytes, std::nothrow);
    if (!size) return size.error();
    if (*size != sizeof(T)) return errc::option_size_mismatch;
    return value_of<T>(bytes);
  }
  // Values whose length varies (SO_BINDTODEVICE, TCP_CONGESTION, IP_OPTIONS): set takes the
  // bytes as they are; get fills `buffer` and returns how many bytes the kernel wrote.
  void set_option(int level, int name, std::span<const std::byte> value);
  Result<void> set_option(int level, int name, std::span<const std::byte> value,
                          std::nothrow_t) noexcept;
  std::size_t get_option(int level, int name, std::span<std::byte> buffer) const;
  Result<std::size_t> get_option(int level, int name, std::span<std::byte> buffer,
                                 std::nothrow_t) const noexcept;

  // TCP keepalive. set_keepalive(false) stops the probes; set_keepalive(true) starts them
  // with the timers as they are (the system's net.ipv4.tcp_keepalive_* unless set here).
  // set_keepalive(KeepAlive{...}) sets the three timers, then turns keepalive on.
  // Only for TCP sockets: on any other, or with a bad KeepAlive, fails before any syscall
  // (std::errc::wrong_protocol_type, std::errc::invalid_argument).
  void set_keepalive(bool on);
  Result<void> set_keepalive(bool on, std::nothrow_t) noexcept;
  void set_keepalive(const KeepAlive& settings);
  Result<void> set_keepalive(const KeepAlive& settings, std::nothrow_t) noexcept;
  // The timers when keepalive is on; nullopt when it is off.
  std::optional<KeepAlive> keepalive() const;
  Result<std::optional<KeepAlive>> keepalive(std::nothrow_t) const noexcept;

  // A buffered stream on the same fd (Python's makefile('rwb')). The Socket keeps owning the
  // fd and must outlive the Stream; the Stream starts with this socket's timeout.
  Stream makefile() const;

  // What error messages call this socket: the peer's address; for a peer without a name
  // (an unbound Unix client) or none, "peer of " and the local address; else "fd N"
  // ("(closed socket)" when closed). Never the local address alone, which would read as
  // the peer's.
  std::string describe() const { return peer_text(); }

 private:
  // Everything but the fast path. `failed_with` is the errno the fast path met (0 if it did
  // not run): a real error is reported as is, since repeating the call could lose it
  // (a second recv after ECONNRESET reads EOF); EINTR and EAGAIN go round again.
  std::size_t send_slow(std::string_view data, int flags, int failed_with);
  std::size_t recv_slow(std::span<char> buffer, int flags, int failed_with);
  // How errors name this socket: the peer when known, else "peer of LOCAL".
  std::string peer_text() const;
  std::string local_text() const;
  Result<void> set_raw_option(int level, int name, const void* value, ::socklen_t size) noexcept;
  // For the throwing get_option<T>: fills `buffer` and throws unless the kernel wrote one byte
  // less than it holds (sizeof(T)); the error says both sizes.
  void get_option_exactly(int level, int name, std::span<std::byte> buffer) const;
  template <class T>
  static std::span<const std::byte> bytes_of(const T& value) noexcept {
    return {reinterpret_cast<const std::byte*>(&value), sizeof value};
  }
  template <class T>
  static T value_of(const std::array<std::byte, sizeof(T) + 1>& bytes) noexcept {
    std::array<std::byte, sizeof(T)> exact;
    std::memcpy(exact.data(), bytes.data(), sizeof(T));
    return std::bit_cast<T>(exact);
  }

  int fd_ = -1;
  Family family_ = Family::unspecified;
  Type type_ = Type::stream;
  std::int64_t timeout_ns_ = -1;  // < 0: blocking; 0: non-blocking; > 0: timeout
  // The peer of an IP socket, remembered from connect/accept because the kernel forgets it
  // after a reset (getpeername fails) and errors should still name it. 28 bytes, not a
  // whole Address: every idle connection carries it. Unix peers are not cached (getpeername
  // keeps working for them).
  void remember_peer(const Address& peer) noexcept;
  Address remembered_peer() const noexcept;
  alignas(4) unsigned char peer_bytes_[sizeof(::sockaddr_in6)] = {};
  std::uint8_t peer_size_ = 0;
};

struct Socket::Accepted {
  Socket socket;
  Address peer;
};

struct Socket::Received {
  std::size_t size;
  Address from;
  bool truncated;
};

struct Socket::Datagram {
  std::string data;
  Address from;
};

}  // namespace wire
