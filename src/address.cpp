#include "wire/address.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "resolver.hpp"

namespace wire {
namespace {

constexpr std::size_t max_unix_path = sizeof(::sockaddr_un{}.sun_path) - 1;  // room for NUL

// What the text says, before any lookup. `error` names the bad part when parsing failed.
struct Spec {
  Type type = Type::stream;
  enum class Kind { ip, unix_path, abstract } kind = Kind::ip;
  std::string host;  // without brackets or scope
  std::string scope;
  bool bracketed = false;
  std::uint16_t port = 0;
  std::string service;  // a service name in the port's place ("http"), looked up by resolve
  std::string path;
  std::string error;
};

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Control bytes as \xNN, so that a message never carries a NUL, a newline or an escape
// sequence from the text it quotes.
using detail::printable;

std::string quote(std::string_view s) {
  return "'" + printable(s) + "'";
}

// What getaddrinfo may be asked to look up: letters, digits, '-', '.' and '_' (names in
// other scripts go as punycode). Anything else could only fail later, or be misread.
bool is_host_name(std::string_view host) {
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
  });
}

// A name /etc/services could hold ("http", "http-alt", "kerberos_master"); never all digits.
bool is_service_name(std::string_view port) {
  return port.size() <= 32 && std::all_of(port.begin(), port.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == '+';
         });
}

Spec parse_spec(std::string_view text) {
  Spec spec;
  auto fail = [&](std::string why) {
    spec.error = std::move(why);
    return spec;
  };
  if (text.empty()) return fail("empty address");
  // The C calls below (inet_pton, if_nametoindex, getaddrinfo) stop at a NUL, so text after
  // one would be silently dropped: "127.0.0.1\0evil:80" must not mean 127.0.0.1:80. No
  // address holds one in text, abstract names included (Address::abstract takes any bytes).
  if (auto nul = text.find('\0'); nul != std::string_view::npos) {
    return fail("NUL byte at offset " + std::to_string(nul) + " in " + quote(text));
  }

  for (auto [prefix, type] : {std::pair{"unix:", Type::stream}, {"unixgram:", Type::dgram}}) {
    if (!starts_with(text, prefix)) continue;
    spec.type = type;
    std::string_view rest = text.substr(std::strlen(prefix));
    if (!rest.empty() && rest[0] == '@') {
      spec.kind = Spec::Kind::abstract;
      rest.remove_prefix(1);
      if (rest.empty()) return fail("empty abstract socket name in " + quote(text));
    } else {
      spec.kind = Spec::Kind::unix_path;
      if (rest.empty()) return fail("empty Unix socket path in " + quote(text));
    }
    if (rest.size() > max_unix_path) {
      return fail("Unix socket path " + quote(rest) + " is " + std::to_string(rest.size()) +
                  " bytes; the kernel allows " + std::to_string(max_unix_path));
    }
    spec.path = std::string(rest);
    return spec;
  }

  std::string_view hostport = text;
  if (starts_with(text, "tcp://")) {
    hostport.remove_prefix(6);
  } else if (starts_with(text, "udp://")) {
    spec.type = Type::dgram;
    hostport.remove_prefix(6);
  } else if (auto scheme_end = text.find("://"); scheme_end != std::string_view::npos) {
    return fail("unknown scheme " + quote(text.substr(0, scheme_end)) +
                " (expected tcp://, udp://, unix: or unixgram:)");
  }

  std::string_view host, port;
  if (!hostport.empty() && hostport[0] == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return fail("missing ']' in " + quote(text));
    host = hostport.substr(1, close - 1);
    std::string_view after = hostport.substr(close + 1);
    if (after.empty() || after[0] != ':')
      return fail("missing ':PORT' after ']' in " + quote(text));
    port = after.substr(1);
    spec.bracketed = true;
    if (auto percent = host.find('%'); percent != std::string_view::npos) {
      spec.scope = std::string(host.substr(percent + 1));
      host = host.substr(0, percent);
      if (spec.scope.empty()) return fail("empty scope after '%' in " + quote(text));
    }
  } else {
    auto colon = hostport.rfind(':');
    if (colon == std::string_view::npos) return fail("missing ':PORT' in " + quote(text));
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return fail("IPv6 address " + quote(host) + " needs brackets, as in [" + printable(host) +
                  "]:" + printable(port));
    }
  }
  if (host.empty()) return fail("empty host in " + quote(text));
  if (port.empty()) return fail("empty port in " + quote(text));
  const bool digits =
      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) {
    if (!is_service_name(port)) {
      return fail("port " + quote(port) + " is not a number or a service name in " + quote(text));
    }
    spec.host = std::string(host);
    spec.service = std::string(port);
    return spec;
  }
  if (port.size() > 5) {
    return fail("port " + quote(port) + " out of range 0-65535 in " + quote(text));
  }
  unsigned long value = std::stoul(std::string(port));
  if (value > 65535) return fail("port " + quote(port) + " out of range 0-65535 in " + quote(text));
  spec.host = std::string(host);
  spec.port = static_cast<std::uint16_t>(value);
  return spec;
}

