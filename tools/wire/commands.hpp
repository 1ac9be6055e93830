// The wire CLI: each subcommand adds itself to the app and runs on libwire's public API.
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <system_error>

#include "wire/error.hpp"

namespace wire::cli {

// What a subcommand runs once its arguments are parsed; returns the exit code.
using Command = std::function<int()>;

// Every option that takes SECONDS (-w, -q, --linger, --idle-timeout, --timeout...) is checked
// with seconds_option and converted with seconds_duration, so all of them refuse the same
// values the same way: NaN, infinities, negatives, 0 where it means nothing, and more than
// max_seconds (beyond which seconds * 1e9 would overflow the int64 of a nanoseconds count,
// undefined behaviour that turned `-w 1e10` into an instant timeout). A refusal is a
// CLI::ValidationError: exit 2, "--timeout: SECONDS must be ...".
//   sub->add_option("-w,--timeout", wait, "...")->check(seconds_option(false));
//   options.timeout = seconds_duration(wait);
inline constexpr double max_seconds = 1e7;  // about 116 days

inline CLI::Validator seconds_option(bool allow_zero) {
  return CLI::Validator(
      [allow_zero](std::string& text) -> std::string {
        const std::string range = allow_zero ? "from 0 to 10000000" : "above 0, at most 10000000";
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value) ||
            value < 0 || (value == 0 && !allow_zero) || value > max_seconds) {
          return "SECONDS must be a number " + range + ", not '" + wire::detail::printable(text) +
                 "'";
        }
        return {};
      },
      allow_zero ? "SECONDS (0 or more)" : "SECONDS (more than 0)", "seconds");
}

// A value seconds_option accepted, as a duration (clamped, should an unchecked one come).
inline std::chrono::nanoseconds seconds_duration(double seconds) {
  if (!(seconds > 0)) return std::chrono::nanoseconds(0);
  if (seconds > max_seconds) seconds = max_seconds;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9));
}

// Runs `step`, which parses or resolves what the user typed: the library's
// errc::invalid_address (bad address, port, range or source) and std::errc::invalid_argument
// (an option check) are then the user's mistake, a usage error (exit 2), not a runtime one.
template <class Step>
auto as_usage_error(Step&& step) -> decltype(step()) {
  try {
    return step();
  } catch (const std::system_error& e) {
    if (e.code() == std::error_code(wire::errc::invalid_address) ||
        e.code() == std::errc::invalid_argument) {
      throw CLI::ValidationError(e.what());
    }
    throw;
  }
}

// A listing's reader may stop early (`wire sockets | head -1`): then, like ss or ls, the
// listing ends quietly instead of reporting a "Broken pipe" nobody asked about. Returns false
// when the reader is gone (EPIPE: SIGPIPE is ignored by main), true when all was written;
// any other write error (a full disk) is an error naming stdout.
inline bool flush_listing(const char* command) {
  // A write that failed earlier (one large fputs to a full disk) leaves the error flag set
  // and nothing for fflush to fail on: both are checked, and errno still says why.
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return true;
  const int error = errno != 0 ? errno : EIO;
  if (error == EPIPE) return false;
  throw Error(std::error_code(error, std::system_category()), command, "stdout");
}

// A whole number from low to high (a pid, a port), refused with its range and the text given.
inline CLI::Validator number_between(const char* what, long low, long high) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        errno = 0;
        const long value = std::strtol(text.c_str(), &end, 10);
        if (text.empty() || text[0] < '0' || text[0] > '9' || *end != '\0' || errno == ERANGE ||
            value < low || value > high) {
          return std::string("must be ") + what + " (a number from " + std::to_string(low) +
                 " to " + std::to_string(high) + "), not '" + detail::printable(text) + "'";
        }
        return {};
      },
      what, what);
}

Command add_echo(CLI::App& app);
Command add_connect(CLI::App& app);
Command add_listen(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_get(CLI::App& app);
Command add_relay(CLI::App& app);
Command add_fds(CLI::App& app);
Command add_sockets(CLI::App& app);
Command add_tour(CLI::App& app);

}  // namespace wire::cli
