// The flags `wire connect` and `wire listen` share with nc, and what they turn into.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

#include "commands.hpp"
#include "wire/address.hpp"
#include "wire/error.hpp"
#include "wire/relay.hpp"

namespace wire::cli {

struct NetcatFlags {
  bool verbose = false;
  std::optional<double> wait;  // -w: connect timeout and idle timeout
  std::optional<double> quit;  // -q: quit this long after stdin ends
  bool crlf = false;
  bool ipv4 = false;
  bool ipv6 = false;
};

inline void add_netcat_flags(CLI::App* sub, NetcatFlags& flags, const char* wait_help) {
  sub->add_flag("-v,--verbose", flags.verbose,
                "say on stderr who connected or sent, and from where");
  sub->add_option("-w,--timeout", flags.wait, wait_help)->check(seconds_option(false));
  sub->add_option("-q,--quit-after", flags.quit,
                  "after stdin ends, quit SECONDS later (0: at once) instead of waiting for "
                  "the peer")
      ->check(seconds_option(true));
  sub->add_flag("-C,--crlf", flags.crlf,
                "send CRLF as line ending: each LF of stdin not after a CR goes as CR LF");
  auto* v4 = sub->add_flag("-4", flags.ipv4, "IPv4 addresses only");
  auto* v6 = sub->add_flag("-6", flags.ipv6, "IPv6 addresses only");
  v4->excludes(v6);
}

inline Family family(const NetcatFlags& flags) {
  return flags.ipv4 ? Family::inet : flags.ipv6 ? Family::inet6 : Family::unspecified;
}

inline RelayOptions relay_options(const NetcatFlags& flags) {
  RelayOptions options;
  if (flags.wait) options.idle_timeout = seconds_duration(*flags.wait);
  if (flags.quit) options.quit_after_input = seconds_duration(*flags.quit);
  options.crlf = flags.crlf;
  return options;
}

// A closed stdin, stdout or stderr (`wire connect ... <&-`) would hand its number to the
// next socket, and the relay would read or write the socket as if it were the terminal.
// /dev/null takes the place: a closed stdin reads as empty input.
inline void fill_closed_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0) continue;
    int null = ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
}

inline std::string seconds_text(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%g s", s);
  return text;
}

// One line on stderr. Control bytes are shown as \xNN: the text holds names peers chose
// (a Unix peer's abstract name may carry ESC, newline, NUL to forge a "wire: ..." line).
inline void say(const std::string& text) {
  std::fprintf(stderr, "wire: %s\n", detail::printable(text).c_str());
}

}  // namespace wire::cli
