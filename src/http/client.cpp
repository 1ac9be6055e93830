#include "wire/http/client.hpp"

#include "url.hpp"
#include "wire/connect.hpp"
#include "wire/http/parser.hpp"

namespace wire::http {
namespace {

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
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
    throw Error(e.code(), "follow redirect", current, refusing + e.what());
  }
  if (!detail::redirect_allowed(from, to)) {
    throw Error(std::make_error_code(std::errc::operation_not_permitted), "follow redirect",
                current,
                refusing + (from.connect.rfind("unix:", 0) == 0
                                ? "a redirect from an http+unix: URL may only stay on its socket"
                                : "a redirect from http:// may only go to http://, never to a "
                                  "local Unix socket"));
  }
  return next;
}

}  // namespace

std::string ClientResponse::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (equals_ignore_case(n, name)) return v;
  }
  return {};
}

ClientResponse Client::request(std::string_view method, std::string_view url,
                               const Headers& headers, std::string_view body,
                               const BodySink& on_body) {
  std::string current(url);
  std::string current_method(method);
  std::string_view current_body = body;
  for (int hops = 0;; ++hops) {
    Url target = parse_url(current);
    ClientResponse response = exchange(current_method, target, headers, current_body, on_body);
    response.url = current;
    std::string location = response.header("Location");
    if (!options_.follow_redirects || !is_redirect(response.status) || location.empty()) {
      return response;
    }
    if (hops == options_.max_redirects) {
      throw Error(std::make_error_code(std::errc::too_many_links), current_method, current,
                  "more than " + std::to_string(options_.max_redirects) + " redirects");
    }
    current = follow(current, target, location);
    if (response.status == 303 ||
        ((response.status == 301 || response.status == 302) && current_method == "POST")) {
      current_method = "GET";
      current_body = {};
    }
  }
}

