// wire/socket_file.hpp — a Unix socket file that goes away with the program that made it.
//
//   wire::Socket server = wire::create_server("unix:/tmp/app.sock");
//   wire::SocketFile file(server.local_address(), {.on_signals = true});
//   ...  // the file is removed when `file` is destroyed, or on SIGINT / SIGTERM
//
// The kernel never removes a socket file: a program that ends leaves it behind, and the
// next create_server replaces it only after checking nobody listens. SocketFile removes the
// file it was given when destroyed, and only if it is still the same file (a later server
// may have replaced it). With `on_signals` it also removes it when SIGINT or SIGTERM
// arrives: the handler (installed while such a SocketFile lives; the previous one is put
// back after) unlinks every such file and ends the process with 130 for SIGINT, as shells
// report Ctrl-C, and 0 for SIGTERM, a requested stop. That changes process-wide signal
// dispositions, which is why it is asked for, never done by default.
//
// Owns a path, no fd. Abstract and unnamed addresses have no file: then it does nothing.
#pragma once

#include <sys/types.h>
#include <time.h>

#include <string>

#include "wire/address.hpp"

namespace wire {

struct SocketFileOptions {
  bool on_signals = false;  // also remove on SIGINT / SIGTERM, then exit (130 / 0)
};

class SocketFile {
 public:
  explicit SocketFile(const Address& address, SocketFileOptions options = {});
  SocketFile(const SocketFile&) = delete;
  SocketFile& operator=(const SocketFile&) = delete;
  ~SocketFile();

  // Leaves the file in place at the end (a successor serves it now).
  void keep() noexcept { path_.clear(); }
  // The path removed at the end; "" when the address has no file.
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
  ::dev_t device_ = 0;
  ::ino_t inode_ = 0;
  ::timespec changed_{};
  int slot_ = -1;  // in the signal handler's table, when on_signals
};

}  // namespace wire