// Fills `out` from a numeric host; false if the host is not an IP literal.
bool numeric_address(const Spec& spec, Address& out, std::string& error) {
  // c_str() would end the text at a NUL and the rest would be ignored.
  if (spec.host.find('\0') != std::string::npos || spec.scope.find('\0') != std::string::npos) {
    error = "NUL byte in " + quote(spec.host + (spec.scope.empty() ? "" : "%" + spec.scope));
    return false;
  }
  ::sockaddr_storage storage{};
  if (!spec.bracketed) {
    auto* sin = reinterpret_cast<::sockaddr_in*>(&storage);
    if (::inet_pton(AF_INET, spec.host.c_str(), &sin->sin_addr) != 1) return false;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(spec.port);
    out = Address::from_sockaddr(reinterpret_cast<::sockaddr*>(sin), sizeof *sin, spec.type);
    return true;
  }
  auto* sin6 = reinterpret_cast<::sockaddr_in6*>(&storage);
  if (::inet_pton(AF_INET6, spec.host.c_str(), &sin6->sin6_addr) != 1) {
    error = quote(spec.host) + " is not an IPv6 address";
    return false;
  }
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(spec.port);
  if (!spec.scope.empty()) {
    unsigned index = ::if_nametoindex(spec.scope.c_str());
    if (index == 0) {
      bool digits = std::all_of(spec.scope.begin(), spec.scope.end(),
                                [](char c) { return c >= '0' && c <= '9'; });
      if (!digits || spec.scope.size() > 9) {
        error = "unknown network interface " + quote(spec.scope) + " in scope";
        return false;
      }
      index = static_cast<unsigned>(std::stoul(spec.scope));
    }
    sin6->sin6_scope_id = index;
  }
  out = Address::from_sockaddr(reinterpret_cast<::sockaddr*>(sin6), sizeof *sin6, spec.type);
  return true;
}

Address local_address(const Spec& spec) {
  return spec.kind == Spec::Kind::abstract ? Address::abstract(spec.path, spec.type)
                                           : Address::unix_path(spec.path, spec.type);
}

// Parses numeric-only text; on failure `error` says why.
std::optional<Address> parse_numeric(std::string_view text, std::string& error) {
  Spec spec = parse_spec(text);
  if (!spec.error.empty()) {
    error = spec.error;
    return std::nullopt;
  }
  if (spec.kind != Spec::Kind::ip) return local_address(spec);
  if (!spec.service.empty()) {
    error = "port " + quote(spec.service) +
            " is not a number (service names need wire::resolve) in " + quote(text);
    return std::nullopt;
  }
  Address address;
  if (numeric_address(spec, address, error)) return address;
  if (error.empty()) {
    error = "host " + quote(spec.host) + " is not a numeric address (use wire::resolve for names)";
  }
  return std::nullopt;
}

std::error_code resolver_error(int rc, int saved_errno) {
  if (rc == EAI_SYSTEM) return {saved_errno, std::system_category()};
  return {rc, resolver_category()};
}

Result<std::vector<Address>> getaddrinfo_all(const Spec& spec) {
  ::addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = spec.type == Type::stream ? SOCK_STREAM : SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  ::addrinfo* list = nullptr;
  std::string service = std::to_string(spec.port);
  int rc = ::getaddrinfo(spec.host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) return resolver_error(rc, errno);
  std::vector<Address> out;
  for (auto* ai = list; ai != nullptr; ai = ai->ai_next) {
    Address a = Address::from_sockaddr(ai->ai_addr, ai->ai_addrlen, spec.type);
    if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  }
  ::freeaddrinfo(list);
  return out;
}

