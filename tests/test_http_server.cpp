// The HTTP server over loopback: raw sockets for exact bytes, then curl and Python's
// http.client as real clients.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>

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

http::Router demo_router() {
  http::Router router;
  router.add("GET", "/hello", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "hello\n");
  });
  router.add("POST", "/echo", [](http::Request& request) -> Task<http::Response> {
    co_return http::Response::text(200, request.body);
  });
  router.add("GET", "/stream", [](http::Request&) -> Task<http::Response> {
    http::Response r(200);
    auto count = std::make_shared<int>(0);
    r.stream = [count]() -> Task<std::string> {
      if (*count == 3) co_return std::string();
      co_return "part" + std::to_string((*count)++) + ";";
    };
    co_return r;
  });
  return router;
}

// What a server reports through on_error, collected from its thread.
class ErrorLog {
 public:
  http::Options options() const {
    http::Options options;
    options.on_error = [lines = lines_, mutex = mutex_](const AsyncSocket&,
                                                        std::string_view message) {
      std::lock_guard lock(*mutex);
      lines->emplace_back(message);
    };
    return options;
  }
  std::vector<std::string> seen() const {
    std::lock_guard lock(*mutex_);
    return *lines_;
  }

 private:
  std::shared_ptr<std::vector<std::string>> lines_ = std::make_shared<std::vector<std::string>>();
  std::shared_ptr<std::mutex> mutex_ = std::make_shared<std::mutex>();
};

}  // namespace

class HttpServerTest : public test::Test {};

TEST_F(HttpServerTest, KeepAliveAndPipelinedRequestsAnsweredInOrder) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all(
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond"
      "GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  Reply first = reader.next();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.body, "hello\n");
  EXPECT_FALSE(first.headers["date"].empty());
  EXPECT_EQ(first.headers["server"], "wire");
  Reply second = reader.next();
  EXPECT_EQ(second.body, "second");
  EXPECT_EQ(reader.next().status, 404);
  s.send_all("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  Reply last = reader.next();
  EXPECT_EQ(last.headers["connection"], "close");
  EXPECT_TRUE(reader.closed());
}

TEST_F(HttpServerTest, Http10ClosesUnlessKeepAlive) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket a = connect_to(server.address());
  a.send_all("GET /hello HTTP/1.0\r\n\r\n");
  Reader ra(a);
  EXPECT_EQ(ra.next().status, 200);
  EXPECT_TRUE(ra.closed());
  Socket b = connect_to(server.address());
  b.send_all("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /hello HTTP/1.0\r\n\r\n");
  Reader rb(b);
  Reply kept = rb.next();
  EXPECT_EQ(kept.status, 200);
  EXPECT_EQ(kept.headers["connection"], "keep-alive") << "a 1.0 client closes unless told";
  EXPECT_EQ(rb.next().status, 200);
  EXPECT_TRUE(rb.closed());
}

