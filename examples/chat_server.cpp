// A multi-client chat: every line a client sends reaches every other client.
// Usage: chat_server [ADDRESS]   (default tcp://127.0.0.1:8080; port 0 picks a free one)
//   nc 127.0.0.1 8080     (in two terminals; type)
//
// The coroutine toolkit together: AsyncStream reads lines, a SendQueue per member lets
// any number of coroutines write to it in order (a member too slow to keep up is dropped,
// never waited for), and a TaskGroup holds the connections; SIGINT/SIGTERM end the server
// through add_signal_handler, cancelling the group.
#include <csignal>
#include <cstdio>
#include <set>
#include <string>

#include "wire/wire.hpp"

struct Member {
  std::string name;
  wire::SendQueue& out;
};

struct Room {
  std::set<Member*> members;
  void broadcast(const Member* from, const std::string& line) {
    for (Member* member : members) {
      if (member == from) continue;
      if (!member->out.try_send(line)) member->out.close();  // too slow: let it go
    }
  }
};

wire::Task<> chat(wire::AsyncSocket conn, Room& room) {
  const std::string name = conn.peer_address().to_string();
  wire::AsyncStream in(std::move(conn));
  auto& socket = static_cast<wire::SocketTransport&>(in.transport()).socket();
  socket.set_timeout(std::chrono::seconds(10));  // a writer stuck this long fails its queue
  wire::SendQueue out(socket, 64);
  Member me{name, out};
  room.members.insert(&me);
  room.broadcast(&me, name + " joined\n");
  try {
    for (;;) {
      std::string line = co_await in.read_line(4096);
      if (line.empty() || out.failed()) break;  // the peer left, or fell behind
      room.broadcast(&me, name + ": " + line);
    }
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
  }
  room.members.erase(&me);
  room.broadcast(&me, name + " left\n");
}

wire::Task<> serve(wire::EventLoop& loop, const char* where) {
  wire::AsyncSocket listener(loop, wire::create_server(where));
  std::printf("chat on %s\n", listener.local_address().to_string().c_str());
  std::fflush(stdout);
  Room room;
  wire::TaskGroup clients;
  wire::Event stop;
  loop.add_signal_handler(SIGINT, [&stop] { stop.set(); });
  loop.add_signal_handler(SIGTERM, [&stop] { stop.set(); });
  auto accept_all = [](wire::AsyncSocket& listener, Room& room,
                       wire::TaskGroup& clients) -> wire::Task<> {
    for (;;) {
      auto [conn, peer] = co_await listener.accept();
      clients.spawn(chat(std::move(conn), room)).detach();
    }
  };
  co_await wire::when_any(accept_all(listener, room, clients),
                          [](wire::Event& stop) -> wire::Task<> { co_await stop.wait(); }(stop));
  std::printf("stopping: %zu clients\n", room.members.size());
  clients.cancel();
  co_await clients.join_settled();
  loop.remove_signal_handler(SIGINT);
  loop.remove_signal_handler(SIGTERM);
}

int main(int argc, char** argv) {
  try {
    wire::EventLoop loop;
    loop.run_until_complete(serve(loop, argc > 1 ? argv[1] : "tcp://127.0.0.1:8080"));
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "chat_server: %s\n", e.what());
    return 1;
  }
}
