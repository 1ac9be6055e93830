#include "wire/relay.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <vector>

#include "wire/selector.hpp"
#include "wire/stream.hpp"

namespace wire {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t chunk = 65536;
constexpr auto never = Clock::time_point::max();
// Datagrams: how long the tail of a read too large for one datagram waits for the next read
// to fill it up. Reads of 64 KiB against 65,507-byte UDP datagrams otherwise leave a 29-byte
// stub each; waiting longer than input takes to come would only delay a pause's last bytes.
constexpr auto datagram_fill_wait = std::chrono::milliseconds(10);

// The largest datagram the kernel takes on one socket, learnt by sending. Each input read
// goes whole until the kernel refuses it (EMSGSIZE, nothing sent); then the family's own
// limit is tried, and if the kernel refuses that too (IP options, a smaller send buffer),
// the size is bisected between the largest taken and the smallest refused. Every send that
// succeeds is a real datagram of the data, so the search loses nothing.
class DatagramSizer {
 public:
  explicit DatagramSizer(const Socket& socket) : socket_(socket) {}

  std::size_t size_for(std::size_t remaining) const { return std::min(remaining, limit_); }
  void taken(std::size_t size) { taken_ = std::max(taken_, size); }
  // The kernel refused `size` bytes; false when nothing smaller is left to try.
  bool refused(std::size_t size) {
    refused_ = std::min(refused_, size);
    if (refused_ <= taken_ + 1) {
      limit_ = taken_;
    } else if (!hinted_) {
      hinted_ = true;
      const std::size_t hint = family_limit();
      limit_ = hint > taken_ && hint < refused_ ? hint : taken_ + (refused_ - taken_) / 2;
    } else {
      limit_ = taken_ + (refused_ - taken_) / 2;
    }
    return limit_ > 0;
  }

 private:
  // What the kernel allows on paths of this family: 65,535 less the IP and UDP headers;
  // for Unix, the send buffer less 32 bytes (unix_dgram_sendmsg). A first guess only.
  std::size_t family_limit() const {
    switch (socket_.family()) {
      case Family::inet:
        return 65535 - 20 - 8;
      case Family::inet6:
        return 65535 - 8;
      case Family::local: {
        auto buffer = socket_.get_option(option::send_buffer_size, std::nothrow);
        return buffer && *buffer > 32 ? static_cast<std::size_t>(*buffer - 32) : 0;
      }
      case Family::unspecified:
        break;
    }
    return 0;
  }

  const Socket& socket_;
  std::size_t limit_ = std::numeric_limits<std::size_t>::max();
  std::size_t taken_ = 0;
  std::size_t refused_ = std::numeric_limits<std::size_t>::max();
  bool hinted_ = false;
};

// A Unix datagram sender has no name unless it bound one: there is no replying to it.
bool can_answer(const Address& sender) {
  return !(sender.family() == Family::local && !sender.is_abstract() && sender.path().empty());
}

// LF becomes CR LF unless a CR is there already (nc -C does the same), so input that has
// CRLF line endings already is sent unchanged. `after_cr` carries across reads.
void append_crlf(std::string& out, std::string_view in, bool& after_cr) {
  for (char c : in) {
    if (c == '\n' && !after_cr) out += '\r';
    out += c;
    after_cr = c == '\r';
  }
}

}  // namespace

