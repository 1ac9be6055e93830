// Internal: decodes a response's Content-Encoding (gzip, x-gzip, deflate) as the body
// arrives, with zlib. fuzz/content_decoding_fuzz.cpp links this file alone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

namespace wire::http::detail {

// Whether ContentDecoder can decode this Content-Encoding value (one coding, any case).
bool decodable(std::string_view content_encoding) noexcept;

class ContentDecoder {
 public:
  explicit ContentDecoder(std::string_view content_encoding);  // decodable() must be true
  ~ContentDecoder();
  ContentDecoder(const ContentDecoder&) = delete;
  ContentDecoder& operator=(const ContentDecoder&) = delete;

  // Decodes `in`, handing the decoded bytes to `out` piece by piece (at most 64 KiB each, so
  // a bomb is caught by the caller's cap before it grows). Throws wire::Error
  // (errc::bad_message) for data that is not valid in the coding.
  void feed(std::string_view in, const std::function<void(std::string_view)>& out);
  // At the body's end: throws wire::Error if the coded stream was cut short.
  void finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace wire::http::detail
