// Lines from stdin and TCP clients, served by one thread on one EventLoop: neither waits for
// the other. stdin is an AsyncFd in an AsyncStream; each client gets the count of lines read
// so far. Usage: async_stdin [ADDRESS]   e.g.  (echo a; sleep 1; echo b) | async_stdin
//
// stdin is reopened (AsyncFd::reopen), not borrowed: the loop needs O_NONBLOCK, and on a
// terminal stdin and stdout are one open file description, so making stdin non-blocking would
// make this program's own printf to stdout fail with EAGAIN when the terminal is slow. A
// socket cannot be reopened; then stdin is borrowed (and its flag restored at the end).
#include <cstdarg>
#include <cstdio>

#include "wire/wire.hpp"

namespace {

struct State {
  int lines = 0;
  bool stdin_open = true;
};

void say(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vprintf(format, args);
  va_end(args);
  std::fflush(stdout);  // stdout may be a pipe: each line as it happens
}

wire::Task<> read_stdin(wire::AsyncStream& in, wire::AsyncSocket& listener, State& state) {
  try {
    for (;;) {
      std::string line = co_await in.read_line(4096);
      if (line.empty()) break;
      if (line.back() == '\n') line.pop_back();
      say("stdin line %d: %s\n", ++state.lines, line.c_str());
    }
    say("stdin closed after %d lines\n", state.lines);
  } catch (const wire::Error& e) {  // a line over 4096 bytes, say
    say("stdin failed: %s\n", e.what());
  }
  state.stdin_open = false;
  listener.close();  // wakes the accept below with errc::socket_closed: the server ends too
}

wire::Task<> answer_clients(wire::AsyncSocket& listener, State& state) {
  while (state.stdin_open) {
    auto accepted = co_await listener.accept(std::nothrow);
    if (!accepted) break;  // closed by read_stdin
    wire::AsyncStream conn(std::move(accepted->socket));
    conn.set_timeout(std::chrono::seconds(5));
    co_await conn.write("lines so far: " + std::to_string(state.lines) + "\n");
    if (auto sent = co_await conn.shutdown(std::nothrow); !sent) {
      say("a client left early: %s\n", sent.error().message().c_str());
      continue;
    }
    say("answered a client after %d lines\n", state.lines);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* where = argc > 1 ? argv[1] : "tcp://127.0.0.1:8080";
  try {
    wire::EventLoop loop;
    wire::AsyncSocket listener(loop, wire::create_server(where));
    auto reopened = wire::AsyncFd::reopen(loop, 0, std::nothrow);
    wire::AsyncStream in(reopened ? std::move(*reopened) : wire::AsyncFd::borrow(loop, 0));
    say("listening on %s\n", listener.local_address().to_string().c_str());
    State state;
    loop.spawn(read_stdin(in, listener, state));
    loop.spawn(answer_clients(listener, state));
    loop.run();  // until stdin ends and the server with it
  } catch (const wire::Error& e) {
    std::fprintf(stderr, "async_stdin: %s\n", e.what());
    return 1;
  }
}
