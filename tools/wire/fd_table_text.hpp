// The table `wire fds` prints (FD KIND FLAGS STATE TARGET), shared with `wire tour`, which
// puts the Python variable holding each fd in a NAME column in front and adds the socket
// queues its steps talk about (RECV-Q SEND-Q, as `ss` names them) after STATE.
#pragma once

#include <string>
#include <vector>

#include "wire/diag/fd_table.hpp"

namespace wire::cli {

struct FdTableColumns {
  std::vector<std::string> names;  // empty: no NAME column; else one per row
  bool queues = false;
  std::string indent;  // before every line
};

// One line per fd under a header line, columns aligned.
std::string fd_table_text(const std::vector<diag::FdInfo>& table,
                          const FdTableColumns& columns = {});

// `rows` (the first one a header) as lines, every column but the last padded to its widest
// cell: the last one (a target, an address) may be long and is never padded.
std::string aligned_columns(const std::vector<std::vector<std::string>>& rows,
                            const std::string& indent = "");

}  // namespace wire::cli
