// wire/address.hpp — where a socket lives: IPv4, IPv6 (with scope id), Unix path, abstract.
//
// One syntax everywhere, in the library and the CLI:
//   tcp://127.0.0.1:8080   tcp://[::1]:8080   tcp://[fe80::1%eth0]:80   udp://0.0.0.0:5353
//   unix:/tmp/app.sock     unix:@name (Linux abstract)   unixgram:/tmp/log.sock (datagrams)
//   127.0.0.1:8080 (bare host:port means tcp)
//
//   auto a = wire::Address::parse("tcp://127.0.0.1:8080");   // numeric hosts only
//   auto all = wire::resolve("tcp://localhost:8080");         // getaddrinfo for names
//
// Text never holds a NUL byte: one anywhere is an error, because the C calls underneath
// would stop at it and silently drop the rest ("127.0.0.1\0evil:80"). Unix paths hold any
// other byte, as the kernel allows; host names for resolve() hold letters, digits, '-', '.'
// and '_'. Linux abstract names may hold NUL bytes: Address::abstract() takes them, but the
// text of such an address cannot be parsed back. Error messages show control bytes as \xNN.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire/error.hpp"

namespace wire {

// `local` is AF_UNIX (a.k.a. AF_LOCAL); not spelled `unix` because GNU C++ predefines that
// name as a macro.
enum class Family { unspecified, inet, inet6, local };
enum class Type { stream, dgram };

class Address {
 public:
  // An empty address (AF_UNSPEC); to_string() gives "".
  Address() noexcept;

  // Parses the syntax above. Hosts must be numeric; for names use resolve(). Throws
  // wire::Error (errc::invalid_address) naming the bad part.
  static Address parse(std::string_view text);
  static Result<Address> parse(std::string_view text, std::nothrow_t) noexcept;

  // An IPv4 or IPv6 literal and a port, like Python's ("127.0.0.1", 8080).
  static Address inet(std::string_view ip, std::uint16_t port, Type type = Type::stream);
  // A Unix socket path (at most 107 bytes).
  static Address unix_path(std::string_view path, Type type = Type::stream);
  // A Linux abstract socket name (no file; "@name" in text).
  static Address abstract(std::string_view name, Type type = Type::stream);
  // From what the kernel gave back (accept, recvfrom, getsockname).
  static Address from_sockaddr(const ::sockaddr* sa, ::socklen_t len, Type type) noexcept;

  Family family() const noexcept;
  Type type() const noexcept { return type_; }
  bool is_abstract() const noexcept;
  bool empty() const noexcept { return family() == Family::unspecified; }

  // IP text without brackets or scope ("::1"), "" for Unix addresses.
  std::string host() const;
  std::uint16_t port() const noexcept;
  std::uint32_t scope_id() const noexcept;
  // The Unix path, or the abstract name without its leading NUL; "" for IP addresses.
  std::string path() const;

  Address with_port(std::uint16_t port) const noexcept;
  Address with_type(Type type) const noexcept;

  // The canonical text, which parse() reads back to an equal Address. A Unix path or
  // abstract name keeps its bytes (a newline, an ESC, a NUL: a peer chooses its own name),
  // so pass it through detail::printable before showing it on a terminal.
  std::string to_string() const;

  const ::sockaddr* native() const noexcept {
    return reinterpret_cast<const ::sockaddr*>(&storage_);
  }
  ::socklen_t native_size() const noexcept { return size_; }

  friend bool operator==(const Address& a, const Address& b) noexcept;

 private:
  ::sockaddr_storage storage_;
  ::socklen_t size_;
  Type type_;
};

// HOST and PORT given apart, as nc takes them ("::1" "80"), joined into one address text:
// "[::1]:80". HOST may carry a scheme ("udp://::1" gives "udp://[::1]:80"); PORT may be a
// service name. Nothing is checked here: parse() or resolve() does that.
std::string join_host_port(std::string_view host, std::string_view port);

// Resolves `text` (same syntax; host may be a name, port a service name such as "http",
// looked up in the services database for the address's protocol) to every address
// getaddrinfo returns, in its order. Numeric hosts and Unix addresses never touch the resolver.
// With a timeout, fails with errc::timed_out if the resolver has not answered by then.
std::vector<Address> resolve(std::string_view text,
                             std::optional<std::chrono::nanoseconds> timeout = std::nullopt);
Result<std::vector<Address>> resolve(std::string_view text,
                                     std::optional<std::chrono::nanoseconds> timeout,
                                     std::nothrow_t) noexcept;

// Completes what a user types for a server's address (a --bind option) into the syntax
// above, keeping servers on loopback unless a host is named:
//   listen_address("", 8000)             -> "tcp://127.0.0.1:8000"
//   listen_address("9000", 8000)         -> "tcp://127.0.0.1:9000"   (a port alone)
//   listen_address(":9000", 8000)        -> "tcp://127.0.0.1:9000"   (no host: loopback)
//   listen_address("0.0.0.0", 8000)      -> "tcp://0.0.0.0:8000"     (a host alone: every
//   listen_address("::", 8000)           -> "tcp://[::]:8000"         interface only when
//   listen_address("0.0.0.0:9000", 8000) -> "tcp://0.0.0.0:9000"      asked for by name)
//   listen_address("unix:@app", 8000)    -> "unix:@app"              (as it is)
// `default_port` is used only when the text names no port. The syntax is checked here, host
// names are not looked up (serve() does that): throws wire::Error (errc::invalid_address)
// naming the bad part, as Address::parse does.
std::string listen_address(std::string_view text, std::uint16_t default_port);

}  // namespace wire
