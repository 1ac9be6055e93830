// The HTTP parser against the vectors in tests/http/, each run whole, one byte at a time
// and split at every point, with the input ending right before a PROT_NONE page so that
// any read past the end faults.
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "support.hpp"
#include "wire/http/parser.hpp"

using namespace wire::http;

namespace {

struct Vector {
  std::string name;
  std::string input;
  std::string expect;
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    char c = text[++i];
    if (c == 'r')
      out += '\r';
    else if (c == 'n')
      out += '\n';
    else if (c == 't')
      out += '\t';
    else if (c == '\\')
      out += '\\';
    else if (c == 'x' && i + 2 < text.size() + 1) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += '\\';
      out += c;
    }
  }
  return out;
}

std::vector<Vector> load_vectors(const std::string& path) {
  std::ifstream in(path);
  std::vector<Vector> vectors;
  std::string line;
  bool in_expect = false;
  while (std::getline(in, line)) {
    if (line.rfind("=== ", 0) == 0) {
      vectors.push_back({line.substr(4), "", ""});
      in_expect = false;
    } else if (line == "--- expect") {
      in_expect = true;
    } else if (!vectors.empty() && in_expect) {
      if (!line.empty() && vectors.back().expect.empty()) vectors.back().expect = line;
    } else if (!vectors.empty() && (line.empty() || line[0] != '#')) {
      vectors.back().input += unescape(line);
    }
  }
  return vectors;
}

// Memory where the data ends exactly at an unreadable page.
class Guarded {
 public:
  explicit Guarded(std::string_view data) {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    pages_ = (data.size() + page - 1) / page + 1;
    size_ = pages_ * page;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap");
    base_ = static_cast<char*>(p);
    ::mprotect(base_ + size_ - page, page, PROT_NONE);
    char* start = base_ + size_ - page - data.size();
    std::memcpy(start, data.data(), data.size());
    view_ = std::string_view(start, data.size());
  }
  ~Guarded() { ::munmap(base_, size_); }
  std::string_view view() const { return view_; }

 private:
  char* base_ = nullptr;
  std::size_t size_ = 0;
  std::size_t pages_ = 0;
  std::string_view view_;
};

std::string escape_value(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ' ')
      out += "\\x20";
    else
      out += c;
  }
  return out;
}

// Feeds `input` in pieces ending at each of `cuts` (then the rest) and describes the
// outcome as "key=value ..." or "error N" or "incomplete".
std::string run(std::string_view input, const std::vector<std::size_t>& cuts) {
  RequestHead head;
  std::size_t available = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(input.size());
  std::size_t next_end = 0;
  ParseResult result;
  // Head: re-parse each longer prefix, always placed at the guard page.
  for (; next_end < ends.size(); ++next_end) {
    available = ends[next_end];
    Guarded prefix(input.substr(0, available));
    result = parse_request_head(prefix.view(), head);
    if (result.state != ParseState::incomplete) {
      if (result.state == ParseState::error) return "error " + std::to_string(result.error.status);
      // Views point into `prefix`: re-parse the whole input to keep them valid below.
      break;
    }
  }
  if (result.state == ParseState::incomplete) return "incomplete";
  Guarded whole(input);
  RequestHead final_head;
  ParseResult final_result = parse_request_head(whole.view().substr(0, available), final_head);
  if (final_result.state != ParseState::complete || final_result.consumed != result.consumed) {
    return "inconsistent head";
  }
  const RequestHead& h = final_head;
  std::string data;
  std::string body_state = "done";
  const std::size_t body_start = result.consumed;
  if (h.body == BodyKind::length) {
    if (input.size() - body_start < h.content_length)
      body_state = "incomplete";
    else
      data = std::string(input.substr(body_start, h.content_length));
  } else if (h.body == BodyKind::chunked) {
    ChunkedDecoder decoder;
    std::string pending;
    std::size_t fed = body_start;
    bool done = false;
    for (std::size_t e = next_end; e < ends.size() && !done; ++e) {
      std::size_t upto = std::max(ends[e], body_start);
      pending.append(input.substr(fed, upto - fed));
      fed = upto;
      for (;;) {
        Guarded piece(pending);
        auto step = decoder.feed(piece.view());
        if (step.error.status != 0) return "error " + std::to_string(step.error.status);
        data.append(step.data);
        pending.erase(0, step.consumed);
        if (step.done) {
          done = true;
          break;
        }
        if (step.consumed == 0) break;
      }
    }
    if (!done) body_state = "incomplete";
  }
  if (body_state == "incomplete") return "incomplete";
  std::ostringstream out;
  out << "method=" << h.method << " target=" << h.target << " version=1." << h.version_minor
      << " headers=" << h.headers().size() << " host=" << escape_value(h.host) << " body="
      << (h.body == BodyKind::none     ? "none"
          : h.body == BodyKind::length ? "length"
                                       : "chunked")
      << " length=" << h.content_length << " keep_alive=" << (h.keep_alive ? 1 : 0)
      << " continue=" << (h.expect_continue ? 1 : 0) << " data=" << escape_value(data);
  return out.str();
}

