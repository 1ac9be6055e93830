#include "wire/probe.hpp"

#include <poll.h>

#include <algorithm>

namespace wire {
namespace {

// After an empty datagram: a refusal comes back as ECONNREFUSED on the connected socket.
std::error_code datagram_refusal(Socket& socket, std::chrono::nanoseconds wait) {
  if (auto sent = socket.send(std::string_view(), std::nothrow); !sent) return sent.error();
  (void)socket.set_timeout(std::max(wait, std::chrono::nanoseconds(1)), std::nothrow);
  char byte;
  auto got = socket.recv(std::span<char>(&byte, 1), std::nothrow);
  if (got || got.error() == errc::timed_out) return {};  // an answer, or silence: open
  return got.error();
}

bool all_digits(std::string_view s) {
  return !s.empty() && s.size() <= 5 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

ProbeResult probe(std::string_view address, const ConnectOptions& options,
                  std::chrono::nanoseconds datagram_wait) {
  ProbeResult result;
  try {
    Socket socket = create_connection(address, options);
    result.address =
        socket.peer_address(std::nothrow).has_value() ? socket.peer_address() : Address{};
    if (socket.type() == Type::dgram) {
      if (auto refused = datagram_refusal(socket, datagram_wait)) {
        result.error = refused;
        result.message = Error(refused, "probe", socket.describe()).what();
      }
    }
  } catch (const Error& e) {
    result.error = e.code();
    result.message = e.what();
  } catch (const std::bad_alloc&) {
    result.error = std::make_error_code(std::errc::not_enough_memory);
    result.message = "probe: " + result.error.message();
  }
  return result;
}

std::vector<std::string> expand_port_range(std::string_view address) {
  if (address.starts_with("unix:") || address.starts_with("unixgram:"))
    return {std::string(address)};
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) return {std::string(address)};
  const std::string_view ports = address.substr(colon + 1);
  const auto dash = ports.find('-');
  if (dash == std::string_view::npos) return {std::string(address)};
  const std::string_view low = ports.substr(0, dash), high = ports.substr(dash + 1);
  auto bad = [&](const std::string& why) {
    return Error(errc::invalid_address, "port range", detail::printable(address), why);
  };
  if (!all_digits(low) || !all_digits(high)) {
    // A service name may hold '-' ("http-alt"): only digits on both sides make a range.
    if (std::all_of(ports.begin(), ports.end(),
                    [](char c) { return (c >= '0' && c <= '9') || c == '-'; })) {
      throw bad("expected FIRST-LAST, two port numbers");
    }
    return {std::string(address)};
  }
  const unsigned long first = std::stoul(std::string(low)), last = std::stoul(std::string(high));
  if (first > 65535 || last > 65535) throw bad("ports run from 0 to 65535");
  if (first > last) throw bad("the range runs backwards");
  std::vector<std::string> out;
  out.reserve(last - first + 1);
  const std::string prefix(address.substr(0, colon + 1));
  for (unsigned long port = first; port <= last; ++port)
    out.push_back(prefix + std::to_string(port));
  return out;
}

}  // namespace wire
