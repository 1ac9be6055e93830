#include "wire/http/server.hpp"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <ctime>
#include <optional>

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

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, end);
}

// Appends the status line and headers to `out`.
void append_status_line_and_headers(std::string& out, const Response& response, bool keep_alive,
                                    const Options& options, std::uint64_t body_length,
                                    bool chunked) {
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
  // 1xx, 204 and 304 carry no body and no length; HEAD gets the length GET would have.
  const bool no_body =
      response.status / 100 == 1 || response.status == 204 || response.status == 304;
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (!no_body) {
    out += "Content-Length: ";
    append_number(out, body_length);
    out += "\r\n";
  }
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
}

std::string status_line_and_headers(const Response& response, bool keep_alive,
                                    const Options& options, std::uint64_t body_length,
                                    bool chunked) {
  std::string out;
  append_status_line_and_headers(out, response, keep_alive, options, body_length, chunked);
  return out;
}

// Answers a bad request and closes: the status and a short reason, then a half-close and
// a brief drain so the client reads the answer instead of a reset.
Task<void> reject(AsyncSocket& conn, int status, const char* reason, const Options& options) {
  if (options.on_reject) options.on_reject(conn, status, reason);
  Response response = Response::text(
      status, std::to_string(status) + " " + reason_phrase(status) + ": " + reason + "\n");
  std::string wire_bytes =
      status_line_and_headers(response, false, options, response.body.size(), false) +
      response.body;
  conn.set_timeout(std::chrono::seconds(1));
  if (!(co_await conn.send_all(wire_bytes, std::nothrow))) co_return;
  (void)conn.socket().shutdown(Shutdown::write, std::nothrow);
  for (std::size_t drained = 0; drained < (1u << 20);) {
    auto data = co_await conn.recv_pooled(std::nothrow);
    if (!data || data->empty()) break;
    drained += data->size();
  }
}