TEST_F(HttpServerTest, HeadGetsHeadersWithoutBody) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all("HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  Reply head = reader.next("HEAD");
  EXPECT_EQ(head.status, 200) << "HEAD runs the GET route";
  EXPECT_EQ(head.headers["content-length"], "6") << "GET's length";
  EXPECT_EQ(head.body, "");
  Reply get = reader.next();
  EXPECT_EQ(get.body, "hello\n");
  s.send_all("DELETE /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  Reply refused = reader.next();
  EXPECT_EQ(refused.status, 405);
  EXPECT_EQ(refused.headers["allow"], "GET, HEAD");
}

TEST_F(HttpServerTest, SharedPartsAreSentAsIsByEveryResponse) {
  auto canned = std::make_shared<http::SharedParts>();
  canned->header_lines = "X-Canned: yes\r\nContent-Type: text/plain\r\n";
  canned->body = "made once\n";
  http::Router router;
  http::Handler answer_canned = [canned](http::Request&) -> Task<http::Response> {
    http::Response r(200);
    r.shared = canned;
    co_return r;
  };
  router.add("GET", "/canned", answer_canned);
  router.add("HEAD", "/canned", answer_canned);
  router.add("GET", "/not-modified", [](http::Request&) -> Task<http::Response> {
    // A body set by mistake on a 304 must not reach the wire: the client would take it
    // for the start of the next response.
    co_return http::Response::text(304, "stray bytes");
  });
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(router.handler()));
  Socket s = connect_to(server.address());
  s.send_all(
      "GET /canned HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /canned HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /not-modified HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /canned HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  Reader reader(s);
  Reply first = reader.next();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.headers["x-canned"], "yes");
  EXPECT_EQ(first.headers["content-length"], "10");
  EXPECT_EQ(first.body, "made once\n");
  Reply head = reader.next("HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["content-length"], "10");
  EXPECT_TRUE(head.body.empty());
  Reply not_modified = reader.next();
  EXPECT_EQ(not_modified.status, 304);
  EXPECT_EQ(not_modified.headers.count("content-length"), 0u);
  Reply last = reader.next();
  EXPECT_EQ(last.body, "made once\n");
  EXPECT_EQ(last.headers["connection"], "close");
  EXPECT_TRUE(reader.closed());
  EXPECT_EQ(canned->body, "made once\n") << "responses share the parts, never move them";
}

TEST_F(HttpServerTest, BadRequestsGetTheirStatusAndOnlyThatConnectionCloses) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket healthy = connect_to(server.address());
  struct Case {
    const char* bytes;
    int status;
  };
  for (const Case& c :
       {Case{"GET /hello HTTP/1.1\r\n\r\n", 400},
        Case{"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
             "Transfer-Encoding: chunked\r\n\r\n",
             400},
        Case{"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        Case{"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        Case{"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413}}) {
    SCOPED_TRACE(c.bytes);
    Socket s = connect_to(server.address());
    s.send_all(c.bytes);
    Reader reader(s);
    Reply reply = reader.next();
    EXPECT_EQ(reply.status, c.status);
    EXPECT_EQ(reply.headers["connection"], "close");
    EXPECT_FALSE(reply.body.empty()) << "a short body says why";
    EXPECT_TRUE(reader.closed());
  }
  std::string long_target = "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n";
  Socket s = connect_to(server.address());
  s.send_all(long_target);
  EXPECT_EQ(Reader(s).next().status, 414);
  healthy.send_all("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Reader(healthy).next().status, 200) << "other connections are undisturbed";
}

TEST_F(HttpServerTest, RefusedRequestsAreReportedWithTheirReason) {
  struct Refusal {
    int status;
    std::string reason;
  };
  auto refusals = std::make_shared<std::vector<Refusal>>();
  auto mutex = std::make_shared<std::mutex>();
  http::Options options;
  options.on_reject = [refusals, mutex](const AsyncSocket&, int status, std::string_view reason) {
    std::lock_guard lock(*mutex);
    refusals->push_back({status, std::string(reason)});
  };
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(demo_router().handler(), options));
  Socket s = connect_to(server.address());
  s.send_all("GET /hello HTTP/1.1\r\nHost: x\nX: y\r\n\r\n");
  EXPECT_EQ(Reader(s).next().status, 400);
  Socket fine = connect_to(server.address());
  fine.send_all("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Reader(fine).next().status, 200);
  std::lock_guard lock(*mutex);
  ASSERT_EQ(refusals->size(), 1u) << "only the refused request is reported";
  EXPECT_EQ(refusals->front().status, 400);
  EXPECT_NE(refusals->front().reason.find("bare LF"), std::string::npos)
      << refusals->front().reason;
}

TEST_F(HttpServerTest, ExpectContinueThenBody) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  Reader reader(s);
  Reply interim = reader.next();
  EXPECT_EQ(interim.status, 100);
  s.send_all("body");
  EXPECT_EQ(reader.next().body, "body");
}

TEST_F(HttpServerTest, AnHttp10ClientGetsNo100ContinueItCannotRead) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all("POST /echo HTTP/1.0\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  std::this_thread::sleep_for(100ms);  // a server that sends 100 does so by now
  s.send_all("body");
  Reply reply = Reader(s).next();
  EXPECT_EQ(reply.status, 200) << "RFC 9110 10.1.1: the expectation is ignored";
  EXPECT_EQ(reply.body, "body");
}

TEST_F(HttpServerTest, ChunkedUploadAndStreamedResponse) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4;ext=1\r\nwire\r\n3\r\n up\r\n0\r\nX-Trailer: t\r\n\r\n"
      "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  EXPECT_EQ(reader.next().body, "wire up");
  Reply streamed = reader.next();
  EXPECT_EQ(streamed.headers["transfer-encoding"], "chunked");
  EXPECT_EQ(streamed.body, "part0;part1;part2;");
}

TEST_F(HttpServerTest, HeadOfAStreamedResponseGetsGetsHeadAndNoBody) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all("HEAD /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  Reply head = reader.next("HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.count("content-length"), 0u) << "the length is not known: not 0";
  EXPECT_EQ(head.headers["transfer-encoding"], "chunked") << "what GET would have said";
  Reply next = reader.next();
  EXPECT_EQ(next.body, "hello\n") << "no chunk of the stream went out before it";
}

// HTTP/1.0 knows no chunks (RFC 9112 6.1: no Transfer-Encoding to a 1.0 client): a streamed
// body goes out as it comes, and the connection's close ends it.
TEST_F(HttpServerTest, AStreamedBodyToAnHttp10ClientEndsWithTheConnection) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  for (const char* method : {"GET", "HEAD"}) {
    SCOPED_TRACE(method);
    Socket s = connect_to(server.address());
    // A keep-alive asked for cannot be given when the close must end the body.
    const std::string asks = std::string(method) == "GET" ? "Connection: keep-alive\r\n" : "";
    s.send_all(std::string(method) + " /stream HTTP/1.0\r\n" + asks + "\r\n");
    s.set_timeout(5s);
    std::string all;
    char buffer[4096];
    while (const std::size_t n = s.recv(std::span<char>(buffer, sizeof buffer)))
      all.append(buffer, n);
    const auto end_of_head = all.find("\r\n\r\n");
    ASSERT_NE(end_of_head, std::string::npos) << all;
    const std::string head = all.substr(0, end_of_head + 2);
    EXPECT_EQ(head.find("Transfer-Encoding"), std::string::npos) << head;
    EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
    EXPECT_EQ(all.substr(end_of_head + 4),
              std::string(method) == "GET" ? "part0;part1;part2;" : "");
  }
  // HEAD has no body to end by closing: a 1.0 keep-alive stays open for the next request.
  Socket s = connect_to(server.address());
  s.send_all(
      "HEAD /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
      "GET /hello HTTP/1.0\r\n\r\n");
  Reader reader(s);
  Reply head = reader.next("HEAD");
  EXPECT_EQ(head.headers["connection"], "keep-alive");
  EXPECT_EQ(reader.next().body, "hello\n");
}