std::map<std::string, std::string> fields(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string word; in >> word;) {
    auto eq = word.find('=');
    if (eq != std::string::npos) out[word.substr(0, eq)] = word.substr(eq + 1);
  }
  return out;
}

// Whether `outcome` satisfies `expect` ("ok k=v ...", "error N" or "incomplete").
bool matches(const std::string& outcome, const std::string& expect) {
  if (expect.rfind("ok", 0) != 0) return outcome == expect;
  if (outcome.rfind("error", 0) == 0 || outcome == "incomplete") return false;
  auto got = fields(outcome);
  for (const auto& [key, value] : fields(expect.substr(2))) {
    if (got[key] != value) return false;
  }
  return true;
}

}  // namespace

class HttpParserVectors : public wire::test::Test {};

TEST_F(HttpParserVectors, EveryVectorWholeBytewiseAndSplitEverywhere) {
  auto vectors = load_vectors(std::string(WIRE_HTTP_VECTORS) + "/requests.txt");
  ASSERT_GT(vectors.size(), 40u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v.name);
    ASSERT_FALSE(v.expect.empty()) << "vector has no expectation";
    const std::string whole = run(v.input, {});
    EXPECT_TRUE(matches(whole, v.expect)) << "whole: " << whole << "\nexpected: " << v.expect;
    std::vector<std::size_t> bytewise;
    for (std::size_t i = 1; i < v.input.size(); ++i) bytewise.push_back(i);
    EXPECT_EQ(run(v.input, bytewise), whole) << "one byte at a time";
    for (std::size_t cut = 1; cut < v.input.size(); ++cut) {
      std::string split = run(v.input, {cut});
      if (split != whole) {
        ADD_FAILURE() << "split at " << cut << ": " << split << " vs whole: " << whole;
        break;
      }
    }
  }
}

