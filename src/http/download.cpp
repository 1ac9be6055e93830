#include "wire/http/download.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>

#include "wire/http/parser.hpp"
#include "wire/stream.hpp"

namespace wire::http {
namespace {

constexpr const char* validator_attribute = "user.wire.validator";

// Owns the output file's fd from its creation to the end of download().
class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  void open(const std::string& path, int flags) {
    fd_ = ::open(path.c_str(), flags | O_WRONLY | O_CLOEXEC, 0666);
    if (fd_ < 0) throw Error(wire::detail::last_error(), "open", path);
  }
  int fd() const noexcept { return fd_; }
  // close() is where some file systems report a failed write (NFS, quotas): checked.
  void close(const std::string& path) {
    const int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0 && errno != EINTR) {
      throw Error(wire::detail::last_error(), "close", path);
    }
  }

 private:
  int fd_ = -1;
};

// "bytes START-END/TOTAL" -> START; "bytes */TOTAL" -> TOTAL in `total`. nullopt if malformed.
std::optional<std::uint64_t> number_at(std::string_view s, std::size_t& i) {
  std::uint64_t v = 0;
  const std::size_t from = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == from) return std::nullopt;
  return v;
}

struct ContentRange {
  std::optional<std::uint64_t> first;  // absent for "bytes */TOTAL"
  std::optional<std::uint64_t> last;
  std::optional<std::uint64_t> total;  // absent for ".../*"
};

std::optional<ContentRange> parse_content_range(std::string_view s) {
  if (s.substr(0, 6) != "bytes ") return std::nullopt;
  std::size_t i = 6;
  ContentRange r;
  if (i < s.size() && s[i] == '*') {
    ++i;
  } else {
    r.first = number_at(s, i);
    if (!r.first || i >= s.size() || s[i] != '-') return std::nullopt;
    ++i;
    r.last = number_at(s, i);
    if (!r.last || *r.last < *r.first) return std::nullopt;
  }
  if (i >= s.size() || s[i] != '/') return std::nullopt;
  ++i;
  if (i < s.size() && s[i] == '*') {
    ++i;
  } else {
    r.total = number_at(s, i);
    if (!r.total) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  return r;
}

// What If-Range may carry: a strong ETag, else a Last-Modified date (RFC 9110 §13.1.5).
std::string validator_of(const ClientResponse& r) {
  std::string etag = r.header("ETag");
  if (!etag.empty() && etag.rfind("W/", 0) != 0) return etag;
  return r.header("Last-Modified");
}

std::string read_validator(const std::string& path) {
  // Any length a server may send (an ETag is not bounded), read at its own size.
  const ::ssize_t size = ::getxattr(path.c_str(), validator_attribute, nullptr, 0);
  if (size <= 0 || size > 65536) return {};
  std::string v(static_cast<std::size_t>(size), '\0');
  const ::ssize_t n = ::getxattr(path.c_str(), validator_attribute, v.data(), v.size());
  if (n <= 0) return {};
  v.resize(static_cast<std::size_t>(n));
  for (char c : v) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return {};  // never a header injection
  }
  return v;
}

}  // namespace