// Without chunks, only the close ends a 1.0 body: a stream that fails midway must not end
// in a clean close, which the client would take for the whole body. It ends in a reset.
TEST_F(HttpServerTest, AStreamThatFailsMidBodyResetsAnHttp10Client) {
  http::Router router;
  router.add("GET", "/breaks", [](http::Request&) -> Task<http::Response> {
    http::Response r(200);
    auto pieces = std::make_shared<int>(0);
    r.stream = [pieces]() -> Task<std::string> {
      if ((*pieces)++ == 0) co_return std::string("first;");
      throw std::runtime_error("the upstream went away");
    };
    co_return r;
  });
  ErrorLog log;
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(router.handler(), log.options()));
  Socket s = connect_to(server.address());
  s.send_all("GET /breaks HTTP/1.0\r\n\r\n");
  s.set_timeout(5s);
  std::string got;
  std::string ended;
  try {
    char buffer[4096];
    while (const std::size_t n = s.recv(std::span<char>(buffer, sizeof buffer)))
      got.append(buffer, n);
    ended = "a clean close";
  } catch (const Error& e) {
    ended = e.code() == std::errc::connection_reset ? "a reset" : e.what();
  }
  EXPECT_EQ(ended, "a reset") << got;
  EXPECT_NE(got.find("\r\n\r\nfirst;"), std::string::npos) << got;
  const std::vector<std::string> errors = log.seen();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors.front().find("the upstream went away"), std::string::npos) << errors.front();
  EXPECT_NE(errors.front().find("after 6 of ? body bytes"), std::string::npos)
      << "the pieces that went, not their framing: " << errors.front();
}