// getaddrinfo cannot be interrupted, so a bounded lookup runs it on a thread of its own and
// stops waiting at the deadline; the thread finishes (and frees its state) whenever the
// resolver answers.
Result<std::vector<Address>> getaddrinfo_bounded(const Spec& spec,
                                                 std::chrono::nanoseconds timeout) {
  struct Lookup {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    Result<std::vector<Address>> result{std::error_code{}};
  };
  auto lookup = std::make_shared<Lookup>();
  try {
    std::thread([lookup, spec] {
      auto result = getaddrinfo_all(spec);
      std::lock_guard lock(lookup->mutex);
      lookup->result = std::move(result);
      lookup->done = true;
      lookup->done_cv.notify_one();
    }).detach();
  } catch (const std::system_error& e) {
    return e.code();
  }
  std::unique_lock lock(lookup->mutex);
  if (!lookup->done_cv.wait_for(lock, timeout, [&] { return lookup->done; })) {
    return errc::timed_out;
  }
  return std::move(lookup->result);
}

// The port of a service name from the services database (/etc/services: a local file, no
// network). The protocol matters: some names exist for one of tcp and udp only.
bool service_port(Spec& spec, std::string& error) {
  const char* protocol = spec.type == Type::stream ? "tcp" : "udp";
  ::servent entry{};
  ::servent* found = nullptr;
  char buffer[4096];
  if (::getservbyname_r(spec.service.c_str(), protocol, &entry, buffer, sizeof buffer, &found) !=
          0 ||
      found == nullptr) {
    error = "unknown service " + quote(spec.service) + " for " + protocol +
            " (not in the services database)";
    return false;
  }
  spec.port = ntohs(static_cast<std::uint16_t>(found->s_port));
  spec.service.clear();
  return true;
}

Result<std::vector<Address>> resolve_spec(std::string_view text,
                                          std::optional<std::chrono::nanoseconds> timeout,
                                          std::string& error) {
  Spec spec = parse_spec(text);
  if (!spec.error.empty()) {
    error = spec.error;
    return errc::invalid_address;
  }
  if (spec.kind != Spec::Kind::ip) return std::vector<Address>{local_address(spec)};
  if (!spec.service.empty() && !service_port(spec, error)) return errc::invalid_address;
  Address address;
  if (numeric_address(spec, address, error)) return std::vector<Address>{address};
  if (!error.empty()) return errc::invalid_address;
  if (!is_host_name(spec.host)) {
    error = "host " + quote(spec.host) + " holds a byte no host name can (letters, digits, " +
            "'-', '.' and '_' only)";
    return errc::invalid_address;
  }
  if (timeout) return getaddrinfo_bounded(spec, *timeout);
  return getaddrinfo_all(spec);
}

}  // namespace

Address::Address() noexcept : storage_{}, size_(0), type_(Type::stream) {}

Address Address::parse(std::string_view text) {
  std::string error;
  auto address = parse_numeric(text, error);
  if (!address) throw Error(errc::invalid_address, "parse address", printable(text), error);
  return *address;
}

Result<Address> Address::parse(std::string_view text, std::nothrow_t) noexcept {
  std::string error;
  auto address = parse_numeric(text, error);
  if (!address) return errc::invalid_address;
  return *address;
}

Address Address::inet(std::string_view ip, std::uint16_t port, Type type) {
  Spec spec;
  spec.type = type;
  spec.host = std::string(ip);
  spec.port = port;
  std::string error;
  Address out;
  if (ip.find(':') != std::string_view::npos) {
    spec.bracketed = true;
    if (auto percent = ip.find('%'); percent != std::string_view::npos) {
      spec.host = std::string(ip.substr(0, percent));
      spec.scope = std::string(ip.substr(percent + 1));
    }
  }
  if (!numeric_address(spec, out, error)) {
    if (error.empty()) error = quote(ip) + " is not an IPv4 or IPv6 address";
    throw Error(errc::invalid_address, "address", printable(ip), error);
  }
  return out;
}

Address Address::unix_path(std::string_view path, Type type) {
  if (path.empty() || path.size() > max_unix_path || path.find('\0') != std::string_view::npos) {
    throw Error(
        errc::invalid_address, "address", "unix:" + printable(path),
        "a Unix socket path must be 1 to " + std::to_string(max_unix_path) + " bytes without NUL");
  }
  Address a;
  auto* sun = reinterpret_cast<::sockaddr_un*>(&a.storage_);
  sun->sun_family = AF_UNIX;
  std::memcpy(sun->sun_path, path.data(), path.size());
  a.size_ = static_cast<::socklen_t>(offsetof(::sockaddr_un, sun_path) + path.size() + 1);
  a.type_ = type;
  return a;
}

