#include "fd_table_text.hpp"

#include <algorithm>

#include "wire/error.hpp"

namespace wire::cli {
namespace {

std::string flag_words(const diag::FdInfo& fd) {
  std::string words;
  if (fd.cloexec) words = "cloexec";
  if (fd.nonblock) words += words.empty() ? "nonblock" : ",nonblock";
  return words.empty() ? "-" : words;
}

}  // namespace

std::string aligned_columns(const std::vector<std::vector<std::string>>& rows,
                            const std::string& indent) {
  if (rows.empty()) return {};
  std::vector<std::size_t> width(rows.front().size() - 1, 0);
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string text;
  for (const auto& row : rows) {
    text += indent;
    for (std::size_t i = 0; i < width.size(); ++i) {
      text += row[i] + std::string(width[i] - row[i].size() + 2, ' ');
    }
    text += row.back() + "\n";
  }
  return text;
}

std::string fd_table_text(const std::vector<diag::FdInfo>& table, const FdTableColumns& columns) {
  const bool named = !columns.names.empty();
  std::vector<std::vector<std::string>> rows{{"FD", "KIND", "FLAGS", "STATE"}};
  if (named) rows[0].insert(rows[0].begin(), "NAME");
  if (columns.queues) rows[0].insert(rows[0].end(), {"RECV-Q", "SEND-Q"});
  rows[0].push_back("TARGET");
  for (std::size_t i = 0; i < table.size(); ++i) {
    const diag::FdInfo& fd = table[i];
    std::vector<std::string> row;
    if (named) row.push_back(i < columns.names.size() ? columns.names[i] : "-");
    row.insert(row.end(), {std::to_string(fd.fd), std::string(diag::kind_name(fd.kind)),
                           flag_words(fd), fd.state.empty() ? "-" : fd.state});
    if (columns.queues) {
      // Only a socket the kernel's tables list has queues to show.
      const bool listed = !fd.state.empty();
      row.push_back(listed ? std::to_string(fd.recv_queue) : "-");
      row.push_back(listed ? std::to_string(fd.send_queue) : "-");
    }
    row.push_back(fd.target.empty() ? "-" : detail::printable(fd.target));
    rows.push_back(std::move(row));
  }
  return aligned_columns(rows, columns.indent);
}

}  // namespace wire::cli