ClientResponse Client::exchange(std::string_view method, const Url& url, const Headers& headers,
                                std::string_view body, const BodySink& on_body) {
  std::string request;
  request.reserve(256 + body.size());
  request.append(method).append(" ").append(url.target).append(" HTTP/1.1\r\n");
  bool has_host = false, has_agent = false;
  for (const auto& [name, value] : headers) {
    has_host = has_host || equals_ignore_case(name, "host");
    has_agent = has_agent || equals_ignore_case(name, "user-agent");
  }
  if (!has_host) request.append("Host: ").append(url.host).append("\r\n");
  if (!has_agent) request.append("User-Agent: wire/0.1\r\n");
  for (const auto& [name, value] : headers)
    request.append(name).append(": ").append(value).append("\r\n");
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  request.append("\r\n").append(body);

  const std::string what = std::string(method) + " " + url.connect + url.target;
  Limits limits;
  limits.max_body = options_.max_response;

  for (int attempt = 0;; ++attempt) {
    Socket conn;
    bool reused = false;
    if (auto pooled = pool_.find(url.connect); pooled != pool_.end()) {
      conn = std::move(pooled->second);
      pool_.erase(pooled);
      reused = true;
    } else {
      conn = create_connection(url.connect, options_.timeout);
    }
    conn.set_timeout(options_.timeout);
    // A kept-alive connection may have been closed by the server meanwhile: if nothing at
    // all comes back on a reused one, start over once on a fresh connection.
    auto sent = conn.send_all(request, std::nothrow);
    std::string buffer;
    char chunk[65536];
    // A server may answer before it has read the whole body (a 413) and stop reading: the
    // send then fails, but the answer may be there to read, as curl reads it.
    std::error_code send_failed;
    auto fill = [&]() -> bool {
      auto n = conn.recv(std::span<char>(chunk), std::nothrow);
      if (!n) {
        if (reused && buffer.empty() && attempt == 0) return false;
        if (send_failed) throw Error(send_failed, "send", what);
        throw Error(n.error(), "recv", what);
      }
      if (*n == 0) return false;
      buffer.append(chunk, *n);
      return true;
    };
    if (!sent) {
      if (reused && attempt == 0) continue;
      send_failed = sent.error();
    }

    ResponseHead head;
    ParseResult parsed;
    bool stale = false;
    std::size_t checked = 0;  // bytes a previous parse saw: a trickled head costs O(bytes)
    int interim = 0;
    for (;;) {
      parsed = parse_response_head(buffer, head, method, limits, checked);
      if (parsed.state == ParseState::complete && head.status / 100 == 1 && head.status != 101) {
        // An interim response (100 Continue): the real one follows. A server sending them
        // without end is refused.
        if (++interim > 16) {
          throw Error(std::make_error_code(std::errc::bad_message), "read response", what,
                      "more than 16 interim (1xx) responses");
        }
        buffer.erase(0, parsed.consumed);
        checked = 0;
        continue;
      }
      if (parsed.state != ParseState::incomplete) break;
      checked = buffer.size();
      if (!fill()) {
        if (reused && buffer.empty() && attempt == 0) {
          stale = true;
          break;
        }
        if (send_failed) throw Error(send_failed, "send", what);
        throw Error(std::make_error_code(std::errc::connection_aborted), "read response", what,
                    "the server closed the connection before a complete response head");
      }
    }
    if (stale) continue;
    if (parsed.state == ParseState::error) {
      throw Error(std::make_error_code(parsed.error.status == 413 ? std::errc::message_size
                                                                  : std::errc::bad_message),
                  "read response", what, parsed.error.reason);
    }

    ClientResponse response;
    response.status = head.status;
    response.reason = std::string(head.reason);
    for (const Header& h : head.headers()) response.headers.emplace_back(h.name, h.value);
    const BodyKind kind = head.body;
    const std::uint64_t length = head.content_length;
    const bool keep_alive = head.keep_alive;
    buffer.erase(0, parsed.consumed);

    std::uint64_t received = 0;
    std::optional<std::uint64_t> total;
    if (kind == BodyKind::length) total = length;
    // A redirect about to be followed: its body is read (to keep the connection usable)
    // but not handed on.
    const bool discard = options_.follow_redirects && is_redirect(response.status) &&
                         !response.header("Location").empty();
    auto deliver = [&](std::string_view bytes) {
      if (bytes.empty() || discard) return;
      received += bytes.size();
      if (received > options_.max_response) {
        throw Error(std::make_error_code(std::errc::message_size), "read response", what,
                    "body larger than max_response");
      }
      if (on_body)
        on_body(bytes, received, total);
      else
        response.body.append(bytes);
    };
    bool reusable = keep_alive;
    if (kind == BodyKind::length) {
      std::uint64_t left = length;
      for (;;) {
        auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
        deliver(std::string_view(buffer).substr(0, take));
        buffer.erase(0, take);
        left -= take;
        if (left == 0) break;
        if (!fill()) {
          throw Error(std::make_error_code(std::errc::connection_aborted), "read response", what,
                      "the body ended " + std::to_string(left) + " bytes early");
        }
      }
    } else if (kind == BodyKind::chunked) {
      ChunkedDecoder decoder(limits);
      for (;;) {
        auto step = decoder.feed(buffer);
        if (step.error.status != 0) {
          throw Error(std::make_error_code(step.error.status == 413 ? std::errc::message_size
                                                                    : std::errc::bad_message),
                      "read response", what, step.error.reason);
        }
        deliver(step.data);
        buffer.erase(0, step.consumed);
        if (step.done) break;
        if (step.consumed == 0 && !fill()) {
          throw Error(std::make_error_code(std::errc::connection_aborted), "read response", what,
                      "the chunked body ended early");
        }
      }
    } else if (kind == BodyKind::until_close) {
      reusable = false;
      do {
        deliver(buffer);
        buffer.clear();
      } while (fill());
    }
    if (reusable && buffer.empty()) pool_[url.connect] = std::move(conn);
    return response;
  }
}

}  // namespace wire::http
