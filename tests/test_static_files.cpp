// The static-file handler's safety, through real sockets: non-regular files never block a
// worker, nothing outside the root is served even while folders are swapped for symlinks,
// the small-file cache never serves an edited or deleted file, dotfiles are opt-in, no
// redirect points to another host, and If-Range and If-Modified-Since follow RFC 9110.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>

#include "http_reader.hpp"
#include "support.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::BackgroundServer;
using test::Child;
using test::connect_to;
using test::Reader;
using test::Reply;

namespace {

// One keep-alive connection: every request goes to the same worker.
class Client {
 public:
  explicit Client(const Address& address) : socket_(connect_to(address)), reader_(socket_) {}
  Reply get(const std::string& target, const std::string& extra = "") {
    socket_.send_all("GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n");
    return reader_.next();
  }

 private:
  Socket socket_;
  Reader reader_;
};

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

void set_mtime(const std::string& path, std::time_t seconds) {
  const ::timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

// The handler as a kernel without openat2 runs it (the walk), or as this one does.
http::Handler static_handler(const std::string& root, http::StaticOptions options, bool walk) {
  if (!walk) return http::static_files(root, options);
  ::setenv("WIRE_STATIC_NO_OPENAT2", "1", 1);  // read once, by the handler's constructor
  http::Handler handler = http::static_files(root, options);
  ::unsetenv("WIRE_STATIC_NO_OPENAT2");
  return handler;
}

}  // namespace

class StaticSafetyTest : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    root = dir.file("site");
    std::filesystem::create_directories(root + "/docs");
    write_file(root + "/docs/a.txt", "0123456789");
  }
  void TearDown() override {
    // A worker stuck opening a FIFO (the bug this guards against) is let go by a writer, so
    // a failing test still ends.
    for (const std::string& fifo : fifos) {
      int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (fd >= 0) ::close(fd);
    }
    server.reset();
    test::Test::TearDown();
  }
  void start(http::StaticOptions options = {}, bool walk = false, int workers = 1) {
    ServeOptions serve_options;
    serve_options.workers = workers;
    server = std::make_unique<BackgroundServer>(
        "tcp://127.0.0.1:0", http::connection_handler(static_handler(root, options, walk)),
        serve_options);
  }
  Reply get(const std::string& target, const std::string& extra = "") {
    Socket s = connect_to(server->address());
    s.send_all("GET " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n");
    return Reader(s).next();
  }

  test::TempDir dir;
  std::string root;
  std::vector<std::string> fifos;
  std::unique_ptr<BackgroundServer> server;
};

