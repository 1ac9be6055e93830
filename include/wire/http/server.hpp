// wire/http/server.hpp — HTTP/1.1 over wire's server: keep-alive, pipelining, limits.
//
//   wire::http::Router router;
//   router.add("GET", "/hello", [](wire::http::Request&) -> wire::Task<wire::http::Response> {
//     co_return wire::http::Response::text(200, "hello\n");
//   });
//   wire::serve("tcp://127.0.0.1:8080", wire::http::connection_handler(router.handler()));
//
//   // Over any byte stream: a pipe pair, or a transport layered over a socket (TLS).
//   wire::Task<> serve_pipes(wire::EventLoop& loop, wire::OwnedFd in, wire::OwnedFd out,
//                            const wire::http::Handler& handler) {
//     wire::AsyncStream stream(wire::AsyncFd::adopt(loop, std::move(in)),
//                              wire::AsyncFd::adopt(loop, std::move(out)));
//     co_await wire::http::serve_stream(stream, handler, {});   // until the peer is done
//   }
//
// One coroutine per connection reads requests with the strict parser, answers them in
// order (pipelined requests included), and keeps the connection open per HTTP/1.1 rules.
// Timeouts: the header block must arrive within header_timeout from its first byte (a
// client trickling headers is cut off: 408); reading a body and sending a response are cut
// after body_timeout without progress (a slow transfer that keeps moving is never cut;
// response_deadline adds a total bound if wanted); an idle keep-alive connection is closed
// after keepalive_timeout. A bad request is answered with its status, a short body and
// Connection: close, and only that connection is closed.
// Lingering close: a response that ends the connection is followed by a half-close and a
// bounded drain of what the client still sends (linger_timeout idle, linger_time in all),
// so the client reads the response instead of a reset (a 413 before a large upload, a
// pipelined request after Connection: close).
// A handler that throws (anything, wire::Error included) gets its request a 500 when nothing
// was sent yet, is reported through on_error, and ends only its own connection.
// While waiting for a request, a connection holds no buffer (recv_pooled).
// Every byte goes through an AsyncStream over a Transport (async_stream.hpp): over a socket,
// a borrowing one made per burst of requests; with serve_stream, the caller's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wire/async_socket.hpp"
#include "wire/http/parser.hpp"
#include "wire/http/server_stats.hpp"
#include "wire/server.hpp"

namespace wire {
class AsyncStream;
}

namespace wire::http {

struct Request {
  const RequestHead* head = nullptr;  // views into the connection's buffer
  std::string_view method;
  std::string_view target;
  std::string_view path;   // target before '?', not decoded
  std::string_view query;  // after '?', not decoded
  std::string body;        // the whole body (at most Limits::max_body)
  // The socket it came on; null under serve_stream (the transport may not be a socket).
  AsyncSocket* connection = nullptr;
  // The stream it came on, valid while the handler runs. Bytes a handler writes through it
  // go out before the response's own head (a protocol switch after a 101, say) and are
  // counted as sent; anything else corrupts the response. Do not read from it (the server
  // owns the reading), and do not close it (return a response with Connection: close).
  AsyncStream* stream = nullptr;

  std::string_view header(std::string_view name) const { return head->header(name); }
};

// Header lines and a body made once and answered many times (a cached file, a canned
// reply): a Response holding them shares rather than copies them.
struct SharedParts {
  // "Name: value\r\n" each; not Content-Length or Transfer-Encoding (the server adds them).
  std::string header_lines;
  std::string body;
};

class Response {
 public:
  Response() = default;
  explicit Response(int status) : status(status) {}
  Response(Response&& other) noexcept;
  Response& operator=(Response&& other) noexcept;
  Response(const Response&) = delete;
  Response& operator=(const Response&) = delete;
  ~Response();

