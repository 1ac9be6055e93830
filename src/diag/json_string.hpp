// A JSON string for the diag layer's to_json(): names come from other processes and peers
// (paths, comm), so every control byte is escaped, never passed through.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace wire::diag::internal {

inline void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace wire::diag::internal
