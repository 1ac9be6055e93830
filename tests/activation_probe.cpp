// The child of tests/test_socket_activation.cpp: reports what socket activation gave it.
// Usage: activation_probe [--take WHICH] [--greet] [NAME=VALUE ...]
// Each NAME=VALUE is set in the environment first ("$PID" in VALUE becomes this pid), so a
// test can hand it any LISTEN_* it likes. Prints, one per line:
//   pid PID
//   open FD FD ...                              (this process's fds, before anything opens one)
//   env LISTEN_PID=... LISTEN_FDS=... LISTEN_FDNAMES=...    ('-' for unset)
//   fd N NAME ADDRESS cloexec|inheritable       (each inherited socket; with --take WHICH only
//                                                those take_listen_fds picked)
//   error MESSAGE                               (the wire::Error, if listen_fds threw)
//   after LISTEN_PID=... LISTEN_FDS=... LISTEN_FDNAMES=...
// With --greet it then accepts one connection on each socket and sends "hello from NAME\n".
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "wire/process.hpp"
#include "wire/wire.hpp"

namespace {

std::string open_fds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return "?";
  while (const ::dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != ::dirfd(dir)) fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::string text;
  for (int fd : fds) text += " " + std::to_string(fd);
  return text;
}

std::string variables() {
  std::string text;
  for (const char* name : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) {
    const char* value = std::getenv(name);
    text += std::string(" ") + name + "=" + (value ? value : "-");
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string fds = open_fds();  // first: nothing of ours is open yet
  std::string take;
  bool greet = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--take" && i + 1 < argc) {
      take = argv[++i];
    } else if (arg == "--greet") {
      greet = true;
    } else if (const auto eq = arg.find('='); eq != std::string::npos) {
      std::string value = arg.substr(eq + 1);
      if (const auto at = value.find("$PID"); at != std::string::npos) {
        value.replace(at, 4, std::to_string(::getpid()));
      }
      ::setenv(arg.substr(0, eq).c_str(), value.c_str(), 1);
    }
  }
  std::printf("pid %d\nopen%s\nenv%s\n", int(::getpid()), fds.c_str(), variables().c_str());
  std::vector<wire::ListenFd> got;
  try {
    got = wire::listen_fds_with_names();
    if (!take.empty()) {
      std::vector<wire::Socket> taken = wire::take_listen_fds(got, take);
      std::vector<wire::ListenFd> picked;
      for (auto& socket : taken) picked.push_back({std::move(socket), "(taken)"});
      got = std::move(picked);
    }
  } catch (const wire::Error& e) {
    std::printf("error %s\n", e.what());
    got.clear();
  }
  for (const auto& [socket, name] : got) {
    const bool cloexec = (::fcntl(socket.fileno(), F_GETFD) & FD_CLOEXEC) != 0;
    std::printf("fd %d %s %s %s\n", socket.fileno(), name.c_str(),
                socket.local_address().to_string().c_str(), cloexec ? "cloexec" : "inheritable");
  }
  std::printf("after%s\n", variables().c_str());
  std::fflush(stdout);
  if (greet) {
    for (auto& [socket, name] : got) {
      socket.set_timeout(std::chrono::seconds(5));
      auto [conn, peer] = socket.accept();
      conn.send_all("hello from " + name + "\n");
    }
  }
  return 0;
}
