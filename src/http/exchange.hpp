// Internal: one HTTP/1.1 request and its response over a Transport, every wait a
// Transport::wait_blocking: what Client (over a socket from its pool or a new one) and
// http::request (over the caller's transport) both run.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "wire/error.hpp"
#include "wire/http/client.hpp"
#include "wire/transport.hpp"

namespace wire::http::detail {

using Clock = std::chrono::steady_clock;

bool is_redirect(int status) noexcept;

// Refuses (errc invalid_argument) a request whose method, headers or User-Agent would put a
// CR or LF into the head: a second header, or a second request.
void check_request(const ClientRequest& request, const ClientOptions& options);

// The request head, and how the body after it goes.
struct RequestHead {
  std::string text;
  bool streamed = false;        // from request.body_reader
  bool chunked_upload = false;  // streamed without a body_length
  std::string_view body;        // request.body, unless streamed or dropped (a 303)
};
// `with_body` is false once a 303 turned the request into a GET; `credentials` once the
// origin changed along a redirect chain.
RequestHead request_head(const ClientRequest& request, std::string_view method, const Url& url,
                         const ClientOptions& options, bool with_body, bool credentials);

// The time limits of one request: each wait gets options.timeout, or what is left of
// options.max_time if that is less.
class Deadlines {
 public:
  Deadlines(const ClientOptions& options, std::string method, std::string url_text,
            Clock::time_point start, std::optional<Clock::time_point> deadline)
      : options_(options),
        method_(std::move(method)),
        url_text_(std::move(url_text)),
        start_(start),
        deadline_(deadline) {}
  Clock::time_point start() const noexcept { return start_; }
  // How long the next wait may take (at least 1 ms); throws once max_time is reached.
  std::chrono::nanoseconds next_wait() const;
  // Throws once max_time is reached: before every read and write, since a transport that
  // never has to wait (a body streaming in faster than it is taken) never reaches a wait.
  void check() const {
    if (deadline_) (void)next_wait();
  }
  // A wait that timed out while `doing` ("recv", "send", "connect") for `what`; the
  // transport's own idle timeout, if shorter than options.timeout, is the one that ran out.
  Error timed_out(const char* doing, const std::string& what,
                  std::optional<std::chrono::nanoseconds> transport_timeout = std::nullopt) const;

 private:
  Error max_time_reached() const;
  const ClientOptions& options_;
  std::string method_;
  std::string url_text_;  // redacted
  Clock::time_point start_;
  std::optional<Clock::time_point> deadline_;
};

struct ExchangeContext {
  const ClientRequest& request;
  const ResponseHandlers& handlers;
  const ClientOptions& options;
  std::string_view method;
  const std::string& what;  // what errors name: "GET tcp://127.0.0.1:8000/x"
  const Deadlines& deadlines;
  // A reused connection's first attempt at a request that may be sent twice: an EOF or a
  // reset before any byte of the answer means the server had closed it (ExchangeResult::stale).
  bool may_be_stale = false;
  // A socket whose unacknowledged bytes (SIOCOUTQ), while shrinking, count as progress when
  // the answer is awaited during a large upload; -1 for none.
  int send_queue_fd = -1;
};

struct ExchangeResult {
  ClientResponse response;  // response.reusable: the transport may carry another request
  bool stale = false;       // nothing happened that the same request on a new connection
                            // would not redo: send it again
};

ExchangeResult exchange_over(Transport& transport, const RequestHead& head,
                             const ExchangeContext& context);

}  // namespace wire::http::detail
