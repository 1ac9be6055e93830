// One process accepts, another serves: the acceptor hands each connection to the server over a
// Unix socketpair (SCM_RIGHTS, wire::send_fds), and the server checks who the acceptor is
// (SO_PEERCRED, wire::peer_credentials) before trusting what it sends.
// Usage: fd_passing [ADDRESS] [CLIENTS]     (serves CLIENTS, then both processes exit)
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "wire/process.hpp"
#include "wire/wire.hpp"

namespace {

int serve(wire::Socket& from_acceptor) {
  wire::Credentials acceptor = wire::peer_credentials(from_acceptor);
  std::printf("server pid %d: the acceptor is pid %d uid %d gid %d\n", int(::getpid()),
              int(acceptor.pid), int(acceptor.uid), int(acceptor.gid));
  if (acceptor.uid != ::getuid()) return 1;  // only our own user may hand us connections
  for (;;) {
    wire::ReceivedFds got = wire::recv_fds(from_acceptor, 1, 16);
    if (got.bytes.empty()) return 0;  // the acceptor closed its end: no more work
    wire::Socket& client = std::get<wire::Socket>(got.fds.at(0));
    client.send_all("served by pid " + std::to_string(::getpid()) + "\n");
    std::printf("server: served %s on its fd %d\n", client.peer_address().to_string().c_str(),
                client.fileno());
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  const int clients = argc > 2 ? std::atoi(argv[2]) : 1;
  try {
    wire::Socket listener = wire::create_server(where);
    std::printf("listening on %s\n", listener.local_address().to_string().c_str());
    std::fflush(stdout);
    auto [to_server, from_acceptor] = wire::Socket::pair();
    const ::pid_t server = ::fork();
    if (server < 0) throw wire::Error(std::error_code(errno, std::system_category()), "fork", "");
    if (server == 0) {
      listener.close();
      to_server.close();
      return serve(from_acceptor);
    }
    from_acceptor.close();
    for (int i = 0; i < clients; ++i) {
      auto [conn, peer] = listener.accept();
      wire::send_fds(to_server, {conn.fileno()}, "c");
      std::printf("acceptor pid %d: handed %s to the server\n", int(::getpid()),
                  peer.to_string().c_str());
      std::fflush(stdout);
      conn.close();  // the server's copy keeps the connection open
    }
    to_server.close();
    int status = 0;
    ::waitpid(server, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "fd_passing: %s\n", e.what());
    return 1;
  }
}
