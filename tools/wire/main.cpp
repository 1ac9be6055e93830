// wire — sockets from the command line. Arguments are parsed here; libwire does the work.
// Exit codes: 0 success, 1 a runtime error ("wire: ..." on stderr), 2 a usage error.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <vector>

#include "commands.hpp"
#include "toplevel.hpp"
#include "wire/error.hpp"
#include "wire/selector.hpp"
#include "wire/version.hpp"

int main(int argc, char** argv) {
  // A program may choose what libwire never does for its users: a reader that went away
  // (stdout or stderr piped to `head`, a closed log pipe, a peer) is an EPIPE error that is
  // reported, never a death by SIGPIPE in the middle of a log line. An ignored signal stays
  // ignored through exec: whatever wire ever starts must get SIG_DFL back first.
  std::signal(SIGPIPE, SIG_IGN);
  // Started with stdout or stderr closed (`wire tour >&-`), the first socket would get fd 1
  // and the tables would be written into it. A /dev/null opened read-only takes the place:
  // every write there fails (EBADF) and is reported, and no socket can land on 1 or 2.
  for (int fd = 1; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      const int filler = ::open("/dev/null", O_RDONLY);
      if (filler != -1 && filler != fd) {
        ::dup2(filler, fd);
        ::close(filler);
      }
    }
  }
  CLI::App app{"wire: sockets as file descriptors, from the command line", "wire"};
  app.set_version_flag("--version", "wire " + std::string(wire::version()));
  std::vector<std::pair<CLI::App*, wire::cli::Command>> commands;
  for (auto add : {wire::cli::add_serve, wire::cli::add_get, wire::cli::add_echo,
                   wire::cli::add_connect, wire::cli::add_listen, wire::cli::add_relay,
                   wire::cli::add_fds, wire::cli::add_sockets, wire::cli::add_tour}) {
    std::size_t before = app.get_subcommands({}).size();
    auto command = add(app);
    commands.emplace_back(app.get_subcommands({}).at(before), std::move(command));
  }
  // Set after the subcommands are made (each copies it then, and must keep refusing extras):
  // an unknown or misspelt command is left in remaining(), to be named, not just refused.
  app.allow_extras();
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 2;
  }
  if (int code = wire::cli::check_command_given(app); code != 0) return code;
  try {
    (void)wire::default_selector_kind();  // a bad WIRE_SELECTOR is the user's to fix: 2
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 2;
  }
  try {
    for (auto& [sub, command] : commands) {
      if (sub->parsed()) return command();
    }
  } catch (const CLI::ParseError& e) {
    // A value only a command can check (`-H nocolon`, a PORT and a --bind port) is a usage
    // error like any other.
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 2;
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 1;
  }
  return 2;
}