Address Address::abstract(std::string_view name, Type type) {
  if (name.size() > max_unix_path) {
    throw Error(
        errc::invalid_address, "address", "unix:@" + printable(name),
        "an abstract socket name must be at most " + std::to_string(max_unix_path) + " bytes");
  }
  Address a;
  auto* sun = reinterpret_cast<::sockaddr_un*>(&a.storage_);
  sun->sun_family = AF_UNIX;
  std::memcpy(sun->sun_path + 1, name.data(), name.size());
  a.size_ = static_cast<::socklen_t>(offsetof(::sockaddr_un, sun_path) + 1 + name.size());
  a.type_ = type;
  return a;
}

Address Address::from_sockaddr(const ::sockaddr* sa, ::socklen_t len, Type type) noexcept {
  Address a;
  len = std::min<::socklen_t>(len, sizeof a.storage_);
  std::memcpy(&a.storage_, sa, len);
  a.size_ = len;
  a.type_ = type;
  return a;
}

Family Address::family() const noexcept {
  if (size_ < sizeof(::sa_family_t)) return Family::unspecified;
  switch (storage_.ss_family) {
    case AF_INET:
      return Family::inet;
    case AF_INET6:
      return Family::inet6;
    case AF_UNIX:
      return Family::local;
    default:
      return Family::unspecified;
  }
}

bool Address::is_abstract() const noexcept {
  const auto* sun = reinterpret_cast<const ::sockaddr_un*>(&storage_);
  return family() == Family::local && size_ > offsetof(::sockaddr_un, sun_path) &&
         sun->sun_path[0] == '\0';
}

std::string Address::host() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (family() == Family::inet) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const ::sockaddr_in*>(&storage_)->sin_addr, text,
                sizeof text);
  } else if (family() == Family::inet6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const ::sockaddr_in6*>(&storage_)->sin6_addr, text,
                sizeof text);
  }
  return text;
}

