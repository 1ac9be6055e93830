// HTTP over the Transport / AsyncStream interface: served over a pipe pair (no socket at
// all), over a transport layered on a socket (rot13, standing in for TLS), with peers that
// vanish halfway, and with the byte counts the status page and access log report. Also the
// stream verbs the server reads and writes with (lending reads, write_all, send_file).
#include <fcntl.h>
#include <sys/socket.h>

#include <cstdio>
#include <mutex>

#include "support.hpp"
#include "wire/async_stream.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"

using namespace wire;
using namespace std::chrono_literals;

class HttpOverTransportTest : public test::Test {};

namespace {

// `task`, failing with errc::timed_out if it takes longer than `limit`: no test hangs.
template <class T>
Task<T> within(std::chrono::nanoseconds limit, Task<T> task) {
  co_return co_await with_timeout(limit, std::move(task));
}

// What the server's handlers and callbacks saw, for the test to check afterwards.
struct Seen {
  std::mutex mutex;
  std::vector<std::string> errors;
  bool saw_no_socket = true;  // every request came with connection null and a stream
  std::uint64_t logged_body_bytes = 0;
};

Task<std::string> piece(std::shared_ptr<int> count) {
  ++*count;
  co_return *count <= 3 ? "piece " + std::to_string(*count) + "\n" : std::string();
}

Task<http::Response> app(http::Request& request, const http::Handler& files, Seen& seen) {
  if (request.connection != nullptr || request.stream == nullptr) seen.saw_no_socket = false;
  if (request.path == "/hello") co_return http::Response::text(200, "hello\n");
  if (request.path == "/echo") co_return http::Response::text(200, "got " + request.body);
  if (request.path == "/chunked") {
    http::Response response(200);
    auto count = std::make_shared<int>(0);
    response.stream = [count] { return piece(count); };
    co_return response;
  }
  if (request.path == "/big") co_return http::Response::text(200, std::string(1 << 20, 'b'));
  co_return co_await files(request);
}

struct App {
  explicit App(const std::string& root) : files(http::static_files(root)) {
    handler = [this](http::Request& request) { return app(request, files, seen); };
    options.stats = std::make_shared<http::ServerStats>();
    options.linger_timeout = 200ms;
    options.linger_time = 1s;
    options.on_error = [this](const AsyncSocket& connection, std::string_view message) {
      std::lock_guard lock(seen.mutex);
      seen.errors.emplace_back(message);
      if (connection.is_open()) seen.saw_no_socket = false;
    };
    options.on_response = [this](const http::Request&, int, std::uint64_t bytes) {
      seen.logged_body_bytes += bytes;
    };
  }
  http::Handler files;
  http::Handler handler;
  http::Options options;
  Seen seen;
};

// One response as the client reads it: the head, the body (chunks joined), and every byte
// read for it counted into `total`.
struct Reply {
  std::string head;
  std::string body;
};
Task<Reply> read_reply(AsyncStream& s, std::uint64_t& total, bool unrot = false) {
  auto decode = [unrot](std::string text) { return unrot ? test::rot13(std::move(text)) : text; };
  Reply reply;
  reply.head = decode(co_await s.read_until("\r\n\r\n", 65536));  // rot13 keeps CR LF
  total += reply.head.size();
  if (reply.head.find("Transfer-Encoding: chunked") != std::string::npos) {
    for (;;) {
      const std::string size_line = co_await s.read_line();
      total += size_line.size();
      const std::size_t size = std::stoul(size_line, nullptr, 16);
      if (size > 0) {
        std::string data = co_await s.read_exact(size);
        total += data.size();
        reply.body += decode(std::move(data));
      }
      total += (co_await s.read_line()).size();
      if (size == 0) break;
    }
  } else {
    const auto at = reply.head.find("Content-Length: ");
    const std::size_t length = std::stoul(reply.head.substr(at + 16));
    std::string data = co_await s.read_exact(length);
    total += data.size();
    reply.body = decode(std::move(data));
  }
  co_return reply;
}

Task<void> serve(AsyncStream& stream, const http::Handler& handler, const http::Options& options) {
  co_await http::serve_stream(stream, handler, options);
}

// The server's and the client's ends of two pipes: requests flow one way, responses the other.
struct PipePair {
  explicit PipePair(EventLoop& loop) {
    test::Pipe requests, responses;
    server = std::make_unique<AsyncStream>(AsyncFd::adopt(loop, std::move(requests.read_end)),
                                           AsyncFd::adopt(loop, std::move(responses.write_end)));
    client = std::make_unique<AsyncStream>(AsyncFd::adopt(loop, std::move(responses.read_end)),
                                           AsyncFd::adopt(loop, std::move(requests.write_end)));
  }
  std::unique_ptr<AsyncStream> server;
  std::unique_ptr<AsyncStream> client;
};

struct Conversation {
  std::vector<Reply> replies;
  std::uint64_t read = 0;     // bytes the client read
  std::uint64_t written = 0;  // bytes the client wrote
};

Task<Conversation> keep_alive_pipelining_chunked_file(EventLoop& loop, PipePair& pipes,
                                                      const App& app) {
  TaskHandle<void> server = loop.spawn(serve(*pipes.server, app.handler, app.options));
  AsyncStream& client = *pipes.client;
  Conversation c;
  // Two pipelined requests in one write, then a chunked upload, a chunked answer, a file.
  const std::string requests[] = {
      "GET /hello HTTP/1.1\r\nHost: pipe\r\n\r\nGET /hello?again HTTP/1.1\r\nHost: pipe\r\n\r\n",
      "POST /echo HTTP/1.1\r\nHost: pipe\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n7\r\n, pipes\r\n0\r\n\r\n",
      "GET /chunked HTTP/1.1\r\nHost: pipe\r\n\r\n",
      "GET /big.bin HTTP/1.1\r\nHost: pipe\r\n\r\n",
  };
  for (const std::string& request : requests) {
    co_await client.write(request);
    co_await client.drain();
    c.written += request.size();
    c.replies.push_back(co_await read_reply(client, c.read));
    if (&request == &requests[0]) c.replies.push_back(co_await read_reply(client, c.read));
  }
  co_await client.shutdown();  // the server reads end of stream and returns
  co_await server;
  pipes.server->close();  // serve_stream leaves its stream to its owner
  EXPECT_EQ(co_await client.read_some(), "") << "nothing after the last response";
  co_return c;
}

}  // namespace

