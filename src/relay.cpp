#include "wire/relay.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "wire/selector.hpp"
#include "wire/stream.hpp"

namespace wire {
namespace {
constexpr std::size_t chunk = 65536;
}

RelayStats relay(Socket& socket, int input_fd, int output_fd, const RelayOptions& options) {
  // poll, not epoll: epoll refuses regular files, and stdin may well be one. Not select
  // either: once the peer has half-closed, the socket is watched for errors alone (events
  // 0), so that a reset ends the relay even while the input stays silent.
  auto selector = Selector::create(SelectorKind::poll);
  const bool stream = socket.type() == Type::stream;
  const int sock = socket.fileno();
  // Named now: once the peer has reset, getpeername() no longer knows it.
  const std::string peer = socket.describe();
  socket.set_blocking(false);
  Stream output(output_fd);
  RelayStats stats;

  std::string pending;  // read from input, not yet taken by the socket
  std::size_t pending_from = 0;
  bool input_open = input_fd >= 0;
  bool shutdown_when_drained = false;
  // The peer's FIN ends the relay only once our own input is sent too (it may only have
  // half-closed) -- unless a person types the input, who would otherwise wait on us.
  bool peer_done = false;
  const bool interactive_input = input_open && ::isatty(input_fd);
  auto finished = [&] { return peer_done && !input_open && pending_from == pending.size(); };
  std::vector<char> buffer(chunk);
  auto linger_deadline = std::chrono::steady_clock::time_point::max();

  struct Unregister {
    Selector& selector;
    int fd;
    ~Unregister() {
      if (selector.is_registered(fd)) (void)selector.unregister(fd, std::nothrow);
    }
  };
  selector->register_fd(sock, readable);
  Unregister unregister_socket{*selector, sock};
  if (input_open) selector->register_fd(input_fd, readable);
  Unregister unregister_input{*selector, input_fd};

  auto end_of_input = [&] {
    input_open = false;
    stats.input_ended = true;
    selector->unregister(input_fd);
    if (stream) {
      if (pending_from == pending.size()) {
        (void)socket.shutdown(Shutdown::write, std::nothrow);  // fails only if the peer is gone
      } else {
        shutdown_when_drained = true;
      }
    } else {
      linger_deadline = std::chrono::steady_clock::now() + options.linger;
    }
  };
  // Fails only if the peer is gone already, which the loop below finds out on its own.
  if (!input_open && stream) (void)socket.shutdown(Shutdown::write, std::nothrow);
  if (!input_open && !stream) linger_deadline = std::chrono::steady_clock::now() + options.linger;

  for (;;) {
    std::optional<std::chrono::nanoseconds> timeout;
    if (linger_deadline != std::chrono::steady_clock::time_point::max()) {
      auto left = linger_deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds(0)) return stats;
      timeout = left;
    }
    for (const Ready& ready : selector->select(timeout)) {
      if (ready.fd == input_fd && input_open) {
        ::ssize_t n = ::read(input_fd, buffer.data(), buffer.size());
        if (n < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          throw Error(detail::last_error(), "read", "input");
        }
        if (n == 0) {
          end_of_input();
          if (finished()) return stats;
          continue;
        }
        if (!stream) {
          stats.sent += socket.send(std::string_view(buffer.data(), n));
          continue;
        }
        pending.assign(buffer.data(), n);
        pending_from = 0;
        // Hold input until the socket took this buffer. Unregistered, not events 0: a
        // hung-up pipe would be reported all along, and the loop would spin.
        selector->unregister(input_fd);
        selector->modify(sock, (peer_done ? 0u : unsigned(readable)) | writable);
      } else if (ready.fd == sock) {
        if ((ready.events & writable) && pending_from < pending.size()) {
          auto sent = socket.send(std::string_view(pending).substr(pending_from), std::nothrow);
          if (!sent && sent.error() != std::errc::resource_unavailable_try_again) {
            throw Error(sent.error(), "send", peer);
          }
          if (sent) {
            pending_from += *sent;
            stats.sent += *sent;
          }
          if (pending_from == pending.size()) {
            selector->modify(sock, peer_done ? 0u : unsigned(readable));
            if (input_open) selector->register_fd(input_fd, readable);
            if (shutdown_when_drained) (void)socket.shutdown(Shutdown::write, std::nothrow);
            if (finished()) return stats;
          }
        }
        if ((ready.events & readable) && peer_done) {
          // The socket is watched for errors alone now, so this is one: the peer reset
          // or closed the connection for good, and the input can no longer reach it.
          output.flush();
          int error = 0;
          ::socklen_t length = sizeof error;
          (void)::getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &length);
          if (error == 0) return stats;
          // After the peer's FIN the kernel records a reset as EPIPE; say what happened.
          auto code = error == EPIPE ? std::make_error_code(std::errc::connection_reset)
                                     : std::error_code(error, std::system_category());
          throw Error(code, "send", peer,
                      code.message() + " (after its FIN); the input can no longer be sent");
        }
        if (ready.events & readable) {
          auto got = socket.recv(std::span<char>(buffer), std::nothrow);
          if (!got) {
            if (got.error() == std::errc::resource_unavailable_try_again) continue;
            // A datagram peer that is not there yet answers with ICMP: keep listening.
            if (!stream && got.error() == std::errc::connection_refused) continue;
            throw Error(got.error(), "recv", peer);
          }
          if (*got == 0 && stream) {
            output.flush();
            peer_done = true;
            if (finished() || interactive_input) return stats;
            selector->modify(sock, pending_from < pending.size() ? unsigned(writable) : 0u);
            continue;
          }
          output.write(std::string_view(buffer.data(), *got));
          output.flush();
          stats.received += *got;
          if (!stream && !input_open) {
            linger_deadline = std::chrono::steady_clock::now() + options.linger;
          }
        }
      }
    }
  }
}

}  // namespace wire
