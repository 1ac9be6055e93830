#include "wire/http/server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <ctime>
#include <optional>

#include "wire/async_stream.hpp"
#include "wire/transport.hpp"

namespace wire::http {
namespace {

using Clock = std::chrono::steady_clock;

// The Date and Server lines, formatted at most once a second per thread.
const std::string& date_and_server(const std::string& server_name) {
  thread_local std::int64_t cached_second = -1;
  thread_local std::string cached_name;
  thread_local std::string cached;
  std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  if (now != cached_second || server_name != cached_name) {
    cached_second = now;
    cached_name = server_name;
    cached = "Date: " + http_date(now) + "\r\nServer: " + server_name + "\r\n";
  }
  return cached;
}

// 1xx, 204, 205 and 304 responses have no content, whatever a handler set (RFC 9110 15).
bool status_has_body(int status) noexcept {
  return status / 100 != 1 && status != 204 && status != 205 && status != 304;
}

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

// Appends the status line and headers to `out`.
// How the body's end is told: its length, the last chunk, or (HTTP/1.0, which knows no
// chunks: RFC 9112 6.1) the connection's close.
enum class Framing { length, chunked, until_close };

void append_status_line_and_headers(std::string& out, const Response& response, bool keep_alive,
                                    const Options& options, std::uint64_t body_length,
                                    Framing framing, bool http10 = false) {
  if (response.status == 200) {
    out += "HTTP/1.1 200 OK\r\n";
  } else {
    out += "HTTP/1.1 ";
    append_number(out, static_cast<std::uint64_t>(response.status));
    out += ' ';
    out += reason_phrase(response.status);
    out += "\r\n";
  }
  out += date_and_server(options.server_name);
  for (const auto& [name, value] : response.headers) {
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (response.shared) out += response.shared->header_lines;
  // 1xx, 204 and 304 carry no body and no length; 205 no body and a length of 0 (RFC 9110
  // 15.3.6); HEAD gets the length GET would have.
  const bool no_body =
      response.status / 100 == 1 || response.status == 204 || response.status == 304;
  if (response.status == 205) body_length = 0;
  if (framing == Framing::chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (!no_body && framing == Framing::length) {
    out += "Content-Length: ";
    append_number(out, body_length);
    out += "\r\n";
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";  // 1.0 closes unless told otherwise (RFC 9112 C.2.2)
  }
  out += "\r\n";
}

std::string status_line_and_headers(const Response& response, bool keep_alive,
                                    const Options& options, std::uint64_t body_length,
                                    Framing framing) {
  std::string out;
  append_status_line_and_headers(out, response, keep_alive, options, body_length, framing);
  return out;
}

// The connection being served: the stream every byte goes through, and the AsyncSocket under
// it when serve_connection serves one (its idle and draining marks, its byte count, the peer
// a log line names). Over another transport (serve_stream) there is no socket.
struct Peer {
  AsyncStream& stream;
  AsyncSocket* socket;

  // A count of the bytes sent, modulo 2^32, whose differences are what went: the socket's
  // own when there is one (a handler may write to it directly), else the stream's.
  std::uint32_t bytes_sent() const noexcept {
    return socket != nullptr ? socket->bytes_sent()
                             : static_cast<std::uint32_t>(stream.bytes_written());
  }
  // What on_reject and on_error are given: the socket, or a closed one (no peer to name).
  const AsyncSocket& for_callbacks() const noexcept {
    static const AsyncSocket none;
    return socket != nullptr ? *socket : none;
  }
  void mark_idle(bool idle) const noexcept {
    if (socket != nullptr) socket->mark_idle(idle);
  }
  bool draining() const noexcept { return socket != nullptr && socket->draining(); }
};

// Bytes came (counted in the stats), or not: end of stream, an error, a timeout.
bool received(Result<std::size_t> got, ServerStats* stats) noexcept {
  if (!got || *got == 0) return false;
  if (stats) stats->add_received(*got);
  return true;
}
bool timed_out(Result<std::size_t> got) noexcept {
  return !got && got.error() == errc::timed_out;
}

// Reads more of a request, waiting at most `timeout`. Not a coroutine: a read that finds
// bytes waiting makes no frame.
StreamAwaitable<std::size_t> read_more(AsyncStream& stream, Clock::duration timeout) {
  if (timeout <= Clock::duration::zero()) return errc::timed_out;
  stream.set_timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
  return stream.fill(AsyncStream::default_fill, std::nothrow);
}

// Closes gently after a response that ends the connection: half-close, then read and drop
// what the client still sends, until it closes or linger_timeout passes without a byte
// (linger_time in all). Closing with unread bytes would send a reset, and a reset makes the
// client's kernel drop the response it had not read yet (nginx's lingering_close).
Task<void> drain_input(AsyncStream& stream, ServerStats* stats) {
  for (;;) {
    stream.consume(stream.buffered());  // counted when they came
    auto got = co_await stream.fill(AsyncStream::default_fill, std::nothrow);
    if (!received(got, stats)) co_return;
  }
}

// Bytes this connection sent since `before` (a bytes_sent() reading), when at least `known`
// of them are known to have gone (a count that may pass 4 GiB, as a file's): the 32-bit
// counter then gives the rest exactly.
std::uint64_t sent_since(const Peer& peer, std::uint32_t before, std::uint64_t known = 0) {
  const std::uint32_t delta = peer.bytes_sent() - before;
  return known + static_cast<std::uint32_t>(delta - static_cast<std::uint32_t>(known));
}

Task<void> linger_close(const Peer& peer, const Options& options) {
  if (!peer.stream.is_open() || !peer.stream.transport().shutdown()) co_return;
  peer.mark_idle(true);  // nothing is in flight: a graceful stop need not wait for this
  peer.stream.set_timeout(options.linger_timeout);
  try {
    co_await with_timeout(options.linger_time, drain_input(peer.stream, options.stats.get()));
  } catch (const Error&) {
    // linger_time is over: close anyway
  }
}

void report_error(const Peer& peer, const Options& options, const std::string& message,
                  bool print_by_default) {
  if (options.on_error) {
    try {
      options.on_error(peer.for_callbacks(), message);
    } catch (...) {
    }
  } else if (print_by_default) {
    std::fprintf(stderr, "wire: %s\n", message.c_str());
  }
}

// Answers a bad request and closes: the status and a short reason, then a lingering close
// so the client reads the answer instead of a reset.
Task<void> reject(const Peer& peer, int status, const char* reason, const Options& options) {
  if (options.on_reject) options.on_reject(peer.for_callbacks(), status, reason);
  Response response = Response::text(
      status, std::to_string(status) + " " + reason_phrase(status) + ": " + reason + "\n");
  std::string wire_bytes =
      status_line_and_headers(response, false, options, response.body.size(), Framing::length) +
      response.body;
  peer.stream.set_timeout(options.body_timeout);
  const std::uint32_t sent_before = peer.bytes_sent();
  const bool sent = static_cast<bool>(co_await peer.stream.write_all(wire_bytes, std::nothrow));
  if (options.stats) options.stats->add_response(status, sent_since(peer, sent_before));
  if (!sent) co_return;
  co_await linger_close(peer, options);
}

// The length of the empty lines (CRLF) in front of a request line, dropped as they come so
// they are never buffered; they count against the request line's limit. A lone CR stays:
// its LF may be in the next read.
std::size_t empty_lines_in_front(std::string_view bytes) noexcept {
  std::size_t n = 0;
  while (n + 1 < bytes.size() && bytes[n] == '\r' && bytes[n + 1] == '\n') n += 2;
  return n;
}

// The first header a handler set that would corrupt the response (a CR or LF in it splits
// the response in two), or null.
const std::pair<std::string, std::string>* invalid_header(const Response& response) {
  for (const auto& header : response.headers) {
    if (!is_valid_header_name(header.first) || !is_valid_header_value(header.second)) {
      return &header;
    }
  }
  return nullptr;
}

std::string describe_request(const Request& request) {
  std::string text(request.method);
  text += ' ';
  // The target as the log may show it: printable bytes only.
  for (char c : request.target.substr(0, 200)) text += (c > 0x20 && c < 0x7f) ? c : '?';
  return text;
}

}  // namespace

Response::Response(Response&& other) noexcept
    : stream(std::move(other.stream)),
      status(other.status),
      headers(std::move(other.headers)),
      body(std::move(other.body)),
      shared(std::move(other.shared)),
      file_fd(std::exchange(other.file_fd, -1)),
      file_offset(other.file_offset),
      file_length(other.file_length) {}

Response& Response::operator=(Response&& other) noexcept {
  if (this != &other) {
    if (file_fd >= 0) ::close(file_fd);
    stream = std::move(other.stream);
    status = other.status;
    headers = std::move(other.headers);
    body = std::move(other.body);
    shared = std::move(other.shared);
    file_fd = std::exchange(other.file_fd, -1);
    file_offset = other.file_offset;
    file_length = other.file_length;
  }
  return *this;
}

Response::~Response() {
  if (file_fd >= 0) ::close(file_fd);
}

Response Response::text(int status, std::string body, std::string content_type) {
  Response r(status);
  r.body = std::move(body);
  r.header("Content-Type", std::move(content_type));
  return r;
}

void Response::send_file(int fd, std::uint64_t offset, std::uint64_t length) {
  if (file_fd >= 0) ::close(file_fd);
  file_fd = fd;
  file_offset = offset;
  file_length = length;
}

Router& Router::add(std::string method, std::string path, Handler handler) {
  (*routes_)[std::move(path)][std::move(method)] = std::move(handler);
  return *this;
}

Handler Router::handler() const {
  return [routes = routes_](Request& request) -> Task<Response> {
    auto by_path = routes->find(std::string(request.path));
    if (by_path == routes->end()) co_return Response::text(404, "404 Not Found\n");
    const auto& methods = by_path->second;
    auto by_method = methods.find(std::string(request.method));
    // HEAD runs the GET handler unless it has its own (RFC 9110 9.3.2: a server that
    // answers GET answers HEAD too); the server sends GET's head without the body.
    if (by_method == methods.end() && request.method == "HEAD") by_method = methods.find("GET");
    if (by_method == methods.end()) {
      std::string allow;
      for (const auto& [method, h] : methods) {
        allow += (allow.empty() ? "" : ", ") + method;
        if (method == "GET" && !methods.contains("HEAD")) allow += ", HEAD";
      }
      Response r = Response::text(405, "405 Method Not Allowed\n");
      r.header("Allow", allow);
      co_return r;
    }
    co_return co_await by_method->second(request);
  };
}

namespace {

// What one request in flight needs: the parsed head (3 KiB of header slots) and the bytes
// in and out. Reused per thread rather than allocated for every request (their strings
// keep their capacity), and held only while requests are in flight, so an idle
// connection holds none. A connection's coroutines all run on its loop's thread.
struct Exchange {
  RequestHead head;
  std::string in;          // bytes read: the head, then whatever follows it
  std::string head_bytes;  // the head, set apart while a body is read into `in`
  std::string out;         // the response head, and a small body in the same write
};
constexpr std::size_t exchanges_kept = 64;
constexpr std::size_t exchange_capacity_kept = 64 * 1024;  // larger strings are let go

struct ReturnExchange {
  void operator()(Exchange* exchange) const noexcept;
};
using PooledExchange = std::unique_ptr<Exchange, ReturnExchange>;
// Trivially destructible, so still readable when the pool is gone at thread exit: an
// exchange returned after that (a loop destroyed late) is simply deleted.
thread_local bool exchange_pool_gone = false;
std::vector<Exchange*>& free_exchanges() {
  thread_local struct Pool {
    std::vector<Exchange*> exchanges;
    ~Pool() {
      exchange_pool_gone = true;
      for (Exchange* e : exchanges) delete e;
    }
  } pool;
  return pool.exchanges;
}
void ReturnExchange::operator()(Exchange* exchange) const noexcept {
  if (exchange_pool_gone) {
    delete exchange;
    return;
  }
  auto& pool = free_exchanges();
  if (pool.size() < exchanges_kept) {
    for (std::string* s : {&exchange->in, &exchange->head_bytes, &exchange->out}) {
      if (s->capacity() > exchange_capacity_kept) std::string().swap(*s);
      s->clear();
    }
    try {
      pool.push_back(exchange);
      return;
    } catch (...) {
    }
  }
  delete exchange;
}
PooledExchange acquire_exchange() {
  if (exchange_pool_gone) return PooledExchange(new Exchange);
  auto& pool = free_exchanges();
  if (pool.empty()) return PooledExchange(new Exchange);
  Exchange* exchange = pool.back();
  pool.pop_back();
  return PooledExchange(exchange);
}

}  // namespace

// One response on its way out: what the log needs if it is cut short.
struct Outgoing {
  std::uint64_t length = 0;       // the body's length (unknown when streamed)
  std::size_t head_size = 0;      // status line and headers
  std::uint32_t sent_before = 0;  // peer.bytes_sent() before the response
  std::uint64_t file_sent = 0;    // bytes of the file send_file took (exact, errors too)
  std::uint64_t sent_body = 0;    // body bytes, for the access log
  std::uint64_t known_sent = 0;   // bytes known to have gone (head, file, chunks), for stats
  bool streamed = false;          // the body comes from response.stream, after the head
  bool chunked = false;           // ... in chunks; else (HTTP/1.0) as it comes, until the close
  bool file_follows = false;
};

// A streamed body to an HTTP/1.0 client ends with the connection (it knows no chunks), so
// the connection cannot be kept.
bool ends_with_close(const RequestHead& head, const Response& response) noexcept {
  return head.version_minor == 0 && response.stream && status_has_body(response.status) &&
         head.method != "HEAD";
}

// Writes the status line and headers into `out`, and a small body after them (one write for
// both), and sets the connection's idle timeout for sending.
Outgoing prepare_response(const Peer& peer, const RequestHead& head, const Response& response,
                          bool keep_alive, const Options& options, std::string& out) {
  Outgoing o;
  // A 1xx, 204 or 304 has no body whatever the handler set (a body there would be read as
  // the next response). HEAD gets the head GET would have had, TE: chunked included
  // (RFC 9112 6.1), and no body. An HTTP/1.0 client gets no TE at all (6.1 again).
  const bool status_has_body = wire::http::status_has_body(response.status);
  // Methods are case-sensitive (RFC 9110 9.1): "head" is not HEAD, and gets a body, as the
  // Router (which compares exactly) answers it.
  const bool sends_body = status_has_body && head.method != "HEAD";
  const bool streamed = static_cast<bool>(response.stream) && status_has_body;
  const Framing framing = !streamed                 ? Framing::length
                          : head.version_minor == 0 ? Framing::until_close
                                                    : Framing::chunked;
  o.streamed = streamed && sends_body;
  o.chunked = o.streamed && framing == Framing::chunked;
  const std::string& body = response.shared ? response.shared->body : response.body;
  o.length = response.file_fd >= 0 ? response.file_length : body.size();
  out.clear();
  append_status_line_and_headers(out, response, keep_alive, options, o.length, framing,
                                 head.version_minor == 0);
  o.head_size = out.size();
  peer.stream.set_timeout(options.body_timeout);  // idle: re-armed by every chunk taken
  o.sent_before = peer.bytes_sent();
  if (sends_body && response.file_fd < 0 && !o.streamed) {
    out += body;
    o.sent_body = body.size();
  }
  o.file_follows = sends_body && !o.streamed && response.file_fd >= 0 && response.file_length > 0;
  return o;
}

// Reports a response cut short, with the body bytes that did go out. A body that only the
// close ends (HTTP/1.0, streamed) would pass for whole if the connection closed cleanly:
// it is reset instead (SO_LINGER 0), so the client sees it was cut.
void report_abort(const Peer& peer, const Request& request, const Options& options,
                  const Outgoing& o, std::error_code failure, std::string failure_what) {
  if (o.streamed && !o.chunked && peer.socket != nullptr && peer.socket->is_open()) {
    (void)peer.socket->socket().set_option(option::linger, std::chrono::seconds(0), std::nothrow);
  }
  // The head and whatever went with it, then the file's own exact count.
  const std::uint64_t went = static_cast<std::uint32_t>(peer.bytes_sent() - o.sent_before);
  const std::uint64_t body_went = o.file_sent > 0 ? o.file_sent
                                  : o.streamed    ? o.sent_body  // the pieces, not their framing
                                                  : (went > o.head_size ? went - o.head_size : 0);
  const bool handler_failed = !failure_what.empty();  // the body's stream threw
  // A connection closed under a send was closed on this side: by a stop whose grace ran out,
  // or by the handler itself.
  if (failure_what.empty() && failure == errc::socket_closed) {
    failure_what =
        "the connection was closed on this side (the server stopped and its grace period for "
        "open connections was over, or the handler closed it)";
  }
  std::string message = describe_request(request) + ": response aborted after " +
                        std::to_string(body_went) + " of " +
                        (o.streamed ? std::string("?") : std::to_string(o.length)) +
                        " body bytes: " + (failure_what.empty() ? failure.message() : failure_what);
  report_error(peer, options, message, handler_failed);
}

// The body that does not travel with the head: a file (the transport's send_file: sendfile(2)
// on a socket) or a stream (chunked). A child coroutine, so the common case (a small body in
// the head's write) needs no frame.
Task<bool> send_body(const Peer& peer, const Request& request, Response& response,
                     const Options& options, Outgoing& o) {
  std::error_code failure;
  std::string failure_what;
  if (o.file_follows) {
    const std::uint64_t before = peer.stream.bytes_written();
    auto sent = co_await peer.stream.send_file(response.file_fd, response.file_offset,
                                               response.file_length, std::nothrow);
    o.file_sent = peer.stream.bytes_written() - before;
    o.known_sent += o.file_sent;
    if (!sent) {
      failure = sent.error();
      // A file that got shorter meanwhile ends the send early: say so, not "I/O error".
      struct ::stat now {};
      if (::fstat(response.file_fd, &now) == 0 &&
          static_cast<std::uint64_t>(now.st_size) < response.file_offset + response.file_length) {
        failure_what = "the file shrank to " + std::to_string(now.st_size) +
                       " bytes while it was sent (the client was promised " +
                       std::to_string(response.file_length) + " body bytes)";
      }
    }
    o.sent_body = response.file_length;
  } else {
    for (;;) {
      std::string piece;
      try {
        piece = co_await response.stream();
      } catch (const std::exception& e) {
        failure = std::make_error_code(std::errc::io_error);
        failure_what = std::string("the body's stream failed: ") + e.what();
        break;
      }
      // In chunks; for HTTP/1.0 the bytes as they are, the close ending them.
      std::string frame;
      if (o.chunked && piece.empty()) {
        frame = "0\r\n\r\n";
      } else if (o.chunked) {
        char size_line[32];
        int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
        frame.assign(size_line, static_cast<std::size_t>(n));
        frame += piece;
        frame += "\r\n";
      }
      const std::string_view out = o.chunked ? std::string_view(frame) : std::string_view(piece);
      if (!out.empty()) {
        if (auto r = co_await peer.stream.write_all(out, std::nothrow); !r) {
          failure = r.error();
          break;
        }
      }
      o.known_sent += out.size();
      o.sent_body += piece.size();
      if (piece.empty()) break;
    }
  }
  if (failure) {
    report_abort(peer, request, options, o, failure, std::move(failure_what));
    co_return false;
  }
  co_return true;
}

// The whole response from a child coroutine, for with_timeout (Options::response_deadline).
Task<bool> send_response(const Peer& peer, const Request& request, Response& response,
                         const Options& options, Outgoing& o, const std::string& out) {
  auto sent = co_await peer.stream.write_all(out, o.file_follows, std::nothrow);
  if (!sent) {
    report_abort(peer, request, options, o, sent.error(), {});
    co_return false;
  }
  o.known_sent = out.size();
  if (o.file_follows || o.streamed)
    co_return co_await send_body(peer, request, response, options, o);
  co_return true;
}

// Serves the requests already buffered and those that follow on the heels of them, until
// the connection falls idle (true: keep it) or must close (false). Its frame, with
// everything a request needs, exists only while requests are in flight. Over a socket
// (`given` null), the bytes in `first` start a stream made here, borrowing the socket and
// reading into the per-thread exchange: an idle connection holds no read buffer.
Task<bool> serve_requests(AsyncSocket* socket, AsyncStream* given, const Handler& handler,
                          const Options& options, std::string_view first) {
  auto exchange = acquire_exchange();
  RequestHead& head = exchange->head;
  std::optional<SocketTransport> borrowed;
  std::optional<AsyncStream> own;
  if (given == nullptr) {
    exchange->in.assign(first);
    borrowed.emplace(SocketTransport::borrow(*socket));
    own.emplace(*borrowed, exchange->in);
  }
  AsyncStream& stream = given != nullptr ? *given : *own;
  const Peer peer{stream, socket};
  ServerStats* const stats = options.stats.get();
  for (;;) {
    if (stream.buffered() == 0) co_return true;

    // The head, within header_timeout of its first byte (the clock is read only if it
    // has to wait: most heads come whole in one read). A head arriving in pieces is parsed
    // again only when a piece can change the outcome (`checked`): O(bytes) in all.
    std::optional<Clock::time_point> header_deadline;
    ParseResult parsed;
    std::size_t checked = 0;
    std::size_t empty_lines = 0;
    for (;;) {
      std::string_view bytes = stream.peek();
      if (!bytes.empty() && bytes.front() == '\r') {
        if (const std::size_t skipped = empty_lines_in_front(bytes); skipped > 0) {
          stream.consume(skipped);
          empty_lines += skipped;
          checked = 0;
          bytes = stream.peek();
        }
        if (empty_lines > options.limits.max_request_line) {
          co_await reject(peer, 400, "too many empty lines before a request", options);
          co_return false;
        }
      }
      if (!bytes.empty()) {
        parsed = parse_request_head(bytes, head, options.limits, checked);
        if (parsed.state != ParseState::incomplete) break;
        checked = bytes.size();
      }
      if (!header_deadline) header_deadline = Clock::now() + options.header_timeout;
      auto got = co_await read_more(stream, *header_deadline - Clock::now());
      if (!received(got, stats)) {
        if (timed_out(got)) co_await reject(peer, 408, "the request head took too long", options);
        co_return false;
      }
    }
    if (parsed.state == ParseState::error) {
      co_await reject(peer, parsed.error.status, parsed.error.reason, options);
      co_return false;
    }
    const std::size_t head_size = parsed.consumed;
    if (head.body != BodyKind::none) {
      // Keep the head's bytes apart, so reading the body cannot move them under its views;
      // the stream then holds only what follows the head.
      exchange->head_bytes.assign(stream.peek().substr(0, head_size));
      stream.consume(head_size);
      parsed = parse_request_head(exchange->head_bytes, head, options.limits);
    }

    Request request;
    request.head = &head;
    request.method = head.method;
    request.target = head.target;
    request.connection = socket;
    request.stream = &stream;
    // The path of an absolute-form target ("http://host/p?q") is what follows its authority.
    std::string_view origin = request.target;
    if (origin.front() != '/' && origin != "*") {
      const auto scheme_end = origin.find("://");
      if (scheme_end != std::string_view::npos) {
        const auto path_start = origin.find_first_of("/?", scheme_end + 3);
        origin = path_start == std::string_view::npos ? std::string_view("/")
                                                      : origin.substr(path_start);
        if (origin.front() == '?') origin = std::string_view("/");
      }
    }
    auto question = origin.find('?');
    request.path = origin.substr(0, question);
    if (question != std::string_view::npos) request.query = origin.substr(question + 1);

    // The body, each read within body_timeout (an idle timeout: a slow upload that keeps
    // moving is not cut); it leaves the stream holding what follows it.
    if (head.body != BodyKind::none) {
      if (head.expect_continue && stream.buffered() == 0) {
        stream.set_timeout(options.body_timeout);
        const std::uint32_t sent_before = peer.bytes_sent();
        const bool sent = static_cast<bool>(
            co_await stream.write_all("HTTP/1.1 100 Continue\r\n\r\n", std::nothrow));
        if (stats) stats->add_sent(sent_since(peer, sent_before));
        if (!sent) co_return false;
      }
      if (head.body == BodyKind::length) {
        while (stream.buffered() < head.content_length) {
          auto got = co_await read_more(stream, options.body_timeout);
          if (!received(got, stats)) {
            if (timed_out(got)) co_await reject(peer, 408, "the request body stalled", options);
            co_return false;
          }
        }
        request.body.assign(stream.peek().substr(0, head.content_length));
        stream.consume(head.content_length);
      } else if (head.body == BodyKind::chunked) {
        ChunkedDecoder decoder(options.limits);
        std::size_t used = 0;
        for (;;) {
          auto step = decoder.feed(stream.peek().substr(used));
          if (step.error.status != 0) {
            co_await reject(peer, step.error.status, step.error.reason, options);
            co_return false;
          }
          request.body.append(step.data);
          used += step.consumed;
          if (step.done) break;
          if (step.consumed == 0) {
            stream.consume(used);
            used = 0;
            auto got = co_await read_more(stream, options.body_timeout);
            if (!received(got, stats)) {
              if (timed_out(got)) co_await reject(peer, 408, "the request body stalled", options);
              co_return false;
            }
          }
        }
        stream.consume(used);
      }
    }

    // Whatever a handler throws (a wire::Error from its own upstream connection included)
    // is its failure, not the client's: a 500 if nothing went out yet, a report, and this
    // connection closes after the answer.
    // A server handing over to a successor ends each connection after its next answer.
    bool keep_alive = head.keep_alive && !peer.draining();
    std::optional<Response> answer;
    const std::uint32_t sent_before_handler = peer.bytes_sent();
    std::string failure;
    try {
      answer.emplace(co_await handler(request));
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "a non-standard exception";
    }
    if (failure.empty()) {
      if (auto* bad = invalid_header(*answer)) {
        failure = "invalid response header set by the handler: " + bad->first;
        answer.reset();
      } else if (answer->status < 200 || answer->status > 599) {
        // A 1xx is interim: the client would wait on for the final answer that never comes.
        failure = "status " + std::to_string(answer->status) +
                  " is not a final status (200-599) and cannot answer a request";
        answer.reset();
      }
    }
    if (!failure.empty()) {
      report_error(peer, options, describe_request(request) + ": handler failed: " + failure, true);
      if (peer.bytes_sent() != sent_before_handler || !stream.is_open()) co_return false;
      answer.emplace(Response::text(500, "500 Internal Server Error\n"));
      keep_alive = false;
    }
    // The head (and a small body with it) from this frame; a file or a stream from a child;
    // everything from a child under with_timeout when a total deadline is asked for.
    Response& response = *answer;
    if (ends_with_close(head, response)) keep_alive = false;
    Outgoing outgoing = prepare_response(peer, head, response, keep_alive, options, exchange->out);
    bool sent = false;
    if (options.response_deadline) {
      try {
        sent = co_await with_timeout(
            *options.response_deadline,
            send_response(peer, request, response, options, outgoing, exchange->out));
      } catch (const Error& e) {
        report_abort(peer, request, options, outgoing, e.code(), {});
      }
    } else {
      // With a file to follow, the head is corked (MSG_MORE) to leave in the file's first
      // segment. The head goes from the exchange itself: nothing is pending in the stream.
      auto head_sent =
          co_await stream.write_all(exchange->out, outgoing.file_follows, std::nothrow);
      if (!head_sent) {
        report_abort(peer, request, options, outgoing, head_sent.error(), {});
      } else {
        outgoing.known_sent = exchange->out.size();
        sent = true;
        if (outgoing.file_follows || outgoing.streamed) {
          sent = co_await send_body(peer, request, response, options, outgoing);
        }
      }
    }
    // A response cut short counts too, with what of it went.
    if (stats) {
      stats->add_response(response.status,
                          sent_since(peer, outgoing.sent_before, outgoing.known_sent));
    }
    if (!sent) co_return false;
    if (options.on_response) options.on_response(request, response.status, outgoing.sent_body);
    if (!keep_alive) {
      co_await linger_close(peer, options);
      co_return false;
    }
    // A body-less request's head is still at the front: what follows it is the next one.
    if (head.body == BodyKind::none) stream.consume(head_size);
  }
}

Task<void> serve_connection(AsyncSocket& conn, const Handler& handler, const Options& options) {
  // Called for a new connection and, under a Server, again each time a parked keep-alive
  // connection becomes readable. The request machinery is a child coroutine that exists
  // only while requests are being served.
  conn.mark_parkable(false);
  const bool may_park = options.keepalive_timeout > park_after;
  for (bool lingering = false;; lingering = may_park) {
    // Between requests: wait here for park_after (a busy client's next request), then
    // return parkable so a Server keeps the connection with no frame at all.
    conn.set_timeout(lingering ? std::chrono::nanoseconds(park_after) : options.keepalive_timeout);
    conn.mark_idle(true);  // a graceful stop may close us now: nothing is in flight
    auto first = co_await conn.recv_pooled(std::nothrow);
    conn.mark_idle(false);
    if (!first && lingering && first.error() == errc::timed_out) {
      conn.set_timeout(options.keepalive_timeout);
      conn.mark_idle(true);
      conn.mark_parkable(true);
      co_return;
    }
    if (!first || first->empty()) co_return;  // idle timeout, close or error: just close
    if (options.stats) options.stats->add_received(first->size());
    if (!co_await serve_requests(&conn, nullptr, handler, options, first->view())) co_return;
  }
}

Task<void> serve_stream(AsyncStream& stream, const Handler& handler, const Options& options) {
  for (;;) {
    if (stream.buffered() == 0) {
      stream.set_timeout(options.keepalive_timeout);
      auto got = co_await stream.fill(AsyncStream::default_fill, std::nothrow);
      if (!received(got, options.stats.get())) co_return;  // closed, idle too long, or failed
    }
    if (!co_await serve_requests(nullptr, &stream, handler, options, {})) co_return;
  }
}

ConnectionHandler connection_handler(Handler handler, Options options) {
  auto shared =
      std::make_shared<std::pair<Handler, Options>>(std::move(handler), std::move(options));
  return [shared](AsyncSocket& conn) {
    // Responses are whole writes: Nagle would only hold a response's last segment back
    // until the client's delayed ACK (40 ms per keep-alive request).
    if (conn.socket().family() != Family::local) {
      (void)conn.socket().set_option(option::tcp_nodelay, true, std::nothrow);
    }
    return serve_connection(conn, shared->first, shared->second);
  };
}

// The phrases of RFC 9110 15 (and 6585's 428, 429, 431, 7725's 451, 8470's 425).
const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace wire::http