// Reads more bytes into `into` before `deadline`; false on timeout, EOF or error
// (`timed_out` tells which).
Task<bool> read_more(AsyncSocket& conn, std::string& into, Clock::time_point deadline,
                     bool& timed_out) {
  auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero()) {
    timed_out = true;
    co_return false;
  }
  conn.set_timeout(std::chrono::duration_cast<std::chrono::nanoseconds>(left));
  auto data = co_await conn.recv_pooled(std::nothrow);
  if (!data) {
    timed_out = data.error() == errc::timed_out;
    co_return false;
  }
  if (data->empty()) co_return false;
  into.append(data->view());
  co_return true;
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
    auto by_method = by_path->second.find(std::string(request.method));
    if (by_method == by_path->second.end()) {
      std::string allow;
      for (const auto& [method, h] : by_path->second) allow += (allow.empty() ? "" : ", ") + method;
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

// Serves the requests in `first` and those that follow on the heels of them, until the
// connection falls idle (true: keep it) or must close (false). Its frame, with everything a
// request needs, exists only while requests are in flight.
Task<bool> serve_requests(AsyncSocket& conn, const Handler& handler, const Options& options,
                          std::string_view first) {
  auto exchange = acquire_exchange();
  std::string& buffer = exchange->in;
  RequestHead& head = exchange->head;
  buffer.assign(first);
  for (;;) {
    if (buffer.empty()) co_return true;

    // The head, within header_timeout of its first byte (the clock is read only if it
    // has to wait: most heads come whole in one read).
    std::optional<Clock::time_point> header_deadline;
    ParseResult parsed;
    for (;;) {
      parsed = parse_request_head(buffer, head, options.limits);
      if (parsed.state != ParseState::incomplete) break;
      if (!header_deadline) header_deadline = Clock::now() + options.header_timeout;
      bool timed_out = false;
      if (!co_await read_more(conn, buffer, *header_deadline, timed_out)) {
        if (timed_out) co_await reject(conn, 408, "the request head took too long", options);
        co_return false;
      }
    }
    if (parsed.state == ParseState::error) {
      co_await reject(conn, parsed.error.status, parsed.error.reason, options);
      co_return false;
    }
    const std::size_t head_size = parsed.consumed;
    if (head.body != BodyKind::none) {
      // Keep the head's bytes apart, so reading the body cannot move them under its views;
      // `buffer` then holds only what follows the head.
      exchange->head_bytes.assign(buffer, 0, head_size);
      buffer.erase(0, head_size);
      parsed = parse_request_head(exchange->head_bytes, head, options.limits);
    }

    Request request;
    request.head = &head;
    request.method = head.method;
    request.target = head.target;
    request.connection = &conn;
    auto question = request.target.find('?');
    request.path = request.target.substr(0, question);
    if (question != std::string_view::npos) request.query = request.target.substr(question + 1);

    // The body, within body_timeout; it leaves `buffer` holding what follows it.
    if (head.body != BodyKind::none) {
      const auto body_deadline = Clock::now() + options.body_timeout;
      if (head.expect_continue && buffer.empty()) {
        conn.set_timeout(options.body_timeout);
        if (!co_await conn.send_all("HTTP/1.1 100 Continue\r\n\r\n", std::nothrow)) co_return false;
      }
      bool timed_out = false;
      if (head.body == BodyKind::length) {
        while (buffer.size() < head.content_length) {
          if (!co_await read_more(conn, buffer, body_deadline, timed_out)) {
            if (timed_out) co_await reject(conn, 408, "the request body took too long", options);
            co_return false;
          }
        }
        request.body.assign(buffer, 0, head.content_length);
        buffer.erase(0, head.content_length);
      } else if (head.body == BodyKind::chunked) {
        ChunkedDecoder decoder(options.limits);
        std::size_t used = 0;
        for (;;) {
          auto step = decoder.feed(std::string_view(buffer).substr(used));
          if (step.error.status != 0) {
            co_await reject(conn, step.error.status, step.error.reason, options);
            co_return false;
          }
          request.body.append(step.data);
          used += step.consumed;
          if (step.done) break;
          if (step.consumed == 0) {
            buffer.erase(0, used);
            used = 0;
            if (!co_await read_more(conn, buffer, body_deadline, timed_out)) {
              if (timed_out) co_await reject(conn, 408, "the request body took too long", options);
              co_return false;
            }
          }
        }
        buffer.erase(0, used);
      }
    }

    std::optional<Response> answer;
    try {
      answer.emplace(co_await handler(request));
    } catch (const Error&) {
      throw;  // the connection itself failed: nothing to answer on
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wire: handler failed: %s\n", e.what());
      answer.emplace(Response::text(500, "500 Internal Server Error\n"));
    }
    Response& response = *answer;

    const bool keep_alive = head.keep_alive;
    const bool head_only = equals_ignore_case(head.method, "HEAD");
    const bool chunked = static_cast<bool>(response.stream) && !head_only;
    const std::string& body = response.shared ? response.shared->body : response.body;
    const std::uint64_t length = response.file_fd >= 0 ? response.file_length : body.size();
    std::string& out = exchange->out;
    out.clear();
    append_status_line_and_headers(out, response, keep_alive, options, length, chunked);
    conn.set_timeout(options.body_timeout);
    std::uint64_t sent_body = 0;
    const bool status_has_body =
        response.status / 100 != 1 && response.status != 204 && response.status != 304;
    if (!head_only && status_has_body && response.file_fd < 0 && !chunked) {
      out += body;  // one write for head and body
      sent_body = body.size();
    }
    const bool file_follows = !head_only && response.file_fd >= 0 && response.file_length > 0;
    // With a file to follow, the head waits (MSG_MORE) to leave in the file's first segment.
    co_await conn.send_all(out, file_follows ? MSG_MORE : 0);
    if (file_follows) {
      co_await conn.sendfile(response.file_fd, response.file_offset, response.file_length);
      sent_body = response.file_length;
    } else if (chunked) {
      for (;;) {
        std::string piece = co_await response.stream();
        char size_line[32];
        int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
        std::string frame(size_line, static_cast<std::size_t>(n));
        frame += piece;
        frame += "\r\n";
        if (piece.empty()) frame = "0\r\n\r\n";
        co_await conn.send_all(frame);
        sent_body += piece.size();
        if (piece.empty()) break;
      }
    }
    if (options.on_response) options.on_response(request, response.status, sent_body);
    if (!keep_alive) {
      (void)conn.socket().shutdown(Shutdown::write, std::nothrow);
      co_return false;
    }
    // A body-less request's head is still at the front: what follows it is the next one.
    if (head.body == BodyKind::none) buffer.erase(0, head_size);
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
    if (!co_await serve_requests(conn, handler, options, first->view())) co_return;
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

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 416:
      return "Range Not Satisfiable";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace wire::http
