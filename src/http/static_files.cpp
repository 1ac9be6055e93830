#include "wire/http/static_files.hpp"

#include "conditional.hpp"

#include "wire/loop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <unordered_map>
#include <vector>

namespace wire::http {
namespace {

using detail::etag_matches;
using detail::parse_range;

constexpr std::uint64_t small_file = 16 * 1024;

std::string real_path(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) return {};
  return resolved;
}

bool inside(const std::string& root, const std::string& path) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          (root == "/" || path[root.size()] == '/'));
}

// The served folder, held open: every file is opened relative to it with openat2(2)
// RESOLVE_BENEATH, so the kernel refuses any path that would leave it, in the same syscall
// that opens the file. Absolute symlinks (refused by RESOLVE_BENEATH) and kernels without
// openat2 get the same rule from realpath(3) and a prefix check.
class Root {
 public:
  explicit Root(const std::string& path) : path_(real_path(path)) {
    fd_ = path_.empty() ? -1 : ::open(path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) {
      throw Error(std::make_error_code(std::errc::not_a_directory), "serve", path,
                  "not a readable folder");
    }
  }
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;
  ~Root() { ::close(fd_); }

  // Unique for the process's lifetime (an address could be reused by a later Root):
  // "ID/", the start of its files' keys in the per-thread cache.
  const std::string& key_prefix() const noexcept { return key_prefix_; }

  // Opens `relative` (no leading slash; "" is the root itself) read-only; -1 and errno.
  int open(const std::string& relative) const {
    const char* name = relative.empty() ? "." : relative.c_str();
    ::open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, fd_, name, &how, sizeof how);
    // EXDEV: the path left the root on the way, or met an absolute symlink, which
    // RESOLVE_BENEATH refuses even when it points back inside; realpath decides those.
    if (fd >= 0 || (errno != ENOSYS && errno != EXDEV)) return static_cast<int>(fd);
    const std::string resolved = real_path(path_ + "/" + relative);
    if (resolved.empty() || !inside(path_, resolved)) {
      errno = ENOENT;
      return -1;
    }
    return ::open(resolved.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  }

 private:
  std::string path_;
  int fd_ = -1;
  std::string key_prefix_ = std::to_string(next_id()) + "/";
  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
  }
};

std::string percent_encode_path(std::string_view name) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : name) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string etag_for(const struct ::stat& st) {
  char text[64];
  std::snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull +
                    static_cast<unsigned long long>(st.st_mtim.tv_nsec));
  return text;
}

// Lists the open folder `fd` (and closes it).
Response listing(int fd, std::string_view url_path) {
  std::vector<std::pair<std::string, bool>> entries;
  if (DIR* dir = ::fdopendir(fd)) {
    while (auto* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      struct ::stat st {};
      bool is_dir = ::fstatat(::dirfd(dir), name.c_str(), &st, 0) == 0 && S_ISDIR(st.st_mode);
      entries.emplace_back(std::move(name), is_dir);
    }
    ::closedir(dir);
  } else {
    ::close(fd);
  }
  std::sort(entries.begin(), entries.end());
  std::string title = "Directory listing for " + html_escape(url_path);
  std::string html = "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>" + title +
                     "</title>\n</head>\n<body>\n<h1>" + title + "</h1>\n<hr>\n<ul>\n";
  for (const auto& [name, is_dir] : entries) {
    std::string shown = name + (is_dir ? "/" : "");
    html += "<li><a href=\"" + percent_encode_path(name) + (is_dir ? "/" : "") + "\">" +
            html_escape(shown) + "</a></li>\n";
  }
  html += "</ul>\n<hr>\n</body>\n</html>\n";
  return Response::text(200, std::move(html), "text/html; charset=utf-8");
}

// What the headers say of a file, formatted once (and kept with cached files).
struct FileMeta {
  std::string etag;
  std::string last_modified;
  std::string_view content_type;
};

