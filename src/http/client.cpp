#include "wire/http/client.hpp"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <memory>

#include "content_decoding.hpp"
#include "url.hpp"
#include "wire/connect.hpp"
#include "wire/http/parser.hpp"

namespace wire::http {
namespace {

using Clock = std::chrono::steady_clock;

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// RFC 9110 §9.2.2: what may be sent twice without changing the outcome.
bool is_idempotent(std::string_view method) {
  for (std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"}) {
    if (method == m) return true;
  }
  return false;
}

// Headers that carry the caller's identity: never sent to an origin the caller did not name.
bool is_credential(std::string_view name) {
  return equals_ignore_case(name, "authorization") || equals_ignore_case(name, "cookie") ||
         equals_ignore_case(name, "proxy-authorization");
}

// The body's framing is the client's job: a caller's own Content-Length or
// Transfer-Encoding would contradict it (and desynchronise the connection).
bool is_framing(std::string_view name) {
  return equals_ignore_case(name, "content-length") ||
         equals_ignore_case(name, "transfer-encoding");
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

std::string seconds_text(std::chrono::nanoseconds d) {
  const double s = std::chrono::duration<double>(d).count();
  std::string text = std::to_string(s);
  while (text.size() > 1 && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

// Bytes sent but not yet acknowledged by the peer (SIOCOUTQ); -1 if unknown.
int unsent_bytes(int fd) {
  int queued = 0;
  return ::ioctl(fd, SIOCOUTQ, &queued) == 0 ? queued : -1;
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
  auto refuse = [&](const std::string& why) {
    return Error(std::make_error_code(std::errc::invalid_argument), "request",
                 redact_userinfo(request.url), why);
  };
  if (request.method.empty() || !is_valid_header_name(request.method)) {
    throw refuse("the method '" + wire::detail::printable(request.method) + "' is not a token");
  }
  for (const auto& [name, value] : request.headers) {
    if (!is_valid_header_name(name)) {
      throw refuse("'" + wire::detail::printable(name) + "' is not a header name");
    }
    if (!is_valid_header_value(value)) {
      throw refuse("the value of " + name + " holds a byte a header may not (CR, LF, NUL...)");
    }
  }
  if (!is_valid_header_value(options_.user_agent)) {
    throw refuse("the User-Agent holds a byte a header may not (CR, LF, NUL...)");
  }
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
  const ClientRequest& req = x.request;
  const bool streamed = x.with_body && static_cast<bool>(req.body_reader);
  const std::string_view body = x.with_body && !streamed ? std::string_view(req.body) : "";
  const std::string what = x.method + " " + x.url.connect + x.url.target;

  // The request head: defaults first, then the caller's headers, which replace a default of
  // the same name; `omit` drops defaults altogether.
  auto omitted = [&](std::string_view name) {
    for (const auto& o : req.omit) {
      if (equals_ignore_case(o, name)) return true;
    }
    return false;
  };
  auto given = [&](std::string_view name) {
    for (const auto& [n, v] : req.headers) {
      if (equals_ignore_case(n, name)) return !is_credential(n) || x.credentials;
    }
    return false;
  };
  std::string head;
  head.reserve(256);
  head.append(x.method).append(" ").append(x.url.target).append(" HTTP/1.1\r\n");
  auto add_default = [&](std::string_view name, std::string_view value) {
    if (!given(name) && !omitted(name)) head.append(name).append(": ").append(value).append("\r\n");
  };
  add_default("Host", x.url.host);
  add_default("User-Agent", options_.user_agent);
  add_default("Accept", "*/*");
  if (options_.decompress) add_default("Accept-Encoding", "gzip, deflate");
  if (!x.url.userinfo.empty()) {
    std::string userinfo = x.url.userinfo;
    if (userinfo.find(':') == std::string::npos) userinfo += ':';
    add_default("Authorization", basic_authorization(userinfo));
  }
  for (const auto& [name, value] : req.headers) {
    if (is_framing(name) || (is_credential(name) && !x.credentials)) continue;
    head.append(name).append(": ").append(value).append("\r\n");
  }
  const bool chunked_upload = streamed && !req.body_length;
  if (streamed && req.body_length) {
    head.append("Content-Length: ").append(std::to_string(*req.body_length)).append("\r\n");
  } else if (chunked_upload) {
    head.append("Transfer-Encoding: chunked\r\n");
  } else if (!body.empty() || x.method == "POST" || x.method == "PUT" || x.method == "PATCH") {
    head.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  head.append("\r\n");

  // Each wait gets the idle timeout, or what is left of max_time if that is less.
  auto budget = [&]() -> std::chrono::nanoseconds {
    std::chrono::nanoseconds wait = options_.timeout;
    if (x.deadline) {
      const auto left = *x.deadline - Clock::now();
      if (left <= std::chrono::nanoseconds(0)) {
        throw Error(errc::timed_out, x.method, redact_userinfo(x.url_text),
                    "the maximum time of " + seconds_text(*options_.max_time) + " s was reached");
      }
      wait = std::min<std::chrono::nanoseconds>(wait, left);
    }
    return std::max<std::chrono::nanoseconds>(wait, std::chrono::milliseconds(1));
  };
  auto timeout_error = [&](const char* doing) {
    if (x.deadline && Clock::now() >= *x.deadline) {
      return Error(errc::timed_out, x.method, redact_userinfo(x.url_text),
                   "the maximum time of " + seconds_text(*options_.max_time) + " s was reached");
    }
    return Error(errc::timed_out, doing, what,
                 "nothing for " + seconds_text(options_.timeout) + " s");
  };
  // A retry is safe only for a request that may be sent twice and can be sent twice.
  const bool retryable = is_idempotent(x.method) && !streamed;

  Limits limits;
  limits.max_body = UINT64_MAX;  // the caps below count decoded bytes

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
      auto connected = create_connection(x.url.connect, budget(), std::nothrow);
      if (!connected) {
        if (connected.error() == errc::timed_out) throw timeout_error("connect");
        throw Error(connected.error(), "connect", x.url.connect);
      }
      conn = std::move(*connected);
    }
    ClientResponse response;
    response.remote = conn.describe();
    response.timings.connect = Clock::now() - x.start;
    if (x.handlers.on_trace) {
      x.handlers.on_trace(
          '*', (reused ? "reusing the connection to " : "connected to ") + response.remote);
      x.handlers.on_trace('>', head);
    }
    // Only a reused connection's first attempt may go stale: the server closed it as we
    // sent. That is an EOF or a reset before any byte of the answer, never a timeout.
    auto stale = [&](std::error_code ec, bool got_nothing) {
      return reused && attempt == 0 && retryable && got_nothing &&
             (ec == std::errc::broken_pipe || ec == std::errc::connection_reset ||
              ec == errc::unexpected_eof);
    };

    // Sending. A server may answer before it has read the whole body (a 413) and stop
    // reading: the send then fails, but the answer may be there to read, as curl reads it.
    std::error_code send_failed;
    // One send at a time, each with a fresh wait: the idle timeout is about a peer that
    // takes nothing, not about a slow one that keeps taking a little.
    auto send_bytes = [&](std::string_view bytes) {
      while (!bytes.empty() && !send_failed) {
        conn.set_timeout(budget());
        auto sent = conn.send(bytes, std::nothrow);
        if (!sent) {
          if (sent.error() == errc::timed_out) throw timeout_error("send");
          send_failed = sent.error();
          return;
        }
        bytes.remove_prefix(*sent);
      }
    };
    std::uint64_t uploaded = 0;
    if (streamed) {
      send_bytes(head);
      std::string chunk(65536, '\0');
      std::string framed;
      while (!send_failed) {
        const std::size_t n = req.body_reader(std::span<char>(chunk.data(), chunk.size()));
        if (req.body_length && uploaded + n > *req.body_length) {
          throw Error(
              std::make_error_code(std::errc::invalid_argument), "send body", what,
              "the body is longer than its stated length of " + std::to_string(*req.body_length));
        }
        if (n == 0) {
          if (req.body_length && uploaded != *req.body_length) {
            throw Error(std::make_error_code(std::errc::invalid_argument), "send body", what,
                        "the body ended after " + std::to_string(uploaded) + " of its " +
                            std::to_string(*req.body_length) + " bytes");
          }
          if (chunked_upload) send_bytes("0\r\n\r\n");
          break;
        }
        uploaded += n;
        if (chunked_upload) {
          char size[24];
          const int len = std::snprintf(size, sizeof size, "%zx\r\n", n);
          framed.assign(size, static_cast<std::size_t>(len)).append(chunk.data(), n).append("\r\n");
          send_bytes(framed);
        } else {
          send_bytes(std::string_view(chunk.data(), n));
        }
      }
    } else {
      std::string message = head;
      message.append(body);
      send_bytes(message);
      uploaded = body.size();
    }
    if (send_failed && stale(send_failed, true)) continue;
    response.uploaded_bytes = uploaded;

    // Receiving.
    std::string buffer;
    std::uint64_t received_total = 0;
    char chunk[65536];
    // Waiting for the answer while our own request is still on its way: the bytes the
    // kernel has yet to see acknowledged going down is progress too (a server reading a
    // large upload slowly), so the idle timeout starts again.
    int unacknowledged = unsent_bytes(conn.fileno());
    auto fill = [&]() -> std::error_code {  // empty: bytes were added
      Result<std::size_t> n = std::size_t(0);
      for (;;) {
        conn.set_timeout(budget());
        n = conn.recv(std::span<char>(chunk), std::nothrow);
        if (n || n.error() != errc::timed_out) break;
        const int now = unsent_bytes(conn.fileno());
        if (now <= 0 || now >= unacknowledged) throw timeout_error("recv");
        unacknowledged = now;
      }
      if (!n) return n.error();
      if (*n == 0) return errc::unexpected_eof;
      if (received_total == 0) response.timings.first_byte = Clock::now() - x.start;
      received_total += *n;
      buffer.append(chunk, *n);
      return {};
    };
    auto lost = [&](std::error_code ec, const std::string& when) {
      if (send_failed) return Error(send_failed, "send", what);
      if (ec == errc::unexpected_eof) {
        return Error(std::make_error_code(std::errc::connection_aborted), "read response", what,
                     "the server closed the connection " + when);
      }
      return Error(ec, "recv", what);
    };

    ResponseHead parsed_head;
    ParseResult parsed;
    std::size_t checked = 0;  // bytes a previous parse saw: a trickled head costs O(bytes)
    int interim = 0;
    bool retry = false;
    for (;;) {
      parsed = parse_response_head(buffer, parsed_head, x.method, limits, checked);
      if (parsed.state == ParseState::complete && parsed_head.status / 100 == 1 &&
          parsed_head.status != 101) {
        // An interim response (100 Continue): the real one follows. A server sending them
        // without end is refused.
        if (x.handlers.on_trace) {
          x.handlers.on_trace('<', std::string_view(buffer).substr(0, parsed.consumed));
        }
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
      if (auto ec = fill()) {
        if (stale(ec, received_total == 0)) {
          retry = true;
          break;
        }
        throw lost(ec, "before a complete response head");
      }
    }
    if (retry) continue;
    if (parsed.state == ParseState::error) {
      throw Error(std::make_error_code(parsed.error.status == 413 ? std::errc::message_size
                                                                  : std::errc::bad_message),
                  "read response", what, parsed.error.reason);
    }

    if (parsed_head.status < 100 || parsed_head.status > 599) {
      throw Error(std::make_error_code(std::errc::bad_message), "read response", what,
                  "status " + std::to_string(parsed_head.status) + " is not an HTTP status");
    }
    if (parsed_head.status == 101) {
      throw Error(std::make_error_code(std::errc::bad_message), "read response", what,
                  "101 Switching Protocols, but no upgrade was asked for");
    }
    response.status = parsed_head.status;
    response.reason = std::string(parsed_head.reason);
    response.version = "HTTP/1." + std::to_string(parsed_head.version_minor);
    for (const Header& h : parsed_head.headers()) response.headers.emplace_back(h.name, h.value);
    response.head_bytes = parsed.consumed;
    if (x.handlers.on_trace) {
      x.handlers.on_trace('<', std::string_view(buffer).substr(0, parsed.consumed));
    }
    const BodyKind kind = parsed_head.body;
    const std::uint64_t length = parsed_head.content_length;
    bool reusable = parsed_head.keep_alive;
    buffer.erase(0, parsed.consumed);

    // A redirect about to be followed: its body is read (to keep the connection usable)
    // but not handed on.
    const bool discard = options_.follow_redirects && is_redirect(response.status) &&
                         !response.header("Location").empty();
    const BodySink& sink = x.handlers.on_body;
    const std::optional<std::uint64_t> cap =
        sink ? options_.max_body : std::optional<std::uint64_t>(options_.max_response);
    // Codings apply in the order listed, across all Content-Encoding lines: decoded last
    // first. One the client cannot decode is an error when decoding was asked for, rather
    // than coded bytes handed on as if they were the body.
    std::vector<std::unique_ptr<detail::ContentDecoder>> decoders;
    if (options_.decompress && !discard) {
      std::string codings;
      for (const auto& [n, v] : response.headers) {
        if (equals_ignore_case(n, "content-encoding")) codings += (codings.empty() ? "" : ",") + v;
      }
      std::size_t from = 0;
      while (from <= codings.size() && !codings.empty()) {
        const std::size_t comma = std::min(codings.find(',', from), codings.size());
        std::string_view coding = std::string_view(codings).substr(from, comma - from);
        while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
          coding.remove_prefix(1);
        while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
          coding.remove_suffix(1);
        from = comma + 1;
        if (coding.empty() || equals_ignore_case(coding, "identity")) continue;
        if (!detail::decodable(coding)) {
          throw Error(std::make_error_code(std::errc::not_supported), "decode response", what,
                      "Content-Encoding '" + wire::detail::printable(coding) +
                          "' cannot be decoded (gzip and deflate can)");
        }
        decoders.insert(decoders.begin(), std::make_unique<detail::ContentDecoder>(coding));
      }
    }
    const bool decoding = !decoders.empty();
    // A body that cannot fit is refused before anyone sees its head (so no file is opened
    // for it, let alone truncated).
    if (kind == BodyKind::length && cap && !decoding && length > *cap && !discard) {
      throw Error(std::make_error_code(std::errc::message_size), "read response", what,
                  "the body (" + std::to_string(length) + " bytes) is larger than the limit of " +
                      std::to_string(*cap) + " bytes");
    }
    // A redirect's body is read to keep the connection, but only a small one: a larger one
    // costs the connection instead (a hostile server could send terabytes).
    constexpr std::uint64_t max_drained = 64 * 1024;
    if (discard &&
        (kind == BodyKind::until_close || (kind == BodyKind::length && length > max_drained))) {
      return response;  // the connection is closed with `conn`, never pooled
    }
    if (!discard && x.handlers.on_head) x.handlers.on_head(response);
    std::optional<std::uint64_t> total;
    if (kind == BodyKind::length && !decoding) total = length;

    std::uint64_t delivered = 0;
    auto emit = [&](std::string_view bytes) {
      if (bytes.empty()) return;
      delivered += bytes.size();
      if (cap && delivered > *cap) {
        throw Error(std::make_error_code(std::errc::message_size), "read response", what,
                    "the body is larger than the limit of " + std::to_string(*cap) + " bytes");
      }
      if (sink)
        sink(bytes, delivered, total);
      else
        response.body.append(bytes);
    };
    bool drain_abandoned = false;  // a redirect's chunked body grew too large to drain
    // Decoders chained: each hands its output to the next, the last to emit.
    std::vector<std::function<void(std::string_view)>> stages(decoders.size() + 1);
    stages[decoders.size()] = emit;
    for (std::size_t i = decoders.size(); i-- > 0;) {
      stages[i] = [&, i](std::string_view bytes) { decoders[i]->feed(bytes, stages[i + 1]); };
    }
    auto deliver = [&](std::string_view bytes) {
      if (bytes.empty()) return;
      response.body_bytes += bytes.size();
      if (discard) {
        drain_abandoned = response.body_bytes > max_drained;
        return;
      }
      try {
        stages[0](bytes);
      } catch (const Error& e) {
        if (!decoding || e.code() != std::errc::bad_message || e.operation() != "decode body")
          throw;
        throw Error(e.code(), "decode response", what, e.what());
      }
    };
    if (kind == BodyKind::length) {
      std::uint64_t left = length;
      for (;;) {
        auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, buffer.size()));
        deliver(std::string_view(buffer).substr(0, take));
        buffer.erase(0, take);
        left -= take;
        if (left == 0) break;
        if (auto ec = fill()) throw lost(ec, std::to_string(left) + " bytes before the body's end");
      }
    } else if (kind == BodyKind::chunked) {
      ChunkedDecoder chunks(limits);
      for (;;) {
        auto step = chunks.feed(buffer);
        if (step.error.status != 0) {
          throw Error(std::make_error_code(std::errc::bad_message), "read response", what,
                      step.error.reason);
        }
        deliver(step.data);
        buffer.erase(0, step.consumed);
        if (step.done) break;
        if (drain_abandoned) return response;  // the connection is closed, never pooled
        if (step.consumed == 0) {
          if (auto ec = fill()) throw lost(ec, "before the chunked body's end");
        }
      }
    } else if (kind == BodyKind::until_close) {
      reusable = false;
      for (;;) {
        deliver(buffer);
        buffer.clear();
        auto ec = fill();
        if (ec == errc::unexpected_eof) break;
        if (ec) throw lost(ec, "");
      }
    }
    for (std::size_t i = decoders.size(); i-- > 0;) {
      try {
        decoders[i]->finish();
      } catch (const Error& e) {
        throw Error(e.code(), "decode response", what, e.what());
      }
    }
    response.timings.total = Clock::now() - x.start;
    if (response.timings.first_byte.count() == 0)
      response.timings.first_byte = response.timings.total;
    // A connection whose request body was not all sent is out of step: never reused.
    if (reusable && buffer.empty() && !send_failed) pool_[x.url.connect] = std::move(conn);
    return response;
  }
}

}  // namespace wire::http
