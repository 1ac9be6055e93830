#include "socket_state.hpp"

#include <cctype>
#include <iterator>
#include <utility>

namespace wire::diag::internal {
namespace {

struct StateWords {
  unsigned code;
  std::string_view printed;  // what ss prints
  std::string_view alias;    // what ss's `state` filter calls it, when that differs
};

constexpr StateWords words[] = {
    {tcp_established, "ESTAB", "established"},
    {tcp_syn_sent, "SYN-SENT", ""},
    {tcp_syn_recv, "SYN-RECV", ""},
    {tcp_fin_wait1, "FIN-WAIT-1", ""},
    {tcp_fin_wait2, "FIN-WAIT-2", ""},
    {tcp_time_wait, "TIME-WAIT", ""},
    {tcp_close, "UNCONN", "closed"},
    {tcp_close_wait, "CLOSE-WAIT", ""},
    {tcp_last_ack, "LAST-ACK", ""},
    {tcp_listen, "LISTEN", "listening"},
    {tcp_closing, "CLOSING", ""},
};

bool same_word(std::string_view typed, std::string_view word) {
  if (typed.size() != word.size()) return false;
  for (std::size_t i = 0; i < typed.size(); ++i) {
    char c = static_cast<char>(std::toupper(static_cast<unsigned char>(typed[i])));
    if (c == '_') c = '-';
    if (c != static_cast<char>(std::toupper(static_cast<unsigned char>(word[i])))) return false;
  }
  return true;
}

}  // namespace

std::string_view state_name(unsigned code) noexcept {
  if (code == tcp_new_syn_recv) return "SYN-RECV";
  for (const auto& w : words) {
    if (w.code == code) return w.printed;
  }
  return "UNKNOWN";
}

std::optional<unsigned> parse_state(std::string_view name) {
  for (const auto& w : words) {
    if (same_word(name, w.printed) || (!w.alias.empty() && same_word(name, w.alias))) {
      return w.code;
    }
  }
  return std::nullopt;
}

std::optional<std::uint32_t> parse_states(std::string_view name) {
  if (const auto code = parse_state(name)) return state_bit(*code);
  std::uint32_t every = 0;
  for (const auto& w : words) every |= state_bit(w.code);
  const std::uint32_t bucket = state_bit(tcp_syn_recv) | state_bit(tcp_time_wait);
  const std::uint32_t connected = every & ~(state_bit(tcp_listen) | state_bit(tcp_close));
  const std::pair<std::string_view, std::uint32_t> groups[] = {
      {"all", every},
      {"connected", connected},
      {"synchronized", connected & ~state_bit(tcp_syn_sent)},
      {"bucket", bucket},
      {"big", every & ~bucket},
  };
  for (const auto& [group, mask] : groups) {
    if (same_word(name, group)) return mask;
  }
  return std::nullopt;
}

std::string state_names() {
  std::string names;
  for (const auto& w : words) {
    if (!names.empty()) names += ", ";
    names += w.printed;
    if (!w.alias.empty()) names += " (" + std::string(w.alias) + ")";
  }
  return names + "; or ss's groups all, connected, synchronized, bucket, big";
}

}  // namespace wire::diag::internal
