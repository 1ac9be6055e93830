// Strings that leave wire as JSON or as Prometheus label values. What they carry comes from
// other processes and peers (unix paths, comm, file names, a served folder's name), so:
//   - every control byte is escaped, never passed through;
//   - < > & are escaped too, so a page that inlines the JSON in a <script> stays safe;
//   - bytes that are not UTF-8 become U+FFFD: JSON and the Prometheus text format are UTF-8,
//     and one stray 0xff byte would make the whole document unreadable to a strict parser.
//     The exact bytes are lost there; the tables printed for people keep them as \xNN.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "wire/error.hpp"

namespace wire::internal {

inline constexpr std::string_view replacement_character = "\xef\xbf\xbd";  // U+FFFD

// `text` as a quoted JSON string.
inline void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    const auto byte = static_cast<unsigned char>(c);
    const std::size_t length = detail::utf8_sequence_at(text, i);
    if (length == 0) {
      out += replacement_character;
      ++i;
      continue;
    }
    if (length > 1) {
      out.append(text.substr(i, length));
      i += length;
      continue;
    }
    ++i;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f || c == '<' || c == '>' || c == '&') {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

// `value` as a quoted Prometheus label value: backslash, double quote and line feed escaped
// as the text format asks, and the text kept UTF-8.
inline void append_prometheus_label(std::string& out, std::string_view value) {
  out += '"';
  for (std::size_t i = 0; i < value.size();) {
    const std::size_t length = detail::utf8_sequence_at(value, i);
    if (length == 0) {
      out += replacement_character;
      ++i;
      continue;
    }
    const char c = value[i];
    if (length == 1 && c == '\\') {
      out += "\\\\";
    } else if (length == 1 && c == '"') {
      out += "\\\"";
    } else if (length == 1 && c == '\n') {
      out += "\\n";
    } else {
      out.append(value.substr(i, length));
    }
    i += length;
  }
  out += '"';
}

}  // namespace wire::internal
