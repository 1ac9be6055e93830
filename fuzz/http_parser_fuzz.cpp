// libFuzzer target for the HTTP parser. For any input, read as a request head (what a server
// parses) and as a response head (what the client parses from any server): parsing must not
// crash, read out of bounds (ASan) or hit undefined behaviour (UBSan); a complete head must
// not claim more bytes than it was given; and splitting the input in two must not change
// the outcome, nor does resuming a parse where an incomplete one stopped.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "wire/http/parser.hpp"

using namespace wire::http;

namespace {

// A complete head claims no more than it was given, and every view points into the input.
void check_views(const ParseResult& r, const MessageHead& head, std::string_view input) {
  if (r.consumed > input.size()) std::abort();
  for (const Header& h : head.headers()) {
    if (h.name.data() < input.data() ||
        h.value.data() + h.value.size() > input.data() + input.size()) {
      std::abort();
    }
  }
}

// The status (or 0 for complete, -1 for incomplete) and consumed size for a head.
std::pair<int, std::size_t> outcome(std::string_view input) {
  RequestHead head;
  ParseResult r = parse_request_head(input, head);
  if (r.state == ParseState::error) return {r.error.status, 0};
  if (r.state == ParseState::incomplete) return {-1, 0};
  check_views(r, head, input);
  if (head.body == BodyKind::chunked) {
    ChunkedDecoder decoder;
    std::string_view rest = input.substr(r.consumed);
    for (int guard = 0; guard < 100000 && !rest.empty(); ++guard) {
      auto step = decoder.feed(rest);
      if (step.consumed > rest.size()) std::abort();
      if (step.error.status != 0 || step.done || step.consumed == 0) break;
      rest.remove_prefix(step.consumed);
    }
  }
  return {0, r.consumed};
}

std::pair<int, std::size_t> response_outcome(std::string_view input) {
  ResponseHead head;
  ParseResult r = parse_response_head(input, head);
  if (r.state == ParseState::error) return {r.error.status, 0};
  if (r.state == ParseState::incomplete) return {-1, 0};
  check_views(r, head, input);
  return {head.status, r.consumed};
}

// The same bytes arriving in two reads: the first prefix that is not incomplete decides.
template <class Outcome>
void check_split(std::string_view view, std::size_t cut, Outcome outcome) {
  auto whole = outcome(view);
  auto first = outcome(view.substr(0, cut));
  auto result = first.first == -1 ? whole : first;
  if (result != whole) std::abort();
}

// The same bytes parsed again after an incomplete first read, told how much was checked
// (already_checked): resuming may hold back a verdict only while the head has not ended
// and no limit was crossed, never give a different one.
void check_resumed(std::string_view view, std::size_t cut) {
  RequestHead first_head;
  if (parse_request_head(view.substr(0, cut), first_head).state != ParseState::incomplete) return;
  RequestHead whole_head, resumed_head;
  const ParseResult whole = parse_request_head(view, whole_head);
  const ParseResult resumed = parse_request_head(view, resumed_head, {}, cut);
  if (resumed.state == ParseState::incomplete) {
    if (whole.state == ParseState::complete) std::abort();
    return;
  }
  if (resumed.state != whole.state || resumed.consumed != whole.consumed ||
      resumed.error.status != whole.error.status) {
    std::abort();
  }
  ResponseHead first_response;
  if (parse_response_head(view.substr(0, cut), first_response).state != ParseState::incomplete) {
    return;
  }
  ResponseHead whole_response, resumed_response;
  const ParseResult whole_r = parse_response_head(view, whole_response);
  const ParseResult resumed_r = parse_response_head(view, resumed_response, "GET", {}, cut);
  if (resumed_r.state == ParseState::incomplete) {
    if (whole_r.state == ParseState::complete) std::abort();
    return;
  }
  if (resumed_r.state != whole_r.state || resumed_r.consumed != whole_r.consumed) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Copy into an exact-size heap block so ASan sees any read past the end.
  std::string input(reinterpret_cast<const char*>(data), size);
  std::string_view view(input);
  const std::size_t cut = size > 1 ? data[0] % size : 0;
  check_split(view, cut, outcome);
  check_split(view, cut, response_outcome);
  check_resumed(view, cut);
  return 0;
}
