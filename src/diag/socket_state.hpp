// Socket states as numbers and as ss spells them: one table for both backends (sock_diag
// reports the kernel's codes, /proc/net/* prints them in hex) and for the state filter.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wire::diag::internal {

// include/net/tcp_states.h. UDP and Unix sockets use the same codes (ESTABLISHED when
// connected, CLOSE when not, LISTEN for a listening Unix socket).
enum TcpState : unsigned {
  tcp_established = 1,
  tcp_syn_sent = 2,
  tcp_syn_recv = 3,
  tcp_fin_wait1 = 4,
  tcp_fin_wait2 = 5,
  tcp_time_wait = 6,
  tcp_close = 7,
  tcp_close_wait = 8,
  tcp_last_ack = 9,
  tcp_listen = 10,
  tcp_closing = 11,
  tcp_new_syn_recv = 12,  // a request socket: sock_diag reports it as SYN-RECV
};

inline constexpr std::uint32_t all_states = ~std::uint32_t{0};

constexpr std::uint32_t state_bit(unsigned code) {
  return code < 32 ? std::uint32_t{1} << code : 0;
}

// "ESTAB", "CLOSE-WAIT", "UNCONN" (for CLOSE)...; "UNKNOWN" for a code ss has no word for.
std::string_view state_name(unsigned code) noexcept;

// A state named as ss prints it or as its filter takes it, in any case, '_' or '-':
// "ESTAB", "established", "close_wait", "listening", "closed"... nullopt when unknown.
std::optional<unsigned> parse_state(std::string_view name);

// A state or one of ss's groups of them, as a mask of state_bit()s: all, connected (all but
// LISTEN and UNCONN), synchronized (connected but SYN-SENT), bucket (SYN-RECV, TIME-WAIT),
// big (all but bucket). nullopt when unknown.
std::optional<std::uint32_t> parse_states(std::string_view name);

// The names parse_state accepts, for an error message: "ESTAB (established), SYN-SENT, ..."
std::string state_names();

}  // namespace wire::diag::internal