// A handler's status must be a final one: a 1xx would leave the client waiting for the
// answer after it. It is the handler's failure (a 500, reported). 205 has no content.
TEST_F(HttpServerTest, InterimAndContentlessStatusesFromAHandler) {
  http::Router router;
  for (int status : {100, 101, 103, 205}) {
    router.add("GET", "/" + std::to_string(status),
               [status](http::Request&) -> Task<http::Response> {
                 co_return http::Response::text(status, "some content");
               });
  }
  router.add("GET", "/hello", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "hello\n");
  });
  ErrorLog log;
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(router.handler(), log.options()));
  for (const char* status : {"100", "101", "103"}) {
    SCOPED_TRACE(status);
    Socket s = connect_to(server.address());
    s.send_all("GET /" + std::string(status) + " HTTP/1.1\r\nHost: x\r\n\r\n");
    Reader reader(s);
    EXPECT_EQ(reader.next().status, 500);
  }
  const std::vector<std::string> errors = log.seen();
  ASSERT_EQ(errors.size(), 3u);
  EXPECT_NE(errors.front().find("status 100 is not a final status"), std::string::npos)
      << errors.front();
  Socket s = connect_to(server.address());
  s.send_all("GET /205 HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  Reply reset = reader.next();
  EXPECT_EQ(reset.status, 205);
  EXPECT_EQ(reset.headers["content-length"], "0");
  EXPECT_EQ(reader.next().body, "hello\n");
}

// Methods are case-sensitive (RFC 9110 9.1): "head" is not HEAD. It is answered as any
// unknown method, body included, so the response after it is still read right.
TEST_F(HttpServerTest, ALowerCaseHeadIsAnotherMethodAndKeepsTheFraming) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  Socket s = connect_to(server.address());
  s.send_all("head /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  Reply odd = reader.next("head");
  EXPECT_EQ(odd.status, 405);
  EXPECT_EQ(odd.body, "405 Method Not Allowed\n");
  EXPECT_EQ(reader.next().body, "hello\n");
}

// A handler that sets a body on a status that has none (a misuse): the bytes would be read
// as the next response, so none go out, whatever kind of body it is.
TEST_F(HttpServerTest, BodilessStatusesSendNoBodyWhateverTheHandlerSet) {
  test::TempDir dir;
  const std::string file = dir.write("f", "FILE-BYTES");
  http::Router router;
  for (int status : {204, 304}) {
    const std::string at = "/" + std::to_string(status);
    router.add("GET", at + "/text", [status](http::Request&) -> Task<http::Response> {
      co_return http::Response::text(status, "TEXT-BODY");
    });
    router.add("GET", at + "/file", [status, file](http::Request&) -> Task<http::Response> {
      http::Response r(status);
      const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw std::runtime_error("open");
      r.send_file(fd, 0, 10);
      co_return r;
    });
    router.add("GET", at + "/stream", [status](http::Request&) -> Task<http::Response> {
      http::Response r(status);
      r.stream = []() -> Task<std::string> { co_return std::string("STREAM-BODY"); };
      co_return r;
    });
  }
  router.add("GET", "/hello", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "hello\n");
  });
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(router.handler()));
  for (const char* status : {"204", "304"}) {
    for (const char* kind : {"text", "file", "stream"}) {
      SCOPED_TRACE(std::string(status) + " " + kind);
      Socket s = connect_to(server.address());
      s.send_all("GET /" + std::string(status) + "/" + kind +
                 " HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
      Reader reader(s);
      Reply reply = reader.next();
      EXPECT_EQ(reply.status, std::stoi(status));
      EXPECT_EQ(reply.headers.count("transfer-encoding"), 0u);
      EXPECT_EQ(reply.headers.count("content-length"), 0u);
      Reply next = reader.next();
      EXPECT_EQ(next.status, 200);
      EXPECT_EQ(next.body, "hello\n");
    }
  }
}

TEST_F(HttpServerTest, SlowlorisIsCutOffAtTheHeaderTimeout) {
  http::Options options;
  options.header_timeout = 300ms;
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(demo_router().handler(), options));
  Socket s = connect_to(server.address());
  auto start = std::chrono::steady_clock::now();
  s.send_all("GET /hello HTTP/1.1\r\n");
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(50ms);
    if (!s.send("X-Slow: 1\r\n", std::nothrow)) break;  // trickling, never finishing
  }
  Reader reader(s);
  Reply reply = reader.next();
  EXPECT_EQ(reply.status, 408);
  EXPECT_TRUE(reader.closed());
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 3s);
}