TEST_F(HttpParserVectors, LimitsHaveTheirStatuses) {
  const Limits limits;
  auto status_of = [](const std::string& input) {
    RequestHead head;
    Guarded g(input);
    auto r = parse_request_head(g.view(), head);
    return r.state == ParseState::error ? r.error.status : 0;
  };
  std::string long_line = "GET /" + std::string(limits.max_request_line, 'a') + " HTTP/1.1\r\n";
  EXPECT_EQ(status_of(long_line), 414);
  EXPECT_EQ(status_of(long_line.substr(0, limits.max_request_line + 10)), 414) << "early";
  std::string big_header =
      "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(limits.max_header_block, 'v') + "\r\n\r\n";
  EXPECT_EQ(status_of(big_header), 431);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 100; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(many + "\r\n"), 431);
  std::string just_enough = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 99; ++i) just_enough += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(status_of(just_enough + "\r\n"), 0) << "100 fields are allowed";
  // Empty lines before a request count against the request line's limit (a CRLF flood).
  std::string flood;
  while (flood.size() <= limits.max_request_line) flood += "\r\n";
  EXPECT_EQ(status_of(flood), 400);
  EXPECT_EQ(status_of(flood + "GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

// A head arriving in pieces, parsed with already_checked (the size the last call saw), ends
// as the whole input does: the resumed parse skips work, never a verdict that the head's end
// or a limit would bring.
TEST_F(HttpParserVectors, ResumedParsingEndsLikeTheWhole) {
  auto vectors = load_vectors(std::string(WIRE_HTTP_VECTORS) + "/requests.txt");
  const Limits limits;
  auto verdict = [](const ParseResult& r) {
    return r.state == ParseState::complete ? "complete " + std::to_string(r.consumed)
           : r.state == ParseState::error  ? "error " + std::to_string(r.error.status)
                                           : std::string("incomplete");
  };
  std::vector<std::string> inputs;
  for (const auto& v : vectors) inputs.push_back(v.input);
  inputs.push_back("GET /" + std::string(limits.max_request_line, 'a'));  // no line end yet
  inputs.push_back("GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(limits.max_header_block, 'v'));
  for (const auto& input : inputs) {
    RequestHead whole_head;
    const std::string whole = verdict(parse_request_head(input, whole_head, limits));
    for (std::size_t step : {std::size_t(1), std::size_t(7), std::size_t(100)}) {
      RequestHead head;
      ParseResult r;
      std::size_t checked = 0;
      for (std::size_t end = std::min(step, input.size());;
           end = std::min(end + step, input.size())) {
        r = parse_request_head(std::string_view(input).substr(0, end), head, limits, checked);
        if (r.state != ParseState::incomplete || end == input.size()) break;
        checked = end;
      }
      const std::string resumed = verdict(r);
      // An input that never completes its head may keep a verdict for later (a timeout
      // ends such a connection); everything else must agree.
      if (resumed == "incomplete" && whole.rfind("error", 0) == 0) {
        EXPECT_EQ(input.find("\r\n\r\n"), std::string::npos) << input.substr(0, 60);
        continue;
      }
      EXPECT_EQ(resumed, whole) << "step " << step << ": " << input.substr(0, 60);
    }
  }
}

TEST_F(HttpParserVectors, ResponsesAndTheirFraming) {
  // The head's views point into the input, so each input outlives its checks.
  std::vector<std::unique_ptr<std::string>> inputs;
  auto parse = [&inputs](const char* input, const char* method, ResponseHead& head) {
    inputs.push_back(std::make_unique<std::string>(input));
    return parse_response_head(*inputs.back(), head, method);
  };
  ResponseHead head;
  auto r = parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "GET", head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.reason, "OK");
  EXPECT_EQ(head.body, BodyKind::length);
  EXPECT_EQ(r.consumed, 38u);
  r = parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", "HEAD", head);
  EXPECT_EQ(head.body, BodyKind::none) << "a response to HEAD has no body";
  r = parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n", "GET", head);
  EXPECT_EQ(head.body, BodyKind::none);
  r = parse("HTTP/1.0 200 OK\r\n\r\n", "GET", head);
  EXPECT_EQ(head.body, BodyKind::until_close);
  EXPECT_FALSE(head.keep_alive);
  r = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", head);
  EXPECT_EQ(head.body, BodyKind::chunked);
  r = parse("HTTP/1.1 204\r\n\r\n", "GET", head);
  ASSERT_EQ(r.state, ParseState::complete);
  EXPECT_EQ(head.status, 204);
  EXPECT_EQ(parse("HTTP/1.1 2x0 OK\r\n\r\n", "GET", head).state, ParseState::error);
  EXPECT_EQ(
      parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "GET", head).state,
      ParseState::error);
  EXPECT_EQ(parse("HTTP/1.1 200 OK\r\nContent-", "GET", head).state, ParseState::incomplete);
}
