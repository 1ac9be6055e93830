// wire/diag.hpp — the diagnostics layer: see what a process, or the machine, holds open.
// It uses the core only (no event loop), and reads everything back from the kernel.
//
//   wire/diag/fd_table.hpp   every fd of a process (`wire fds`)
//   wire/diag/sockets.hpp    every socket of the machine and who holds it (`wire sockets`)
//   wire/diag/tour.hpp       the tutorial's socket steps, run live and read back (`wire tour`)
#pragma once

#include "wire/diag/fd_table.hpp"
#include "wire/diag/sockets.hpp"
#include "wire/diag/tour.hpp"
