#include "inherited.hpp"

#include <map>

#include "commands.hpp"
#include "wire/process/socket_activation.hpp"

namespace wire::cli {

std::optional<Inherited> inherited_listeners(std::string_view bind, const std::string& option) {
  std::vector<ListenFd> inherited = listen_fds_with_names();
  std::map<int, std::string> names;
  for (const auto& one : inherited) names[one.socket.fileno()] = one.name;

  Inherited chosen;
  if (names_inherited(bind)) {
    try {
      chosen.listeners = take_listen_fds(inherited, bind);
    } catch (const Error& e) {
      if (e.code() == ActivationErrc::not_inherited) throw CLI::ValidationError(option, e.what());
      throw;
    }
  } else if (inherited.empty()) {
    return std::nullopt;
  } else if (!bind.empty()) {
    throw CLI::ValidationError(
        option, detail::printable(bind) + ": this process was started with " +
                    std::to_string(inherited.size()) +
                    " inherited socket(s) (LISTEN_FDS); give no address to serve them all, or "
                    "pick with --bind fd:N or fd:NAME");
  } else {
    for (auto& one : inherited) chosen.listeners.push_back(std::move(one.socket));
  }
  chosen.summary = "socket activation:";
  for (std::size_t i = 0; i < chosen.listeners.size(); ++i) {
    const int fd = chosen.listeners[i].fileno();
    chosen.summary +=
        (i > 0 ? ", fd " : " fd ") + std::to_string(fd) + " " + detail::printable(names[fd]);
  }
  return chosen;
}

}  // namespace wire::cli
