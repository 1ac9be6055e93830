// A SocketFilter checked and turned into what both backends select on: protocols, a state
// bitmask (the one sock_diag takes) and a port.
#pragma once

#include <cstdint>
#include <optional>

#include "socket_state.hpp"
#include "wire/diag/sockets.hpp"

namespace wire::diag::internal {

struct SocketQuery {
  bool tcp = true, udp = true, unix_sockets = true;
  std::uint32_t states = all_states;  // bits of TcpState codes
  std::optional<std::uint16_t> port;  // inet only: a port excludes every Unix socket

  bool wants(Protocol protocol) const {
    switch (protocol) {
      case Protocol::tcp:
        return tcp;
      case Protocol::udp:
        return udp;
      default:
        return unix_sockets && !port;
    }
  }
  bool wants_state(unsigned code) const { return (states & state_bit(code)) != 0; }
  bool wants_ports(std::uint16_t local, std::uint16_t peer) const {
    return !port || *port == local || *port == peer;
  }
};

}  // namespace wire::diag::internal
