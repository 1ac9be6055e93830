#include "toplevel.hpp"

#include <algorithm>
#include <cstdio>

#include "wire/error.hpp"

namespace wire::cli {
namespace {

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
// neighbours each cost one ("sreve" is one edit from "serve", as a typist sees it).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  return names;
}

}  // namespace

std::string closest_command(std::string_view typed, const std::vector<std::string>& names) {
  if (typed.empty()) return {};
  std::string prefixed;
  int prefixes = 0;
  for (const std::string& name : names) {
    if (name.compare(0, typed.size(), typed) == 0) {
      prefixed = name;
      ++prefixes;
    }
  }
  if (prefixes == 1) return prefixed;
  std::string best;
  std::size_t best_distance = 3;  // more than two edits is another word
  for (const std::string& name : names) {
    const std::size_t distance = edit_distance(typed, name);
    if (distance < best_distance && distance < typed.size()) {
      best = name;
      best_distance = distance;
    }
  }
  return best;
}

std::string usage(const CLI::App& app) {
  std::string text = "usage: wire COMMAND [ARGS...]\n\ncommands:\n";
  std::size_t width = 0;
  for (const std::string& name : command_names(app)) width = std::max(width, name.size());
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    text += "  " + sub->get_name() + std::string(width + 2 - sub->get_name().size(), ' ') +
            sub->get_description() + "\n";
  }
  text += "\n'wire COMMAND --help' shows a command's options; 'wire --version' the version.\n";
  return text;
}

int check_command_given(const CLI::App& app) {
  const std::vector<std::string> extras = app.remaining();
  if (extras.empty()) {
    if (!app.get_subcommands().empty()) return 0;
    std::fputs(usage(app).c_str(), stderr);
    return 2;
  }
  // The first word wire did not understand: an option of its own, or a command.
  const std::string& word = extras.front();
  const std::string shown = "'" + detail::printable(word) + "'";
  if (word.size() > 1 && word.front() == '-') {
    std::fprintf(stderr, "wire: unknown option %s (wire --help lists the commands and options)\n",
                 shown.c_str());
    return 2;
  }
  const std::vector<std::string> names = command_names(app);
  if (const std::string guess = closest_command(word, names); !guess.empty()) {
    std::fprintf(stderr, "wire: unknown command %s; did you mean '%s'?\n", shown.c_str(),
                 guess.c_str());
    return 2;
  }
  std::string list;
  for (const std::string& name : names) list += (list.empty() ? "" : ", ") + name;
  std::fprintf(stderr, "wire: unknown command %s; the commands are %s\n", shown.c_str(),
               list.c_str());
  return 2;
}

}  // namespace wire::cli
