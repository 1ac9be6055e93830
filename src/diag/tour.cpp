#include "wire/diag/tour.hpp"

#include <cstdio>
#include <thread>
#include <unordered_set>
#include <utility>

#include "../json_string.hpp"
#include "wire/socket.hpp"

namespace wire::diag {
namespace {

constexpr const char* tour_host = "127.0.0.1";
constexpr const char* greeting = "hello";

// The fd `name` holds in `step`, or nullptr once it holds none.
const FdInfo* held_by(const TourStep& step, std::string_view name) {
  for (const TourFd& held : step.fds) {
    if (held.name == name) return &held.info;
  }
  return nullptr;
}

// "127.0.0.1:8000", as the fd table spells it (to_string() adds "tcp://").
std::string host_port(const Address& address) {
  return address.host() + ":" + std::to_string(address.port());
}

bool in_state(const TourStep& step, std::string_view name, std::string_view state) {
  const FdInfo* info = held_by(step, name);
  return info != nullptr && info->state == state;
}

// The one socket without an fd in `state` at `local`, or nullptr.
const SocketInfo* socket_without_fd(const TourStep& step, std::string_view state,
                                    const std::string& local) {
  for (const SocketInfo& socket : step.without_fd.sockets) {
    if (socket.state == state && socket.local == local) return &socket;
  }
  return nullptr;
}

// The three sockets of the tutorial, in this process, and the steps that move them along.
class Tour {
 public:
  Tour(const TourOptions& options, const std::function<void(const TourStep&)>& on_step)
      : options_(options), on_step_(on_step) {}

  void run() {
    server_ = Socket(Family::inet, Type::stream);
    const int server_fd = server_.fileno();
    show("socket: the server's socket",
         "server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
         "wire::Socket server(wire::Family::inet, wire::Type::stream);",
         "socket() made a TCP socket in the kernel and gave this process fd " +
             std::to_string(server_fd) +
             ", the lowest free number: a socket is a file descriptor. It has no address yet, "
             "so no table of /proc/net lists it: its fd reads only socket:[INODE].");

    server_.bind(Address::inet(tour_host, options_.port));
    server_address_ = server_.local_address();
    const std::string port = std::to_string(server_address_.port());
    const std::string chosen =
        options_.port == 0 ? " (port 0 asked: the kernel chose " + port + ")" : "";
    show("bind: an address for it", "server.bind(('" + std::string(tour_host) + "', " + port + "))",
         "server.bind(wire::Address::inet(\"" + std::string(tour_host) + "\", " + port + "));",
         "bind() gave fd " + std::to_string(server_fd) + " the address " +
             host_port(server_address_) + chosen +
             ". getsockname() says so, yet /proc/net/tcp still does not list it: a TCP socket "
             "appears there once it listens or connects.");

    server_.listen();
    show("listen: the socket waits for clients", "server.listen()", "server.listen();",
         "listen() made fd " + std::to_string(server_fd) +
             " a listening socket (LISTEN): from now on the kernel itself answers handshakes "
             "for " +
             host_port(server_address_) +
             " and queues the connections until accept(). Its RECV-Q counts those waiting.",
         [](const TourStep& step) { return in_state(step, "server", "LISTEN"); });

    client_ = Socket(Family::inet, Type::stream);
    const int client_fd = client_.fileno();
    show("socket: the client's socket",
         "client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
         "wire::Socket client(wire::Family::inet, wire::Type::stream);",
         "A second socket, fd " + std::to_string(client_fd) +
             ": the client. It lives in this same process so that one fd table shows both "
             "ends; a real client has its own. Unbound and unconnected, it is in no table yet.");

    client_.connect(server_address_);
    client_address_ = client_.local_address();
    show("connect: the three-way handshake",
         "client.connect(('" + std::string(tour_host) + "', " + port + "))",
         "client.connect(wire::Address::inet(\"" + std::string(tour_host) + "\", " + port + "));",
         "connect() bound the client to a free port, " + host_port(client_address_) +
             ", and the kernels did the handshake (SYN, SYN-ACK, ACK): fd " +
             std::to_string(client_fd) +
             " is ESTAB. The server's end of the connection exists too, but no program holds "
             "it yet: it waits in fd " +
             std::to_string(server_fd) + "'s accept queue, which its RECV-Q counts.",
         [this](const TourStep& step) {
           const FdInfo* server = held_by(step, "server");
           return in_state(step, "client", "ESTAB") && server != nullptr &&
                  server->recv_queue == 1 &&
                  socket_without_fd(step, "ESTAB", host_port(server_address_)) != nullptr;
         });

    auto accepted = server_.accept();
    conn_ = std::move(accepted.socket);
    const int conn_fd = conn_.fileno();
    show("accept: a new fd for this client", "conn, addr = server.accept()",
         "auto [conn, addr] = server.accept();",
         "accept() took the connection off the queue and gave it a new fd, " +
             std::to_string(conn_fd) + ", for this one client (addr is " +
             host_port(accepted.peer) + "). fd " + std::to_string(server_fd) +
             " goes on listening for the next one: FD " + std::to_string(server_fd) +
             " listening, FD " + std::to_string(conn_fd) + " client A, and so on.",
         [](const TourStep& step) {
           return in_state(step, "conn", "ESTAB") && step.without_fd.sockets.empty();
         });

    client_.send_all(greeting);
    const std::size_t sent = std::string_view(greeting).size();
    show("send: bytes into the kernel", "client.sendall(b'hello')", "client.send_all(\"hello\");",
         "sendall() copied " + std::to_string(sent) +
             " bytes into the kernel and returned. Over loopback they are already in fd " +
             std::to_string(conn_fd) +
             "'s receive queue (RECV-Q), kept there until the program reads them.",
         [sent](const TourStep& step) {
           const FdInfo* conn = held_by(step, "conn");
           return conn != nullptr && conn->recv_queue == sent;
         });

    const std::string received = conn_.recv(1024);
    show("recv: bytes out of the kernel", "conn.recv(1024)", "std::string data = conn.recv(1024);",
         "recv(1024) returned " + std::to_string(received.size()) + " bytes, b'" + received +
             "', and so emptied fd " + std::to_string(conn_fd) + "'s receive queue.",
         [](const TourStep& step) {
           const FdInfo* conn = held_by(step, "conn");
           return conn != nullptr && conn->recv_queue == 0;
         });

    client_.close();
    show("close: the client hangs up", "client.close()", "client.close();",
         "close() freed fd " + std::to_string(client_fd) +
             " and the kernel sent a FIN. The client's socket outlives its fd: once the FIN "
             "is acknowledged it is FIN-WAIT-2, waiting for the server's FIN. The server's fd " +
             std::to_string(conn_fd) +
             " is CLOSE-WAIT: the peer is done (the FIN counts as one byte in its RECV-Q) and the "
             "socket stays until this program closes it. A server that never does keeps one "
             "such zombie per client.",
         [this](const TourStep& step) {
           return in_state(step, "conn", "CLOSE-WAIT") &&
                  socket_without_fd(step, "FIN-WAIT-2", host_port(client_address_)) != nullptr;
         });

    conn_.close();
    show("close: the server hangs up too", "conn.close()", "conn.close();",
         "close() freed fd " + std::to_string(conn_fd) +
             " and sent the server's FIN; once the client acknowledges it the server's side is "
             "gone. The client's side, which closed first, stays in TIME-WAIT for 60 s, "
             "without fd or program, so that a late packet of this connection is not taken "
             "for part of a new one. fd " +
             std::to_string(server_fd) + " still listens.",
         [this](const TourStep& step) {
           return held_by(step, "conn") == nullptr && step.without_fd.sockets.size() == 1 &&
                  socket_without_fd(step, "TIME-WAIT", host_port(client_address_)) != nullptr;
         });
  }

