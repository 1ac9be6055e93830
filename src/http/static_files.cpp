#include "wire/http/static_files.hpp"

#include "conditional.hpp"
#include "wire/http/client.hpp"

#include "wire/loop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace wire::http {
namespace {

using detail::etag_matches;
using detail::parse_range;

constexpr std::uint64_t small_file = 16 * 1024;

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, and with it the
// whole worker. The caller refuses anything but regular files and folders after fstat.
constexpr int read_flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

// Set once a kernel says it has no openat2: the walk is used from then on.
std::atomic<bool> openat2_missing{false};

std::string real_path(const std::string& path) {
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) return {};
  return resolved;
}

// Splits `path` on '/' onto `pending`, whose back is the next component to resolve: in front
// of what is already there, as a symlink's target replaces the link.
void push_components(std::vector<std::string>& pending, std::string_view path) {
  std::vector<std::string> parts;
  for (std::size_t at = 0; at <= path.size();) {
    auto next = path.find('/', at);
    if (next == std::string_view::npos) next = path.size();
    if (next > at) parts.emplace_back(path.substr(at, next - at));
    at = next + 1;
  }
  pending.insert(pending.end(), parts.rbegin(), parts.rend());
}

class ThreadCache;

// The served folder, held open: every file is resolved beneath its fd, so no path, symlink
// or concurrent rename can reach outside it (see docs/design/static-files.md).
class Root {
 public:
  explicit Root(const std::string& path) : path_(real_path(path)) {
    fd_ = path_.empty() ? -1 : ::open(path_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0) {
      throw Error(std::make_error_code(std::errc::not_a_directory), "serve", path,
                  "not a readable folder");
    }
    std::error_code ec;
    given_ = std::filesystem::absolute(path, ec).lexically_normal().string();
    while (given_.size() > 1 && given_.back() == '/') given_.pop_back();
    // Read once, here, so a test can run the walk that kernels without openat2 get.
    const char* walk = std::getenv("WIRE_STATIC_NO_OPENAT2");
    use_openat2_ = walk == nullptr || *walk == '\0' || std::string_view(walk) == "0";
  }
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;
  ~Root();

  int fd() const noexcept { return fd_; }

  // Opens `relative` (no leading slash; "" is the root itself) with read_flags; -1 and errno.
  // With `through_symlink`, also tells whether a symlink was on the way (for the cache,
  // whose watches follow names, not what a symlink's target path passes through).
  int open(const std::string& relative, bool* through_symlink = nullptr) const {
    if (use_openat2_ && !openat2_missing.load(std::memory_order_relaxed)) {
      ::open_how how{};
      how.flags = read_flags;
      how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
      const char* name = relative.empty() ? "." : relative.c_str();
      if (through_symlink != nullptr) {
        how.resolve |= RESOLVE_NO_SYMLINKS;
        const long fd = ::syscall(SYS_openat2, fd_, name, &how, sizeof how);
        if (fd >= 0) return static_cast<int>(fd);
        *through_symlink = errno == ELOOP;  // else answered below, as without the question
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
      }
      const long fd = ::syscall(SYS_openat2, fd_, name, &how, sizeof how);
      if (fd >= 0) return static_cast<int>(fd);
      if (errno == ENOSYS) {
        openat2_missing.store(true, std::memory_order_relaxed);
      } else if (errno != EXDEV && errno != EAGAIN) {
        return -1;
      }
      // EXDEV: the path left the root, or met an absolute symlink, which RESOLVE_BENEATH
      // refuses even when it points back inside; the walk tells the two apart. EAGAIN: a
      // rename raced a `..`; the walk does not care.
    }
    return walk(relative, through_symlink);
  }

  // This thread's cache of this root's small files, made on first use.
  ThreadCache& thread_cache();

