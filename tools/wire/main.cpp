// wire — sockets from the command line. Arguments are parsed here; libwire does the work.
// Exit codes: 0 success, 1 a runtime error ("wire: ..." on stderr), 2 a usage error.
#include <cstdio>
#include <vector>

#include "commands.hpp"
#include "wire/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"wire: sockets as file descriptors, from the command line", "wire"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, wire::cli::Command>> commands;
  for (auto add : {wire::cli::add_serve, wire::cli::add_get, wire::cli::add_echo,
                   wire::cli::add_connect, wire::cli::add_listen, wire::cli::add_relay}) {
    std::size_t before = app.get_subcommands({}).size();
    auto command = add(app);
    commands.emplace_back(app.get_subcommands({}).at(before), std::move(command));
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    for (auto& [sub, command] : commands) {
      if (sub->parsed()) return command();
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wire: %s\n", e.what());
    return 1;
  }
  return 2;
}