 private:
  using Settled = std::function<bool(const TourStep&)>;

  // What the kernel shows now: the tour's fds, each with the variable holding it, and the
  // sockets of its connection that no fd of this process holds.
  void read_kernel(TourStep& step) const {
    const std::pair<const char*, const Socket*> held[] = {
        {"server", &server_}, {"client", &client_}, {"conn", &conn_}};
    step.fds.clear();
    std::unordered_set<std::uint64_t> inodes;
    for (FdInfo& info : fd_table()) {
      if (info.inode != 0) inodes.insert(info.inode);
      for (const auto& [name, socket] : held) {
        if (socket->is_open() && socket->fileno() == info.fd) {
          step.fds.push_back({name, std::move(info)});
          break;
        }
      }
    }
    step.without_fd = {};
    if (client_address_.empty()) return;  // no connection yet: nothing can be without an fd
    SocketFilter filter;
    filter.tcp = true;
    filter.port = server_address_.port();
    step.without_fd = sockets(filter);
    const std::string server = host_port(server_address_);
    const std::string client = host_port(client_address_);
    std::erase_if(step.without_fd.sockets, [&](const SocketInfo& socket) {
      const bool ours = (socket.local == server && socket.peer == client) ||
                        (socket.local == client && socket.peer == server);
      return !ours || (socket.inode != 0 && inodes.count(socket.inode) != 0);
    });
  }

  // Reads the kernel until `settled` holds or settle_limit passes, then reports the step.
  void show(std::string title, std::string python, std::string wire, std::string explanation,
            const Settled& settled = {}) {
    TourStep step;
    step.number = ++number_;
    step.title = std::move(title);
    step.python = std::move(python);
    step.wire = std::move(wire);
    step.explanation = std::move(explanation);
    const auto deadline = std::chrono::steady_clock::now() + options_.settle_limit;
    for (;;) {
      read_kernel(step);
      step.settled = !settled || settled(step);
      if (step.settled || std::chrono::steady_clock::now() >= deadline) break;
      // The kernel offers no wait for a TCP state change short of sock_diag events:
      // look again shortly.
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    on_step_(step);
  }

  const TourOptions& options_;
  const std::function<void(const TourStep&)>& on_step_;
  Socket server_;
  Socket client_;
  Socket conn_;
  Address server_address_;
  Address client_address_;
  int number_ = 0;
};

}  // namespace

void run_tour(const TourOptions& options, const std::function<void(const TourStep&)>& on_step) {
  Tour(options, on_step).run();
}

std::string tour_step_json(const TourStep& step) {
  std::string out = "{\"number\": " + std::to_string(step.number) + ", \"title\": ";
  wire::internal::append_json_string(out, step.title);
  out += ", \"python\": ";
  wire::internal::append_json_string(out, step.python);
  out += ", \"wire\": ";
  wire::internal::append_json_string(out, step.wire);
  out += ", \"explanation\": ";
  wire::internal::append_json_string(out, step.explanation);
  out += std::string(", \"settled\": ") + (step.settled ? "true" : "false");
  out += ", \"names\": {";
  std::vector<FdInfo> rows;
  for (const TourFd& held : step.fds) {
    if (!rows.empty()) out += ", ";
    wire::internal::append_json_string(out, held.name);
    out += ": " + std::to_string(held.info.fd);
    rows.push_back(held.info);
  }
  out += "}, \"fds\": ";
  std::string table = to_json(rows);
  while (!table.empty() && table.back() == '\n') table.pop_back();
  out += table;
  std::string list = to_json(step.without_fd);
  while (!list.empty() && list.back() == '\n') list.pop_back();
  out += ", \"without_fd\": " + list + "}";
  return out;
}

}  // namespace wire::diag