  static Response text(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");

  Response& header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
    return *this;
  }
  // Sends `length` bytes of `fd` from `offset` with the transport's send_file (sendfile(2)
  // on a socket, read and written otherwise); the Response owns fd.
  void send_file(int fd, std::uint64_t offset, std::uint64_t length);
  // Streams the body with chunked encoding: called until it returns "".
  std::function<Task<std::string>()> stream;

  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // When set, its header lines follow `headers` and its body is the body (`body` empty).
  std::shared_ptr<const SharedParts> shared;
  int file_fd = -1;
  std::uint64_t file_offset = 0;
  std::uint64_t file_length = 0;
};

using Handler = std::function<Task<Response>(Request&)>;

// Method + path -> handler. Unknown path: 404; known path, other method: 405 with Allow.
// HEAD runs the GET handler when it has none of its own (the server drops the body).
class Router {
 public:
  Router& add(std::string method, std::string path, Handler handler);
  Handler handler() const;

 private:
  std::shared_ptr<std::map<std::string, std::map<std::string, Handler>>> routes_ =
      std::make_shared<std::map<std::string, std::map<std::string, Handler>>>();
};

struct Options {
  Limits limits;
  std::chrono::nanoseconds header_timeout = std::chrono::seconds(10);
  std::chrono::nanoseconds body_timeout = std::chrono::seconds(30);
  std::chrono::nanoseconds keepalive_timeout = std::chrono::seconds(30);
  // Optional: the most one response may take to send, progress or not (none by default).
  std::optional<std::chrono::nanoseconds> response_deadline;
  std::chrono::nanoseconds linger_timeout = std::chrono::seconds(2);
  std::chrono::nanoseconds linger_time = std::chrono::seconds(5);
  std::string server_name = "wire";
  // Called once per answered request (an access log line), may be empty.
  std::function<void(const Request&, int status, std::uint64_t bytes)> on_response;
  // Called once per request refused before it reached the handler (malformed, over a
  // limit, too slow): the status it gets and the parser's reason, for the error log.
  // Under serve_stream, this and on_error get a closed AsyncSocket (no peer to name).
  std::function<void(const AsyncSocket& connection, int status, std::string_view reason)> on_reject;
  // Called for each failure that is not the client's fault or ends a response early: a
  // handler that threw (and got a 500), an invalid header set by a handler, a response cut
  // short ("GET /big.bin: response aborted after 65536 of 2097152 body bytes: Broken pipe").
  // When empty, handler failures are printed to stderr and aborted responses are not.
  std::function<void(const AsyncSocket& connection, std::string_view message)> on_error;
  // Optional: requests by status and bytes in and out are added to it (a few relaxed atomic
  // increments per request). Give the same object to ServeOptions::counters for the
  // connection counts, and to with_status_page() to show it (wire/http/status_page.hpp).
  std::shared_ptr<ServerStats> stats;
};

// Serves HTTP on one connection until it closes.
Task<void> serve_connection(AsyncSocket& conn, const Handler& handler, const Options& options);
// Serves HTTP on any byte stream (a pipe pair, a transport over a socket: AsyncStream's
// Transport) until the peer ends it, it idles past keepalive_timeout, or a response closes it
// (after a half-close and the lingering drain); the stream stays the caller's to close.
// Bytes read but not yet asked for wait in the stream's own buffer, also between requests.
// A file is sent with the transport's send_file; counts come from stream.bytes_written().
Task<void> serve_stream(AsyncStream& stream, const Handler& handler, const Options& options);
// A ConnectionHandler for wire::serve() / wire::Server.
ConnectionHandler connection_handler(Handler handler, Options options = {});

const char* reason_phrase(int status) noexcept;
// The current time as an IMF-fixdate (RFC 9110), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::int64_t unix_seconds);
// Parses an IMF-fixdate; -1 when it is not a valid one (a wrong day name, Feb 30, 24:00).
std::int64_t parse_http_date(std::string_view text) noexcept;

}  // namespace wire::http
