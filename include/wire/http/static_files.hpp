// wire/http/static_files.hpp — serve a folder, safely (what `wire serve` runs).
//
//   wire::serve("tcp://127.0.0.1:8000",
//               wire::http::connection_handler(wire::http::static_files(".")));
//
// GET and HEAD; index.html for folders, else an HTML listing with names escaped;
// Content-Type by extension; bodies with sendfile(2); a single byte Range (206, or 416 when
// unsatisfiable); Last-Modified with If-Modified-Since and ETag with If-None-Match (304).
// Never serves anything outside the root: the path is percent-decoded once, and `..`
// segments, encoded slashes, NUL bytes and symlinks that resolve outside the root are 404.
// Files up to 16 KiB are kept in memory per thread and looked at again after a second (a
// change shows within a second, as with nginx's open_file_cache); larger ones go out with
// sendfile(2).
#pragma once

#include <string>

#include "wire/http/server.hpp"

namespace wire::http {

struct StaticOptions {
  bool listings = true;  // an HTML listing for folders without index.html
};

// Throws wire::Error when `root` is not a readable folder.
Handler static_files(const std::string& root, StaticOptions options = {});

// Percent-decodes `text` once; false on a malformed escape.
bool percent_decode(std::string_view text, std::string& out);
std::string html_escape(std::string_view text);
std::string_view content_type_for(std::string_view path) noexcept;

}  // namespace wire::http
