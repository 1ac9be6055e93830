// wire/process/fd_passing.hpp — hand open fds to another process over a Unix socket
// (SCM_RIGHTS): Python's socket.send_fds / socket.recv_fds.
//
//   // The acceptor: the connection goes to a worker, with one byte saying what it is.
//   auto [conn, peer] = listener.accept();
//   wire::send_fds(to_worker, {conn.fileno()}, "c");
//   conn.close();                                    // the worker holds its own copy now
//
//   // The worker:
//   wire::ReceivedFds got = wire::recv_fds(from_acceptor, 1, 16);
//   if (got.bytes.empty()) return;                   // the acceptor closed: no more work
//   wire::Socket& client = std::get<wire::Socket>(got.fds.at(0));
//   client.send_all("served by the worker\n");
//
//   // In a coroutine, on an AsyncSocket: the same names, awaited.
//   const int fds[] = {conn.fileno()};
//   co_await wire::send_fds(async_to_worker, fds, "c");
//   wire::ReceivedFds got = co_await wire::recv_fds(async_from_acceptor, 1, 16);
//
// What crosses is the open file description itself (the same TCP connection, the same pipe,
// the same file offset), not a number: the receiver gets new fd numbers of its own.
//
// Ownership: send_fds never takes the fds it sends; the caller still owns and closes them.
// Every fd recv_fds receives is close-on-exec (MSG_CMSG_CLOEXEC) and owned by an RAII object
// before the call returns: a Socket when it is a socket wire can drive (stream or datagram,
// read back with SO_TYPE), an OwnedFd for anything else (pipe, file, eventfd, seqpacket...).
// The file description is shared with the sender: its status flags (O_NONBLOCK, hence a
// received Socket's timeout of 0 or none) are the sender's too, and changing them changes both.
// An fd is never left unowned, on any path: a truncated control message (MSG_CTRUNC, more fds
// than max_fds) or a datagram cut short is an error, and every fd that did arrive is closed.
//
// Rules the kernel imposes, checked before the syscall so the error says what is wrong:
//  - A Unix domain socket only (a TCP socket would send the bytes and drop the fds).
//  - At least one byte of data goes with the fds: on a stream socket, fds with no byte to
//    ride on are lost (and a receiver could not tell "fds" from "end of stream").
//  - At most 253 fds per message (SCM_MAX_FD). Sending an fd that is not open fails with EBADF;
//    the error message names the first such fd.
// Never raises SIGPIPE (MSG_NOSIGNAL). The socket's timeout applies as to send/recv.
//
// End of stream: recv_fds returns empty bytes and no fds, like recv's "" (send_fds refuses
// zero bytes, so an empty result cannot be a message).
//
// On a stream socket the bytes are a stream: a message longer than max_bytes is read in
// pieces, its fds arrive with the first piece, and the kernel never merges two messages that
// carry fds into one read. On a datagram socket a message longer than max_bytes is an error.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include "wire/async_socket.hpp"
#include "wire/error.hpp"
#include "wire/owned_fd.hpp"
#include "wire/socket.hpp"

