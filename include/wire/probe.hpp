// wire/probe.hpp — is something listening there? nc -z, for scripts and health checks.
//
//   for (const std::string& address : wire::expand_port_range("tcp://127.0.0.1:8000-8010")) {
//     wire::ProbeResult r = wire::probe(address, {.timeout = 1s});
//     std::printf("%s %s\n", address.c_str(), r.open() ? "open" : r.message.c_str());
//   }
//
// Streams (tcp://, unix:): open when a connect succeeds; the connection is closed at once
// and nothing is sent. Datagrams (udp://, unixgram:): an empty datagram is sent and the
// port is closed when the kernel reports a refusal (ICMP port unreachable) within
// `datagram_wait`; silence counts as open, as nc -u -z counts it: UDP cannot tell an open
// port from one whose answers are filtered.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "wire/address.hpp"
#include "wire/connect.hpp"

namespace wire {

struct ProbeResult {
  Address address;        // where the probe connected (empty when it could not)
  std::error_code error;  // why it is not open; empty when it is
  std::string message;    // the error as wire::Error words it ("connect ...: Connection refused")
  bool open() const noexcept { return !error; }
};

// Never throws for what it finds, bad address text included: the answer is in the result.
ProbeResult probe(std::string_view address, const ConnectOptions& options = {},
                  std::chrono::nanoseconds datagram_wait = std::chrono::seconds(1));

// "tcp://host:8000-8010" as eleven addresses, one per port, in order; any other address
// (one port, a service name, unix:) as itself. Throws wire::Error (errc::invalid_address)
// for a range that runs backwards or leaves 0-65535.
std::vector<std::string> expand_port_range(std::string_view address);

}  // namespace wire
