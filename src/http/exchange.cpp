#include "exchange.hpp"

#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "content_decoding.hpp"
#include "wire/http/parser.hpp"

namespace wire::http::detail {
namespace {

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

std::string seconds_text(std::chrono::nanoseconds d) {
  const double s = std::chrono::duration<double>(d).count();
  std::string text = std::to_string(s);
  while (text.size() > 1 && text.back() == '0') text.pop_back();
  if (!text.empty() && text.back() == '.') text.pop_back();
  return text;
}

// Bytes sent but not yet acknowledged by the peer (SIOCOUTQ); -1 if unknown.
int unsent_bytes(int fd) {
  if (fd < 0) return -1;
  int queued = 0;
  return ::ioctl(fd, SIOCOUTQ, &queued) == 0 ? queued : -1;
}

// The response's bytes as they arrive, lent rather than copied: a read goes straight into
// the free tail, the head and chunk framing are parsed where they lie, body bytes are handed
// on as views and consumed from the front. It grows past one read only while a head or a
// chunk-size line is incomplete, which the parser's limits bound.
class ReadBuffer {
 public:
  std::string_view data() const noexcept { return {storage_.get() + begin_, end_ - begin_}; }
  bool empty() const noexcept { return begin_ == end_; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Room for the next read: what is left unconsumed moves to the front (a few bytes of
  // framing, or an incomplete head), so each read can take a whole chunk.
  std::span<char> space() {
    if (begin_ > 0) {
      std::memmove(storage_.get(), storage_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (capacity_ - end_ < min_read) {
      const std::size_t grown = std::max(capacity_ + read_size, end_ + read_size);
      auto bigger = std::make_unique_for_overwrite<char[]>(grown);
      if (end_ > 0) std::memcpy(bigger.get(), storage_.get(), end_);
      storage_ = std::move(bigger);
      capacity_ = grown;
    }
    return {storage_.get() + end_, capacity_ - end_};
  }
  void commit(std::size_t n) noexcept { end_ += n; }

 private:
  static constexpr std::size_t read_size = 64 * 1024;
  static constexpr std::size_t min_read = 16 * 1024;
  std::unique_ptr<char[]> storage_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace

bool is_redirect(int status) noexcept {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

void check_request(const ClientRequest& request, const ClientOptions& options) {
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
  if (!is_valid_header_value(options.user_agent)) {
    throw refuse("the User-Agent holds a byte a header may not (CR, LF, NUL...)");
  }
}

RequestHead request_head(const ClientRequest& req, std::string_view method, const Url& url,
                         const ClientOptions& options, bool with_body, bool credentials) {
  RequestHead out;
  out.streamed = with_body && static_cast<bool>(req.body_reader);
  out.body = with_body && !out.streamed ? std::string_view(req.body) : "";
  // Defaults first, then the caller's headers, which replace a default of the same name;
  // `omit` drops defaults altogether.
  auto omitted = [&](std::string_view name) {
    for (const auto& o : req.omit) {
      if (equals_ignore_case(o, name)) return true;
    }
    return false;
  };
  auto given = [&](std::string_view name) {
    for (const auto& [n, v] : req.headers) {
      if (equals_ignore_case(n, name)) return !is_credential(n) || credentials;
    }
    return false;
  };
  std::string& head = out.text;
  head.reserve(256);
  head.append(method).append(" ").append(url.target).append(" HTTP/1.1\r\n");
  auto add_default = [&](std::string_view name, std::string_view value) {
    if (!given(name) && !omitted(name)) head.append(name).append(": ").append(value).append("\r\n");
  };
  add_default("Host", url.host);
  add_default("User-Agent", options.user_agent);
  add_default("Accept", "*/*");
  if (options.decompress) add_default("Accept-Encoding", "gzip, deflate");
  if (!url.userinfo.empty()) {
    std::string userinfo = url.userinfo;
    if (userinfo.find(':') == std::string::npos) userinfo += ':';
    add_default("Authorization", basic_authorization(userinfo));
  }
  for (const auto& [name, value] : req.headers) {
    if (is_framing(name) || (is_credential(name) && !credentials)) continue;
    head.append(name).append(": ").append(value).append("\r\n");
  }
  out.chunked_upload = out.streamed && !req.body_length;
  if (out.streamed && req.body_length) {
    head.append("Content-Length: ").append(std::to_string(*req.body_length)).append("\r\n");
  } else if (out.chunked_upload) {
    head.append("Transfer-Encoding: chunked\r\n");
  } else if (!out.body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    head.append("Content-Length: ").append(std::to_string(out.body.size())).append("\r\n");
  }
  head.append("\r\n");
  return out;
}

Error Deadlines::max_time_reached() const {
  return Error(errc::timed_out, method_, url_text_,
               "the maximum time of " + seconds_text(*options_.max_time) + " s was reached");
}

std::chrono::nanoseconds Deadlines::next_wait() const {
  std::chrono::nanoseconds wait = options_.timeout;
  if (deadline_) {
    const auto left = *deadline_ - Clock::now();
    if (left <= std::chrono::nanoseconds(0)) throw max_time_reached();
    wait = std::min<std::chrono::nanoseconds>(wait, left);
  }
  return std::max<std::chrono::nanoseconds>(wait, std::chrono::milliseconds(1));
}

Error Deadlines::timed_out(const char* doing, const std::string& what,
                           std::optional<std::chrono::nanoseconds> transport_timeout) const {
  if (deadline_ && Clock::now() >= *deadline_) return max_time_reached();
  std::chrono::nanoseconds idle = options_.timeout;
  if (transport_timeout && *transport_timeout < idle) idle = *transport_timeout;
  return Error(errc::timed_out, doing, what, "nothing for " + seconds_text(idle) + " s");
}

ExchangeResult exchange_over(Transport& transport, const RequestHead& head,
                             const ExchangeContext& cx) {
  const ClientRequest& req = cx.request;
  const ClientOptions& options = cx.options;
  const std::string& what = cx.what;
  const Deadlines& deadlines = cx.deadlines;
  ExchangeResult result;
  ClientResponse& response = result.response;
  response.remote = transport.describe(readable);
  response.timings.connect = Clock::now() - deadlines.start();
  if (cx.handlers.on_trace) cx.handlers.on_trace('>', head.text);

  // Only a reused connection's first attempt may go stale: the server closed it as we
  // sent. That is an EOF or a reset before any byte of the answer, never a timeout.
  auto stale = [&](std::error_code ec, bool got_nothing) {
    return cx.may_be_stale && got_nothing &&
           (ec == std::errc::broken_pipe || ec == std::errc::connection_reset ||
            ec == errc::unexpected_eof);
  };

  // Sending. A server may answer before it has read the whole body (a 413) and stop
  // reading: the send then fails, but the answer may be there to read, as curl reads it.
  std::error_code send_failed;
  // Each wait gets a fresh budget: the idle timeout is about a peer that takes nothing, not
  // about a slow one that keeps taking a little.
  auto send_bytes = [&](std::string_view bytes) {
    while (!bytes.empty() && !send_failed) {
      deadlines.check();
      auto sent = wire::detail::checked_write_count(transport.write_some(bytes), bytes.size());
      if (sent && *sent > 0) {
        bytes.remove_prefix(*sent);
        continue;
      }
      if (!sent && sent.error() == errc::transport_miscounted) {
        // Not a peer that stopped reading: what went out is unknown, so nothing that comes
        // back can be trusted to answer this request.
        throw Error(sent.error(), "send", what);
      }
      if (!sent && !wire::detail::would_block(sent.error())) {
        send_failed = sent.error();
        return;
      }
      auto ready = transport.wait_blocking(
          writable, wire::detail::later(Clock::now(), deadlines.next_wait()));
      if (!ready) {
        if (ready.error() == errc::timed_out) {
          throw deadlines.timed_out("send", what, transport.timeout());
        }
        send_failed = ready.error();
        return;
      }
    }
  };
  std::uint64_t uploaded = 0;
  if (head.streamed) {
    send_bytes(head.text);
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
        if (head.chunked_upload) send_bytes("0\r\n\r\n");
        break;
      }
      uploaded += n;
      if (head.chunked_upload) {
        char size[24];
        const int len = std::snprintf(size, sizeof size, "%zx\r\n", n);
        framed.assign(size, static_cast<std::size_t>(len)).append(chunk.data(), n).append("\r\n");
        send_bytes(framed);
      } else {
        send_bytes(std::string_view(chunk.data(), n));
      }
    }
  } else if (head.body.empty()) {
    send_bytes(head.text);
  } else {
    std::string message = head.text;
    message.append(head.body);
    send_bytes(message);
    uploaded = head.body.size();
  }
  if (send_failed && stale(send_failed, true)) {
    result.stale = true;
    return result;
  }
  response.uploaded_bytes = uploaded;

  // Receiving.
  ReadBuffer in;
  std::uint64_t received_total = 0;
  // Waiting for the answer while our own request is still on its way: the bytes the
  // kernel has yet to see acknowledged going down is progress too (a server reading a
  // large upload slowly), so the idle timeout starts again.
  int unacknowledged = unsent_bytes(cx.send_queue_fd);
  auto fill = [&]() -> std::error_code {  // empty: bytes were added
    for (;;) {
      deadlines.check();
      auto n = wire::detail::checked_read_count(transport.read_some(in.space()), in.space().size());
      if (n) {
        if (*n == 0) return errc::unexpected_eof;
        if (received_total == 0) response.timings.first_byte = Clock::now() - deadlines.start();
        received_total += *n;
        in.commit(*n);
        return {};
      }
      if (!wire::detail::would_block(n.error())) return n.error();
      for (;;) {
        auto ready = transport.wait_blocking(
            readable, wire::detail::later(Clock::now(), deadlines.next_wait()));
        if (ready) break;
        if (ready.error() != errc::timed_out) return ready.error();
        const int now = unsent_bytes(cx.send_queue_fd);
        if (now <= 0 || now >= unacknowledged) {
          throw deadlines.timed_out("recv", what, transport.timeout());
        }
        unacknowledged = now;
      }
    }
  };
  auto lost = [&](std::error_code ec, const std::string& when) {
    if (send_failed) return Error(send_failed, "send", what);
    if (ec == errc::unexpected_eof) {
      return Error(std::make_error_code(std::errc::connection_aborted), "read response", what,
                   "the server closed the connection " + when);
    }
    return Error(ec, "recv", what);
  };

  Limits limits;
  limits.max_body = UINT64_MAX;  // the caps below count decoded bytes
  ResponseHead parsed_head;
  ParseResult parsed;
  std::size_t checked = 0;  // bytes a previous parse saw: a trickled head costs O(bytes)
  int interim = 0;
  for (;;) {
    parsed = parse_response_head(in.data(), parsed_head, cx.method, limits, checked);
    if (parsed.state == ParseState::complete && parsed_head.status / 100 == 1 &&
        parsed_head.status != 101) {
      // An interim response (100 Continue): the real one follows. A server sending them
      // without end is refused.
      if (cx.handlers.on_trace) cx.handlers.on_trace('<', in.data().substr(0, parsed.consumed));
      if (++interim > 16) {
        throw Error(std::make_error_code(std::errc::bad_message), "read response", what,
                    "more than 16 interim (1xx) responses");
      }
      in.consume(parsed.consumed);
      checked = 0;
      continue;
    }
    if (parsed.state != ParseState::incomplete) break;
    checked = in.data().size();
    if (auto ec = fill()) {
      if (stale(ec, received_total == 0)) {
        result.stale = true;
        return result;
      }
      throw lost(ec, "before a complete response head");
    }
  }
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
  if (cx.handlers.on_trace) cx.handlers.on_trace('<', in.data().substr(0, parsed.consumed));
  const BodyKind kind = parsed_head.body;
  const std::uint64_t length = parsed_head.content_length;
  bool reusable = parsed_head.keep_alive;
  in.consume(parsed.consumed);

  // A redirect about to be followed: its body is read (to keep the connection usable)
  // but not handed on.
  const bool discard = options.follow_redirects && is_redirect(response.status) &&
                       !response.header("Location").empty();
  const BodySink& sink = cx.handlers.on_body;
  const std::optional<std::uint64_t> cap =
      sink ? options.max_body : std::optional<std::uint64_t>(options.max_response);
  // Codings apply in the order listed, across all Content-Encoding lines: decoded last
  // first. One the client cannot decode is an error when decoding was asked for, rather
  // than coded bytes handed on as if they were the body.
  std::vector<std::unique_ptr<ContentDecoder>> decoders;
  if (options.decompress && !discard) {
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
      if (!decodable(coding)) {
        throw Error(std::make_error_code(std::errc::not_supported), "decode response", what,
                    "Content-Encoding '" + wire::detail::printable(coding) +
                        "' cannot be decoded (gzip and deflate can)");
      }
      decoders.insert(decoders.begin(), std::make_unique<ContentDecoder>(coding));
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
    return result;  // not reusable: the connection is closed, never pooled
  }
  if (!discard && cx.handlers.on_head) cx.handlers.on_head(response);
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
      if (!decoding || e.code() != std::errc::bad_message || e.operation() != "decode body") throw;
      throw Error(e.code(), "decode response", what, e.what());
    }
  };
  if (kind == BodyKind::length) {
    std::uint64_t left = length;
    for (;;) {
      const std::string_view ready = in.data();
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(left, ready.size()));
      deliver(ready.substr(0, take));
      in.consume(take);
      left -= take;
      if (left == 0) break;
      if (auto ec = fill()) throw lost(ec, std::to_string(left) + " bytes before the body's end");
    }
  } else if (kind == BodyKind::chunked) {
    ChunkedDecoder chunks(limits);
    for (;;) {
      auto step = chunks.feed(in.data());
      if (step.error.status != 0) {
        throw Error(std::make_error_code(std::errc::bad_message), "read response", what,
                    step.error.reason);
      }
      deliver(step.data);
      in.consume(step.consumed);
      if (step.done) break;
      if (drain_abandoned) return result;  // not reusable: closed, never pooled
      if (step.consumed == 0) {
        if (auto ec = fill()) throw lost(ec, "before the chunked body's end");
      }
    }
  } else if (kind == BodyKind::until_close) {
    reusable = false;
    for (;;) {
      deliver(in.data());
      in.consume(in.data().size());
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
  response.timings.total = Clock::now() - deadlines.start();
  if (response.timings.first_byte.count() == 0) {
    response.timings.first_byte = response.timings.total;
  }
  // A connection whose request body was not all sent is out of step: never reused.
  response.reusable = reusable && in.empty() && !send_failed;
  return result;
}

}  // namespace wire::http::detail
