// wire/http/static_files.hpp — serve a folder, safely (what `wire serve` runs).
//
//   wire::serve("tcp://127.0.0.1:8000",
//               wire::http::connection_handler(wire::http::static_files(".")));
//
// GET and HEAD; index.html for folders, else index.htm (as python3 -m http.server), else an
// HTML listing with names escaped; a file asked for as a folder ("/README/") is 404;
// Content-Type by extension; bodies with sendfile(2); a single byte Range (206, or 416 when
// unsatisfiable) honouring If-Range; Last-Modified with If-Modified-Since and ETag with
// If-None-Match (304).
// Never serves anything outside the root: the path is percent-decoded once, `..` segments,
// encoded slashes and NUL bytes are 404, and every file is resolved beneath the root's fd by
// the kernel (openat2 RESOLVE_BENEATH) or, without openat2, one component at a time.
// Only regular files and folders are served: a FIFO, socket or device under the root is 404
// and never blocks the worker. Dotfiles and dot-folders (`.git`, `.env`) are 404 and left out
// of listings unless StaticOptions::dotfiles. A folder asked for without its trailing slash
// is redirected to a Location rebuilt from the cleaned path, never `//host/`.
// Files up to 16 KiB are kept in memory per thread and dropped as soon as inotify reports a
// change to them or to a folder on their path (checked once per loop iteration); without
// inotify they are looked at again after a second. Larger ones go out with sendfile(2).
// See docs/design/static-files.md.
#pragma once

#include <string>
#include <vector>

#include "wire/http/server.hpp"

namespace wire::http {

struct StaticOptions {
  bool listings = true;   // an HTML listing for folders without index.html or index.htm
  bool dotfiles = false;  // serve and list names starting with '.' (`.git/config`, `.env`)
  // Names at the top of the root neither served (404, whatever lies beneath) nor listed:
  // paths the server answers itself, such as the status page's "_wire".
  std::vector<std::string> hidden;
};

// Throws wire::Error when `root` is not a readable folder.
Handler static_files(const std::string& root, StaticOptions options = {});

// Percent-decodes `text` once; false on a malformed escape.
bool percent_decode(std::string_view text, std::string& out);
std::string html_escape(std::string_view text);
std::string_view content_type_for(std::string_view path) noexcept;

}  // namespace wire::http
