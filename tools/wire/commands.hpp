// The wire CLI: each subcommand adds itself to the app and runs on libwire's public API.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace wire::cli {

// What a subcommand runs once its arguments are parsed; returns the exit code.
using Command = std::function<int()>;

Command add_echo(CLI::App& app);
Command add_connect(CLI::App& app);
Command add_listen(CLI::App& app);
Command add_serve(CLI::App& app);
Command add_get(CLI::App& app);
Command add_relay(CLI::App& app);

}  // namespace wire::cli
