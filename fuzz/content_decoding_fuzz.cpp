// libFuzzer target for the response body decoder (gzip, deflate as zlib or raw): any bytes,
// fed in pieces whose sizes come from the input, must decode or fail with wire::Error,
// never crash or hang, and give the same result whatever the pieces. And what zlib itself
// codes from the input must decode back to the input, in every coding.
// Byte 0 picks the coding and seeds the piece sizes; the rest is the coded body.
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/content_decoding.hpp"
#include "wire/error.hpp"

using wire::http::detail::ContentDecoder;

namespace {

constexpr std::size_t max_output = 1 << 20;  // a bomb stops here, as a caller's cap would

struct Outcome {
  std::string data;
  bool failed = false;
  bool capped = false;
};

Outcome decode(std::string_view coding, std::string_view body, std::uint32_t seed) {
  Outcome out;
  ContentDecoder decoder(coding);
  try {
    while (!body.empty()) {
      seed = seed * 1103515245u + 12345u;
      const std::size_t piece = seed == 0 ? body.size() : 1 + (seed >> 16) % body.size();
      decoder.feed(body.substr(0, piece), [&](std::string_view bytes) {
        if (bytes.size() > 65536) std::abort();  // pieces are bounded, so caps work
        out.data.append(bytes);
        if (out.data.size() > max_output) {
          out.capped = true;
          throw 0;
        }
      });
      body.remove_prefix(piece);
    }
    decoder.finish();
  } catch (const wire::Error&) {
    out.failed = true;
  } catch (int) {
  }
  return out;
}

std::string zlib_code(std::string_view data, int window_bits) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view codings[] = {"gzip", "deflate", "x-gzip", " GZIP "};
  const std::string_view coding = codings[data[0] & 3];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);

  const Outcome whole = decode(coding, body, 0);
  const Outcome pieces = decode(coding, body, data[0] | 1u);
  if (!whole.capped && !pieces.capped) {
    if (whole.failed != pieces.failed) std::abort();
    if (!whole.failed && whole.data != pieces.data) std::abort();
  }

  // Round trip: gzip (31), zlib (15) and raw deflate (-15) all decode back.
  for (const auto& [name, bits] : {std::pair{"gzip", 31}, {"deflate", 15}, {"deflate", -15}}) {
    const Outcome back = decode(name, zlib_code(body, bits), data[0]);
    if (back.failed || back.data != body) std::abort();
  }
  return 0;
}
