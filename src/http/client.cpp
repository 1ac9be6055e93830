#include "wire/http/client.hpp"

#include <poll.h>

#include "exchange.hpp"
#include "url.hpp"
#include "wire/connect.hpp"
#include "wire/http/parser.hpp"
#include "wire/transport.hpp"

namespace wire::http {
namespace {

using detail::Clock;
using detail::is_redirect;

// RFC 9110 §9.2.2: what may be sent twice without changing the outcome.
bool is_idempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    if (method == m) return true;
  }
  return false;
}

std::string base64(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16 |
                       static_cast<unsigned char>(in[i + 1]) << 8 |
                       static_cast<unsigned char>(in[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(alphabet[(v >> shift) & 63]);
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out.append({alphabet[v >> 18], alphabet[(v >> 12) & 63], '=', '='});
  } else if (i + 2 == in.size()) {
    const unsigned v =
        static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8;
    out.append({alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63], '='});
  }
  return out;
}

// Where a redirect from `current` (parsed: `from`) to `location` leads, if it may go
// there: the URL to request next.
std::string follow(const std::string& current, const Url& from, std::string_view location) {
  const std::string refusing = "refusing Location '" + wire::detail::printable(location) + "': ";
  std::string next;
  Url to;
  try {
    next = detail::resolve_location(current, location);
    to = parse_url(next);
  } catch (const Error& e) {
    throw Error(e.code(), "follow redirect", redact_userinfo(current), refusing + e.what());
  }
  if (!detail::redirect_allowed(from, to)) {
    throw Error(std::make_error_code(std::errc::operation_not_permitted), "follow redirect",
                redact_userinfo(current),
                refusing + (from.connect.rfind("unix:", 0) == 0
                                ? "a redirect from an http+unix: URL may only stay on its socket"
                                : "a redirect from http:// may only go to http://, never to a "
                                  "local Unix socket"));
  }
  return next;
}

// A kept-alive connection the server closed meanwhile (or that has unasked-for bytes) is
// readable while idle: checked before it is used, so that even a request that may not be
// retried rarely meets a stale connection.
bool looks_alive(const Socket& socket) {
  ::pollfd p{socket.fileno(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

}  // namespace

std::string basic_authorization(std::string_view user_and_password) {
  return "Basic " + base64(user_and_password);
}

std::string ClientResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (equals_ignore_case(n, name)) return v;
  }
  return {};
}

struct Client::Exchange {
  const ClientRequest& request;
  const ResponseHandlers& handlers;
  std::string method;
  Url url;
  std::string url_text;
  bool with_body = true;    // false once a 303 turned the request into a GET
  bool credentials = true;  // the origin never changed since the caller's URL
  Clock::time_point start;
  std::optional<Clock::time_point> deadline;
  int redirects = 0;
};

ClientResponse Client::request(std::string_view method, std::string_view url,
                               const Headers& headers, std::string_view body,
                               const BodySink& on_body) {
  ClientRequest r;
  r.method = std::string(method);
  r.url = std::string(url);
  r.headers = headers;
  r.body = std::string(body);
  ResponseHandlers handlers;
  handlers.on_body = on_body;
  return send(r, handlers);
}

