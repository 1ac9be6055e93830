// wire/multicast.hpp — UDP multicast on a datagram wire::Socket: join and leave groups, and
// choose the interface, TTL and loopback of what the socket sends to a group.
//
//   wire::Socket receiver(wire::Family::inet, wire::Type::dgram);
//   receiver.bind(wire::Address::parse("udp://239.255.0.1:5000"));  // only this group's datagrams
//   wire::join_group(receiver, "239.255.0.1", "127.0.0.1");  // on the interface holding 127.0.0.1
//
//   wire::Socket sender(wire::Family::inet, wire::Type::dgram);
//   wire::set_multicast_interface(sender, "127.0.0.1");      // else the routing table picks one
//   wire::set_multicast_ttl(sender, 1);
//   sender.sendto("hello", wire::Address::parse("udp://239.255.0.1:5000"));
//
//   IPv6 names interfaces by index: wire::join_group(receiver6, "ff02::1:3", "lo"), or
//   wire::MulticastInterface::index(1), or by one of its addresses ("::1" is lo's).
//
// Free functions taking a Socket&, not members of Socket: multicast only means something
// for datagram IP sockets, and it brings its own vocabulary (groups, interfaces by address,
// name or index, getifaddrs) that every other user of socket.hpp would otherwise carry. They
// keep no state of their own (everything lives in the kernel's socket), so they work on any
// Socket, adopted ones included.
//
// Ownership: the Socket keeps owning its fd; these functions only call setsockopt and
// getsockopt on it. Leaving a group is also done by the kernel when the socket closes.
//
// Errors: wire::Error naming the operation and the socket's local address
// ("join_group(239.255.0.1, lo) udp://0.0.0.0:5000: No such device"); the overload taking
// std::nothrow returns Result instead. Refused before any syscall: a stream or non-IP socket
// (std::errc::wrong_protocol_type, address_family_not_supported), a group that is not an IP
// literal (errc::invalid_address) or not multicast (std::errc::invalid_argument), a group
// or interface address of the other IP family (std::errc::address_family_not_supported),
// an interface name or IPv6 address that no interface has (std::errc::no_such_device), a TTL
// outside 0..255 (std::errc::invalid_argument).
#pragma once

#include <string>
#include <string_view>

#include "wire/error.hpp"
#include "wire/socket.hpp"

namespace wire {

// Which network interface a group is joined on, or multicast is sent from.
class MulticastInterface {
 public:
  enum class Kind { any, address, name, index };

  // The kernel's choice, by the routing table (the default route's interface, often not lo).
  MulticastInterface() noexcept = default;
  static MulticastInterface any() noexcept { return {}; }
  // An IP literal ("127.0.0.1", "::1") is the interface holding that address; any other text
  // is an interface name ("lo", "eth0"), looked up when used.
  MulticastInterface(std::string_view text);                                            // NOLINT
  MulticastInterface(const char* text) : MulticastInterface(std::string_view(text)) {}  // NOLINT
  MulticastInterface(const std::string& text)                                           // NOLINT
      : MulticastInterface(std::string_view(text)) {}
  MulticastInterface(int) = delete;  // a number is ambiguous: say MulticastInterface::index(n)
  // if_nametoindex("lo") and `ip link` show the index.
  static MulticastInterface index(unsigned index) noexcept;

  Kind kind() const noexcept { return kind_; }
  // The address or name as given ("" for any and index).
  const std::string& text() const noexcept { return text_; }
  unsigned interface_index() const noexcept { return index_; }
  // "any", "127.0.0.1", "lo", "index 1".
  std::string to_string() const;

  friend bool operator==(const MulticastInterface&, const MulticastInterface&) = default;

 private:
  Kind kind_ = Kind::any;
  std::string text_;
  unsigned index_ = 0;
};

// Joins `group` (an IP literal of the socket's family: "239.255.0.1", "ff02::1:3") on
// `interface` (IP_ADD_MEMBERSHIP with ip_mreqn, IPV6_ADD_MEMBERSHIP with ipv6_mreq). The
// socket then receives the group's datagrams sent to its port.
void join_group(Socket& socket, std::string_view group, const MulticastInterface& interface);
Result<void> join_group(Socket& socket, std::string_view group, const MulticastInterface& interface,
                        std::nothrow_t) noexcept;
// Leaves what join_group joined (the same group and interface).
void leave_group(Socket& socket, std::string_view group, const MulticastInterface& interface);
Result<void> leave_group(Socket& socket, std::string_view group,
                         const MulticastInterface& interface, std::nothrow_t) noexcept;

// Whether what this socket sends to a group is also delivered to this host's members
// (IP_MULTICAST_LOOP / IPV6_MULTICAST_LOOP; on by default). The kernel copies outgoing
// multicast back only on a real interface: sent on lo, it arrives through lo whatever this
// says (tests/test_socket_options.cpp shows it).
void set_multicast_loop(Socket& socket, bool on);
Result<void> set_multicast_loop(Socket& socket, bool on, std::nothrow_t) noexcept;
bool multicast_loop(const Socket& socket);
Result<bool> multicast_loop(const Socket& socket, std::nothrow_t) noexcept;

// How many routers what this socket sends to a group may cross, 0 to 255 (IP_MULTICAST_TTL /
// IPV6_MULTICAST_HOPS; 1 by default: the local network only).
void set_multicast_ttl(Socket& socket, int ttl);
Result<void> set_multicast_ttl(Socket& socket, int ttl, std::nothrow_t) noexcept;
int multicast_ttl(const Socket& socket);
Result<int> multicast_ttl(const Socket& socket, std::nothrow_t) noexcept;

// The interface this socket sends multicast from (IP_MULTICAST_IF with ip_mreqn /
// IPV6_MULTICAST_IF). any() gives the choice back to the routing table.
void set_multicast_interface(Socket& socket, const MulticastInterface& interface);
Result<void> set_multicast_interface(Socket& socket, const MulticastInterface& interface,
                                     std::nothrow_t) noexcept;
// As the kernel reports it: IPv4 reports the address only (an interface set by name or
// index reads back as any), IPv6 the index only (a name or address reads back as its index).
MulticastInterface multicast_interface(const Socket& socket);
Result<MulticastInterface> multicast_interface(const Socket& socket, std::nothrow_t) noexcept;

}  // namespace wire