RelayStats relay(Socket& socket, int input_fd, int output_fd, const RelayOptions& options) {
  const bool stream = socket.type() == Type::stream;
  const int sock = socket.fileno();
  if (input_fd == sock || output_fd == sock) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "relay", socket.describe(),
                std::string(input_fd == sock ? "the input" : "the output") + " (fd " +
                    std::to_string(sock) + ") is the socket itself");
  }
  // poll, not epoll: epoll refuses regular files, and stdin may well be one. Not select
  // either: once the peer has half-closed, the socket is watched for errors alone (events
  // 0), so that a reset ends the relay even while the input stays silent.
  auto selector = Selector::create(SelectorKind::poll);
  // A datagram socket with no peer (a listener's) learns where to send from who sends.
  const bool addressed = !stream && !socket.peer_address(std::nothrow);
  std::optional<Address> first_sender, last_sender, send_to;
  // Named now: once the peer has reset, getpeername() no longer knows it.
  const std::string peer = addressed ? socket.local_address().to_string() : socket.describe();
  socket.set_blocking(false);
  Stream output(output_fd);
  RelayStats stats;
  DatagramSizer sizer(socket);

  std::string pending;  // read from input, not yet taken by the socket
  std::size_t pending_from = 0;
  auto drained = [&] { return pending_from == pending.size(); };
  // Datagrams: the pending tail is held for the next read to fill it (see datagram_fill_wait).
  bool holding = false;
  bool send_tail_now = false;          // the wait ran out: the tail goes as it is
  bool input_done_after_tail = false;  // input ended while a tail waited
  auto hold_deadline = never;
  bool input_open = input_fd >= 0;
  // The peer's FIN ends the relay only once our own input is sent too (it may only have
  // half-closed) -- unless a person types the input, who would otherwise wait on us.
  bool peer_done = false;
  const bool interactive_input = input_open && ::isatty(input_fd);
  auto finished = [&] { return stream && peer_done && !input_open && drained(); };
  std::vector<char> buffer(chunk);
  bool after_cr = false;  // the input's last byte so far was CR (for crlf)

  auto last_activity = Clock::now();
  auto linger_deadline = never;  // datagrams, after the input ended
  auto quit_deadline = never;    // nc -q, after the input ended
  auto input_done = [&] {
    if (stream) (void)socket.shutdown(Shutdown::write, std::nothrow);  // fails if peer gone
    if (!stream && options.linger) linger_deadline = Clock::now() + *options.linger;
    if (options.quit_after_input) quit_deadline = Clock::now() + *options.quit_after_input;
  };

  struct Unregister {
    Selector& selector;
    int fd;
    ~Unregister() {
      if (fd >= 0 && selector.is_registered(fd)) (void)selector.unregister(fd, std::nothrow);
    }
  };
  unsigned socket_events = readable;
  selector->register_fd(sock, socket_events);
  Unregister unregister_socket{*selector, sock};
  Unregister unregister_input{*selector, input_fd};
  // Input is watched only while nothing is pending and someone can take it. Unregistered,
  // not events 0: a hung-up pipe would be reported all along, and the loop would spin.
  auto update_interest = [&] {
    const bool want_input = input_open && (drained() || holding) && (!addressed || send_to);
    if (want_input != selector->is_registered(input_fd)) {
      if (want_input) {
        selector->register_fd(input_fd, readable);
      } else {
        selector->unregister(input_fd);
      }
    }
    const unsigned events =
        (peer_done ? 0u : unsigned(readable)) | (drained() || holding ? 0u : writable);
    if (events != socket_events) {
      selector->modify(sock, events);
      socket_events = events;
    }
  };
  if (!input_open) input_done();

  for (;;) {
    update_interest();
    const auto idle_deadline = options.idle_timeout ? last_activity + *options.idle_timeout : never;
    const auto deadline = std::min({linger_deadline, quit_deadline, idle_deadline, hold_deadline});
    std::optional<std::chrono::nanoseconds> timeout;
    if (deadline != never) {
      auto left = deadline - Clock::now();
      if (left <= std::chrono::nanoseconds(0) && deadline == hold_deadline) {
        // No more input came in time: send the tail as it is.
        holding = false;
        send_tail_now = true;
        hold_deadline = never;
        continue;
      }
      if (left <= std::chrono::nanoseconds(0)) {
        output.flush();
        stats.timed_out = deadline == idle_deadline;
        return stats;
      }
      timeout = left;
    }
    for (const Ready& ready : selector->select(timeout)) {
      if (ready.fd == input_fd && input_open) {
        if ((!drained() && !holding) || !selector->is_registered(input_fd)) continue;
        ::ssize_t n = ::read(input_fd, buffer.data(), buffer.size());
        if (n < 0) {
          if (errno == EINTR || errno == EAGAIN) continue;
          throw Error(detail::last_error(), "read", "input");
        }
        last_activity = Clock::now();
        if (n == 0) {
          input_open = false;
          stats.input_ended = true;
          if (holding) {  // the tail goes now; -q and the linger count from then
            holding = false;
            hold_deadline = never;
            input_done_after_tail = true;
            continue;
          }
          input_done();
          if (finished()) return stats;
          continue;
        }
        if (holding) {
          pending.erase(0, pending_from);  // the tail stays, to be filled up
          holding = false;
          hold_deadline = never;
        } else {
          pending.clear();
        }
        send_tail_now = false;
        if (options.crlf) {
          append_crlf(pending, std::string_view(buffer.data(), n), after_cr);
        } else {
          pending.append(buffer.data(), static_cast<std::size_t>(n));
        }
        pending_from = 0;
        continue;  // sent once the socket is writable
      }
      if (ready.fd != sock) continue;

      if ((ready.events & writable) && !drained()) {
        const std::string_view rest = std::string_view(pending).substr(pending_from);
        const std::string_view piece = stream ? rest : rest.substr(0, sizer.size_for(rest.size()));
        // The tail of a read split into full datagrams waits for more input to fill it.
        const bool hold = !stream && input_open && !send_tail_now && pending_from > 0 &&
                          piece.size() == rest.size() &&
                          rest.size() < sizer.size_for(std::numeric_limits<std::size_t>::max());
        if (hold) {
          holding = true;
          hold_deadline = Clock::now() + datagram_fill_wait;
        } else {
          auto sent = addressed ? socket.sendto(piece, *send_to, std::nothrow)
                                : socket.send(piece, std::nothrow);
          if (!sent) {
            const std::error_code error = sent.error();
            if (error == std::errc::resource_unavailable_try_again) {
              // the socket was full after all; wait for room
            } else if (!stream && error == std::errc::message_size) {
              if (!sizer.refused(piece.size())) throw Error(error, "send", peer);
            } else if (!stream && error == std::errc::connection_refused) {
              // An earlier datagram met a closed port (ICMP); this one was not sent: again.
            } else {
              throw Error(error, addressed ? "sendto" : "send",
                          addressed ? send_to->to_string() : peer);
            }
          } else {
            pending_from += *sent;
            stats.sent += *sent;
            if (input_done_after_tail && drained()) {
              input_done_after_tail = false;
              input_done();
            }
            if (!stream) sizer.taken(*sent);
            last_activity = Clock::now();
          }
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
      if (!(ready.events & readable)) continue;

      if (!stream && socket.family() == Family::local) {
        // A Unix datagram may be larger than the buffer (up to the sender's send buffer);
        // its size is asked first, so none is ever cut.
        auto size =
            socket.recv(std::span<char>(buffer.data(), 1), std::nothrow, MSG_PEEK | MSG_TRUNC);
        if (size && *size > buffer.size()) buffer.resize(*size);
      }
      std::size_t got = 0;
      if (addressed) {
        auto datagram = socket.recvfrom(std::span<char>(buffer), std::nothrow);
        if (!datagram) {
          if (datagram.error() == std::errc::resource_unavailable_try_again) continue;
          throw Error(datagram.error(), "recvfrom", peer);
        }
        const Address& from = datagram->from;
        if (!first_sender) first_sender = from;
        if (options.senders == RelayOptions::Senders::first && !(from == *first_sender)) {
          continue;  // as a connected socket would: only the first sender is heard
        }
        if (!last_sender || !(from == *last_sender)) {
          last_sender = from;
          if (options.on_sender) options.on_sender(from);
        }
        if (can_answer(from)) send_to = from;
        got = datagram->size;
      } else {
        auto received = socket.recv(std::span<char>(buffer), std::nothrow);
        if (!received) {
          if (received.error() == std::errc::resource_unavailable_try_again) continue;
          // A datagram peer that is not there yet answers with ICMP: keep listening.
          if (!stream && received.error() == std::errc::connection_refused) continue;
          throw Error(received.error(), "recv", peer);
        }
        got = *received;
      }
      last_activity = Clock::now();
      if (got == 0 && stream) {
        output.flush();
        peer_done = true;
        if (finished() || interactive_input) return stats;
        continue;
      }
      output.write(std::string_view(buffer.data(), got));
      output.flush();
      stats.received += got;
      if (!stream && !input_open && options.linger && linger_deadline != never) {
        linger_deadline = Clock::now() + *options.linger;
      }
    }
    if (finished()) return stats;
  }
}

}  // namespace wire
