#include "content_decoding.hpp"

#include <zlib.h>

#include <string>

#include "wire/error.hpp"

namespace wire::http::detail {
namespace {

bool equals_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if ((a[i] | 0x20) != (b[i] | 0x20)) return false;
  }
  return true;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Error decode_error(const std::string& why) {
  return Error(std::make_error_code(std::errc::bad_message), "decode body", "", why);
}

}  // namespace

bool decodable(std::string_view encoding) noexcept {
  encoding = trimmed(encoding);
  return equals_ci(encoding, "gzip") || equals_ci(encoding, "x-gzip") ||
         equals_ci(encoding, "deflate");
}

struct ContentDecoder::State {
  z_stream z{};
  bool gzip = false;
  bool started = false;  // on the first bytes (deflate: zlib or raw is decided then)
  bool ended = false;    // the coded stream (the last gzip member) ended
  bool initialised = false;
  std::string name;

  ~State() {
    if (initialised) inflateEnd(&z);
  }
  void init(int window_bits) {
    if (initialised) inflateEnd(&z);
    z = z_stream{};
    if (inflateInit2(&z, window_bits) != Z_OK) throw decode_error("zlib: out of memory");
    initialised = true;
  }
};

ContentDecoder::ContentDecoder(std::string_view encoding) : state_(std::make_unique<State>()) {
  encoding = trimmed(encoding);
  state_->name = std::string(encoding);
  state_->gzip = !equals_ci(encoding, "deflate");
}

ContentDecoder::~ContentDecoder() = default;

void ContentDecoder::feed(std::string_view in, const std::function<void(std::string_view)>& out) {
  State& s = *state_;
  if (in.empty()) return;
  if (!s.started && s.gzip) {
    s.init(16 + MAX_WBITS);  // the gzip wrapper only
    s.started = true;
  } else if (!s.started) {
    // "deflate" means the zlib format (RFC 9110 §8.4.1.2), yet some servers send raw deflate:
    // a zlib stream starts with a header whose 16-bit value is a multiple of 31.
    const auto b0 = static_cast<unsigned char>(in[0]);
    bool zlib_header = (b0 & 0x0f) == 8;
    if (zlib_header && in.size() >= 2) {
      zlib_header = ((b0 << 8) | static_cast<unsigned char>(in[1])) % 31 == 0;
    }
    s.init(zlib_header ? MAX_WBITS : -MAX_WBITS);
    s.started = true;
  }
  unsigned char buffer[65536];
  while (!in.empty()) {
    if (s.ended) {
      // Bytes after the end: another gzip member (RFC 1952 allows several), else junk.
      if (!s.gzip) throw decode_error(s.name + ": data after the end of the stream");
      s.init(16 + MAX_WBITS);
      s.ended = false;
    }
    s.z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    s.z.avail_in = static_cast<uInt>(std::min<std::size_t>(in.size(), 1u << 30));
    const std::size_t offered = s.z.avail_in;
    for (;;) {
      s.z.next_out = buffer;
      s.z.avail_out = sizeof buffer;
      const int rc = inflate(&s.z, Z_NO_FLUSH);
      const std::size_t produced = sizeof buffer - s.z.avail_out;
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        throw decode_error(s.name + ": " + (s.z.msg != nullptr ? s.z.msg : "invalid data"));
      }
      if (produced > 0) out(std::string_view(reinterpret_cast<char*>(buffer), produced));
      if (rc == Z_STREAM_END) {
        s.ended = true;
        break;
      }
      if (s.z.avail_in == 0 && produced < sizeof buffer) break;
      if (rc == Z_BUF_ERROR && produced == 0) break;
    }
    in.remove_prefix(offered - s.z.avail_in);
  }
}

void ContentDecoder::finish() {
  const State& s = *state_;
  if (s.started && !s.ended) throw decode_error(s.name + ": the coded body ended early");
}

}  // namespace wire::http::detail
