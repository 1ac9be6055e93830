// Listeners handed to `wire serve` and `wire echo` by socket activation (systemd, or
// systemd-socket-activate): picked with --bind fd:N / fd:NAME, or all of them when the
// command is started under activation with no address.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/socket.hpp"

namespace wire::cli {

struct Inherited {
  std::vector<Socket> listeners;
  std::string summary;  // "socket activation: fd 3 web, fd 4 admin", for the start line
};

// Whether `bind` names an inherited socket rather than an address.
inline bool names_inherited(std::string_view bind) {
  return bind.starts_with("fd:");
}

// Reads the socket activation variables (always: they are then unset, so nothing wire starts
// takes them too) and decides what to serve. `bind` is the address the user gave ("" for
// none); `option` names where it was given, for messages. nullopt: listen on `bind` as
// usual. A usage error (CLI::ValidationError, exit 2) when --bind fd:... names nothing
// inherited, or when an address is given although sockets were inherited (they would be left
// unserved, their clients waiting). Malformed variables are a runtime error (wire::Error).
std::optional<Inherited> inherited_listeners(std::string_view bind, const std::string& option);

}  // namespace wire::cli
