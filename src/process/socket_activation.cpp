#include "wire/process/socket_activation.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <optional>
#include <variant>

namespace wire {
namespace {

// SD_LISTEN_FDS_START: the first inherited fd.
constexpr int first_fd = 3;

class ActivationCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "socket_activation"; }
  std::string message(int code) const override {
    switch (static_cast<ActivationErrc>(code)) {
      case ActivationErrc::bad_environment:
        return "the socket activation variables are not valid";
      case ActivationErrc::not_inherited:
        return "no inherited socket has that number or name";
    }
    return "unknown socket activation error";
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<ActivationErrc>(code)) {
      case ActivationErrc::bad_environment:
      case ActivationErrc::not_inherited:
        return std::errc::invalid_argument;
    }
    return {code, *this};
  }
};

// A failure, with what the thrown Error says: the variable and its value, and why.
struct Failure {
  std::error_code code;
  std::string subject;
  std::string detail;
};

// A whole number of digits only (no sign, no space), as systemd's safe_atoi takes it but
// without the sign; nullopt when it is not one or does not fit.
template <class Int>
std::optional<Int> parse_number(std::string_view text) {
  Int value{};
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<std::string> variable(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

Failure bad(const char* name, const std::string& value, std::string detail) {
  return {ActivationErrc::bad_environment, std::string(name) + "=" + value, std::move(detail)};
}

std::vector<std::string> split_names(const std::string& text) {
  std::vector<std::string> names;
  for (std::size_t start = 0;;) {
    const std::size_t end = std::min(text.find(':', start), text.size());
    names.push_back(text.substr(start, end - start));
    if (end == text.size()) return names;
    start = end + 1;
  }
}

// Reads the three variables and checks every fd they promise, taking nothing until all is
// well: the inherited sockets, or what is wrong.
std::variant<std::vector<ListenFd>, Failure> read_environment() {
  const auto pid_text = variable("LISTEN_PID");
  const auto count_text = variable("LISTEN_FDS");
  const auto names_text = variable("LISTEN_FDNAMES");
  if (!pid_text) return std::vector<ListenFd>{};  // not activated
  const auto pid = parse_number<::pid_t>(*pid_text);
  if (!pid || *pid <= 0) return bad("LISTEN_PID", *pid_text, "not a process id");
  if (*pid != ::getpid()) return std::vector<ListenFd>{};  // for another process
  if (!count_text) return std::vector<ListenFd>{};
  const auto count = parse_number<int>(*count_text);
  if (!count || *count <= 0) {
    return bad("LISTEN_FDS", *count_text, "not a count of fds (a whole number from 1)");
  }
  ::rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      static_cast<::rlim_t>(*count) > limit.rlim_cur - std::min<::rlim_t>(limit.rlim_cur, 3)) {
    return bad("LISTEN_FDS", *count_text,
               "more fds than this process may have open (RLIMIT_NOFILE " +
                   std::to_string(limit.rlim_cur) + ")");
  }
  std::vector<std::string> names(static_cast<std::size_t>(*count), "unknown");
  if (names_text) {
    names = split_names(*names_text);
    if (names.size() != static_cast<std::size_t>(*count)) {
      return bad("LISTEN_FDNAMES", *names_text,
                 std::to_string(names.size()) + " names for LISTEN_FDS=" + *count_text);
    }
  }
  for (int fd = first_fd; fd < first_fd + *count; ++fd) {
    const std::string which = "fd " + std::to_string(fd);
    if (::fcntl(fd, F_GETFD) < 0) return bad("LISTEN_FDS", *count_text, which + " is not open");
    int type = 0;
    ::socklen_t size = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &size) < 0) {
      return bad("LISTEN_FDS", *count_text, which + " is not a socket");
    }
    if (type != SOCK_STREAM && type != SOCK_DGRAM) {
      return bad("LISTEN_FDS", *count_text,
                 which + " is a socket of a type wire does not drive (not stream or datagram)");
    }
  }
  std::vector<ListenFd> inherited;
  inherited.reserve(names.size());
  for (int fd = first_fd; fd < first_fd + *count; ++fd) {
    auto socket = Socket::adopt(fd, std::nothrow);
    if (!socket) {
      return Failure{socket.error(), "fd " + std::to_string(fd), socket.error().message()};
    }
    // As sd_listen_fds: the sockets stay in this process until passed on purpose.
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    inherited.push_back({std::move(*socket), std::move(names[fd - first_fd])});
  }
  return inherited;
}

