// Test support for HTTP tests: read whole responses (any framing) off one connection.
#pragma once

#include <cctype>
#include <map>
#include <span>
#include <stdexcept>
#include <string>

#include "wire/wire.hpp"

namespace wire::test {

using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  bool closed = false;  // the server closed the connection after this reply
};

// Reads responses from one connection, keeping bytes that belong to the next.
class Reader {
 public:
  explicit Reader(Socket& socket) : socket_(socket) { socket_.set_timeout(5s); }

  Reply next(const char* method = "GET") {
    Reply reply;
    http::ResponseHead head;
    http::ParseResult r;
    http::Limits limits;
    limits.max_body = 1ull << 40;  // the test reads whatever the server sends
    while ((r = http::parse_response_head(buffer_, head, method, limits)).state ==
           http::ParseState::incomplete) {
      if (!fill()) throw std::runtime_error("connection closed before a response head");
    }
    if (r.state == http::ParseState::error) throw std::runtime_error(r.error.reason);
    reply.status = head.status;
    for (const auto& h : head.headers()) {
      std::string name(h.name);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      reply.headers[name] = std::string(h.value);
    }
    const auto body_kind = head.body;
    const auto length = head.content_length;
    buffer_.erase(0, r.consumed);
    if (body_kind == http::BodyKind::length) {
      while (buffer_.size() < length) {
        if (!fill()) throw std::runtime_error("short body");
      }
      reply.body = buffer_.substr(0, length);
      buffer_.erase(0, length);
    } else if (body_kind == http::BodyKind::chunked) {
      http::ChunkedDecoder decoder;
      for (;;) {
        auto step = decoder.feed(buffer_);
        if (step.error.status != 0) throw std::runtime_error(step.error.reason);
        reply.body.append(step.data);
        buffer_.erase(0, step.consumed);
        if (step.done) break;
        if (step.consumed == 0 && !fill()) throw std::runtime_error("short chunked body");
      }
    } else if (body_kind == http::BodyKind::until_close) {
      while (fill()) {
      }
      reply.body = std::move(buffer_);
      buffer_.clear();
    }
    return reply;
  }
  // True if the server closes the connection (no more bytes) within the timeout.
  bool closed() { return buffer_.empty() && !fill(); }

 private:
  bool fill() {
    char chunk[16384];
    auto n = socket_.recv(std::span<char>(chunk), std::nothrow);
    if (!n || *n == 0) return false;
    buffer_.append(chunk, *n);
    return true;
  }
  Socket& socket_;
  std::string buffer_;
};

inline Socket connect_to(const Address& address) {
  return create_connection(std::vector<Address>{address}, 5s);
}

}  // namespace wire::test
