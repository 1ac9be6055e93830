// Seed, "What About Selectors / Epoll?":
//   readable, _, _ = select.select([server_socket], [], [])
//   conn, addr = server_socket.accept()   # does not block: select said it is ready
// One thread serves many clients: the selector says which fds are ready, and only those
// are touched. Usage: select_server [ADDRESS] [CLIENTS]  (echoes; exits after CLIENTS
// clients have come and gone). WIRE_SELECTOR=select|poll|epoll picks the backend.
#include <cstdio>
#include <cstdlib>
#include <map>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  int clients_left = argc > 2 ? std::atoi(argv[2]) : 3;
  try {
    wire::Socket server_socket = wire::create_server(where);
    auto selector = wire::Selector::create();
    selector->register_fd(server_socket.fileno(), wire::readable, &server_socket);
    std::map<int, wire::Socket> clients;  // fd -> its socket
    std::printf("listening on %s with %s\n", server_socket.local_address().to_string().c_str(),
                std::string(wire::to_string(selector->kind())).c_str());
    std::fflush(stdout);

    while (clients_left > 0 || !clients.empty()) {
      for (const wire::Ready& ready : selector->select()) {
        if (ready.data == &server_socket) {
          auto [conn, addr] = server_socket.accept();  // ready: this does not block
          std::printf("accepted %s on fd %d\n", addr.to_string().c_str(), conn.fileno());
          const int fd = conn.fileno();
          auto& stored = clients[fd] = std::move(conn);
          selector->register_fd(fd, wire::readable, &stored);
          if (--clients_left == 0) selector->unregister(server_socket.fileno());
          continue;
        }
        auto* conn = static_cast<wire::Socket*>(ready.data);
        std::string data = conn->recv(1024);
        if (data.empty()) {  // the client closed: unregister, then close (no CLOSE_WAIT)
          std::printf("fd %d closed\n", conn->fileno());
          selector->unregister(conn->fileno());
          clients.erase(conn->fileno());
          continue;
        }
        conn->send_all(data);
      }
      std::fflush(stdout);
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "select_server: %s\n", e.what());
    return 1;
  }
}