std::variant<std::vector<ListenFd>, Failure> take_environment() noexcept {
  try {
    auto result = read_environment();
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return result;
  } catch (const std::bad_alloc&) {
    return Failure{std::make_error_code(std::errc::not_enough_memory), "", ""};
  }
}

std::vector<Socket> sockets_of(std::vector<ListenFd> inherited) {
  std::vector<Socket> sockets;
  sockets.reserve(inherited.size());
  for (auto& one : inherited) sockets.push_back(std::move(one.socket));
  return sockets;
}

// "fd 3 (web), fd 4 (unknown)", for a message.
std::string describe(const std::vector<ListenFd>& inherited) {
  std::string text;
  for (const auto& one : inherited) {
    if (!text.empty()) text += ", ";
    text += "fd " + std::to_string(one.socket.fileno()) + " (" + detail::printable(one.name) + ")";
  }
  return text;
}

std::variant<std::vector<Socket>, Failure> select(std::vector<ListenFd>& inherited,
                                                  std::string_view which) {
  std::string_view key = which;
  if (key.starts_with("fd:")) key.remove_prefix(3);
  // A number is an fd when one was inherited at that number, else a name like any other.
  const auto number = parse_number<int>(key);
  const bool by_number =
      number && std::any_of(inherited.begin(), inherited.end(), [&](const ListenFd& one) {
        return one.socket.is_open() && one.socket.fileno() == *number;
      });
  std::vector<Socket> taken;
  for (auto& one : inherited) {
    if (!one.socket.is_open() || key.empty()) continue;
    if (by_number ? one.socket.fileno() == *number : one.name == key) {
      taken.push_back(std::move(one.socket));
    }
  }
  std::erase_if(inherited, [](const ListenFd& one) { return !one.socket.is_open(); });
  if (taken.empty()) {
    return Failure{ActivationErrc::not_inherited, std::string(which),
                   inherited.empty()
                       ? "no socket was inherited (LISTEN_FDS is not set for this process)"
                       : "not inherited; these were: " + describe(inherited)};
  }
  return taken;
}

}  // namespace

const std::error_category& activation_category() noexcept {
  static const ActivationCategory category;
  return category;
}

Result<std::vector<ListenFd>> listen_fds_with_names(std::nothrow_t) noexcept {
  auto result = take_environment();
  if (auto* failure = std::get_if<Failure>(&result)) return failure->code;
  return std::move(std::get<std::vector<ListenFd>>(result));
}

std::vector<ListenFd> listen_fds_with_names() {
  auto result = take_environment();
  if (auto* failure = std::get_if<Failure>(&result)) {
    throw Error(failure->code, "listen_fds", failure->subject, failure->detail);
  }
  return std::move(std::get<std::vector<ListenFd>>(result));
}

Result<std::vector<Socket>> listen_fds(std::nothrow_t) noexcept {
  auto inherited = listen_fds_with_names(std::nothrow);
  if (!inherited) return inherited.error();
  try {
    return sockets_of(std::move(*inherited));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::vector<Socket> listen_fds() {
  return sockets_of(listen_fds_with_names());
}

Result<std::vector<Socket>> take_listen_fds(std::vector<ListenFd>& inherited,
                                            std::string_view which, std::nothrow_t) noexcept {
  try {
    auto result = select(inherited, which);
    if (auto* failure = std::get_if<Failure>(&result)) return failure->code;
    return std::move(std::get<std::vector<Socket>>(result));
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
}

std::vector<Socket> take_listen_fds(std::vector<ListenFd>& inherited, std::string_view which) {
  auto result = select(inherited, which);
  if (auto* failure = std::get_if<Failure>(&result)) {
    throw Error(failure->code, "listen_fds", failure->subject, failure->detail);
  }
  return std::move(std::get<std::vector<Socket>>(result));
}

}  // namespace wire
