// libFuzzer target for ChunkedDecoder: the same body fed whole, one byte at a time, cut at
// every point (short inputs), and cut into pieces whose sizes come from the input, must
// give the same data, the same error (status and reason), the same `done` and the same
// bytes consumed. Each step's data must be a view into what it was fed. Byte 0 seeds the
// piece sizes, byte 1 picks small limits (so 413 and 431 are reached); the rest is the body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "wire/http/parser.hpp"

using namespace wire::http;

namespace {

struct Outcome {
  std::string data;
  int status = 0;
  std::string reason;
  bool done = false;
  std::size_t consumed = 0;

  bool operator==(const Outcome&) const = default;
};

// Feeds `body` in pieces ending at each of `cuts` (then the rest), as a reader would: the
// unconsumed rest plus the new bytes, until a step consumes nothing.
Outcome decode(std::string_view body, const std::vector<std::size_t>& cuts, const Limits& limits) {
  ChunkedDecoder decoder(limits);
  Outcome out;
  std::string pending;
  std::size_t fed = 0;
  auto drain = [&] {
    for (;;) {
      // An exact-size heap copy per step, so ASan sees a read past what was fed.
      std::unique_ptr<char[]> copy(new char[pending.size() + 1]);
      std::memcpy(copy.get(), pending.data(), pending.size());
      const std::string_view input(copy.get(), pending.size());
      const ChunkedDecoder::Step step = decoder.feed(input);
      if (step.consumed > input.size()) std::abort();
      if (!step.data.empty() &&
          (step.data.data() < input.data() ||
           step.data.data() + step.data.size() > input.data() + input.size())) {
        std::abort();
      }
      out.data.append(step.data);
      out.consumed += step.consumed;
      pending.erase(0, step.consumed);
      if (step.error.status != 0) {
        out.status = step.error.status;
        out.reason = step.error.reason;
        return false;
      }
      if (step.done) {
        out.done = true;
        return false;
      }
      if (step.consumed == 0) return true;
    }
  };
  for (std::size_t cut : cuts) {
    if (cut <= fed || cut > body.size()) continue;
    pending.append(body.substr(fed, cut - fed));
    fed = cut;
    if (!drain()) return out;
  }
  pending.append(body.substr(fed));
  drain();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  Limits limits;
  const std::uint8_t small = data[1];
  if (small & 1) limits.max_body = small * 4u;
  if (small & 2) limits.max_header_block = 32u + small;
  if (small & 4) limits.max_header_count = 2;
  const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

  const Outcome whole = decode(body, {}, limits);
  if (whole.consumed > body.size()) std::abort();

  std::vector<std::size_t> every_byte;
  for (std::size_t i = 1; i < body.size(); ++i) every_byte.push_back(i);
  if (!(decode(body, every_byte, limits) == whole)) std::abort();

  if (body.size() <= 256) {
    for (std::size_t cut = 1; cut < body.size(); ++cut) {
      if (!(decode(body, {cut}, limits) == whole)) std::abort();
    }
  }

  // Pieces of 1 to 64 bytes, from a generator seeded by byte 0.
  std::uint32_t x = 0x9e3779b9u ^ data[0];
  std::vector<std::size_t> pieces;
  for (std::size_t at = 0; at < body.size();) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    at += 1 + x % 64;
    pieces.push_back(at);
  }
  if (!(decode(body, pieces, limits) == whole)) std::abort();
  return 0;
}
