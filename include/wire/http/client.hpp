// wire/http/client.hpp — a blocking HTTP/1.1 client with keep-alive reuse per host.
//
//   wire::http::Client client;
//   auto r = client.get("http://127.0.0.1:8000/index.html");
//   if (r.status == 200) std::cout << r.body;
//   client.request("POST", "http+unix:/run/app.sock:/api", {{"Content-Type", "text/plain"}}, "hi");
//
//   // Streamed both ways, with no size cap unless one is set: the head first, then the body
//   // as it arrives; the upload read from a file as it is sent.
//   wire::http::ClientRequest put{.method = "PUT", .url = "http://127.0.0.1:8000/up.iso"};
//   put.body_reader = [fd](std::span<char> buf) { return std::size_t(::read(fd, buf.data(),
//   buf.size())); }; put.body_length = file_size; client.send(put, {.on_head = [](const auto& r) {
//   print(r.status); },
//                     .on_body = [](std::string_view bytes, auto, auto) { write(bytes); }});
//
//   // Over a connection the caller made, through any Transport (transport.hpp): a plain
//   // socket here; a TLS transport would slot in the same way.
//   wire::BlockingSocketTransport conn(wire::create_connection("tcp://127.0.0.1:8000", 5s));
//   auto r = wire::http::request(conn, {.url = "http://127.0.0.1:8000/index.html"});
//   if (r.reusable) r = wire::http::request(conn, {.url = "http://127.0.0.1:8000/next"});
//
// Targets: http://[user:pass@]host[:port]/path and http+unix:/path/to.sock:/path. Responses
// framed by Content-Length, chunked encoding or the connection's close are all read; a
// connection the server keeps alive is reused for the next request to the same host.
// Safety, in the order a hostile server would try it:
// - Redirects are followed only when asked, resolved as RFC 3986 §5.2 says, only from http://
//   to http:// or within one http+unix: socket (a server on the network cannot send the
//   client to a local Unix socket), at most max_redirects hops; credentials (Authorization,
//   Cookie, Proxy-Authorization, the URL's user:pass) are dropped when the origin changes.
// - A request is sent again only when it is idempotent, its body can be sent again, and a
//   reused connection was closed by the server before any byte of the response came back;
//   never after a timeout.
// - A body kept in memory is capped (max_response); a streamed one only if max_body is set.
// - options.timeout bounds each wait (an idle timeout); options.max_time the whole request,
//   redirects included.
// Errors are wire::Error.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wire/socket.hpp"

namespace wire {
class Transport;
}

namespace wire::http {

struct ClientOptions {
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);  // connect, and each read/write
  // The whole request (connect, upload, redirects, body) at most this long.
  std::optional<std::chrono::nanoseconds> max_time = std::nullopt;
  bool follow_redirects = false;
  int max_redirects = 10;
  std::uint64_t max_response = 1ull << 30;  // body bytes kept in memory (ClientResponse::body)
  std::optional<std::uint64_t> max_body =
      std::nullopt;  // body bytes passed to an on_body sink (none: no cap)
  // Ask for gzip/deflate (Accept-Encoding) and hand on the decoded body. The caps above then
  // count decoded bytes, so a small compressed bomb cannot exhaust memory either.
  bool decompress = false;
  std::string user_agent = "wire/0.1";
};

struct ClientTimings {
  std::chrono::nanoseconds connect{0};     // from the start until the connection was ready
  std::chrono::nanoseconds first_byte{0};  // from the start until the response's first byte
  std::chrono::nanoseconds total{0};       // from the start until the body's end
};

struct ClientResponse {
  int status = 0;
  std::string reason;
  std::string version = "HTTP/1.1";  // as the server sent it
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                  // empty when the body went to an on_body callback
  std::string url;                   // the final URL, after redirects
  std::string remote;                // the address connected to, e.g. "tcp://127.0.0.1:8000"
  std::uint64_t body_bytes = 0;      // body bytes received on the wire (before decoding)
  std::uint64_t head_bytes = 0;      // bytes of the final response's head
  std::uint64_t uploaded_bytes = 0;  // request body bytes sent
  int redirects = 0;                 // redirects followed to get here
  // The connection may carry another request: the server keeps it alive and every byte of
  // this exchange was sent and read.
  bool reusable = false;
  ClientTimings timings;