std::uint16_t Address::port() const noexcept {
  if (family() == Family::inet)
    return ntohs(reinterpret_cast<const ::sockaddr_in*>(&storage_)->sin_port);
  if (family() == Family::inet6) {
    return ntohs(reinterpret_cast<const ::sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

std::uint32_t Address::scope_id() const noexcept {
  if (family() != Family::inet6) return 0;
  return reinterpret_cast<const ::sockaddr_in6*>(&storage_)->sin6_scope_id;
}

std::string Address::path() const {
  if (family() != Family::local) return "";
  const auto* sun = reinterpret_cast<const ::sockaddr_un*>(&storage_);
  std::size_t length = size_ - offsetof(::sockaddr_un, sun_path);
  if (length == 0) return "";  // unnamed (socketpair, unbound client)
  if (sun->sun_path[0] == '\0') return std::string(sun->sun_path + 1, length - 1);
  // The kernel may or may not count the trailing NUL of a path.
  return std::string(sun->sun_path, ::strnlen(sun->sun_path, length));
}

Address Address::with_port(std::uint16_t port) const noexcept {
  Address a = *this;
  if (family() == Family::inet)
    reinterpret_cast<::sockaddr_in*>(&a.storage_)->sin_port = htons(port);
  if (family() == Family::inet6) {
    reinterpret_cast<::sockaddr_in6*>(&a.storage_)->sin6_port = htons(port);
  }
  return a;
}

Address Address::with_type(Type type) const noexcept {
  Address a = *this;
  a.type_ = type;
  return a;
}

std::string Address::to_string() const {
  const bool stream = type_ == Type::stream;
  switch (family()) {
    case Family::inet:
      return (stream ? "tcp://" : "udp://") + host() + ":" + std::to_string(port());
    case Family::inet6: {
      std::string text = (stream ? "tcp://[" : "udp://[") + host();
      if (std::uint32_t scope = scope_id(); scope != 0) {
        char name[IF_NAMESIZE] = {};
        text += "%";
        text +=
            ::if_indextoname(scope, name) != nullptr ? std::string(name) : std::to_string(scope);
      }
      return text + "]:" + std::to_string(port());
    }
    case Family::local:
      return (stream ? "unix:" : "unixgram:") + std::string(is_abstract() ? "@" : "") + path();
    case Family::unspecified:
      break;
  }
  return "";
}

bool operator==(const Address& a, const Address& b) noexcept {
  if (a.family() != b.family() || a.type_ != b.type_) return false;
  switch (a.family()) {
    case Family::inet: {
      const auto* x = reinterpret_cast<const ::sockaddr_in*>(&a.storage_);
      const auto* y = reinterpret_cast<const ::sockaddr_in*>(&b.storage_);
      return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    case Family::inet6: {
      const auto* x = reinterpret_cast<const ::sockaddr_in6*>(&a.storage_);
      const auto* y = reinterpret_cast<const ::sockaddr_in6*>(&b.storage_);
      return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
             std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    case Family::local:
      return a.is_abstract() == b.is_abstract() && a.path() == b.path();
    case Family::unspecified:
      return true;
  }
  return false;
}

std::string join_host_port(std::string_view host, std::string_view port) {
  std::string text;
  if (auto scheme = host.find("://"); scheme != std::string_view::npos) {
    text = std::string(host.substr(0, scheme + 3));
    host.remove_prefix(scheme + 3);
  }
  const bool bare_ipv6 = host.find(':') != std::string_view::npos && !host.starts_with('[');
  if (bare_ipv6) text += "[";
  text += host;
  if (bare_ipv6) text += "]";
  text += ":";
  text += port;
  return text;
}

std::vector<Address> resolve(std::string_view text,
                             std::optional<std::chrono::nanoseconds> timeout) {
  std::string error;
  auto result = resolve_spec(text, timeout, error);
  if (!result) {
    if (error.empty()) throw Error(result.error(), "resolve", printable(text));
    throw Error(result.error(), "resolve", printable(text), error);
  }
  return std::move(*result);
}

Result<std::vector<Address>> resolve(std::string_view text,
                                     std::optional<std::chrono::nanoseconds> timeout,
                                     std::nothrow_t) noexcept {
  std::string error;
  return resolve_spec(text, timeout, error);
}

namespace detail {

bool resolve_may_block(std::string_view text) {
  Spec spec = parse_spec(text);
  if (!spec.error.empty() || spec.kind != Spec::Kind::ip) return false;
  if (!spec.service.empty()) return true;
  Address address;
  std::string error;
  if (numeric_address(spec, address, error) || !error.empty()) return false;
  return is_host_name(spec.host);
}

Result<std::vector<Address>> resolve_explained(std::string_view text, std::string& why) {
  return resolve_spec(text, std::nullopt, why);
}

}  // namespace detail

std::string listen_address(std::string_view text, std::uint16_t default_port) {
  auto check = [text](std::string completed) {
    Spec spec = parse_spec(completed);
    std::string error = spec.error;
    Address numeric;
    if (error.empty() && spec.kind == Spec::Kind::ip && !numeric_address(spec, numeric, error) &&
        error.empty() && !is_host_name(spec.host)) {
      error = "host " + quote(spec.host) + " holds a byte no host name can (letters, digits, " +
              "'-', '.' and '_' only)";
    }
    // A service name is looked up in /etc/services only (no resolver): "--bind :http" works,
    // a typo is a usage error now rather than a bind error later.
    if (error.empty() && !spec.service.empty()) (void)service_port(spec, error);
    if (!error.empty()) throw Error(errc::invalid_address, "listen on", printable(text), error);
    return completed;
  };
  if (starts_with(text, "unix:") || starts_with(text, "unixgram:")) return check(std::string(text));
  std::string scheme = "tcp://";
  std::string_view rest = text;
  if (starts_with(rest, "tcp://") || starts_with(rest, "udp://")) {
    scheme = std::string(rest.substr(0, 6));
    rest.remove_prefix(6);
  } else if (rest.find("://") != std::string_view::npos) {
    return check(std::string(text));  // an unknown scheme, which parse_spec names
  }
  const std::string port = std::to_string(default_port);
  const std::string loopback = "127.0.0.1";
  auto digits = [](std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (rest.empty()) return check(scheme + loopback + ":" + port);
  if (digits(rest)) return check(scheme + loopback + ":" + std::string(rest));
  const auto colons = std::count(rest.begin(), rest.end(), ':');
  if (colons >= 2) {
    // An IPv6 host alone, as python3 -m http.server --bind takes it ("::", "::1"); an
    // address with a port needs brackets, which parse_spec explains.
    const std::string ip(rest.substr(0, std::min(rest.find('%'), rest.size())));
    ::in6_addr ignored{};
    if (::inet_pton(AF_INET6, ip.c_str(), &ignored) == 1) {
      return check(scheme + "[" + std::string(rest) + "]:" + port);
    }
  }
  if (rest.front() == ':') return check(scheme + loopback + std::string(rest));
  if (rest.front() == '[') {
    if (rest.back() == ']') return check(scheme + std::string(rest) + ":" + port);
    return check(scheme + std::string(rest));
  }
  if (colons == 0) return check(scheme + std::string(rest) + ":" + port);
  return check(scheme + std::string(rest));
}

}  // namespace wire