TEST_F(HttpOverTransportTest, PipePairKeepAlivePipeliningChunkedAndAFile) {
  EventLoop loop;
  test::TempDir dir;
  const std::string file = test::random_bytes(300 * 1024);  // past a pipe's 64 KiB: waits
  dir.write("big.bin", file);
  App app(dir.file(""));
  PipePair pipes(loop);
  Conversation c =
      loop.run_until_complete(within(10s, keep_alive_pipelining_chunked_file(loop, pipes, app)));
  ASSERT_EQ(c.replies.size(), 5u);
  for (const Reply& reply : c.replies) {
    EXPECT_EQ(reply.head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << reply.head;
    EXPECT_EQ(reply.head.find("Connection: close"), std::string::npos) << "kept alive";
  }
  EXPECT_EQ(c.replies[0].body, "hello\n");
  EXPECT_EQ(c.replies[1].body, "hello\n");
  EXPECT_EQ(c.replies[2].body, "got hello, pipes");
  EXPECT_EQ(c.replies[3].body, "piece 1\npiece 2\npiece 3\n");
  EXPECT_EQ(c.replies[4].body, file) << "the file, through send_file's read-and-write path";
  EXPECT_TRUE(app.seen.saw_no_socket);
  EXPECT_TRUE(app.seen.errors.empty());

  // The counts the status page and the access log show, from the stream's own count.
  const auto stats = app.options.stats->snapshot();
  EXPECT_EQ(stats.requests, 5u);
  EXPECT_EQ(stats.sent, c.read);
  EXPECT_EQ(pipes.server->bytes_written(), c.read);
  EXPECT_EQ(stats.received, c.written);
  EXPECT_EQ(app.seen.logged_body_bytes, 6u + 6 + 16 + 24 + file.size());
}

namespace {

// The client of a rot13 server: it speaks rot13 on the wire, and reads the answers back.
Task<std::vector<Reply>> rot13_client(EventLoop& loop, AsyncStream& server_side,
                                      AsyncSocket& client_socket, const App& app) {
  TaskHandle<void> server = loop.spawn(serve(server_side, app.handler, app.options));
  std::vector<Reply> replies;
  std::uint64_t read = 0;
  // What goes on the wire is rot13: the server can only make sense of it through the
  // transport.
  const std::string request = test::rot13(
      "GET /hello HTTP/1.1\r\nHost: rot13\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: rot13\r\n"
      "Connection: close\r\n\r\n");
  co_await client_socket.send_all(request);
  SocketTransport transport = SocketTransport::borrow(client_socket);
  std::string buffer;
  AsyncStream reader(transport, buffer);
  replies.push_back(co_await read_reply(reader, read, true));
  replies.push_back(co_await read_reply(reader, read, true));
  EXPECT_EQ(co_await reader.read_some(), "") << "the server closed after Connection: close";
  client_socket.close();
  co_await server;
  co_return replies;
}

}  // namespace

TEST_F(HttpOverTransportTest, ALayeredTransportOverASocketCarriesHttp) {
  EventLoop loop;
  test::TempDir dir;
  const std::string file = test::random_bytes(100 * 1024);
  dir.write("big.bin", file);
  App app(dir.file(""));
  auto [client, server_socket] = test::async_pair(loop);
  AsyncStream server(std::make_unique<test::Rot13Transport>(
      std::make_unique<SocketTransport>(std::move(server_socket))));
  auto replies = loop.run_until_complete(within(10s, rot13_client(loop, server, client, app)));
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[0].head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << replies[0].head;
  EXPECT_EQ(replies[0].body, "hello\n");
  EXPECT_NE(replies[1].head.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(replies[1].body, file) << "the file, rot13'd by the transport and back";
  EXPECT_TRUE(app.seen.errors.empty());
}

namespace {

// A client that leaves halfway: after `request` is written and `read_before_leaving` bytes
// of the answer were read, it closes both its ends. The server must just end.
Task<std::size_t> vanishing_client(EventLoop& loop, PipePair& pipes, const App& app,
                                   std::string request, std::size_t read_before_leaving) {
  TaskHandle<void> server = loop.spawn(serve(*pipes.server, app.handler, app.options));
  co_await pipes.client->write(request);
  co_await pipes.client->drain();
  std::size_t read = 0;
  if (read_before_leaving > 0)
    read = (co_await pipes.client->read_exact(read_before_leaving)).size();
  pipes.client->close();
  co_await server;
  co_return read;
}

}  // namespace

TEST_F(HttpOverTransportTest, PeersVanishingMidRequestAndMidResponseEndOnlyTheirStream) {
  test::TempDir dir;
  const std::string file = test::random_bytes(1 << 20);
  dir.write("big.bin", file);
  struct Case {
    const char* what;
    std::string request;
    std::size_t read_before_leaving;
    const char* error;  // what on_error reports, "" for nothing
  };
  const Case cases[] = {
      {"mid-head", "GET /hello HTTP/1.1\r\nHost: pi", 0, ""},
      {"mid-body", "POST /echo HTTP/1.1\r\nHost: pipe\r\nContent-Length: 100\r\n\r\nabc", 0, ""},
      {"mid-response", "GET /big HTTP/1.1\r\nHost: pipe\r\n\r\n", 1000,
       "GET /big: response aborted after "},
      {"mid-file", "GET /big.bin HTTP/1.1\r\nHost: pipe\r\n\r\n", 1000,
       "GET /big.bin: response aborted after "},
  };
  for (const Case& c : cases) {
    EventLoop loop;
    App app(dir.file(""));
    PipePair pipes(loop);
    const std::size_t read = loop.run_until_complete(
        within(5s, vanishing_client(loop, pipes, app, c.request, c.read_before_leaving)));
    EXPECT_EQ(read, c.read_before_leaving) << c.what;
    if (*c.error == '\0') {
      EXPECT_TRUE(app.seen.errors.empty()) << c.what << ": " << app.seen.errors.front();
    } else {
      ASSERT_EQ(app.seen.errors.size(), 1u) << c.what;
      EXPECT_EQ(app.seen.errors[0].rfind(c.error, 0), 0u) << app.seen.errors[0];
    }
    EXPECT_TRUE(app.seen.saw_no_socket) << "on_error got a closed AsyncSocket: " << c.what;
    const auto stats = app.options.stats->snapshot();
    EXPECT_EQ(stats.sent, pipes.server->bytes_written()) << c.what;
  }
}

namespace {

Task<std::uint64_t> two_requests_over_a_socket(EventLoop& loop, AsyncSocket& client,
                                               AsyncSocket& server_socket, const App& app) {
  TaskHandle<void> server =
      loop.spawn(http::serve_connection(server_socket, app.handler, app.options));
  co_await client.send_all(
      "GET /hello HTTP/1.1\r\nHost: s\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: s\r\n\r\n");
  SocketTransport transport = SocketTransport::borrow(client);
  std::string buffer;
  AsyncStream reader(transport, buffer);
  std::uint64_t read = 0;
  (void)co_await read_reply(reader, read);
  (void)co_await read_reply(reader, read);
  client.close();
  co_await server;
  co_return read;
}

}  // namespace

TEST_F(HttpOverTransportTest, BytesSentStillCountOnTheSocketThroughTheTransport) {
  EventLoop loop;
  test::TempDir dir;
  const std::string file = test::random_bytes(200 * 1024);
  dir.write("big.bin", file);
  App app(dir.file(""));
  auto [client, server_socket] = test::async_pair(loop);
  const std::uint32_t before = server_socket.bytes_sent();
  const std::uint64_t read = loop.run_until_complete(
      within(10s, two_requests_over_a_socket(loop, client, server_socket, app)));
  // The head through write_some / write_some_corked and the file through send_file, all
  // counted by the socket (sendfile(2) included) and so by the status page.
  EXPECT_EQ(server_socket.bytes_sent() - before, read);
  const auto stats = app.options.stats->snapshot();
  EXPECT_EQ(stats.requests, 2u);
  EXPECT_EQ(stats.sent, read);
  EXPECT_EQ(app.seen.logged_body_bytes, 6u + file.size());
}

namespace {

Task<std::vector<std::string>> lend_and_write(AsyncStream& stream, int file_fd) {
  std::vector<std::string> seen;
  seen.emplace_back(stream.peek());  // what was in the buffer before: already read
  stream.consume(4);
  while (stream.peek().find('!') == std::string_view::npos) {
    auto n = co_await stream.fill(16, std::nothrow);
    if (!n || *n == 0) co_return seen;
  }
  seen.emplace_back(stream.peek());
  stream.consume(stream.buffered());
  const std::string reply = "reply:";
  co_await stream.write("buffered,");
  co_await stream.write_all(reply, true);  // after what is pending, from the caller's memory
  co_await stream.send_file(file_fd, 2, 3);
  co_await stream.write_all("done", std::nothrow);
  seen.push_back(std::to_string(co_await stream.fill()));  // the peer's end of stream
  co_return seen;
}

}  // namespace

TEST_F(HttpOverTransportTest, LendingReadsWriteAllAndSendFileOnBorrowedAndOwnedTransports) {
  test::TempDir dir;
  dir.write("f.txt", "0123456789");
  OwnedFd file(::open(dir.file("f.txt").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_GE(file.fd(), 0);
  const std::string expected = "buffered,reply:234done";
  {
    // A borrowed socket (sendfile(2)): the socket counts every byte, the stream too.
    EventLoop loop;
    auto [peer, socket] = test::async_pair(loop);
    std::string buffer = "pre:";
    SocketTransport transport = SocketTransport::borrow(socket);
    {
      AsyncStream stream(transport, buffer);
      ASSERT_EQ(::send(peer.fileno(), "lent bytes!", 11, 0), 11);
      ASSERT_EQ(::shutdown(peer.fileno(), SHUT_WR), 0);
      auto seen = loop.run_until_complete(within(5s, lend_and_write(stream, file.fd())));
      EXPECT_EQ(seen, (std::vector<std::string>{"pre:", "lent bytes!", "0"}));
      EXPECT_EQ(stream.bytes_written(), expected.size());
    }
    EXPECT_TRUE(socket.is_open()) << "a borrowing stream and transport leave the socket open";
    EXPECT_EQ(socket.bytes_sent(), expected.size());
    peer.set_timeout(5s);
    socket.close();
    EXPECT_EQ(loop.run_until_complete(test::read_bytes(peer, 100)), expected);
  }
  {
    // An owned pipe pair (Transport's default send_file: pread, then write_some).
    EventLoop loop;
    test::Pipe in, out;
    std::string buffer = "pre:";
    FdTransport transport(AsyncFd::adopt(loop, std::move(in.read_end)),
                          AsyncFd::adopt(loop, std::move(out.write_end)));
    AsyncStream stream(transport, buffer);
    ASSERT_EQ(::write(in.write_end.fd(), "lent bytes!", 11), 11);
    in.write_end.close();
    auto seen = loop.run_until_complete(within(5s, lend_and_write(stream, file.fd())));
    EXPECT_EQ(seen, (std::vector<std::string>{"pre:", "lent bytes!", "0"}));
    EXPECT_EQ(stream.bytes_written(), expected.size());
    stream.close();
    EXPECT_EQ(Stream(out.read_end.fd(), 5s).read_line(), expected) << "up to end of stream";
  }
}

namespace {
Task<std::size_t> read_to_end(AsyncStream& client, std::size_t got) {
  for (;;) {
    const std::string more = co_await client.read_some();
    if (more.empty()) co_return got;
    got += more.size();
  }
}

Task<std::size_t> read_after_shrink(EventLoop& loop, PipePair& pipes, const App& app,
                                    const std::string& path) {
  TaskHandle<void> server = loop.spawn(serve(*pipes.server, app.handler, app.options));
  AsyncStream& client = *pipes.client;
  co_await client.write("GET /shrinks.bin HTTP/1.1\r\nHost: pipe\r\n\r\n");
  co_await client.drain();
  const std::size_t first = (co_await client.read_exact(4096)).size();  // the send has begun
  if (::truncate(path.c_str(), 100'000) != 0) ADD_FAILURE() << "truncate";
  TaskHandle<std::size_t> reader = loop.spawn(read_to_end(client, first));
  co_await server;        // the response was cut: the server is done with this stream
  pipes.server->close();  // serve_stream leaves its stream to its owner
  co_return co_await reader;
}
}  // namespace

// A file that shrinks while it is sent ends the response early, and the log says why (it
// said "Input/output error"); the client gets no more than was promised and sees the cut.
TEST_F(HttpOverTransportTest, AFileThatShrinksWhileSentIsNamedInTheLog) {
  EventLoop loop;
  test::TempDir dir;
  dir.write("shrinks.bin", test::random_bytes(2 << 20));
  App app(dir.file(""));
  PipePair pipes(loop);
  const std::size_t got =
      loop.run_until_complete(read_after_shrink(loop, pipes, app, dir.file("shrinks.bin")));
  EXPECT_LT(got, std::size_t(2 << 20)) << "the response was cut";
  std::lock_guard lock(app.seen.mutex);
  ASSERT_EQ(app.seen.errors.size(), 1u);
  EXPECT_NE(app.seen.errors[0].find("the file shrank to 100000 bytes while it was sent"),
            std::string::npos)
      << app.seen.errors[0];
}