ClientResponse Client::send(const ClientRequest& request, const ResponseHandlers& handlers) {
  // Everything that goes into the head verbatim is checked: a CR or LF in a method, a
  // header or the User-Agent would be a second header, or a second request.
  detail::check_request(request, options_);
  const auto start = Clock::now();
  std::optional<Clock::time_point> deadline;
  if (options_.max_time) deadline = start + *options_.max_time;
  Exchange x{request,     handlers, request.method, parse_url(request.url),
             request.url, true,     true,           start,
             deadline,    0};
  const std::string origin = x.url.origin();
  for (;;) {
    ClientResponse response = exchange(x);
    response.url = x.url_text;
    response.redirects = x.redirects;
    const std::string location = response.header("Location");
    if (!options_.follow_redirects || !is_redirect(response.status) || location.empty()) {
      return response;
    }
    if (x.redirects == options_.max_redirects) {
      throw Error(std::make_error_code(std::errc::too_many_links), x.method,
                  redact_userinfo(x.url_text),
                  "more than " + std::to_string(options_.max_redirects) + " redirects");
    }
    std::string next = follow(x.url_text, x.url, location);
    const bool keeps_method = response.status == 307 || response.status == 308;
    if (!keeps_method && (response.status == 303 || x.method == "POST")) {
      // RFC 9110 §15.4: a 303 (and, as every browser does, a 301/302 after a POST) is
      // followed with a GET without the body.
      if (x.method != "HEAD") x.method = "GET";
      x.with_body = false;
    } else if (x.with_body && request.body_reader) {
      throw Error(std::make_error_code(std::errc::operation_not_supported), x.method,
                  redact_userinfo(x.url_text),
                  "the server redirects (" + std::to_string(response.status) + ") to " + next +
                      ", but a streamed request body cannot be sent a second time");
    }
    x.url = parse_url(next);
    x.url_text = std::move(next);
    // Once the origin changed, credentials stay behind for the rest of the chain, as curl
    // does: a redirect back does not bring them back either.
    x.credentials = x.credentials && x.url.origin() == origin;
    ++x.redirects;
  }
}

ClientResponse Client::exchange(Exchange& x) {
  const detail::RequestHead head =
      detail::request_head(x.request, x.method, x.url, options_, x.with_body, x.credentials);
  const std::string what = x.method + " " + x.url.connect + x.url.target;
  const detail::Deadlines deadlines(options_, x.method, redact_userinfo(x.url_text), x.start,
                                    x.deadline);
  // A retry is safe only for a request that may be sent twice and can be sent twice.
  const bool retryable = is_idempotent(x.method) && !head.streamed;

  for (int attempt = 0;; ++attempt) {
    Socket conn;
    bool reused = false;
    if (auto pooled = pool_.find(x.url.connect); pooled != pool_.end()) {
      conn = std::move(pooled->second);
      pool_.erase(pooled);
      reused = looks_alive(conn);
      if (!reused) conn.close();
    }
    if (!reused) {
      auto connected = create_connection(x.url.connect, deadlines.next_wait(), std::nothrow);
      if (!connected) {
        if (connected.error() == errc::timed_out) throw deadlines.timed_out("connect", what);
        throw Error(connected.error(), "connect", x.url.connect);
      }
      conn = std::move(*connected);
    }
    BlockingSocketTransport transport(std::move(conn));
    if (x.handlers.on_trace) {
      x.handlers.on_trace('*', (reused ? "reusing the connection to " : "connected to ") +
                                   transport.describe(readable));
    }
    const detail::ExchangeContext context{
        .request = x.request,
        .handlers = x.handlers,
        .options = options_,
        .method = x.method,
        .what = what,
        .deadlines = deadlines,
        .may_be_stale = reused && attempt == 0 && retryable,
        .send_queue_fd = transport.socket().fileno(),
    };
    detail::ExchangeResult result = detail::exchange_over(transport, head, context);
    if (result.stale) continue;
    if (result.response.reusable) pool_[x.url.connect] = transport.release();
    return std::move(result.response);
  }
}

ClientResponse request(Transport& transport, const ClientRequest& req, const ClientOptions& options,
                       const ResponseHandlers& handlers) {
  detail::check_request(req, options);
  if (options.follow_redirects) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "request",
                redact_userinfo(req.url),
                "follow_redirects needs a Client: a redirect may lead to another connection");
  }
  const auto start = Clock::now();
  std::optional<Clock::time_point> deadline;
  if (options.max_time) deadline = start + *options.max_time;
  const Url url = parse_url(req.url);
  const detail::RequestHead head = detail::request_head(req, req.method, url, options, true, true);
  const std::string what = req.method + " " + transport.describe(readable) + url.target;
  const detail::Deadlines deadlines(options, req.method, redact_userinfo(req.url), start, deadline);
  if (handlers.on_trace) handlers.on_trace('*', "over " + transport.describe(readable));
  const detail::ExchangeContext context{
      .request = req,
      .handlers = handlers,
      .options = options,
      .method = req.method,
      .what = what,
      .deadlines = deadlines,
  };
  ClientResponse response = detail::exchange_over(transport, head, context).response;
  response.url = req.url;
  return response;
}

}  // namespace wire::http