TEST_F(HttpServerTest, IdleKeepAliveConnectionsAreClosed) {
  http::Options options;
  options.keepalive_timeout = 100ms;
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(demo_router().handler(), options));
  Socket s = connect_to(server.address());
  s.send_all("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  Reader reader(s);
  EXPECT_EQ(reader.next().status, 200);
  EXPECT_TRUE(reader.closed()) << "closed after the idle timeout";
}

class StaticFilesTest : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    root = dir.file("site");
    std::filesystem::create_directories(root + "/docs");
    std::filesystem::create_directories(root + "/empty");
    std::ofstream(root + "/index.html") << "<h1>home</h1>\n";
    std::ofstream(root + "/docs/a.txt") << "0123456789";
    std::ofstream(root + "/docs/<b>&.txt") << "escaped";
    std::ofstream(dir.file("secret.txt")) << "outside the root";
    std::filesystem::create_symlink(dir.file("secret.txt"), root + "/escape.txt");
    std::filesystem::create_symlink(root + "/docs/a.txt", root + "/inside.txt");
    std::filesystem::create_symlink("../secret.txt", root + "/relative-escape.txt");
    std::filesystem::create_symlink("docs/a.txt", root + "/relative-inside.txt");
    server = std::make_unique<BackgroundServer>("tcp://127.0.0.1:0",
                                                http::connection_handler(http::static_files(root)));
  }
  void TearDown() override {
    server.reset();
    test::Test::TearDown();
  }
  Reply get(const std::string& target, const std::string& extra = "", const char* method = "GET") {
    Socket s = connect_to(server->address());
    s.send_all(std::string(method) + " " + target + " HTTP/1.1\r\nHost: x\r\n" + extra + "\r\n");
    return Reader(s).next(method);
  }

  test::TempDir dir;
  std::string root;
  std::unique_ptr<BackgroundServer> server;
};

TEST_F(StaticFilesTest, ServesFilesIndexAndListings) {
  Reply index = get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, "<h1>home</h1>\n");
  EXPECT_EQ(index.headers["content-type"], "text/html; charset=utf-8");
  Reply file = get("/docs/a.txt");
  EXPECT_EQ(file.body, "0123456789");
  EXPECT_EQ(file.headers["content-type"], "text/plain; charset=utf-8");
  Reply listing = get("/docs/");
  EXPECT_NE(listing.body.find("&lt;b&gt;&amp;.txt"), std::string::npos) << listing.body;
  EXPECT_EQ(listing.body.find("<b>&"), std::string::npos) << "a name went out unescaped";
  EXPECT_EQ(get("/docs").status, 301);
  EXPECT_EQ(get("/docs").headers["location"], "/docs/");
  EXPECT_EQ(get("/docs/%3Cb%3E%26.txt").body, "escaped");
  Reply head = get("/docs/a.txt", "", "HEAD");
  EXPECT_EQ(head.headers["content-length"], "10");
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(get("/docs/a.txt", "", "POST").status, 405);
}

TEST_F(StaticFilesTest, NeverServesAnythingOutsideTheRoot) {
  for (const char* target :
       {"/../secret.txt", "/docs/../../secret.txt", "/%2e%2e/secret.txt",
        "/docs/%2E%2E/%2e%2e/secret.txt", "/docs%2f..%2f..%2fsecret.txt", "/docs/a.txt%00.html",
        "/escape.txt", "/relative-escape.txt", "/nonexistent"}) {
    SCOPED_TRACE(target);
    Reply reply = get(target);
    EXPECT_EQ(reply.status, 404);
    EXPECT_EQ(reply.body.find("outside the root"), std::string::npos);
  }
  EXPECT_EQ(get("/inside.txt").body, "0123456789") << "a symlink that stays inside is fine";
  EXPECT_EQ(get("/relative-inside.txt").body, "0123456789");
  EXPECT_EQ(get("/docs/%zz").status, 400);
}

TEST_F(StaticFilesTest, EveryPathSpellingOfAFileServesIt) {
  // Plain paths take a shortcut past decoding; the others must land on the same file.
  for (const char* target : {"/docs/a.txt", "/docs//a.txt", "/./docs/a.txt", "/docs/./a.txt",
                             "/docs/%61.txt", "//docs/a.txt", "/docs/x/../a.txt"}) {
    SCOPED_TRACE(target);
    Reply reply = get(target);
    if (std::string_view(target).find("..") != std::string_view::npos) {
      EXPECT_EQ(reply.status, 404) << "a .. segment is refused, even one that stays inside";
    } else {
      EXPECT_EQ(reply.status, 200);
      EXPECT_EQ(reply.body, "0123456789");
    }
  }
  std::ofstream(root + "/.hidden") << "dot file";
  EXPECT_EQ(get("/.hidden").status, 404) << "dotfiles are opt-in: StaticOptions::dotfiles";
  EXPECT_EQ(get("/docs/?q=1").status, 200) << "a query is not part of the path";
}