 private:
  // Resolves `relative` one component at a time from the root's fd, never letting the kernel
  // follow a symlink (O_NOFOLLOW) or a `..`: symlinks are read and resolved here, beneath the
  // root, and `..` leaves a folder this walk entered, never the root. Whatever renames race
  // it, each step opens a name inside a folder it holds open beneath the root.
  int walk(std::string_view relative, bool* through_symlink) const {
    std::vector<int> held;  // folders entered beneath the root, innermost last
    struct Closer {
      std::vector<int>& fds;
      ~Closer() {
        for (int fd : fds) ::close(fd);
      }
    } closer{held};
    auto here = [&] { return held.empty() ? fd_ : held.back(); };
    std::vector<std::string> pending;
    push_components(pending, relative);
    int links = 0;
    char target[PATH_MAX];
    while (!pending.empty()) {
      const std::string name = std::move(pending.back());
      pending.pop_back();
      if (name == ".") continue;
      if (name == "..") {
        if (held.empty()) {
          errno = EXDEV;
          return -1;
        }
        ::close(held.back());
        held.pop_back();
        continue;
      }
      ::ssize_t length = -1;
      if (pending.empty()) {
        const int fd = ::openat(here(), name.c_str(), read_flags | O_NOFOLLOW);
        if (fd >= 0 || errno != ELOOP) return fd;
        length = ::readlinkat(here(), name.c_str(), target, sizeof target);
      } else {
        const int fd = ::openat(here(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return -1;
        struct ::stat st {};
        if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
          held.push_back(fd);
          continue;
        }
        if (S_ISLNK(st.st_mode)) length = ::readlinkat(fd, "", target, sizeof target);
        ::close(fd);
        if (length < 0 && !S_ISLNK(st.st_mode)) errno = ENOTDIR;
      }
      if (length < 0) return -1;
      if (through_symlink != nullptr) *through_symlink = true;
      if (static_cast<std::size_t>(length) >= sizeof target || ++links > 40) {
        errno = ELOOP;
        return -1;
      }
      std::string_view text(target, static_cast<std::size_t>(length));
      if (!text.empty() && text.front() == '/') {
        if (!beneath_root(text)) {
          errno = EXDEV;
          return -1;
        }
        for (int fd : held) ::close(fd);
        held.clear();
      }
      push_components(pending, text);
    }
    return ::openat(here(), ".", read_flags);  // ended on a folder
  }

  // An absolute symlink target naming the root (by its real path or as it was given): left
  // in `text` is the rest, to resolve beneath the root's fd like any relative path.
  bool beneath_root(std::string_view& text) const {
    for (const std::string& prefix : {path_, given_}) {
      if (prefix.empty()) continue;
      if (prefix == "/") {
        text.remove_prefix(1);
        return true;
      }
      if (text.substr(0, prefix.size()) == prefix &&
          (text.size() == prefix.size() || text[prefix.size()] == '/')) {
        text.remove_prefix(prefix.size());
        return true;
      }
    }
    return false;
  }

  std::string path_;   // real path
  std::string given_;  // absolute, as given (symlinks often spell the root this way)
  int fd_ = -1;
  bool use_openat2_ = true;
  // Unique for the process's lifetime (an address could be reused by a later Root), so a
  // thread's shortcut to its cache never lands on another root's.
  std::uint64_t id_ = next_id();
  std::mutex caches_mutex_;
  std::unordered_map<std::thread::id, std::unique_ptr<ThreadCache>> caches_;
  static std::uint64_t next_id() {
    static std::atomic<std::uint64_t> counter{0};
    return ++counter;
  }
};

std::string etag_for(const struct ::stat& st) {
  char text[64];
  std::snprintf(text, sizeof text, "\"%llx-%llx\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull +
                    static_cast<unsigned long long>(st.st_mtim.tv_nsec));
  return text;
}

// Whether `relative` (a path beneath the root, without a leading '/') is or lies under one of
// the hidden names.
bool is_hidden(std::string_view relative, const std::vector<std::string>& hidden) {
  const std::string_view top = relative.substr(0, relative.find('/'));
  return std::find(hidden.begin(), hidden.end(), top) != hidden.end();
}

// Lists the open folder `fd` (and closes it); names starting with '.' only if `dotfiles`, and
// at the root (`at_root`) none of `hidden`, as a listing must not point to what the server
// would refuse.
Response listing(int fd, std::string_view url_path, bool dotfiles, bool at_root,
                 const std::vector<std::string>& hidden) {
  std::vector<std::pair<std::string, bool>> entries;
  if (DIR* dir = ::fdopendir(fd)) {
    while (auto* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == ".." || (!dotfiles && name.front() == '.')) continue;
      if (at_root && !hidden.empty() && is_hidden(name, hidden)) continue;
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
    html += "<li><a href=\"" + percent_encode(name) + (is_dir ? "/" : "") + "\">" +
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

// RFC 9110 13.1.5: a Range is honoured only if If-Range (when sent) names the current
// representation: the same strong ETag, or exactly its Last-Modified date while that date is
// a strong validator. Anything else gets the whole file, so a client resuming a download
// never splices parts of two versions.
bool if_range_holds(std::string_view value, const FileMeta& meta, const struct ::stat& st) {
  if (value.empty()) return true;
  if (value.front() == '"') return value == meta.etag;  // strong comparison: weak never matches
  if (value.substr(0, 2) == "W/") return false;
  // A date is only strong once its second is over: a file written twice within one second
  // shows the same date for both versions (RFC 9110 8.8.2.2).
  return value == meta.last_modified &&
         st.st_mtim.tv_sec < static_cast<std::int64_t>(std::time(nullptr));
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
    // RFC 9110 13.1.3: a date later than the server's clock is invalid, so ignored; else a
    // client whose clock runs ahead would be told its stale copy is current.
    if (since <= static_cast<std::int64_t>(std::time(nullptr))) {
      not_modified = st.st_mtim.tv_sec <= since;
    }
  }
  if (not_modified) {
    close_fd();
    Response response(304);
    add_file_headers(response, meta);
    return response;
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t first = 0, last = 0;
  const int range = request.method == "GET" && if_range_holds(request.header("If-Range"), meta, st)
                        ? parse_range(request.header("Range"), size, first, last)
                        : 0;
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

struct CachedFile {
  FileMeta meta;
  struct ::stat st {};
  std::shared_ptr<const SharedParts> parts;  // header lines and content
  std::chrono::steady_clock::time_point checked;
  bool watched = false;  // inotify reports its changes; else trusted for revalidate_after
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
  // The loop's time of this iteration costs no clock read, and changes once per iteration:
  // the cache reads inotify's queue once per distinct value.
  if (EventLoop* loop = EventLoop::current()) return loop->now();
  return std::chrono::steady_clock::now();
}
constexpr auto revalidate_after = std::chrono::seconds(1);
constexpr std::size_t max_cached_files = 4096;

// One thread's small files of one root, with no lock. An entry is dropped as soon as inotify
// reports a change to the file, or a rename or deletion of a name on its path. The queue is
// read at most once per loop iteration, and only while something is cached: one read(2) per
// iteration, none per hit. Where inotify cannot watch, an entry is trusted for a second, as
// nginx's open_file_cache does.
class ThreadCache {
 public:
  using Clock = std::chrono::steady_clock;

  ThreadCache() = default;
  ThreadCache(const ThreadCache&) = delete;
  ThreadCache& operator=(const ThreadCache&) = delete;
  ~ThreadCache() { close_inotify(); }

  const CachedFile* find(const std::string& relative, Clock::time_point now) {
    if (files_.empty()) return nullptr;
    // Watched by this thread's running loop, the queue is drained by the loop itself, before
    // the requests of the same iteration (no syscall here); otherwise once per iteration.
    if (inotify_ >= 0 && !drained_by_loop()) {
      if (now != drained_at_) {
        drained_at_ = now;
        drain();
      }
      watch_with_loop();
    }
    auto hit = files_.find(relative);
    if (hit == files_.end()) return nullptr;
    if (!hit->second.watched && now - hit->second.checked >= revalidate_after) return nullptr;
    return &hit->second;
  }

  // Before watch(): a full cache starts afresh, watches included (they grow with the files
  // seen), so an entry is never told it is watched by a watch dropped before it was stored.
  void make_room() {
    if (files_.size() < max_cached_files) return;
    files_.clear();
    close_inotify();
  }

  // Watches what `relative`, open as `fd`, depends on; false when inotify cannot.
  bool watch(int root_fd, std::string_view relative, int fd) {
    if (inotify_ < 0) {
      if (inotify_failed_) return false;
      inotify_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
      if (inotify_ < 0) {
        // Out of fds or of instances may pass; a kernel without inotify will not.
        inotify_failed_ = errno != EMFILE && errno != ENFILE && errno != ENOMEM;
        return false;
      }
    }
    // Each folder on the path, for renames and deletions of the next name: reached through
    // the root's fd, so it is the served folder even if it moved since start-up.
    constexpr std::uint32_t folder_events =
        IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
    std::string path = "/proc/self/fd/" + std::to_string(root_fd);
    const std::size_t base = path.size();
    for (std::size_t end = 0;;) {
      const std::string_view folder = relative.substr(0, end);
      path.resize(base);
      if (!folder.empty()) (path += '/') += folder;
      const int wd = ::inotify_add_watch(inotify_, path.c_str(), folder_events);
      if (wd < 0) return false;
      remember(wd, true, folder);
      end = relative.find('/', folder.empty() ? 0 : end + 1);
      if (end == std::string_view::npos) break;
    }
    // The file itself, whichever name or symlink led to it: writes, truncation, touch and
    // chmod, and its last link going away.
    constexpr std::uint32_t file_events =
        IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF;
    const int wd =
        ::inotify_add_watch(inotify_, ("/proc/self/fd/" + std::to_string(fd)).c_str(), file_events);
    if (wd < 0) return false;
    remember(wd, false, relative);
    return true;
  }

  const CachedFile& insert(const std::string& relative, CachedFile entry) {
    CachedFile& slot = files_[relative];
    slot = std::move(entry);
    return slot;
  }

 private:
  struct Watch {
    bool folder = false;
    std::vector<std::string> names;  // a folder: the paths reaching it; a file: its keys
  };

  bool drained_by_loop() {
    if (loop_ == nullptr) return false;
    if (loop_alive_.expired()) {  // that loop is gone (another may have its address now)
      loop_ = nullptr;
      return false;
    }
    return loop_ == EventLoop::current();
  }

  // Lets the running loop drain the queue when it has events, before it dispatches
  // anything else of that iteration (EventLoop::wait_io_first), so a hit costs no syscall.
  void watch_with_loop() {
    EventLoop* loop = EventLoop::current();
    if (loop == nullptr || loop_ != nullptr || inotify_ < 0) return;
    waiter_.cache = this;
    waiter_.fd = inotify_;
    waiter_.direction = readable;
    waiter_.handle = {};
    waiter_.ops = &inotify_ops;
    if (loop->wait_io_first(waiter_)) return;  // stays with the once-per-iteration drain
    loop_ = loop;
    loop_alive_ = loop->alive_token();
  }

  void close_inotify() {
    // The loop must let go of the fd before it is closed (its number may be reused at once);
    // a loop already gone holds nothing.
    if (loop_ != nullptr && !loop_alive_.expired()) loop_->forget_fd(inotify_, errc::socket_closed);
    loop_ = nullptr;
    if (inotify_ >= 0) ::close(inotify_);
    inotify_ = -1;
    watches_.clear();
  }

  struct InotifyWaiter : wire::detail::IoWaiter {
    ThreadCache* cache = nullptr;
  };
  static const wire::detail::IoOps inotify_ops;

  void remember(int wd, bool folder, std::string_view name) {
    Watch& watch = watches_[wd];
    watch.folder = folder;
    if (std::find(watch.names.begin(), watch.names.end(), name) == watch.names.end()) {
      watch.names.emplace_back(name);
    }
  }

  void drain() {
    alignas(struct ::inotify_event) char buffer[4096];
    for (;;) {
      const ::ssize_t got = ::read(inotify_, buffer, sizeof buffer);
      if (got <= 0) return;  // EAGAIN: all read
      for (::ssize_t at = 0; at < got;) {
        const auto* event = reinterpret_cast<const struct ::inotify_event*>(buffer + at);
        at += static_cast<::ssize_t>(sizeof(struct ::inotify_event) + event->len);
        handle(*event);
      }
    }
  }

  void handle(const struct ::inotify_event& event) {
    if (event.mask & IN_Q_OVERFLOW) {  // events were lost: nothing cached can be trusted
      files_.clear();
      return;
    }
    auto found = watches_.find(event.wd);
    if (found == watches_.end()) return;
    Watch& watch = found->second;
    if (!watch.folder) {
      for (const std::string& key : watch.names) files_.erase(key);
      watch.names.clear();
    } else {
      // With a name: that entry of the folder was renamed, replaced or deleted. Without:
      // the folder itself moved or went away.
      const std::string_view name = event.len > 0 ? std::string_view(event.name) : "";
      for (const std::string& folder : watch.names) {
        if (name.empty()) {
          drop_under(folder);
        } else {
          drop_under(folder.empty() ? std::string(name) : folder + "/" + std::string(name));
        }
      }
    }
    if (event.mask & IN_IGNORED) watches_.erase(found);
  }

  // Drops `prefix` and everything beneath it ("" is everything).
  void drop_under(const std::string& prefix) {
    if (prefix.empty()) {
      files_.clear();
      return;
    }
    std::erase_if(files_, [&](const auto& item) {
      const std::string& key = item.first;
      return key.compare(0, prefix.size(), prefix) == 0 &&
             (key.size() == prefix.size() || key[prefix.size()] == '/');
    });
  }

  std::unordered_map<std::string, CachedFile> files_;
  int inotify_ = -1;
  bool inotify_failed_ = false;
  InotifyWaiter waiter_;
  EventLoop* loop_ = nullptr;  // the loop that drains inotify_ for us, while loop_alive_
  std::weak_ptr<void> loop_alive_;
  Clock::time_point drained_at_{};
  std::unordered_map<int, Watch> watches_;
};

const wire::detail::IoOps ThreadCache::inotify_ops{
    // Readable: drain and keep waiting (never "finished").
    [](wire::detail::IoWaiter* w) noexcept {
      static_cast<InotifyWaiter*>(w)->cache->drain();
      return false;
    },
    // The fd was withdrawn: back to draining once per iteration.
    [](wire::detail::IoWaiter* w, std::error_code) noexcept {
      static_cast<InotifyWaiter*>(w)->cache->loop_ = nullptr;
    },
};

Root::~Root() {
  ::close(fd_);
}

ThreadCache& Root::thread_cache() {
  // The usual case, one root served by this thread: no lock.
  thread_local std::uint64_t last_root = 0;
  thread_local ThreadCache* last_cache = nullptr;
  if (last_root == id_) return *last_cache;
  std::lock_guard lock(caches_mutex_);
  std::unique_ptr<ThreadCache>& cache = caches_[std::this_thread::get_id()];
  if (cache == nullptr) cache = std::make_unique<ThreadCache>();
  last_root = id_;
  last_cache = cache.get();
  return *cache;
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
    // "/README/" names a folder: a file there is 404, as open(2) says ENOTDIR for
    // "README/" and python3 -m http.server answers. So is "/README/.".
    bool names_folder = request.path.back() == '/';
    if (is_plain_path(request.path)) {
      // Nothing to decode and no `.`, `..`, dot or empty segment: the path is the name.
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
        names_folder = segment.empty() || segment == ".";
        if (segment == "..") co_return not_found();
        if (!segment.empty() && segment != ".") {
          // `.git/config`, `.env`: secrets far more often than content, so opt-in.
          if (segment.front() == '.' && !options.dotfiles) co_return not_found();
          if (!relative.empty()) relative += '/';
          relative += segment;
        }
        at = next + 1;
      }
    }
    if (!options.hidden.empty() && is_hidden(relative, options.hidden)) co_return not_found();
    ThreadCache& cache = root->thread_cache();
    const auto now = loop_time();
    // The cache holds files only: a name asked for as a folder goes to the disk.
    if (const CachedFile* hit = names_folder ? nullptr : cache.find(relative, now)) {
      co_return serve_file(request, hit->meta, hit->st, -1, hit->parts);
    }
    int fd = root->open(relative);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) {
        Response busy = Response::text(503, "503 Service Unavailable\n");
        busy.header("Retry-After", "1");
        co_return busy;
      }
      co_return not_found();  // missing, unreadable, a socket, or resolving outside the root
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
        // Rebuilt from the cleaned path rather than echoed: `//evil.com` must not become
        // `Location: //evil.com/`, which a browser takes for another host (CVE-2021-28861).
        std::string location = "/";
        for (std::size_t at = 0; at < relative.size();) {
          auto next = relative.find('/', at);
          if (next == std::string::npos) next = relative.size();
          location += percent_encode(std::string_view(relative).substr(at, next - at));
          location += '/';
          at = next + 1;
        }
        if (!request.query.empty()) (location += '?') += request.query;
        Response moved = Response::text(301, "301 Moved Permanently\n");
        moved.header("Location", std::move(location));
        co_return moved;
      }
      // index.html first, then index.htm, as python3 -m http.server looks for them.
      bool indexed = false;
      for (const char* name : {"index.html", "index.htm"}) {
        file = relative.empty() ? name : relative + "/" + name;
        int index = root->open(file);
        struct ::stat index_info {};
        if (index >= 0 && ::fstat(index, &index_info) == 0 && S_ISREG(index_info.st_mode)) {
          ::close(fd);
          fd = index;
          info = index_info;
          indexed = true;
          break;
        }
        if (index >= 0) ::close(index);
      }
      if (!indexed) {
        if (!options.listings) {
          ::close(fd);
          co_return not_found();
        }
        co_return listing(fd, decoded, options.dotfiles, relative.empty(),
                          options.hidden);  // takes fd
      }
    }
    if (!S_ISREG(info.st_mode) || (names_folder && file == relative)) {
      // A FIFO (opened without waiting, thanks to O_NONBLOCK) or a device: never read.
      ::close(fd);
      co_return not_found();
    }
    if (static_cast<std::uint64_t>(info.st_size) > small_file || file != relative) {
      co_return serve_file(request, meta_for(file, info), info, fd, {});
    }
    cache.make_room();
    bool cacheable = true;
    bool watched = cache.watch(root->fd(), relative, fd);
    if (watched) {
      // The folders may have been watched only now: a name on the path re-pointed between
      // the open above and the watches would go unreported. The same file found again,
      // after them, closes that gap.
      bool through_symlink = false;
      const int again = root->open(relative, &through_symlink);
      // Behind a symlink, the folders its target passes through are not watched: edits and
      // deletions of the file still show at once, a re-pointed folder within a second.
      watched = !through_symlink;
      struct ::stat again_info {};
      cacheable = again >= 0 && ::fstat(again, &again_info) == 0 &&
                  again_info.st_dev == info.st_dev && again_info.st_ino == info.st_ino;
      if (again >= 0) ::close(again);
    }
    std::string content(static_cast<std::size_t>(info.st_size), '\0');
    const ::ssize_t got = ::pread(fd, content.data(), content.size(), 0);
    struct ::stat after {};
    // A write between the fstat and the file's watch would go unreported, and the content
    // would not match the ETag: such a read is served but not kept.
    cacheable = cacheable && ::fstat(fd, &after) == 0 && after.st_size == info.st_size &&
                after.st_mtim.tv_sec == info.st_mtim.tv_sec &&
                after.st_mtim.tv_nsec == info.st_mtim.tv_nsec;
    ::close(fd);
    if (got != static_cast<::ssize_t>(content.size())) {
      co_return Response::text(500, "500 Internal Server Error\n");
    }
    FileMeta meta = meta_for(file, info);
    auto parts = prepare(meta, std::move(content));
    if (!cacheable) co_return serve_file(request, meta, info, -1, parts);
    const CachedFile& entry =
        cache.insert(relative, CachedFile{std::move(meta), info, std::move(parts), now, watched});
    co_return serve_file(request, entry.meta, entry.st, -1, entry.parts);
  };
}

}  // namespace wire::http