namespace wire {

// SCM_MAX_FD: the kernel refuses more fds than this in one message.
inline constexpr std::size_t max_fds_per_message = 253;

// The ways fd passing fails that are not an errno. Compare: `ec == wire::FdPassingErrc::...`.
enum class FdPassingErrc {
  not_unix_socket = 1,  // the socket is not AF_UNIX
  no_data,              // send_fds with 0 bytes of data
  no_room,              // recv_fds with max_fds or max_bytes 0
  too_many_fds,         // more than max_fds_per_message fds in one send
  fds_truncated,        // more fds arrived than max_fds: all were closed
  datagram_truncated,   // a datagram longer than max_bytes: its fds were closed
};
const std::error_category& fd_passing_category() noexcept;
inline std::error_code make_error_code(FdPassingErrc e) noexcept {
  return {static_cast<int>(e), fd_passing_category()};
}

// One received fd: a Socket if it is a socket wire can drive, else an OwnedFd.
using ReceivedFd = std::variant<Socket, OwnedFd>;

struct ReceivedFds {
  std::string bytes;            // empty (and no fds): the peer closed
  std::vector<ReceivedFd> fds;  // in the order they were sent
};

// The fd number of a received fd (still owned by it).
int fd_number(const ReceivedFd& fd) noexcept;

// Sends `bytes` (at least one) with `fds` attached; every byte is sent (on a stream socket the
// fds ride with the first piece). Blocks or honours the socket's timeout.
void send_fds(Socket& unix_socket, std::span<const int> fds, std::string_view bytes);
Result<void> send_fds(Socket& unix_socket, std::span<const int> fds, std::string_view bytes,
                      std::nothrow_t) noexcept;
// send_fds(sock, {fd}, "c").
inline void send_fds(Socket& unix_socket, std::initializer_list<int> fds, std::string_view bytes) {
  send_fds(unix_socket, std::span<const int>(fds.begin(), fds.size()), bytes);
}
inline Result<void> send_fds(Socket& unix_socket, std::initializer_list<int> fds,
                             std::string_view bytes, std::nothrow_t) noexcept {
  return send_fds(unix_socket, std::span<const int>(fds.begin(), fds.size()), bytes, std::nothrow);
}

// Receives up to `max_bytes` bytes and up to `max_fds` fds (both at least 1; max_fds above
// max_fds_per_message is taken as that). Blocks or honours the socket's timeout.
ReceivedFds recv_fds(Socket& unix_socket, std::size_t max_fds, std::size_t max_bytes);
Result<ReceivedFds> recv_fds(Socket& unix_socket, std::size_t max_fds, std::size_t max_bytes,
                             std::nothrow_t) noexcept;

namespace detail {

// The wire::Error a failed fd-passing call throws: EBADF names the first fd that is not open.
Error fd_passing_error(std::error_code ec, const char* operation, const Socket& socket,
                       std::span<const int> fds);

struct SendFdsOp {
  using Value = std::size_t;  // bytes sent in all
  static constexpr unsigned direction = writable;
  static constexpr const char* name = "send_fds";
  std::span<const int> fds;
  std::string_view data;
  std::size_t sent = 0;  // the fds went with the first piece once this is > 0
  int queued = -1;       // bytes in the kernel's send queue when the idle timer was armed
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  void finish(Value, EventLoop&) noexcept {}
};

struct RecvFdsOp {
  using Value = ReceivedFds;
  static constexpr unsigned direction = readable;
  static constexpr const char* name = "recv_fds";
  std::size_t max_fds;
  std::size_t max_bytes;
  bool checked = false;  // the socket and the limits were found fit on the first attempt
  bool attempt(int fd, AsyncSocket& owner, Result<Value>& result) noexcept;
  Value finish(Value received, EventLoop&) noexcept { return received; }
};

// The throwing awaitable: the non-throwing one, with fd_passing_error's message on failure.
template <class Op>
class ThrowingFdAwaitable {
 public:
  ThrowingFdAwaitable(AsyncSocket& owner, Op op, std::span<const int> fds)
      : owner_(&owner), fds_(fds), inner_(owner, std::move(op)) {}
  bool await_ready() noexcept { return inner_.await_ready(); }
  bool await_suspend(std::coroutine_handle<> h) noexcept { return inner_.await_suspend(h); }
  auto await_resume() {
    auto result = inner_.await_resume();
    if (!result) throw fd_passing_error(result.error(), Op::name, owner_->socket(), fds_);
    if constexpr (!std::is_same_v<decltype(result), Result<void>>) return *std::move(result);
  }

 private:
  AsyncSocket* owner_;
  std::span<const int> fds_;
  IoAwaitable<Op, false> inner_;
};

}  // namespace detail

// co_await send_fds(conn, fds, bytes): waits while the socket's buffer is full. `fds` and
// `bytes` must stay valid until the co_await finishes. There is no {fd} overload here: g++ 12
// cannot keep a braced list's array in a coroutine frame ("array used as initializer"), so
// name it: `const int fds[] = {conn.fileno()}; co_await wire::send_fds(out, fds, "c");`.
inline auto send_fds(AsyncSocket& unix_socket, std::span<const int> fds, std::string_view bytes) {
  return detail::ThrowingFdAwaitable<detail::SendFdsOp>(unix_socket, {fds, bytes}, fds);
}
inline auto send_fds(AsyncSocket& unix_socket, std::span<const int> fds, std::string_view bytes,
                     std::nothrow_t) {
  return detail::IoAwaitable<detail::SendFdsOp, false>(unix_socket, {fds, bytes});
}
// co_await recv_fds(conn, max_fds, max_bytes) -> ReceivedFds.
inline auto recv_fds(AsyncSocket& unix_socket, std::size_t max_fds, std::size_t max_bytes) {
  return detail::ThrowingFdAwaitable<detail::RecvFdsOp>(unix_socket, {max_fds, max_bytes}, {});
}
inline auto recv_fds(AsyncSocket& unix_socket, std::size_t max_fds, std::size_t max_bytes,
                     std::nothrow_t) {
  return detail::IoAwaitable<detail::RecvFdsOp, false>(unix_socket, {max_fds, max_bytes});
}

}  // namespace wire

template <>
struct std::is_error_code_enum<wire::FdPassingErrc> : std::true_type {};