DownloadResult download(Client& client, ClientRequest request, const std::string& path,
                        const DownloadOptions& options) {
  DownloadResult result;
  std::uint64_t offset = 0;
  if (options.resume) {
    struct ::stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      offset = static_cast<std::uint64_t>(st.st_size);
    }
    if (offset > 0) {
      request.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-");
      // Without a validator the range is asked for without one, as curl -C does: the server
      // cannot tell us the file changed meanwhile.
      if (std::string validator = read_validator(path); !validator.empty()) {
        request.headers.emplace_back("If-Range", validator);
      }
    }
  }

  bool asked_for_range = offset > 0;
  for (const auto& [name, value] : request.headers) {
    asked_for_range = asked_for_range || equals_ignore_case(name, "range");
  }
  OutputFile file;
  std::optional<Stream> out;
  bool skip = false;
  std::optional<std::uint64_t> expected;  // a 206's length, from its Content-Range
  ResponseHandlers handlers = options.handlers;
  handlers.on_head = [&](const ClientResponse& r) {
    if (options.handlers.on_head) options.handlers.on_head(r);
    if (offset > 0 && r.status == 416) {
      // Nothing left to send: complete if the server's size is the file's.
      auto range = parse_content_range(r.header("Content-Range"));
      if (range && range->total && *range->total == offset) {
        result.already_complete = true;
        skip = true;
        return;
      }
      throw Error(std::make_error_code(std::errc::invalid_argument), "resume", path,
                  "the server cannot continue at byte " + std::to_string(offset) +
                      " (416; Content-Range '" +
                      wire::detail::printable(r.header("Content-Range")) + "')");
    }
    // A partial file is never touched by an answer that is not its continuation or its
    // replacement: a 503 during a resume leaves it as it was, to be resumed later.
    if (r.status / 100 != 2 && (offset > 0 || !options.write_error_body)) {
      skip = true;
      return;
    }
    auto refuse = [&](const std::string& why) {
      return Error(
          std::make_error_code(std::errc::invalid_argument), "download", path,
          why + " (Content-Range '" + wire::detail::printable(r.header("Content-Range")) + "')");
    };
    int flags = O_CREAT | O_TRUNC;
    if (r.status == 206) {
      if (!asked_for_range) throw refuse("a 206 Partial Content that no Range asked for");
      auto range = parse_content_range(r.header("Content-Range"));
      if (!range || !range->first) throw refuse("a 206 without a valid byte range");
      const std::uint64_t first = *range->first;
      const std::uint64_t last = *range->last;
      if (range->total && last >= *range->total) throw refuse("a range that ends past the total");
      expected = last - first + 1;
      const std::string length = r.header("Content-Length");
      if (!length.empty() && length != std::to_string(*expected)) {
        throw refuse("a Content-Length of " + wire::detail::printable(length) + " for a range of " +
                     std::to_string(*expected) + " bytes");
      }
      if (offset > 0) {
        if (first != offset) {
          throw refuse("a range that does not start at byte " + std::to_string(offset));
        }
        flags = O_APPEND;
        result.resumed_from = offset;
      }
    }
    file.open(path, flags);
    result.file_written = true;
    // The validator saved for a later resume names what the file holds: the one of a whole
    // representation (200); a continuation (206) keeps the one it was resumed with; an
    // error body or anything else removes it. A file system without user xattrs just
    // cannot resume safely (the range is then asked for without If-Range).
    if (r.status == 200) {
      const std::string validator = validator_of(r);
      if (validator.empty() ||
          ::fsetxattr(file.fd(), validator_attribute, validator.data(), validator.size(), 0) != 0) {
        (void)::fremovexattr(file.fd(), validator_attribute);
      }
    } else if (r.status != 206 || offset == 0) {
      (void)::fremovexattr(file.fd(), validator_attribute);
    }
    out.emplace(file.fd());
  };
  handlers.on_body = [&](std::string_view bytes, std::uint64_t received,
                         std::optional<std::uint64_t> total) {
    if (skip || !out) return;
    if (expected && result.written + bytes.size() > *expected) {
      throw Error(
          std::make_error_code(std::errc::invalid_argument), "download", path,
          "the server sent more than the " + std::to_string(*expected) + " bytes its range holds");
    }
    try {
      out->write(bytes);
    } catch (const Error& e) {
      throw Error(e.code(), "write", path);  // named by its path, not its fd
    }
    result.written += bytes.size();
    if (options.handlers.on_body) options.handlers.on_body(bytes, received, total);
  };
  result.response = client.send(request, handlers);
  if (expected && !skip && result.written != *expected) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "download", path,
                "the range ended after " + std::to_string(result.written) + " of its " +
                    std::to_string(*expected) + " bytes");
  }
  if (out) {
    try {
      out->flush();
    } catch (const Error& e) {
      throw Error(e.code(), "write", path);
    }
    out.reset();
  }
  file.close(path);
  return result;
}

std::string file_name_from_url(std::string_view url) {
  const Url parsed = parse_url(url);  // validates, drops the fragment
  std::string_view path = parsed.target;
  path = path.substr(0, path.find('?'));
  std::string_view last = path.substr(path.rfind('/') + 1);
  std::string name;
  auto hex = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (std::size_t i = 0; i < last.size(); ++i) {
    if (last[i] == '%' && i + 2 < last.size()) {
      name.push_back(static_cast<char>(hex(last[i + 1]) * 16 + hex(last[i + 2])));
      i += 2;
    } else {
      name.push_back(last[i]);
    }
  }
  const bool control = std::any_of(name.begin(), name.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
  });
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
      control) {
    throw Error(
        errc::invalid_address, "remote file name", wire::detail::printable(url),
        "the URL's path does not end with a usable file name (no control bytes, '/', '.' or '..')");
  }
  return name;
}

}  // namespace wire::http