TEST_F(HttpServerTest, WorkersServeConcurrentClientsWithPerThreadCaches) {
  // Each worker thread has its own file cache, request pool and frame cache: many clients
  // at once, spread over the workers by SO_REUSEPORT, must all get exact answers.
  test::TempDir dir;
  std::ofstream(dir.file("small.txt")) << "small file\n";
  std::ofstream(dir.file("other.html")) << "<p>other</p>\n";
  ServeOptions options;
  options.workers = 4;
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(http::static_files(dir.file(""))), options);
  std::atomic<int> exact{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&] {
      Socket s = connect_to(server.address());
      Reader reader(s);
      for (int i = 0; i < 20; ++i) {
        s.send_all(
            "GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            "HEAD /other.html HTTP/1.1\r\nHost: x\r\n\r\n"
            "GET /other.html HTTP/1.1\r\nHost: x\r\n\r\n");
        Reply small = reader.next();
        Reply head = reader.next("HEAD");
        Reply other = reader.next();
        if (small.body == "small file\n" && head.headers["content-length"] == "13" &&
            head.body.empty() && other.body == "<p>other</p>\n" &&
            other.headers["content-type"] == "text/html; charset=utf-8") {
          ++exact;
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(exact.load(), 16 * 20);
}

TEST_F(StaticFilesTest, ContentTypeFollowsTheExtensionWhateverItsCase) {
  const std::pair<const char*, const char*> files[] = {
      {"style.css", "text/css; charset=utf-8"},
      {"app.mjs", "text/javascript; charset=utf-8"},
      {"song.MP3", "audio/mpeg"},
      {"clip.webm", "video/webm"},
      {"font.woff2", "font/woff2"},
      {"data.CSV", "text/csv; charset=utf-8"},
      {"archive.tar", "application/x-tar"},
      {"noextension", "application/octet-stream"},
      {"dir.d/file", "application/octet-stream"}};
  std::filesystem::create_directory(root + "/dir.d");
  for (const auto& [name, type] : files) {
    SCOPED_TRACE(name);
    std::ofstream(root + "/" + name) << "x";
    EXPECT_EQ(get(std::string("/") + name).headers["content-type"], type);
    EXPECT_EQ(http::content_type_for(name), type);
  }
}

TEST_F(StaticFilesTest, RangesAndConditionalRequests) {
  Reply part = get("/docs/a.txt", "Range: bytes=2-5\r\n");
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, "2345");
  EXPECT_EQ(part.headers["content-range"], "bytes 2-5/10");
  EXPECT_EQ(get("/docs/a.txt", "Range: bytes=-3\r\n").body, "789");
  EXPECT_EQ(get("/docs/a.txt", "Range: bytes=7-\r\n").body, "789");
  Reply beyond = get("/docs/a.txt", "Range: bytes=50-60\r\n");
  EXPECT_EQ(beyond.status, 416);
  EXPECT_EQ(beyond.headers["content-range"], "bytes */10");
  EXPECT_EQ(get("/docs/a.txt", "Range: bytes=0-1,4-5\r\n").status, 200) << "several ranges: all";

  Reply full = get("/docs/a.txt");
  const std::string etag = full.headers["etag"];
  const std::string modified = full.headers["last-modified"];
  ASSERT_FALSE(etag.empty());
  ASSERT_FALSE(modified.empty());
  Reply by_etag = get("/docs/a.txt", "If-None-Match: " + etag + "\r\n");
  EXPECT_EQ(by_etag.status, 304);
  EXPECT_TRUE(by_etag.body.empty());
  EXPECT_EQ(get("/docs/a.txt", "If-None-Match: \"other\"\r\n").status, 200);
  EXPECT_EQ(get("/docs/a.txt", "If-Modified-Since: " + modified + "\r\n").status, 304);
  EXPECT_EQ(get("/docs/a.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n").status, 200);
}

TEST_F(StaticFilesTest, LargeFileGoesThroughSendfileIntact) {
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 3);
  std::ofstream(root + "/big.bin", std::ios::binary) << big;
  Reply reply = get("/big.bin");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.headers["content-type"], "application/octet-stream");
  EXPECT_TRUE(reply.body == big);
}

