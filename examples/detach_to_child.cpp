// Seed, detach(): "to hand over control of the socket to another part of the code or a
// subprocess". The parent accepts a connection, detaches it and spawns a child (this program
// again) that serves it as its fd 3; the parent's fd table no longer holds the connection.
// Usage: detach_to_child [ADDRESS]     (serves one client, then exits)
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "wire/process.hpp"
#include "wire/wire.hpp"

namespace {

// The child: fd 3 is the connection, handed over by the parent.
int serve_fd_3() {
  wire::Socket conn = wire::Socket::adopt(3);
  std::printf("child pid %d: serving %s on fd 3\n", int(::getpid()),
              conn.peer_address().to_string().c_str());
  std::fflush(stdout);
  const std::string name = conn.recv(100);
  conn.send_all("hello " + name + ", from child pid " + std::to_string(::getpid()) + "\n");
  return 0;
}

// Whether any fd of this process is the socket with this inode: "socket:[INODE]" in /proc/self/fd.
bool holds_socket(ino_t inode) {
  const std::string wanted = "socket:[" + std::to_string(inode) + "]";
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(entry.path(), ec).string() == wanted) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--serve-fd-3") return serve_fd_3();
  try {
    wire::Socket server = wire::create_server(argc > 1 ? argv[1] : "tcp://127.0.0.1:8080");
    std::printf("listening on %s\n", server.local_address().to_string().c_str());
    std::fflush(stdout);
    auto [conn, peer] = server.accept();
    struct ::stat st {};
    ::fstat(conn.fileno(), &st);

    wire::OwnedFd handed(conn.detach());  // the int detach() returns, owned until handed over
    wire::ChildProcess child =
        wire::spawn({"/proc/self/exe", "--serve-fd-3"}, {.pass_fds = {{handed.fd(), 3}}});
    std::printf("parent: handed %s (fd %d) to child pid %d as its fd 3\n", peer.to_string().c_str(),
                handed.fd(), int(child.pid()));
    handed.close();
    std::printf("parent: /proc/self/fd %s socket:[%lu]\n",
                holds_socket(st.st_ino) ? "STILL HOLDS" : "no longer holds",
                static_cast<unsigned long>(st.st_ino));
    std::fflush(stdout);
    wire::ExitStatus status = child.wait();
    std::printf("parent: child %s\n", status.describe().c_str());
    return status.success() ? 0 : 1;
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "detach_to_child: %s\n", e.what());
    return 1;
  }
}