FileMeta meta_for(const std::string& path, const struct ::stat& st) {
  return {etag_for(st), http_date(st.st_mtim.tv_sec), content_type_for(path)};
}

void add_file_headers(Response& response, const FileMeta& meta) {
  response.header("Content-Type", std::string(meta.content_type));
  response.header("Last-Modified", meta.last_modified);
  response.header("ETag", meta.etag);
  response.header("Accept-Ranges", "bytes");
}

// Answers for one file, given either its open `fd` (which it takes) or, for a small cached
// file, its `parts` (fd is then -1): the header lines and content, shared, not copied.
Response serve_file(const Request& request, const FileMeta& meta, const struct ::stat& st, int fd,
                    const std::shared_ptr<const SharedParts>& parts) {
  auto close_fd = [&] {
    if (fd >= 0) ::close(fd);
  };
  const std::string& etag = meta.etag;
  const std::string_view if_none_match = request.header("If-None-Match");
  bool not_modified = false;
  if (!if_none_match.empty()) {
    not_modified = etag_matches(if_none_match, etag);
  } else if (auto since = parse_http_date(request.header("If-Modified-Since")); since >= 0) {
    not_modified = st.st_mtim.tv_sec <= since;
  }
  if (not_modified) {
    close_fd();
    Response response(304);
    add_file_headers(response, meta);
    return response;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t first = 0, last = 0;
  const int range =
      request.method == "GET" ? parse_range(request.header("Range"), size, first, last) : 0;
  if (range < 0) {
    close_fd();
    Response unsatisfiable = Response::text(416, "416 Range Not Satisfiable\n");
    unsatisfiable.header("Content-Range", "bytes */" + std::to_string(size));
    return unsatisfiable;
  }
  if (range > 0) {
    Response response(206);
    add_file_headers(response, meta);
    response.header("Content-Range", "bytes " + std::to_string(first) + "-" + std::to_string(last) +
                                         "/" + std::to_string(size));
    if (parts != nullptr) {
      response.body = parts->body.substr(static_cast<std::size_t>(first),
                                         static_cast<std::size_t>(last - first + 1));
    } else {
      response.send_file(fd, first, last - first + 1);
    }
    return response;
  }
  Response response(200);
  if (parts != nullptr) {
    // A small file goes out in the same write as the head: one syscall, not two.
    response.shared = parts;
  } else {
    add_file_headers(response, meta);
    response.send_file(fd, 0, size);
  }
  return response;
}

// Small files, kept per thread (no lock) and trusted for a second before they are looked
// at again, as nginx's open_file_cache does: a hit costs no syscall at all.
struct CachedFile {
  FileMeta meta;
  struct ::stat st {};
  std::shared_ptr<const SharedParts> parts;  // header lines and content
  std::chrono::steady_clock::time_point checked;
};

std::shared_ptr<const SharedParts> prepare(const FileMeta& meta, std::string content) {
  auto parts = std::make_shared<SharedParts>();
  Response headers;
  add_file_headers(headers, meta);
  for (const auto& [name, value] : headers.headers) {
    parts->header_lines += name + ": " + value + "\r\n";
  }
  parts->body = std::move(content);
  return parts;
}

// What a request's path names beneath the root, worked out in per-thread strings (the
// handler never suspends while it uses them, so no request sees another's).
struct PathScratch {
  std::string decoded;   // the path, percent-decoded once
  std::string relative;  // without a leading slash, `.` and empty segments
  std::string key;       // the file's key in the cache
};
PathScratch& path_scratch() {
  thread_local PathScratch scratch;
  return scratch;
}

// A path that percent-decoding and segment cleaning would leave as it is (after its
// leading slash): no escape, no empty segment, nothing starting with a dot.
bool is_plain_path(std::string_view path) {
  return path.find('%') == std::string_view::npos && path.find("//") == std::string_view::npos &&
         path.find("/.") == std::string_view::npos;
}

bool has_encoded_separator(std::string_view path) {
  for (std::size_t at = path.find('%'); at != std::string_view::npos; at = path.find('%', at + 1)) {
    if (at + 2 >= path.size()) break;
    const char hi = path[at + 1], lo = static_cast<char>(path[at + 2] | 0x20);
    if ((hi == '2' && lo == 'f') || (hi == '5' && lo == 'c')) return true;
  }
  return false;
}

std::chrono::steady_clock::time_point loop_time() {
  // The loop's time of this iteration is fresh enough for a one-second cache and costs
  // no clock read.
  if (EventLoop* loop = EventLoop::current()) return loop->now();
  return std::chrono::steady_clock::now();
}
constexpr auto revalidate_after = std::chrono::seconds(1);
constexpr std::size_t max_cached_files = 4096;

std::unordered_map<std::string, CachedFile>& file_cache() {
  thread_local std::unordered_map<std::string, CachedFile> cache;
  return cache;
}

}  // namespace