// Before: open(2) on a FIFO waited for a writer, and the whole worker with it.
class NonRegularFiles : public StaticSafetyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(NonRegularFiles, AreRefusedAtOnceAndTheWorkerServesOn) {
  fifos = {root + "/fifo", root + "/pipe-index/index.html"};
  std::filesystem::create_directories(root + "/pipe-index");
  for (const auto& fifo : fifos) ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0) << fifo;
  // A unix socket file: open(2) says ENXIO.
  int unix_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(unix_fd, 0);
  ::sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string socket_path = root + "/socket";
  ASSERT_LT(socket_path.size(), sizeof address.sun_path);
  std::strcpy(address.sun_path, socket_path.c_str());
  ASSERT_EQ(::bind(unix_fd, reinterpret_cast<::sockaddr*>(&address), sizeof address), 0);
  ::close(unix_fd);  // the file stays
  // A character device (like /dev/null) when this process may make one; a symlink to
  // /dev/zero is refused by resolution anyway (it leaves the root).
  const bool have_device = ::mknod((root + "/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0;
  std::filesystem::create_symlink("/dev/zero", root + "/zero");
  std::filesystem::create_symlink("fifo", root + "/fifo-link");

  start({}, GetParam());
  Client client(server->address());  // one connection, so one worker throughout
  std::vector<std::string> refused = {"/fifo", "/fifo-link", "/socket", "/zero"};
  if (have_device) refused.push_back("/null");
  for (const auto& target : refused) {
    SCOPED_TRACE(target);
    Reply reply = client.get(target);
    EXPECT_EQ(reply.status, 404);
    EXPECT_EQ(client.get("/docs/a.txt").body, "0123456789") << "the worker answers on";
  }
  Reply listing = client.get("/pipe-index/");
  EXPECT_EQ(listing.status, 200) << "an index.html that is a FIFO is not an index";
  EXPECT_NE(listing.body.find("index.html"), std::string::npos) << listing.body;
  EXPECT_EQ(get("/docs/a.txt").body, "0123456789") << "and so do new connections";
  if (!have_device) std::printf("(no character device: mknod is not permitted here)\n");
}

INSTANTIATE_TEST_SUITE_P(OpenAt2AndWalk, NonRegularFiles, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Walk" : "OpenAt2"; });

// Before: after openat2 refused a symlink, realpath(3) checked one state of the path and
// open(2) used another, so a folder swapped for a symlink at the right moment served a file
// outside the root.
class SwappedFolders : public StaticSafetyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SwappedFolders, NeverServeTheOutside) {
  const std::string outside = dir.file("outside");
  std::filesystem::create_directories(outside);
  std::filesystem::create_directories(root + "/swap");
  const std::string big_inside(20000, 'i'), small_inside = "inside";
  write_file(root + "/swap/big.txt", big_inside);  // past the cache: opened every time
  write_file(root + "/swap/small.txt", small_inside);
  write_file(outside + "/big.txt", "SECRET" + std::string(19994, 's'));
  write_file(outside + "/small.txt", "SECRET");
  std::filesystem::create_symlink(outside, root + "/parked-absolute");
  std::filesystem::create_symlink("../outside", root + "/parked-relative");

  start({}, GetParam());
  std::atomic<bool> stop{false};
  std::atomic<int> swaps{0};
  std::thread swapper([&] {
    const std::string swap = root + "/swap";
    for (int i = 0; !stop.load(); ++i) {
      // Exchange twice with one link, then twice with the other: `swap` is the folder,
      // an absolute symlink, the folder, a relative symlink, ...
      const std::string parked = root + (i % 4 < 2 ? "/parked-absolute" : "/parked-relative");
      if (::renameat2(AT_FDCWD, swap.c_str(), AT_FDCWD, parked.c_str(), RENAME_EXCHANGE) == 0) {
        ++swaps;
      }
    }
  });
  int inside = 0, refused = 0, leaked = 0, other = 0;
  const auto deadline = std::chrono::steady_clock::now() + 2s;  // bounds the run; not timed
  try {
    Socket s = connect_to(server->address());
    Reader reader(s);
    // Pipelined, mostly the large file, which is opened for every request.
    const std::string batch =
        "GET /swap/big.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /swap/big.txt HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /swap/big.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /swap/small.txt HTTP/1.1\r\nHost: "
        "x\r\n\r\n";
    while (std::chrono::steady_clock::now() < deadline) {
      s.send_all(batch);
      for (int i = 0; i < 4; ++i) {
        const bool big = i < 3;
        Reply reply = reader.next();
        if (reply.body.find("SECRET") != std::string::npos) {
          ++leaked;
        } else if (reply.status == 200 && reply.body == (big ? big_inside : small_inside)) {
          ++inside;
        } else if (reply.status == 404) {
          ++refused;
        } else {
          ++other;
        }
      }
    }
  } catch (...) {
    stop = true;
    swapper.join();
    throw;
  }
  stop = true;
  swapper.join();
  EXPECT_EQ(leaked, 0) << "a file outside the root was served";
  EXPECT_EQ(other, 0);
  EXPECT_GT(inside, 0) << "the test never reached the folder";
  EXPECT_GT(swaps.load(), 0);
  std::printf("inside %d, refused %d, swaps %d\n", inside, refused, swaps.load());
}

INSTANTIATE_TEST_SUITE_P(OpenAt2AndWalk, SwappedFolders, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Walk" : "OpenAt2"; });

// The walk (kernels without openat2) and openat2 agree on every kind of path and symlink.
class Resolution : public StaticSafetyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(Resolution, SymlinksAreFollowedOnlyBeneathTheRoot) {
  write_file(dir.file("secret.txt"), "outside the root");
  namespace fs = std::filesystem;
  fs::create_symlink(dir.file("secret.txt"), root + "/absolute-escape.txt");
  fs::create_symlink("../secret.txt", root + "/relative-escape.txt");
  fs::create_symlink("docs/../../secret.txt", root + "/dotdot-escape.txt");
  fs::create_symlink(dir.file(""), root + "/parent-folder");
  fs::create_symlink(root + "/docs/a.txt", root + "/absolute-inside.txt");  // back inside
  fs::create_symlink("docs/a.txt", root + "/relative-inside.txt");
  fs::create_symlink("docs", root + "/docs-link");
  fs::create_symlink("..", root + "/docs/up");                     // up, but still inside
  fs::create_symlink("relative-inside.txt", root + "/chain.txt");  // a link to a link
  fs::create_symlink("loop-b", root + "/loop-a");
  fs::create_symlink("loop-a", root + "/loop-b");
  fs::create_symlink("/proc/self/root/etc/hostname", root + "/magic");

  start({}, GetParam());
  for (const char* target : {"/absolute-escape.txt", "/relative-escape.txt", "/dotdot-escape.txt",
                             "/parent-folder/secret.txt", "/parent-folder/", "/loop-a", "/magic",
                             "/docs/up/..", "/nonexistent", "/docs/a.txt/x"}) {
    SCOPED_TRACE(target);
    Reply reply = get(target);
    EXPECT_EQ(reply.status, 404);
    EXPECT_EQ(reply.body.find("outside the root"), std::string::npos);
  }
  for (const char* target : {"/absolute-inside.txt", "/relative-inside.txt", "/docs-link/a.txt",
                             "/docs/up/docs/a.txt", "/chain.txt", "/docs/up/docs/up/chain.txt"}) {
    SCOPED_TRACE(target);
    Reply reply = get(target);
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body, "0123456789");
  }
  EXPECT_EQ(get("/docs/up/").status, 200) << "a symlink to a folder inside lists it";
}

INSTANTIATE_TEST_SUITE_P(OpenAt2AndWalk, Resolution, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Walk" : "OpenAt2"; });

// Before: a cached small file was trusted for a second after any change.
TEST_F(StaticSafetyTest, EditedDeletedOrReplacedFilesAreNeverServedStale) {
  const std::string path = root + "/c.txt";
  write_file(path, "AAAAA");
  set_mtime(path, 1000000000);
  std::filesystem::create_directories(root + "/d");
  write_file(root + "/d/x.txt", "in d");
  std::filesystem::create_symlink("docs/a.txt", root + "/link.txt");
  start();
  Client client(server->address());  // keep-alive: the same worker and its cache
  EXPECT_EQ(client.get("/c.txt").body, "AAAAA");
  EXPECT_EQ(client.get("/c.txt").body, "AAAAA");  // from the cache now
  // Same size and mtime: nothing stat(2) shows has changed.
  write_file(path, "BBBBB");
  set_mtime(path, 1000000000);
  EXPECT_EQ(client.get("/c.txt").body, "BBBBB");
  EXPECT_EQ(get("/c.txt").body, "BBBBB") << "a new connection too";
  // Rewritten in place, not closed yet: every write shows.
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "CCCCC" << std::flush;
    EXPECT_EQ(client.get("/c.txt").body, "CCCCC");
  }
  // Another file renamed over it.
  write_file(root + "/c.tmp", "renamed over");
  std::filesystem::rename(root + "/c.tmp", path);
  EXPECT_EQ(client.get("/c.txt").body, "renamed over");
  EXPECT_EQ(client.get("/c.txt").body, "renamed over");
  std::filesystem::remove(path);
  EXPECT_EQ(client.get("/c.txt").status, 404) << "deleted: gone at once";
  write_file(path, "back");
  EXPECT_EQ(client.get("/c.txt").body, "back");

  // A folder on the path swapped for another.
  EXPECT_EQ(client.get("/d/x.txt").body, "in d");
  std::filesystem::rename(root + "/d", root + "/d-old");
  std::filesystem::create_directories(root + "/d");
  write_file(root + "/d/x.txt", "new d");
  EXPECT_EQ(client.get("/d/x.txt").body, "new d");
  std::filesystem::remove_all(root + "/d");
  EXPECT_EQ(client.get("/d/x.txt").status, 404);

  // Through a symlink: the file it leads to is watched, whatever its name.
  EXPECT_EQ(client.get("/link.txt").body, "0123456789");
  write_file(root + "/docs/a.txt", "9876543210");
  EXPECT_EQ(client.get("/link.txt").body, "9876543210");
  // And its metadata: an ETag that no longer holds is not answered with 304.
  const std::string etag = client.get("/link.txt").headers["etag"];
  set_mtime(root + "/docs/a.txt", 1000000000);
  EXPECT_EQ(client.get("/link.txt", "If-None-Match: " + etag + "\r\n").status, 200);
}

TEST_F(StaticSafetyTest, EveryWorkersCacheSeesTheChange) {
  write_file(root + "/w.txt", "version 1");
  start({}, false, 4);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(get("/w.txt").body, "version 1");  // fill the caches
  write_file(root + "/w.txt", "version 2");
  for (int i = 0; i < 16; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(get("/w.txt").body, "version 2");
  }
}

// Behind a symlink, a folder of the target's path is not watched: the cache trusts such an
// entry for a second only, as before inotify, while edits of the file still show at once.
class SymlinkedCacheEntries : public StaticSafetyTest,
                              public ::testing::WithParamInterface<bool> {};

TEST_P(SymlinkedCacheEntries, FallBackToRevalidationForWhatTheyPassThrough) {
  std::filesystem::create_directories(root + "/target");
  write_file(root + "/target/f.txt", "first");
  std::filesystem::create_symlink("target/f.txt", root + "/link.txt");
  start({}, GetParam());
  Client client(server->address());
  EXPECT_EQ(client.get("/link.txt").body, "first");
  write_file(root + "/target/f.txt", "edited");
  EXPECT_EQ(client.get("/link.txt").body, "edited") << "the file itself is watched";
  std::filesystem::rename(root + "/target", root + "/target-old");
  std::filesystem::create_directories(root + "/target");
  write_file(root + "/target/f.txt", "replaced");
  std::this_thread::sleep_for(1100ms);  // the fallback's one second
  EXPECT_EQ(client.get("/link.txt").body, "replaced");
}

INSTANTIATE_TEST_SUITE_P(OpenAt2AndWalk, SymlinkedCacheEntries, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Walk" : "OpenAt2"; });

class Dotfiles : public StaticSafetyTest {
 protected:
  void SetUp() override {
    StaticSafetyTest::SetUp();
    std::filesystem::create_directories(root + "/.git");
    std::filesystem::create_directories(root + "/sub");
    write_file(root + "/.git/config", "[core] secret");
    write_file(root + "/.env", "TOKEN=secret");
    write_file(root + "/sub/.env", "TOKEN=secret");
    write_file(root + "/sub/visible.txt", "visible");
  }
  static constexpr const char* hidden[] = {
      "/.git/",  "/.git",       "/.git/config",   "/.env",       "/sub/.env",    "/%2egit/config",
      "/%2Eenv", "/sub/%2eenv", "/./.git/config", "/sub/./.env", "/docs/../.env"};
};

TEST_F(Dotfiles, AreNeitherServedNorListedByDefault) {
  start();
  for (const char* target : hidden) {
    SCOPED_TRACE(target);
    Reply reply = get(target);
    EXPECT_EQ(reply.status, 404);
    EXPECT_EQ(reply.body.find("secret"), std::string::npos);
  }
  Reply top = get("/");
  EXPECT_EQ(top.status, 200);
  EXPECT_EQ(top.body.find(".git"), std::string::npos) << top.body;
  EXPECT_EQ(top.body.find(".env"), std::string::npos) << top.body;
  EXPECT_NE(top.body.find("sub/"), std::string::npos) << top.body;
  Reply sub = get("/sub/");
  EXPECT_EQ(sub.body.find(".env"), std::string::npos) << sub.body;
  EXPECT_NE(sub.body.find("visible.txt"), std::string::npos) << sub.body;
  EXPECT_EQ(get("/sub/./visible.txt").body, "visible") << "a `.` segment is no dotfile";
}

TEST_F(Dotfiles, AreServedAndListedWhenAllowed) {
  http::StaticOptions options;
  options.dotfiles = true;
  start(options);
  EXPECT_EQ(get("/.git/config").body, "[core] secret");
  EXPECT_EQ(get("/%2egit/config").body, "[core] secret");
  EXPECT_EQ(get("/.env").body, "TOKEN=secret");
  EXPECT_EQ(get("/sub/.env").body, "TOKEN=secret");
  EXPECT_EQ(get("/.git").status, 301);
  Reply git = get("/.git/");
  EXPECT_EQ(git.status, 200);
  EXPECT_NE(git.body.find("config"), std::string::npos) << git.body;
  Reply top = get("/");
  EXPECT_NE(top.body.find("href=\".git/\""), std::string::npos) << top.body;
  EXPECT_NE(top.body.find("href=\".env\""), std::string::npos) << top.body;
  EXPECT_NE(get("/sub/").body.find(".env"), std::string::npos);
  EXPECT_EQ(get("/docs/../.env").status, 404) << "`..` stays refused";
}

#ifdef WIRE_CLI
// `wire serve [--dotfiles]`: the port from its first line, then one request.
Reply serve_and_get(const std::vector<std::string>& args, const std::string& target) {
  Child server(args, Child::Options::merged());
  const std::string first = server.read_line();
  const auto at = first.find("http://");
  if (at == std::string::npos) throw std::runtime_error("unexpected first line: " + first);
  std::string host_port = first.substr(at + 7);
  host_port = host_port.substr(0, host_port.find('/'));
  Socket s = create_connection("tcp://" + host_port, 5s);
  s.send_all("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
  Reply reply = Reader(s).next();
  server.signal(SIGTERM);
  (void)server.read_all();
  EXPECT_EQ(server.wait(), 0);
  return reply;
}

TEST_F(Dotfiles, WireServeTurnsThemOnWithTheFlag) {
  EXPECT_EQ(serve_and_get({WIRE_CLI, "serve", root, "--bind", "127.0.0.1:0", "-q"}, "/.env").status,
            404);
  Reply allowed = serve_and_get(
      {WIRE_CLI, "serve", root, "--bind", "127.0.0.1:0", "-q", "--dotfiles"}, "/.env");
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(allowed.body, "TOKEN=secret");
}
#endif

// A folder's index: index.html, else index.htm (python3 -m http.server's order), else the
// listing. Before: index.htm was listed, not served.
class Indexes : public StaticSafetyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(Indexes, IndexHtmlWinsThenIndexHtmThenTheListing) {
  namespace fs = std::filesystem;
  for (const char* folder : {"/both", "/htm-only", "/htm-folder/index.htm", "/plain"}) {
    fs::create_directories(root + folder);
  }
  write_file(root + "/both/index.html", "<p>html</p>");
  write_file(root + "/both/index.htm", "<p>htm</p>");
  write_file(root + "/htm-only/index.htm", "<p>htm only</p>");
  write_file(root + "/plain/file.txt", "text");
  write_file(root + "/index.htm", "<p>top</p>");
  start({}, GetParam());
  Client client(server->address());
  for (int round = 0; round < 2; ++round) {  // the second time, from whatever was kept
    SCOPED_TRACE(round);
    Reply both = client.get("/both/");
    EXPECT_EQ(both.status, 200);
    EXPECT_EQ(both.body, "<p>html</p>");
    Reply htm = client.get("/htm-only/");
    EXPECT_EQ(htm.status, 200);
    EXPECT_EQ(htm.body, "<p>htm only</p>");
    EXPECT_EQ(htm.headers["content-type"], "text/html; charset=utf-8");
    EXPECT_EQ(client.get("/").body, "<p>top</p>");
    Reply folder = client.get("/htm-folder/");
    EXPECT_EQ(folder.status, 200);
    EXPECT_NE(folder.body.find("Directory listing"), std::string::npos)
        << "an index.htm that is a folder is not an index";
    EXPECT_NE(client.get("/plain/").body.find("file.txt"), std::string::npos);
  }
  EXPECT_EQ(client.get("/htm-only").status, 301) << "the slash is still added first";
  fs::remove(root + "/both/index.html");
  EXPECT_EQ(client.get("/both/").body, "<p>htm</p>") << "index.htm once index.html is gone";
}

INSTANTIATE_TEST_SUITE_P(OpenAt2AndWalk, Indexes, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Walk" : "OpenAt2"; });

// Before: "/README/" served the file README (the trailing slash was dropped), from the cache
// too. A name asked for as a folder must be one, as open(2) and python3 -m http.server say.
class FileAsFolder : public StaticSafetyTest, public ::testing::WithParamInterface<bool> {};

TEST_P(FileAsFolder, IsNotFoundEvenOnceTheFileIsCached) {
  write_file(root + "/README", "read me");
  std::filesystem::create_directories(root + "/big");
  write_file(root + "/big/file.bin", std::string(100000, 'x'));  // beyond the cache
  start({}, GetParam());
  Client client(server->address());
  EXPECT_EQ(client.get("/README").body, "read me");  // now in this worker's cache
  for (const char* target : {"/README/", "/README/.", "/README/./", "/README//", "/%52EADME/",
                             "/docs/a.txt/", "/big/file.bin/", "/docs/../README/"}) {
    SCOPED_TRACE(target);
    Reply reply = client.get(target);
    if (std::string_view(target).find("..") != std::string_view::npos) {
      EXPECT_EQ(reply.status, 404) << "`..` is refused whatever follows";
      continue;
    }
    EXPECT_EQ(reply.status, 404);
    EXPECT_EQ(reply.body.find("read me"), std::string::npos);
  }
  EXPECT_EQ(client.get("/README").body, "read me") << "the file itself is still served";
  EXPECT_EQ(client.get("/docs/./").status, 200) << "a folder with `.` after it is one";
  EXPECT_EQ(client.get("/docs/.").status, 301);
}

INSTANTIATE_TEST_SUITE_P(OpenAt2AndWalk, FileAsFolder, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Walk" : "OpenAt2"; });

#ifdef WIRE_CLI
// The same through `wire serve`, with curl and python3's urllib as the clients.
TEST_F(StaticSafetyTest, WireServeAnswersCurlAndUrllibForIndexesAndFilesAsFolders) {
  if (!test::have_program("curl")) GTEST_SKIP() << "curl is not installed";
  std::filesystem::create_directories(root + "/site");
  write_file(root + "/site/index.htm", "<p>htm index</p>");
  write_file(root + "/README", "read me");
  Child server({WIRE_CLI, "serve", root, "--bind", "127.0.0.1:0", "-q"}, Child::Options::merged());
  const std::string first = server.read_line();
  const auto at = first.find("http://");
  ASSERT_NE(at, std::string::npos) << first;
  const std::string base = first.substr(at, first.find('\n') - at);  // "http://HOST:PORT/"
  auto run = [](std::vector<std::string> args) {
    Child child(std::move(args), Child::Options::merged());
    std::string out = child.read_all();
    EXPECT_EQ(child.wait(), 0) << out;
    return out;
  };
  EXPECT_EQ(run({"curl", "-sS", "--max-time", "5", base + "site/"}), "<p>htm index</p>");
  EXPECT_EQ(run({"curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                 base + "README/"}),
            "404");
  EXPECT_EQ(run({"curl", "-sS", "--max-time", "5", base + "README"}), "read me");
  const std::string python =
      "import sys, urllib.request, urllib.error\n"
      "base = sys.argv[1]\n"
      "print(urllib.request.urlopen(base + 'site/', timeout=5).read().decode())\n"
      "try:\n"
      "    urllib.request.urlopen(base + 'README/', timeout=5)\n"
      "except urllib.error.HTTPError as e:\n"
      "    print(e.code)\n";
  EXPECT_EQ(run({"/usr/bin/python3", "-c", python, base}), "<p>htm index</p>\n404\n");
  server.signal(SIGTERM);
  (void)server.read_all();
  EXPECT_EQ(server.wait(), 0);
}
#endif

// CVE-2021-28861 (python's http.server): `//evil.com` redirected to `//evil.com/`, which a
// browser reads as another host.
TEST_F(StaticSafetyTest, RedirectsNeverPointToAnotherHost) {
  std::filesystem::create_directories(root + "/evil.com");
  std::filesystem::create_directories(root + "/\\evil.com");
  start();
  struct Case {
    const char* target;
    const char* location;
  };
  for (const Case& c : {Case{"//evil.com", "/evil.com/"}, Case{"///evil.com", "/evil.com/"},
                        Case{"/\\evil.com", "/%5Cevil.com/"},
                        Case{"//evil.com?q=1", "/evil.com/?q=1"}, Case{"/./evil.com", "/evil.com/"},
                        Case{"/.", "/"}, Case{"//.", "/"}, Case{"/docs", "/docs/"}}) {
    SCOPED_TRACE(c.target);
    Reply reply = get(c.target);
    EXPECT_EQ(reply.status, 301);
    const std::string& location = reply.headers["location"];
    EXPECT_EQ(location, c.location);
    EXPECT_NE(location.substr(0, 2), "//");
    EXPECT_NE(location.substr(0, 2), "/\\");
  }
  EXPECT_EQ(get("//evil.com/").status, 200) << "with its slash, the folder is listed";
}

TEST_F(StaticSafetyTest, IfRangeGetsThePartOnlyForTheCurrentVersion) {
  const std::string path = root + "/r.txt";
  write_file(path, "old content");
  set_mtime(path, 1000000000);  // 2001
  start();
  Reply old_version = get("/r.txt");
  const std::string old_etag = old_version.headers["etag"];
  const std::string old_date = old_version.headers["last-modified"];
  ASSERT_FALSE(old_etag.empty());
  // Changed between requests: same size, so only the validators tell.
  write_file(path, "new content");
  set_mtime(path, 1000000100);
  Reply current = get("/r.txt");
  ASSERT_EQ(current.body, "new content");
  const std::string etag = current.headers["etag"];
  const std::string date = current.headers["last-modified"];
  ASSERT_NE(etag, old_etag);
  ASSERT_NE(date, old_date);

  const std::string range = "Range: bytes=0-2\r\n";
  Reply part = get("/r.txt", range + "If-Range: " + etag + "\r\n");
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, "new");
  Reply by_date = get("/r.txt", range + "If-Range: " + date + "\r\n");
  EXPECT_EQ(by_date.status, 206) << "the exact Last-Modified, long past: a strong validator";
  EXPECT_EQ(by_date.body, "new");
  EXPECT_EQ(get("/r.txt", range).status, 206) << "no If-Range: the range as before";
  for (const std::string& stale : {old_etag, "W/" + etag, old_date, http::http_date(1000000101),
                                   std::string("\"other\""), std::string("not a validator")}) {
    SCOPED_TRACE(stale);
    Reply whole = get("/r.txt", range + "If-Range: " + stale + "\r\n");
    EXPECT_EQ(whole.status, 200);
    EXPECT_EQ(whole.body, "new content");
    EXPECT_EQ(whole.headers.count("content-range"), 0u);
  }
  Reply unsatisfiable = get("/r.txt", "Range: bytes=50-60\r\nIf-Range: " + old_etag + "\r\n");
  EXPECT_EQ(unsatisfiable.status, 200) << "a false If-Range ignores the Range, even a bad one";

  // A large file (sendfile, not the cache) follows the same rules.
  const std::string big(20000, 'b');
  write_file(root + "/big.bin", big);
  const std::string big_etag = get("/big.bin").headers["etag"];
  write_file(root + "/big.bin", std::string(20000, 'c'));
  set_mtime(root + "/big.bin", 1000000200);
  Reply stale_big = get("/big.bin", range + "If-Range: " + big_etag + "\r\n");
  EXPECT_EQ(stale_big.status, 200);
  EXPECT_EQ(stale_big.body, std::string(20000, 'c'));
  const std::string new_big_etag = get("/big.bin").headers["etag"];
  EXPECT_EQ(get("/big.bin", range + "If-Range: " + new_big_etag + "\r\n").body, "ccc");
}

TEST_F(StaticSafetyTest, IfModifiedSinceInTheFutureIsIgnored) {
  write_file(root + "/big.bin", std::string(20000, 'b'));
  start();
  const std::string future = http::http_date(static_cast<std::int64_t>(std::time(nullptr)) + 86400);
  for (const char* target : {"/docs/a.txt", "/big.bin"}) {  // cached, and sendfile
    SCOPED_TRACE(target);
    Reply reply = get(target, "If-Modified-Since: " + future + "\r\n");
    EXPECT_EQ(reply.status, 200);
    EXPECT_FALSE(reply.body.empty());
    const std::string modified = reply.headers["last-modified"];
    EXPECT_EQ(get(target, "If-Modified-Since: " + modified + "\r\n").status, 304)
        << "a date in the past still gets its 304";
  }
}
