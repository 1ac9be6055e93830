// The `wire` command itself, apart from its subcommands: what it says when no command, or
// an unknown one, is given.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace wire::cli {

// The one of `names` that `typed` most likely meant: the only one it begins, else the
// nearest within two edits (a transposition counts as one) and closer than `typed` is long;
// "" when none is that close.
std::string closest_command(std::string_view typed, const std::vector<std::string>& names);

// "usage: wire COMMAND ..." and one line per subcommand of `app`, with its description.
std::string usage(const CLI::App& app);

// After parsing (the app allows extras, its subcommands do not): prints the usage when no
// command was given, or names what was not understood ("wire: unknown command 'serv'; did
// you mean 'serve'?"), and returns 2; returns 0 when a command was given cleanly.
int check_command_given(const CLI::App& app);

}  // namespace wire::cli
