// --control and --takeover for the serving commands (serve, echo): restart without dropping
// a connection. The work is libwire's (wire/handoff.hpp); this parses and prints.
#pragma once

#include <signal.h>

#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "commands.hpp"
#include "wire/address.hpp"
#include "wire/handoff.hpp"
#include "wire/server.hpp"

namespace wire::cli {

struct HandoffFlags {
  std::string control;      // --control PATH
  std::string takeover;     // --takeover [PATH]
  double drain_grace = 60;  // --drain-grace SECONDS
  CLI::Option* control_option = nullptr;
  CLI::Option* takeover_option = nullptr;
};

inline void add_handoff_flags(CLI::App* sub, HandoffFlags& flags) {
  flags.control_option =
      sub->add_option(
             "--control", flags.control,
             "the Unix control socket a successor takes the listeners over from (made 0600 in a "
             "private 0700 folder). Default: one per address in $XDG_RUNTIME_DIR/wire or "
             "/tmp/wire-UID; none for port 0 unless given. kill -USR2 PID restarts through it")
          ->type_name("PATH");
  flags.takeover_option =
      sub->add_option("--takeover", flags.takeover,
                      "take the listening sockets over from the server running with this "
                      "control socket (default: the one for this address), serve them, and "
                      "let it finish its connections and exit: a restart without dropping one")
          ->expected(0, 1)
          ->type_name("[PATH]");
  sub->add_option("--drain-grace", flags.drain_grace,
                  "seconds the open connections get to finish once a successor took over "
                  "(default 60; a second SIGTERM ends them at once)")
      ->check(seconds_option(false));
}

// Inherited sockets (socket activation) are restarted by systemd, which holds them: a control
// socket or a takeover would be silently dropped, so they are refused. SIGUSR2, which would
// end the server, is ignored (it also is for a datagram server).
inline constexpr const char* inherited_handoff_refusal =
    "inherited sockets are not handed over: systemd holds them across a restart";

inline void no_handoff_for(const HandoffFlags& flags, const std::string& why,
                           ServeOptions& options) {
  for (CLI::Option* option : {flags.control_option, flags.takeover_option}) {
    if (option->count() > 0) throw CLI::ValidationError(option->get_name(), why);
  }
  options.restart_signal = SIGUSR2;
}

// The control path for `address`: --control, or the default when the port is known.
inline std::optional<std::string> control_path_for(const HandoffFlags& flags,
                                                   const Address& address) {
  if (flags.control_option->count() > 0) return flags.control;
  if (address.family() != Family::local && address.port() == 0) return std::nullopt;
  if (address.family() == Family::local && address.path().empty()) return std::nullopt;
  return default_control_path(address);
}

// Serves `address`, or takes it over (--takeover, or WIRE_HANDOFF from a restarting
// predecessor), with a control socket successors can reach, SIGUSR2 restarting through it.
// Handoff events are printed on stderr as "wire: ..." lines.
inline int serve_handing_over(const HandoffFlags& flags, const std::string& address,
                              ConnectionHandler handler, ServeOptions options) {
  const Address where = resolve(address).front();
  std::optional<std::string> takeover_path = handoff_path_from_environment();
  if (!takeover_path && flags.takeover_option->count() > 0) {
    if (!flags.takeover.empty()) {
      takeover_path = flags.takeover;
    } else if (auto derived = control_path_for(flags, where)) {
      takeover_path = *derived;
    } else {
      throw CLI::ValidationError("--takeover",
                                 "with port 0 there is no default control socket: give "
                                 "--takeover PATH");
    }
  }
  // The control socket: --control; else the path --takeover named (the successor takes it
  // over, so the next one finds it there); else the default, which is only a convenience: a
  // folder that is not private or a path too long must not keep the server from serving.
  if (flags.control_option->count() > 0) {
    options.control = flags.control;
  } else if (flags.takeover_option->count() > 0 && !flags.takeover.empty()) {
    options.control = flags.takeover;
  } else if (auto control = control_path_for(flags, where)) {
    options.control = *control;
    options.control_optional = true;
  }
  options.restart_signal = SIGUSR2;  // ignored by the library when there is no control socket
  options.drain_grace = seconds_duration(flags.drain_grace);
  auto log = std::make_shared<std::mutex>();
  options.on_handoff = [log](const std::string& line) {
    std::lock_guard lock(*log);
    std::fprintf(stderr, "wire: %s\n", detail::printable(line).c_str());
  };
  if (!takeover_path) return serve(address, std::move(handler), std::move(options));

  Takeover takeover = take_over(*takeover_path);
  // Its sockets must be the ones asked for: a successor started for 8001 must not serve 8000.
  const Address given = takeover.listeners.front().local_address();
  const bool fixed = where.family() == Family::local ? !where.path().empty() : where.port() != 0;
  if (fixed && given != where) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "take over", *takeover_path,
                "that server listens on " + given.to_string() + ", not " + where.to_string() +
                    " (it keeps serving)");
  }
  if (options.control.empty()) options.control = *takeover_path;
  return serve(std::move(takeover), std::move(handler), std::move(options));
}

}  // namespace wire::cli
