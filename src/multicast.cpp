#include "wire/multicast.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstring>

namespace wire {
namespace {

// Why a call was refused before any syscall, for the throwing layer's message; `kernel`
// when the error came from the kernel (its own text says enough).
enum class Refusal {
  kernel,
  not_datagram,
  not_ip,
  group_not_ip,
  group_not_multicast,
  group_family,
  interface_family,
  interface_name,
  interface_address,
  ttl_range,
};

struct IpLiteral {
  Family family = Family::unspecified;
  ::in_addr v4{};
  ::in6_addr v6{};
};

// An IPv4 or IPv6 literal without port, brackets or scope; family unspecified otherwise.
IpLiteral parse_ip(std::string_view text) noexcept {
  IpLiteral ip;
  char buffer[INET6_ADDRSTRLEN + 1];
  if (text.size() >= sizeof buffer || text.find('\0') != std::string_view::npos) return ip;
  std::memcpy(buffer, text.data(), text.size());
  buffer[text.size()] = '\0';
  if (::inet_pton(AF_INET, buffer, &ip.v4) == 1) {
    ip.family = Family::inet;
  } else if (::inet_pton(AF_INET6, buffer, &ip.v6) == 1) {
    ip.family = Family::inet6;
  }
  return ip;
}

// The index of the interface holding IPv6 address `address`, or 0.
unsigned index_of_ipv6_address(const ::in6_addr& address) noexcept {
  ::ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return 0;
  unsigned index = 0;
  for (const ::ifaddrs* ifa = all; ifa != nullptr && index == 0; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr || ifa->ifa_addr->sa_family != AF_INET6) continue;
    const auto* sin6 = reinterpret_cast<const ::sockaddr_in6*>(ifa->ifa_addr);
    if (std::memcmp(&sin6->sin6_addr, &address, sizeof address) == 0) {
      index = ::if_nametoindex(ifa->ifa_name);
    }
  }
  ::freeifaddrs(all);
  return index;
}

Result<void> refuse(Refusal* why, Refusal refusal, std::error_code code) noexcept {
  *why = refusal;
  return code;
}

// Multicast needs a datagram socket of IPv4 or IPv6.
Result<void> check_socket(const Socket& socket, Refusal* why) noexcept {
  if (!socket.is_open()) return errc::socket_closed;
  if (socket.type() != Type::dgram) {
    return refuse(why, Refusal::not_datagram, std::make_error_code(std::errc::wrong_protocol_type));
  }
  if (socket.family() != Family::inet && socket.family() != Family::inet6) {
    return refuse(why, Refusal::not_ip,
                  std::make_error_code(std::errc::address_family_not_supported));
  }
  return {};
}

// What the kernel is given for an interface: IPv4 takes an address or an index (ip_mreqn),
// IPv6 an index only.
struct ResolvedInterface {
  ::in_addr v4_address{};
  unsigned index = 0;
};

Result<ResolvedInterface> resolve_interface(const Socket& socket,
                                            const MulticastInterface& interface,
                                            Refusal* why) noexcept {
  ResolvedInterface resolved;
  switch (interface.kind()) {
    case MulticastInterface::Kind::any:
      break;
    case MulticastInterface::Kind::index:
      resolved.index = interface.interface_index();
      break;
    case MulticastInterface::Kind::name: {
      const std::string& name = interface.text();
      if (name.find('\0') == std::string::npos) resolved.index = ::if_nametoindex(name.c_str());
      if (resolved.index == 0) {
        *why = Refusal::interface_name;
        return std::make_error_code(std::errc::no_such_device);
      }
      break;
    }
    case MulticastInterface::Kind::address: {
      const IpLiteral ip = parse_ip(interface.text());
      if (ip.family != socket.family()) {
        *why = Refusal::interface_family;
        return std::make_error_code(std::errc::address_family_not_supported);
      }
      if (ip.family == Family::inet) {
        resolved.v4_address = ip.v4;
      } else {
        resolved.index = index_of_ipv6_address(ip.v6);
        if (resolved.index == 0) {
          *why = Refusal::interface_address;
          return std::make_error_code(std::errc::no_such_device);
        }
      }
      break;
    }
  }
  return resolved;
}

Result<IpLiteral> check_group(const Socket& socket, std::string_view group, Refusal* why) noexcept {
  const IpLiteral ip = parse_ip(group);
  if (ip.family == Family::unspecified) {
    *why = Refusal::group_not_ip;
    return errc::invalid_address;
  }
  const bool multicast =
      ip.family == Family::inet ? IN_MULTICAST(ntohl(ip.v4.s_addr)) : IN6_IS_ADDR_MULTICAST(&ip.v6);
  if (!multicast) {
    *why = Refusal::group_not_multicast;
    return std::make_error_code(std::errc::invalid_argument);
  }
  if (ip.family != socket.family()) {
    *why = Refusal::group_family;
    return std::make_error_code(std::errc::address_family_not_supported);
  }
  return ip;
}

Result<void> change_membership(Socket& socket, std::string_view group,
                               const MulticastInterface& interface, bool join,
                               Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r;
  auto ip = check_group(socket, group, why);
  if (!ip) return ip.error();
  auto resolved = resolve_interface(socket, interface, why);
  if (!resolved) return resolved.error();
  if (socket.family() == Family::inet) {
    ::ip_mreqn request{};
    request.imr_multiaddr = ip->v4;
    request.imr_address = resolved->v4_address;
    request.imr_ifindex = static_cast<int>(resolved->index);
    return socket.set_option(IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, request,
                             std::nothrow);
  }
  ::ipv6_mreq request{};
  request.ipv6mr_multiaddr = ip->v6;
  request.ipv6mr_interface = resolved->index;
  return socket.set_option(IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, request,
                           std::nothrow);
}

Result<void> set_loop(Socket& socket, bool on, Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r;
  const int value = on ? 1 : 0;
  if (socket.family() == Family::inet) {
    return socket.set_option(IPPROTO_IP, IP_MULTICAST_LOOP, value, std::nothrow);
  }
  return socket.set_option(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, value, std::nothrow);
}

Result<bool> get_loop(const Socket& socket, Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r.error();
  auto value = socket.family() == Family::inet
                   ? socket.get_option<int>(IPPROTO_IP, IP_MULTICAST_LOOP, std::nothrow)
                   : socket.get_option<int>(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, std::nothrow);
  if (!value) return value.error();
  return *value != 0;
}

Result<void> set_ttl(Socket& socket, int ttl, Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r;
  // Both kernels also take -1 ("the default"), which would read back as 1 or the route's
  // hop limit: refused, so that what is set is what reads back.
  if (ttl < 0 || ttl > 255) {
    return refuse(why, Refusal::ttl_range, std::make_error_code(std::errc::invalid_argument));
  }
  if (socket.family() == Family::inet) {
    return socket.set_option(IPPROTO_IP, IP_MULTICAST_TTL, ttl, std::nothrow);
  }
  return socket.set_option(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl, std::nothrow);
}

Result<int> get_ttl(const Socket& socket, Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r.error();
  return socket.family() == Family::inet
             ? socket.get_option<int>(IPPROTO_IP, IP_MULTICAST_TTL, std::nothrow)
             : socket.get_option<int>(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, std::nothrow);
}

Result<void> set_interface(Socket& socket, const MulticastInterface& interface,
                           Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r;
  auto resolved = resolve_interface(socket, interface, why);
  if (!resolved) return resolved.error();
  if (socket.family() == Family::inet) {
    ::ip_mreqn request{};
    request.imr_address = resolved->v4_address;
    request.imr_ifindex = static_cast<int>(resolved->index);
    return socket.set_option(IPPROTO_IP, IP_MULTICAST_IF, request, std::nothrow);
  }
  const int index = static_cast<int>(resolved->index);
  return socket.set_option(IPPROTO_IPV6, IPV6_MULTICAST_IF, index, std::nothrow);
}

Result<MulticastInterface> get_interface(const Socket& socket, Refusal* why) noexcept {
  if (auto r = check_socket(socket, why); !r) return r.error();
  try {
    if (socket.family() == Family::inet) {
      // Linux reports IP_MULTICAST_IF as the address alone, whatever was set.
      auto address = socket.get_option<::in_addr>(IPPROTO_IP, IP_MULTICAST_IF, std::nothrow);
      if (!address) return address.error();
      if (address->s_addr == htonl(INADDR_ANY)) return MulticastInterface::any();
      char text[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &*address, text, sizeof text);
      return MulticastInterface(std::string_view(text));
    }
    auto index = socket.get_option<int>(IPPROTO_IPV6, IPV6_MULTICAST_IF, std::nothrow);
    if (!index) return index.error();
    if (*index == 0) return MulticastInterface::any();
    return MulticastInterface::index(static_cast<unsigned>(*index));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::string socket_text(const Socket& socket) {
  if (!socket.is_open()) return "(closed socket)";
  auto local = socket.local_address(std::nothrow);
  if (local && !local->empty()) return local->to_string();
  return "fd " + std::to_string(socket.fileno());
}

std::string_view family_name(Family family) {
  return family == Family::inet ? "IPv4" : family == Family::inet6 ? "IPv6" : "not IP";
}

// The message for a refusal; the kernel's own text when the kernel refused.
std::string reason(Refusal why, std::error_code code, const Socket& socket, std::string_view group,
                   const MulticastInterface& interface, int ttl) {
  const std::string socket_family(family_name(socket.family()));
  switch (why) {
    case Refusal::kernel:
      break;
    case Refusal::not_datagram:
      return "multicast needs a datagram (UDP) socket, not a stream socket";
    case Refusal::not_ip:
      return "multicast needs an IPv4 or IPv6 socket";
    case Refusal::group_not_ip:
      return "group '" + std::string(group) + "' is not an IP address";
    case Refusal::group_not_multicast:
      return std::string(group) + " is not a multicast address (IPv4 224.0.0.0/4, IPv6 ff00::/8)";
    case Refusal::group_family:
      return "group " + std::string(group) + " is " +
             std::string(family_name(parse_ip(group).family)) + ", the socket " + socket_family;
    case Refusal::interface_family:
      return "interface address " + interface.text() + " is " +
             std::string(family_name(parse_ip(interface.text()).family)) + ", the socket " +
             socket_family;
    case Refusal::interface_name:
      return "no interface is named '" + interface.text() + "'";
    case Refusal::interface_address:
      return "no interface has the address " + interface.text();
    case Refusal::ttl_range:
      return "multicast TTL must be 0 to 255 (got " + std::to_string(ttl) + ")";
  }
  return code.message();
}

// The throwing layer: `operation` and the socket name the call, `reason` says why.
template <class T>
T unwrap(Result<T>&& result, Refusal why, const std::string& operation, const Socket& socket,
         std::string_view group = {}, const MulticastInterface& interface = {}, int ttl = 0) {
  if (!result) {
    throw Error(result.error(), operation, socket_text(socket),
                reason(why, result.error(), socket, group, interface, ttl));
  }
  if constexpr (!std::is_void_v<T>) return std::move(*result);
}

std::string call_text(const char* name, std::string_view group,
                      const MulticastInterface& interface) {
  return std::string(name) + "(" + std::string(group) + ", " + interface.to_string() + ")";
}

}  // namespace

MulticastInterface::MulticastInterface(std::string_view text)
    : kind_(parse_ip(text).family == Family::unspecified ? Kind::name : Kind::address),
      text_(text) {}

MulticastInterface MulticastInterface::index(unsigned index) noexcept {
  MulticastInterface interface;
  interface.kind_ = Kind::index;
  interface.index_ = index;
  return interface;
}

std::string MulticastInterface::to_string() const {
  switch (kind_) {
    case Kind::any:
      return "any";
    case Kind::index:
      return "index " + std::to_string(index_);
    case Kind::address:
    case Kind::name:
      break;
  }
  return detail::printable(text_);
}

Result<void> join_group(Socket& socket, std::string_view group, const MulticastInterface& interface,
                        std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return change_membership(socket, group, interface, true, &why);
}

void join_group(Socket& socket, std::string_view group, const MulticastInterface& interface) {
  Refusal why = Refusal::kernel;
  auto result = change_membership(socket, group, interface, true, &why);
  unwrap(std::move(result), why, call_text("join_group", group, interface), socket, group,
         interface);
}

Result<void> leave_group(Socket& socket, std::string_view group,
                         const MulticastInterface& interface, std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return change_membership(socket, group, interface, false, &why);
}

void leave_group(Socket& socket, std::string_view group, const MulticastInterface& interface) {
  Refusal why = Refusal::kernel;
  auto result = change_membership(socket, group, interface, false, &why);
  unwrap(std::move(result), why, call_text("leave_group", group, interface), socket, group,
         interface);
}

Result<void> set_multicast_loop(Socket& socket, bool on, std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return set_loop(socket, on, &why);
}

void set_multicast_loop(Socket& socket, bool on) {
  Refusal why = Refusal::kernel;
  auto result = set_loop(socket, on, &why);
  unwrap(std::move(result), why, on ? "set_multicast_loop(on)" : "set_multicast_loop(off)", socket);
}

Result<bool> multicast_loop(const Socket& socket, std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return get_loop(socket, &why);
}

bool multicast_loop(const Socket& socket) {
  Refusal why = Refusal::kernel;
  auto result = get_loop(socket, &why);
  return unwrap(std::move(result), why, "multicast_loop", socket);
}

Result<void> set_multicast_ttl(Socket& socket, int ttl, std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return set_ttl(socket, ttl, &why);
}

void set_multicast_ttl(Socket& socket, int ttl) {
  Refusal why = Refusal::kernel;
  auto result = set_ttl(socket, ttl, &why);
  unwrap(std::move(result), why, "set_multicast_ttl(" + std::to_string(ttl) + ")", socket, {}, {},
         ttl);
}

Result<int> multicast_ttl(const Socket& socket, std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return get_ttl(socket, &why);
}

int multicast_ttl(const Socket& socket) {
  Refusal why = Refusal::kernel;
  auto result = get_ttl(socket, &why);
  return unwrap(std::move(result), why, "multicast_ttl", socket);
}

Result<void> set_multicast_interface(Socket& socket, const MulticastInterface& interface,
                                     std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return set_interface(socket, interface, &why);
}

void set_multicast_interface(Socket& socket, const MulticastInterface& interface) {
  Refusal why = Refusal::kernel;
  auto result = set_interface(socket, interface, &why);
  unwrap(std::move(result), why, "set_multicast_interface(" + interface.to_string() + ")", socket,
         {}, interface);
}

Result<MulticastInterface> multicast_interface(const Socket& socket, std::nothrow_t) noexcept {
  Refusal why = Refusal::kernel;
  return get_interface(socket, &why);
}

MulticastInterface multicast_interface(const Socket& socket) {
  Refusal why = Refusal::kernel;
  auto result = get_interface(socket, &why);
  return unwrap(std::move(result), why, "multicast_interface", socket);
}

}  // namespace wire