bool percent_decode(std::string_view text, std::string& out) {
  out.clear();
  if (text.find('%') == std::string_view::npos) {  // the usual case: nothing to decode
    out.assign(text);
    return true;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    auto hex = [](char c) {
      return c >= '0' && c <= '9'   ? c - '0'
             : c >= 'a' && c <= 'f' ? c - 'a' + 10
             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                    : -1;
    };
    if (i + 2 >= text.size()) return false;  // "%" or "%X" at the end
    int hi = hex(text[i + 1]), lo = hex(text[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string_view content_type_for(std::string_view path) noexcept {
  static constexpr std::pair<std::string_view, std::string_view> types[] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".md", "text/markdown; charset=utf-8"},
      {".xml", "application/xml"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".pdf", "application/pdf"},
      {".wasm", "application/wasm"},
      {".mp4", "video/mp4"},
      {".woff2", "font/woff2"},
      {".zip", "application/zip"},
      {".gz", "application/gzip"},
      {".tar", "application/x-tar"},
      {".cpp", "text/plain; charset=utf-8"},
      {".hpp", "text/plain; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".map", "application/json"},
      {".csv", "text/csv; charset=utf-8"},
      {".yaml", "application/yaml"},
      {".yml", "application/yaml"},
      {".avif", "image/avif"},
      {".bmp", "image/bmp"},
      {".tif", "image/tiff"},
      {".tiff", "image/tiff"},
      {".mp3", "audio/mpeg"},
      {".ogg", "audio/ogg"},
      {".wav", "audio/wav"},
      {".flac", "audio/flac"},
      {".webm", "video/webm"},
      {".woff", "font/woff"},
      {".ttf", "font/ttf"},
      {".otf", "font/otf"},
      {".xz", "application/x-xz"},
      {".bz2", "application/x-bzip2"},
      {".7z", "application/x-7z-compressed"},
      {".c", "text/plain; charset=utf-8"},
      {".h", "text/plain; charset=utf-8"},
      {".py", "text/plain; charset=utf-8"},
      {".sh", "text/plain; charset=utf-8"},
      {".log", "text/plain; charset=utf-8"},
  };
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string_view ext = path.substr(dot);
    for (const auto& [suffix, type] : types) {
      if (equals_ignore_case(ext, suffix)) return type;
    }
  }
  return "application/octet-stream";
}

Handler static_files(const std::string& root_text, StaticOptions options) {
  auto root = std::make_shared<Root>(root_text);
  return [root, options](Request& request) -> Task<Response> {
    if (request.method != "GET" && request.method != "HEAD") {
      Response r = Response::text(405, "405 Method Not Allowed\n");
      r.header("Allow", "GET, HEAD");
      co_return r;
    }
    auto not_found = [] { return Response::text(404, "404 Not Found\n"); };
    // Decode once; an encoded slash or NUL, or a ".." segment, never reaches the disk.
    if (request.path.empty() || request.path.front() != '/') co_return not_found();
    if (has_encoded_separator(request.path)) co_return not_found();
    PathScratch& scratch = path_scratch();
    std::string& decoded = scratch.decoded;
    std::string& relative = scratch.relative;  // resolved beneath the root
    if (is_plain_path(request.path)) {
      // Nothing to decode and no `.`, `..` or empty segment: the path is the name.
      decoded.assign(request.path);
      relative.assign(request.path.substr(1));
      if (!relative.empty() && relative.back() == '/') relative.pop_back();
    } else {
      if (!percent_decode(request.path, decoded))
        co_return Response::text(400, "400 Bad Request\n");
      if (decoded.find('\0') != std::string::npos) co_return not_found();
      relative.clear();
      for (std::size_t at = 1; at <= decoded.size();) {
        auto next = decoded.find('/', at);
        if (next == std::string::npos) next = decoded.size();
        std::string_view segment(decoded.data() + at, next - at);
        if (segment == "..") co_return not_found();
        if (!segment.empty() && segment != ".") {
          if (!relative.empty()) relative += '/';
          relative += segment;
        }
        at = next + 1;
      }
    }
    std::string& cache_key = scratch.key;
    cache_key = root->key_prefix();
    cache_key += relative;
    auto& cache = file_cache();
    const auto now = loop_time();
    if (auto hit = cache.find(cache_key);
        hit != cache.end() && now - hit->second.checked < revalidate_after) {
      co_return serve_file(request, hit->second.meta, hit->second.st, -1, hit->second.parts);
    }
    int fd = root->open(relative);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        Response busy = Response::text(503, "503 Service Unavailable\n");
        busy.header("Retry-After", "1");
        co_return busy;
      }
      co_return not_found();  // missing, unreadable, or resolving outside the root
    }
    struct ::stat info {};
    if (::fstat(fd, &info) != 0) {
      ::close(fd);
      co_return not_found();
    }
    std::string file = relative;
    if (S_ISDIR(info.st_mode)) {
      if (request.path.back() != '/') {
        ::close(fd);
        Response moved = Response::text(301, "301 Moved Permanently\n");
        std::string location = std::string(request.path) + "/";
        if (!request.query.empty()) location += "?" + std::string(request.query);
        moved.header("Location", location);
        co_return moved;
      }
      file = relative.empty() ? "index.html" : relative + "/index.html";
      int index = root->open(file);
      struct ::stat index_info {};
      if (index >= 0 && ::fstat(index, &index_info) == 0 && S_ISREG(index_info.st_mode)) {
        ::close(fd);
        fd = index;
        info = index_info;
      } else {
        if (index >= 0) ::close(index);
        if (!options.listings) {
          ::close(fd);
          co_return not_found();
        }
        co_return listing(fd, decoded);  // takes fd
      }
    }
    if (!S_ISREG(info.st_mode)) {
      ::close(fd);
      co_return not_found();
    }
    if (static_cast<std::uint64_t>(info.st_size) <= small_file && file == relative) {
      std::string content(static_cast<std::size_t>(info.st_size), '\0');
      ::ssize_t got = ::pread(fd, content.data(), content.size(), 0);
      ::close(fd);
      if (got != static_cast<::ssize_t>(content.size())) {
        co_return Response::text(500, "500 Internal Server Error\n");
      }
      if (cache.size() >= max_cached_files) cache.clear();
      CachedFile& entry = cache[cache_key];
      FileMeta meta = meta_for(file, info);
      auto parts = prepare(meta, std::move(content));
      entry = CachedFile{std::move(meta), info, std::move(parts), now};
      co_return serve_file(request, entry.meta, entry.st, -1, entry.parts);
    }
    co_return serve_file(request, meta_for(file, info), info, fd, {});
  };
}

}  // namespace wire::http