TEST_F(StaticFilesTest, CurlAsTheClient) {
  if (!test::have_program("curl")) GTEST_SKIP() << "curl is not installed (make test installs it)";
  const std::string base = "http://127.0.0.1:" + std::to_string(server->address().port());
  // Two URLs in one curl: the second must reuse the connection (keep-alive).
  Child both({"curl", "-sS", "-v", base + "/docs/a.txt", base + "/index.html"},
             Child::Options::merged());
  std::string out = both.read_all();
  EXPECT_EQ(both.wait(), 0);
  EXPECT_NE(out.find("Re-using existing connection"), std::string::npos) << out;
  EXPECT_NE(out.find("0123456789"), std::string::npos);
  Child range({"curl", "-sS", "-r", "3-4", base + "/docs/a.txt"});
  EXPECT_EQ(range.read_all(), "34");
  EXPECT_EQ(range.wait(), 0);
  Child head({"curl", "-sS", "-I", base + "/docs/a.txt"});
  std::string head_out = head.read_all();
  EXPECT_EQ(head.wait(), 0);
  EXPECT_NE(head_out.find("Content-Length: 10"), std::string::npos) << head_out;
}

TEST_F(HttpServerTest, CurlUploadsChunkedWithExpectContinue) {
  if (!test::have_program("curl")) GTEST_SKIP() << "curl is not installed (make test installs it)";
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  test::TempDir dir;
  std::string data(200000, 'u');
  std::ofstream(dir.file("up.bin")) << data;
  const std::string url = "http://127.0.0.1:" + std::to_string(server.address().port()) + "/echo";
  Child curl({"curl", "-sS", "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue",
              "--data-binary", "@" + dir.file("up.bin"), url});
  EXPECT_TRUE(curl.read_all() == data);
  EXPECT_EQ(curl.wait(), 0);
}

TEST_F(HttpServerTest, PythonHttpClientReusesTheConnection) {
  if (!test::have_program("python3")) GTEST_SKIP() << "python3 is not installed";
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(demo_router().handler()));
  const std::string script =
      "import http.client, sys\n"
      "c = http.client.HTTPConnection('127.0.0.1', " +
      std::to_string(server.address().port()) +
      ", timeout=5)\n"
      "for i in range(3):\n"
      "    c.request('GET', '/hello')\n"
      "    r = c.getresponse()\n"
      "    sys.stdout.write('%d %s' % (r.status, r.read().decode()))\n"
      "c.request('POST', '/echo', body=b'from python')\n"
      "sys.stdout.write(c.getresponse().read().decode())\n";
  Child python({"python3", "-c", script});
  EXPECT_EQ(python.read_all(), "200 hello\n200 hello\n200 hello\nfrom python");
  EXPECT_EQ(python.wait(), 0);
}

TEST_F(StaticFilesTest, ClientLeavingMidFileKillsNothing) {
  ::signal(SIGPIPE, SIG_DFL);  // sendfile to a closed peer must not raise it
  std::ofstream(root + "/big.bin", std::ios::binary) << std::string(8 << 20, 'b');
  for (int i = 0; i < 5; ++i) {
    Socket s = connect_to(server->address());
    s.set_option(option::receive_buffer_size, 4096);
    s.send_all("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n");
    s.set_timeout(5s);
    EXPECT_FALSE(s.recv(100).empty());
    s.set_option(option::linger, std::chrono::seconds(0));
  }
  EXPECT_EQ(get("/docs/a.txt").body, "0123456789") << "the server is still serving";
}

