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
};

// One line per fd under a header line, columns aligned.
std::string fd_table_text(const std::vector<diag::FdInfo>& table,
                          const FdTableColumns& columns = {});

}  // namespace wire::cli
