// Seed, "TCP CLOSE_WAIT — The Deadly Zombie Socket", the correct flow:
//   data = conn.recv(1024)
//   if not data:
//       conn.close()
// recv() returning nothing means the client sent FIN; closing at once means the socket never
// lingers in CLOSE_WAIT. Usage: close_on_eof [ADDRESS] [CLIENTS]  (serves CLIENTS in turn)
#include <cstdio>
#include <cstdlib>

#include "wire/wire.hpp"

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  int clients = argc > 2 ? std::atoi(argv[2]) : 1;
  try {
    wire::Socket server = wire::create_server(where);
    std::printf("listening on %s\n", server.local_address().to_string().c_str());
    std::fflush(stdout);
    for (int i = 0; i < clients; ++i) {
      auto [conn, addr] = server.accept();
      std::size_t total = 0;
      for (;;) {
        std::string data = conn.recv(1024);
        if (data.empty()) {  // the peer closed: close our side now, no CLOSE_WAIT
          std::printf("client %s closed after %zu bytes; closing fd %d\n", addr.to_string().c_str(),
                      total, conn.fileno());
          conn.close();
          break;
        }
        total += data.size();
        conn.send_all(data);
      }
      std::fflush(stdout);
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "close_on_eof: %s\n", e.what());
    return 1;
  }
}