TEST_F(HttpServerTest, WireServeCommandServesAFolder) {
  test::TempDir dir;
  std::ofstream(dir.file("hello.txt")) << "served by wire\n";
  Child server({WIRE_CLI, "serve", dir.file(""), "--bind", "127.0.0.1:0"},
               Child::Options::merged());
  std::string first = server.read_line();
  const std::string prefix = "Serving " + dir.file("") + " at http://";
  ASSERT_EQ(first.substr(0, prefix.size()), prefix) << first;
  std::string host_port = first.substr(prefix.size());
  host_port = host_port.substr(0, host_port.find('/'));
  Socket s = create_connection("tcp://" + host_port, 5s);
  s.send_all("GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Reader(s).next().body, "served by wire\n");
  std::string log = server.read_line();
  EXPECT_NE(log.find("\"GET /hello.txt HTTP/1.1\" 200 15"), std::string::npos) << log;
  Socket bad = create_connection("tcp://" + host_port, 5s);
  bad.send_all("GET /hello.txt HTTP/1.1\r\n\r\n");
  EXPECT_EQ(Reader(bad).next().status, 400);
  std::string refused = server.read_line();
  EXPECT_NE(refused.find("refused 400: HTTP/1.1 request without exactly one Host"),
            std::string::npos)
      << refused;
  // The keep-alive connection stays open and idle: a graceful stop closes it at once rather
  // than waiting out the 5 s grace period.
  auto start = std::chrono::steady_clock::now();
  server.signal(SIGTERM);
  (void)server.read_all();
  EXPECT_EQ(server.wait(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  s.set_timeout(2s);
  EXPECT_EQ(s.recv(10), "") << "the idle connection was closed";
}

// A storm of connections against a low RLIMIT_NOFILE: the connections already accepted
// still get their files (the server keeps fds in reserve by capping connections), instead
// of the 500s a server that accepts until EMFILE gives.
TEST_F(StaticFilesTest, FilesStillServedUnderFdExhaustion) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "under ASan/UBSan the sanitizer runtime needs fds of its own (runs in dev)";
#endif
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "StarvedServer forks a process that has threads; under TSan the child can "
                  "hang in the runtime before it accepts (runs in dev)";
#endif
  test::StarvedServer starved(64, http::connection_handler(http::static_files(root)), {});
  const Address address = starved.address();

  std::vector<Socket> storm;
  for (int i = 0; i < 150; ++i) storm.push_back(connect_to(address));  // far beyond its fds
  std::this_thread::sleep_for(200ms);
  // The first connections were accepted: every one of them gets its file, not a 500/503.
  int served = 0;
  for (int i = 0; i < 20; ++i) {
    storm[i].send_all("GET /docs/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    Reply reply = Reader(storm[i]).next();
    EXPECT_EQ(reply.status, 200);
    if (reply.body == "0123456789") ++served;
  }
  EXPECT_EQ(served, 20);
  // When the others leave, the connection that waited in the backlog is served too.
  for (std::size_t i = 0; i + 1 < storm.size(); ++i) storm[i].close();
  Socket& late = storm.back();
  late.send_all("GET /docs/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(Reader(late).next().body, "0123456789");
  storm.clear();
  EXPECT_EQ(starved.stop(), 0);
}

TEST_F(StaticFilesTest, ChangedSmallFilesShowWithinASecond) {
  std::ofstream(root + "/changing.txt") << "first";
  EXPECT_EQ(get("/changing.txt").body, "first");
  std::ofstream(root + "/changing.txt") << "second version";
  std::this_thread::sleep_for(1100ms);  // the cache trusts an entry for one second
  Reply after = get("/changing.txt");
  EXPECT_EQ(after.body, "second version");
  EXPECT_EQ(after.headers["content-length"], "14");
  std::filesystem::remove(root + "/changing.txt");
  std::this_thread::sleep_for(1100ms);
  EXPECT_EQ(get("/changing.txt").status, 404) << "a removed file goes away too";
}

TEST_F(StaticFilesTest, WrkSmoke) {
  if (!test::have_program("wrk")) GTEST_SKIP() << "wrk is not installed (make test installs it)";
  const std::string url =
      "http://127.0.0.1:" + std::to_string(server->address().port()) + "/docs/a.txt";
  Child wrk({"wrk", "-t1", "-c20", "-d1s", url}, Child::Options::merged());
  std::string out = wrk.read_all();
  EXPECT_EQ(wrk.wait(), 0);
  EXPECT_NE(out.find("requests in"), std::string::npos) << out;
  EXPECT_EQ(out.find("Non-2xx"), std::string::npos) << out;
  EXPECT_EQ(out.find("Socket errors"), std::string::npos) << out;
  EXPECT_EQ(get("/docs/a.txt").body, "0123456789") << "still serving after the load";
}