  // The first header with this name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// What a URL names: where to connect, what to put in Host, and the request target.
struct Url {
  std::string connect;   // "tcp://host:port" or "unix:/path"
  std::string host;      // the Host header
  std::string target;    // "/path?query"
  std::string userinfo;  // "user:pass" from http://user:pass@host/, percent-decoded; or ""
  // scheme://host:port, or the socket for http+unix: (what "same origin" compares).
  std::string origin() const { return connect; }
};
// Scheme and host are case-insensitive (the host comes out lowercased), the #fragment is
// dropped (it is never sent), an IPv6 zone is written [fe80::1%25eth0] (RFC 6874). Throws
// wire::Error (errc::invalid_address) naming the bad part, among others any byte RFC 3986
// does not allow in a path or query (CR, LF, space, NUL, ...: they would go into the
// request line as they are) and any host that is not a name or an IP literal.
Url parse_url(std::string_view url);

// `bytes` with everything but RFC 3986's unreserved characters and `also_keep` written as
// %XX: percent_encode("a b#c") == "a%20b%23c"; a path segment keeps "!$&'()*+,;=:@".
std::string percent_encode(std::string_view bytes, std::string_view also_keep = {});

// The URL with its password replaced by "***" ("http://me:***@host/"): for messages.
std::string redact_userinfo(std::string_view url);

// The value of an Authorization header for Basic auth: "Basic " + base64("user:pass").
std::string basic_authorization(std::string_view user_and_password);

using Headers = std::vector<std::pair<std::string, std::string>>;

struct ClientRequest {
  std::string method = "GET";
  std::string url;
  // Sent after the defaults (Host, User-Agent, Accept, Authorization from the URL); a name
  // given here replaces the default of that name.
  Headers headers = {};
  // Default headers not to send at all (curl's -H 'Name:'), by case-insensitive name.
  std::vector<std::string> omit = {};
  std::string body = {};
  // A streamed body instead of `body`: called until it returns 0 (or throws). With
  // body_length the request says Content-Length, without it the body is sent chunked. Such a
  // body cannot be sent twice, so it is never retried and a 307/308 redirect is an error.
  std::function<std::size_t(std::span<char>)> body_reader = nullptr;
  std::optional<std::uint64_t> body_length = std::nullopt;
};

// Receives the body as it arrives: (bytes, received so far, total if known).
using BodySink = std::function<void(std::string_view bytes, std::uint64_t received,
                                    std::optional<std::uint64_t> total)>;

struct ResponseHandlers {
  // The final response's head (status, headers, version: no body yet), before any of its
  // body reaches on_body. Redirects that are followed do not reach it.
  std::function<void(const ClientResponse&)> on_head = nullptr;
  BodySink on_body =
      nullptr;  // set: the body is streamed here rather than kept in ClientResponse::body
  // What curl -v shows: '*' a note ("connected to ..."), '>' the request head, '<' a
  // response head (interim ones too), each as one block of text.
  std::function<void(char kind, std::string_view text)> on_trace = nullptr;
};

// One request and its response over a connection the caller made, through any Transport
// (a BlockingSocketTransport, an FdTransport over pipes, a TLS transport): the head and
// body as Client::send sends them, the response read as Client reads it, every wait bounded
// by options.timeout and options.max_time with Transport::wait_blocking. request.url gives
// the Host header and the target; where it points is the transport's business. Never
// retried, redirects never followed (a redirect is returned; options.follow_redirects is an
// error: a redirect may need another connection, which is Client's job). After it, the
// transport may carry another request only if the response says `reusable`. Throws
// wire::Error naming the request and the transport ("read response GET pipe:[123]/: the
// server closed the connection before a complete response head").
ClientResponse request(Transport& transport, const ClientRequest& request,
                       const ClientOptions& options = {}, const ResponseHandlers& handlers = {});

class Client {
 public:
  using Headers = http::Headers;

  explicit Client(ClientOptions options = {}) : options_(std::move(options)) {}

  ClientResponse get(std::string_view url) { return request("GET", url); }
  ClientResponse request(std::string_view method, std::string_view url, const Headers& headers = {},
                         std::string_view body = {}, const BodySink& on_body = {});
  ClientResponse send(const ClientRequest& request, const ResponseHandlers& handlers = {});
  // Keep-alive connections held, one per host.
  std::size_t pooled() const noexcept { return pool_.size(); }
  const ClientOptions& options() const noexcept { return options_; }

 private:
  struct Exchange;
  ClientResponse exchange(Exchange& x);
  ClientOptions options_;
  std::map<std::string, Socket> pool_;  // by Url::connect
};

}  // namespace wire::http
