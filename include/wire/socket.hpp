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
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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
}  // namespace option

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
  Result<void> get_raw_option(int level, int name, void* value, ::socklen_t size) const noexcept;

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
