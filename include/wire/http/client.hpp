// wire/http/client.hpp — a blocking HTTP/1.1 client with keep-alive reuse per host.
//
//   wire::http::Client client;
//   auto r = client.get("http://127.0.0.1:8000/index.html");
//   if (r.status == 200) std::cout << r.body;
//   client.request("POST", "http+unix:/run/app.sock:/api", {{"Content-Type", "text/plain"}}, "hi");
//
// Targets: http://host[:port]/path and http+unix:/path/to.sock:/path. Responses framed by
// Content-Length, chunked encoding or the connection's close are all read; a connection
// the server keeps alive is reused for the next request to the same host (and a reused
// connection the server had closed meanwhile is replaced once, transparently).
// Redirects are followed only when asked, resolved as RFC 3986 §5.2 says, and only from
// http:// to http:// or within one http+unix: socket: a server on the network cannot send
// the client to a local Unix socket. Errors are wire::Error; the response size is capped
// (ClientOptions::max_response) so a hostile server cannot exhaust memory.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wire/socket.hpp"

namespace wire::http {

struct ClientOptions {
  std::chrono::nanoseconds timeout = std::chrono::seconds(30);  // connect, and each read/write
  bool follow_redirects = false;
  int max_redirects = 10;
  std::uint64_t max_response = 1ull << 30;  // body bytes kept in memory or passed to on_body
};

struct ClientResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // empty when the body went to an on_body callback
  std::string url;   // the final URL, after redirects

  // The first header with this name (case-insensitive), or "".
  std::string header(std::string_view name) const;
};

// What a URL names: where to connect, what to put in Host, and the request target.
struct Url {
  std::string connect;  // "tcp://host:port" or "unix:/path"
  std::string host;     // the Host header
  std::string target;   // "/path?query"
};
// Scheme and host are case-insensitive (the host comes out lowercased), the #fragment is
// dropped (it is never sent), an IPv6 zone is written [fe80::1%25eth0] (RFC 6874). Throws
// wire::Error (errc::invalid_address) naming the bad part, among others any byte RFC 3986
// does not allow in a path or query (CR, LF, space, NUL, ...: they would go into the
// request line as they are) and any host that is not a name or an IP literal.
Url parse_url(std::string_view url);

class Client {
 public:
  using Headers = std::vector<std::pair<std::string, std::string>>;
  // Receives the body as it arrives: (bytes, received so far, total if known).
  using BodySink = std::function<void(std::string_view bytes, std::uint64_t received,
                                      std::optional<std::uint64_t> total)>;

  explicit Client(ClientOptions options = {}) : options_(options) {}

  ClientResponse get(std::string_view url) { return request("GET", url); }
  ClientResponse request(std::string_view method, std::string_view url, const Headers& headers = {},
                         std::string_view body = {}, const BodySink& on_body = {});
  // Keep-alive connections held, one per host.
  std::size_t pooled() const noexcept { return pool_.size(); }

 private:
  ClientResponse exchange(std::string_view method, const Url& url, const Headers& headers,
                          std::string_view body, const BodySink& on_body);
  ClientOptions options_;
  std::map<std::string, Socket> pool_;  // by Url::connect
};

}  // namespace wire::http
