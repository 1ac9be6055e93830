// wire::http::Client and `wire get`, against wire's own server and against nginx.
#include <sys/xattr.h>

#include <fstream>
#include <sstream>

#include "support.hpp"
#include "wire/http/client.hpp"
#include "wire/http/download.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::BackgroundServer;
using test::Child;

namespace {

http::Router client_router() {
  http::Router router;
  router.add("GET", "/port", [](http::Request& request) -> Task<http::Response> {
    co_return http::Response::text(200, std::to_string(request.connection->peer_address().port()));
  });
  router.add("GET", "/moved", [](http::Request&) -> Task<http::Response> {
    http::Response r = http::Response::text(302, "see /port\n");
    r.header("Location", "/port");
    co_return r;
  });
  router.add("GET", "/loop", [](http::Request&) -> Task<http::Response> {
    http::Response r = http::Response::text(302, "");
    r.header("Location", "/loop");
    co_return r;
  });
  router.add("GET", "/chunks", [](http::Request&) -> Task<http::Response> {
    http::Response r(200);
    auto left = std::make_shared<int>(4);
    r.stream = [left]() -> Task<std::string> {
      co_return (*left)-- > 0 ? std::string(1000, 'c') : std::string();
    };
    co_return r;
  });
  router.add("POST", "/echo", [](http::Request& request) -> Task<http::Response> {
    http::Response r = http::Response::text(201, request.body);
    r.header("X-Seen", std::string(request.header("X-Custom")));
    co_return r;
  });
  return router;
}

std::string base_url(const BackgroundServer& server) {
  return "http://127.0.0.1:" + std::to_string(server.address().port());
}

}  // namespace

class HttpClientTest : public test::Test {};

TEST_F(HttpClientTest, GetsAndReusesTheConnection) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(client_router().handler()));
  http::Client client;
  auto first = client.get(base_url(server) + "/port");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(first.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(client.pooled(), 1u);
  auto second = client.get(base_url(server) + "/port");
  EXPECT_EQ(second.body, first.body) << "the same client port: the connection was reused";
}

TEST_F(HttpClientTest, ReplacesAKeptConnectionTheServerClosed) {
  http::Options options;
  options.keepalive_timeout = 50ms;
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(client_router().handler(), options));
  http::Client client;
  auto first = client.get(base_url(server) + "/port");
  std::this_thread::sleep_for(200ms);  // the server closes the idle connection
  auto second = client.get(base_url(server) + "/port");
  EXPECT_EQ(second.status, 200);
  EXPECT_NE(second.body, first.body) << "a new connection";
}

TEST_F(HttpClientTest, ChunkedPostAndHeaders) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(client_router().handler()));
  http::Client client;
  EXPECT_EQ(client.get(base_url(server) + "/chunks").body, std::string(4000, 'c'));
  auto posted =
      client.request("POST", base_url(server) + "/echo", {{"X-Custom", "yes"}}, "payload");
  EXPECT_EQ(posted.status, 201);
  EXPECT_EQ(posted.body, "payload");
  EXPECT_EQ(posted.header("x-seen"), "yes");
}

TEST_F(HttpClientTest, RedirectsOnlyWhenAsked) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(client_router().handler()));
  http::Client plain;
  EXPECT_EQ(plain.get(base_url(server) + "/moved").status, 302);
  http::Client following(http::ClientOptions{.follow_redirects = true});
  auto followed = following.get(base_url(server) + "/moved");
  EXPECT_EQ(followed.status, 200);
  EXPECT_EQ(followed.url, base_url(server) + "/port");
  EXPECT_THROW((void)following.get(base_url(server) + "/loop"), Error);
}

namespace {

// Answers every GET with a redirect to `location`, and counts the requests it got.
http::Handler redirecting_to(std::string location, std::shared_ptr<std::atomic<int>> hits) {
  return [location, hits](http::Request&) -> Task<http::Response> {
    ++*hits;
    http::Response r = http::Response::text(302, "elsewhere\n");
    r.header("Location", location);
    co_return r;
  };
}

// Answers every request with its target, and counts them.
http::Handler answering(std::shared_ptr<std::atomic<int>> hits) {
  return [hits](http::Request& request) -> Task<http::Response> {
    ++*hits;
    co_return http::Response::text(200, std::string(request.target));
  };
}

}  // namespace

// A server on the network must not send the client to a local Unix socket (a Docker or
// admin socket, say): the redirect is refused before anything connects to it.
TEST_F(HttpClientTest, ARedirectNeverLeavesTcpForAUnixSocket) {
  test::TempDir dir;
  const std::string socket_path = dir.file("admin.sock");
  auto admin_hits = std::make_shared<std::atomic<int>>(0);
  BackgroundServer admin("unix:" + socket_path, http::connection_handler(answering(admin_hits)));
  auto hits = std::make_shared<std::atomic<int>>(0);
  BackgroundServer remote("tcp://127.0.0.1:0", http::connection_handler(redirecting_to(
                                                   "http+unix:" + socket_path + ":/admin", hits)));
  http::Client client(http::ClientOptions{.follow_redirects = true});
  try {
    (void)client.get(base_url(remote) + "/");
    ADD_FAILURE() << "followed the redirect to a Unix socket";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::operation_not_permitted);
    EXPECT_EQ(e.operation(), "follow redirect");
    EXPECT_NE(std::string(e.what()).find("never to a local Unix socket"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(hits->load(), 1);
  EXPECT_EQ(admin_hits->load(), 0) << "the Unix socket was reached";
  // Upper case changes nothing.
  BackgroundServer shouting(
      "tcp://127.0.0.1:0",
      http::connection_handler(redirecting_to("HTTP+UNIX:" + socket_path + ":/admin", hits)));
  EXPECT_THROW((void)client.get(base_url(shouting) + "/"), Error);
  EXPECT_EQ(admin_hits->load(), 0);
}

// From an http+unix: URL a redirect may stay on its socket, and go nowhere else.
TEST_F(HttpClientTest, ARedirectFromAUnixSocketStaysOnIt) {
  test::TempDir dir;
  const std::string here = dir.file("here.sock"), there = dir.file("there.sock");
  auto there_hits = std::make_shared<std::atomic<int>>(0),
       hits = std::make_shared<std::atomic<int>>(0);
  BackgroundServer other("unix:" + there, http::connection_handler(answering(there_hits)));
  http::Router routes;
  routes.add("GET", "/a/b/moved", [](http::Request&) -> Task<http::Response> {
    http::Response r = http::Response::text(301, "");
    r.header("Location", "../../landed?from=b");
    co_return r;
  });
  routes.add("GET", "/landed", answering(hits));
  routes.add("GET", "/away", redirecting_to("http+unix:" + there + ":/x", hits));
  routes.add("GET", "/tcp", redirecting_to("http://127.0.0.1:9/", hits));
  BackgroundServer server("unix:" + here, http::connection_handler(routes.handler()));
  http::Client client(http::ClientOptions{.follow_redirects = true});
  auto landed = client.get("http+unix:" + here + ":/a/b/moved");
  EXPECT_EQ(landed.status, 200);
  EXPECT_EQ(landed.body, "/landed?from=b");
  EXPECT_EQ(landed.url, "http+unix:" + here + ":/landed?from=b");
  for (const char* refused : {"/away", "/tcp"}) {
    SCOPED_TRACE(refused);
    try {
      (void)client.get("http+unix:" + here + ":" + refused);
      ADD_FAILURE() << "followed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("may only stay on its socket"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(there_hits->load(), 0);
}

// Relative references resolve as RFC 3986 says, against a real server.
TEST_F(HttpClientTest, RelativeRedirectsResolve) {
  auto hits = std::make_shared<std::atomic<int>>(0);
  http::Router routes;
  routes.add("GET", "/docs/guide/old", redirecting_to("../api/new?v=2#section", hits));
  routes.add("GET", "/docs/api/new", answering(hits));
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(routes.handler()));
  http::Client client(http::ClientOptions{.follow_redirects = true});
  auto r = client.get(base_url(server) + "/docs/guide/old");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "/docs/api/new?v=2") << "the fragment is not sent";
}

TEST_F(HttpClientTest, ResponseSizeIsCapped) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(client_router().handler()));
  http::Client client(http::ClientOptions{.max_response = 1000});
  try {
    (void)client.get(base_url(server) + "/chunks");
    ADD_FAILURE() << "a 4000-byte body passed a 1000-byte cap";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::message_size);
  }
}

TEST_F(HttpClientTest, CloseDelimitedResponse) {
  Socket listener = create_server("tcp://127.0.0.1:0");
  std::thread peer([&] {
    auto [conn, addr] = listener.accept();
    conn.set_timeout(5s);
    (void)conn.makefile().read_until("\r\n\r\n");
    conn.send_all("HTTP/1.0 200 OK\r\n\r\nuntil the end");
  });
  http::Client client;
  auto r = client.get("http://127.0.0.1:" + std::to_string(listener.local_address().port()) + "/");
  peer.join();
  EXPECT_EQ(r.body, "until the end");
  EXPECT_EQ(client.pooled(), 0u);
}

TEST_F(HttpClientTest, UnixSocketTargets) {
  test::TempDir dir;
  BackgroundServer server("unix:" + dir.file("http.sock"),
                          http::connection_handler(client_router().handler()));
  http::Client client;
  auto r = client.request("POST", "http+unix:" + dir.file("http.sock") + ":/echo", {}, "over unix");
  EXPECT_EQ(r.body, "over unix");
}

TEST_F(HttpClientTest, BadUrlsNameTheProblem) {
  EXPECT_THROW((void)http::parse_url("ftp://x/"), Error);
  EXPECT_THROW((void)http::parse_url("https://x/"), Error);
  EXPECT_THROW((void)http::parse_url("http:///x"), Error);
  auto u = http::parse_url("http://[::1]:8080/a?b=c");
  EXPECT_EQ(u.connect, "tcp://[::1]:8080");
  EXPECT_EQ(u.host, "[::1]:8080");
  EXPECT_EQ(u.target, "/a?b=c");
  auto plain = http::parse_url("http://example.com");
  EXPECT_EQ(plain.connect, "tcp://example.com:80");
  EXPECT_EQ(plain.host, "example.com");
  EXPECT_EQ(plain.target, "/");
  auto unix = http::parse_url("http+unix:/run/app.sock:/v1/x");
  EXPECT_EQ(unix.connect, "unix:/run/app.sock");
  EXPECT_EQ(unix.target, "/v1/x");
}

TEST_F(HttpClientTest, WireGetCommand) {
  test::TempDir dir;
  std::ofstream(dir.file("page.txt")) << "from the server\n";
  BackgroundServer server("tcp://127.0.0.1:0",
                          http::connection_handler(http::static_files(dir.file(""))));
  const std::string base = base_url(server);
  {
    Child get({WIRE_CLI, "get", base + "/page.txt"});
    EXPECT_EQ(get.read_all(), "from the server\n");
    EXPECT_EQ(get.wait(), 0);
  }
  {
    Child get({WIRE_CLI, "get", "-i", base + "/page.txt"});
    std::string out = get.read_all();
    EXPECT_EQ(get.wait(), 0);
    EXPECT_EQ(out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << out;
    EXPECT_NE(out.find("\r\n\r\nfrom the server\n"), std::string::npos);
  }
  {
    Child get({WIRE_CLI, "get", base + "/missing"}, Child::Options::merged());
    std::string out = get.read_all();
    EXPECT_EQ(get.wait(), 1);
    EXPECT_NE(out.find("wire: GET " + base + "/missing: 404 Not Found"), std::string::npos) << out;
  }
  {
    Child get({WIRE_CLI, "get", "-o", dir.file("saved.txt"), base + "/page.txt"});
    EXPECT_EQ(get.wait(), 0);
    std::ifstream in(dir.file("saved.txt"));
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "from the server\n");
  }
  {
    Child get({WIRE_CLI, "get", "-X", "DELETE", base + "/page.txt"}, Child::Options::merged());
    (void)get.read_all();
    EXPECT_EQ(get.wait(), 1) << "405 from the static server";
  }
}

// nginx from Debian as the server: wire get must read what a real server sends.
TEST_F(HttpClientTest, WireGetAgainstNginx) {
  if (!test::Nginx::available()) GTEST_SKIP() << "nginx is not installed (make test installs it)";
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("www"));
  std::ofstream(dir.file("www/hello.txt")) << "hello from nginx\n";
  std::string big(2 << 20, 'n');
  std::ofstream(dir.file("www/big.bin")) << big;
  test::Nginx nginx(dir, dir.file("www"));
  const std::string base = nginx.url("");
  Child get({WIRE_CLI, "get", base + "/hello.txt"});
  EXPECT_EQ(get.read_all(), "hello from nginx\n");
  EXPECT_EQ(get.wait(), 0);
  http::Client client;
  auto large = client.get(base + "/big.bin");
  EXPECT_EQ(large.status, 200);
  EXPECT_TRUE(large.body == big);
  EXPECT_EQ(client.get(base + "/hello.txt").body, "hello from nginx\n");
  EXPECT_EQ(client.get(base + "/nope").status, 404);
}

namespace {

// A raw HTTP peer on loopback, for what a well-behaved server never does: each accepted
// connection runs `script` on its own thread (index = order of acceptance). Counts the
// request heads it read through read_request().
class ScriptedPeer {
 public:
  using Script = std::function<void(Socket&, int index, ScriptedPeer&)>;
  explicit ScriptedPeer(Script script)
      : listener_(create_server("tcp://127.0.0.1:0")), script_(std::move(script)) {
    listener_.set_timeout(100ms);
    acceptor_ = std::thread([this] {
      int index = 0;
      while (!stop_) {
        auto accepted = listener_.accept(std::nothrow);
        if (!accepted) continue;
        auto conn = std::make_shared<Socket>(std::move(accepted->socket));
        const int i = index++;
        workers_.emplace_back([this, conn, i] {
          try {
            conn->set_timeout(5s);
            script_(*conn, i, *this);
          } catch (const std::exception&) {
          }
        });
      }
    });
  }
  ~ScriptedPeer() {
    stop_ = true;
    acceptor_.join();
    for (auto& w : workers_) w.join();
  }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(listener_.local_address().port()) + path;
  }
  // Reads one request head and its Content-Length body; "" if the peer closed first.
  std::string read_request(Socket& conn) {
    std::string head;
    char c;
    while (head.find("\r\n\r\n") == std::string::npos) {
      auto n = conn.recv(std::span<char>(&c, 1), std::nothrow);
      if (!n || *n == 0) return "";
      head.push_back(c);
    }
    const auto at = head.find("Content-Length: ");
    if (at != std::string::npos) {
      const std::size_t length = std::stoul(head.substr(at + 16));
      if (length > 0) (void)conn.makefile().read_exact(length);
    }
    std::lock_guard lock(mutex_);
    heads_.push_back(head);
    return head;
  }
  std::vector<std::string> heads() {
    std::lock_guard lock(mutex_);
    return heads_;
  }

 private:
  Socket listener_;
  Script script_;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::vector<std::string> heads_;
};

constexpr std::string_view ok_keep_alive = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

}  // namespace

// The server saw 3 POSTs for 2 calls: a request that timed out was sent again. Now nothing
// is sent twice after a timeout, whatever the method.
TEST_F(HttpClientTest, NothingIsSentAgainAfterATimeout) {
  for (const char* method : {"POST", "GET"}) {
    SCOPED_TRACE(method);
    ScriptedPeer peer([](Socket& conn, int, ScriptedPeer& self) {
      (void)self.read_request(conn);
      conn.send_all(ok_keep_alive);
      (void)self.read_request(conn);  // the second request: read, never answered
      std::this_thread::sleep_for(1500ms);
    });
    http::Client client(http::ClientOptions{.timeout = 300ms});
    EXPECT_EQ(client.request(method, peer.url()).status, 200);
    try {
      (void)client.request(method, peer.url());
      ADD_FAILURE() << "an unanswered request succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::timed_out) << e.what();
    }
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(peer.heads().size(), 2u) << "the timed-out request was sent again";
  }
}

// A kept-alive connection the server closes just as the next request goes out: a GET is sent
// again on a fresh connection (nothing of the answer had come back), a POST is not.
TEST_F(HttpClientTest, OnlyIdempotentRequestsAreRetriedOnAStaleConnection) {
  for (const char* method : {"GET", "PUT", "POST"}) {
    SCOPED_TRACE(method);
    ScriptedPeer peer([](Socket& conn, int index, ScriptedPeer& self) {
      (void)self.read_request(conn);
      conn.send_all(ok_keep_alive);
      if (index == 0) {
        (void)self.read_request(conn);  // read the second request, then close unanswered
        conn.set_option(option::linger, std::chrono::seconds(0));
      }
    });
    http::Client client;
    EXPECT_EQ(client.request(method, peer.url(), {}, "x").status, 200);
    const bool idempotent = std::string_view(method) != "POST";
    if (idempotent) {
      EXPECT_EQ(client.request(method, peer.url(), {}, "x").status, 200);
      EXPECT_EQ(peer.heads().size(), 3u);
    } else {
      EXPECT_THROW((void)client.request(method, peer.url(), {}, "x"), Error);
      std::this_thread::sleep_for(100ms);
      EXPECT_EQ(peer.heads().size(), 2u) << "a POST was sent twice";
    }
  }
}

// max_time bounds the whole request, even one whose body keeps trickling in well within
// the idle timeout.
TEST_F(HttpClientTest, MaxTimeBoundsAMovingDownload) {
  ScriptedPeer peer([](Socket& conn, int, ScriptedPeer& self) {
    (void)self.read_request(conn);
    conn.send_all("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    for (int i = 0; i < 40; ++i) {
      if (!conn.send_all("x", std::nothrow)) return;
      std::this_thread::sleep_for(50ms);
    }
  });
  http::Client client(http::ClientOptions{.timeout = 1s, .max_time = 400ms});
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)client.get(peer.url());
    ADD_FAILURE() << "finished";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::timed_out);
    EXPECT_NE(std::string(e.what()).find("maximum time of 0.4 s"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
}

// Authorization, Cookie, Proxy-Authorization and the URL's user:pass go to the origin the
// caller named, and never to another one a redirect leads to (curl's rule).
TEST_F(HttpClientTest, CredentialsNeverFollowARedirectToAnotherOrigin) {
  ScriptedPeer other([](Socket& conn, int, ScriptedPeer& self) {
    while (!self.read_request(conn).empty()) conn.send_all(ok_keep_alive);
  });
  ScriptedPeer origin([&other](Socket& conn, int, ScriptedPeer& self) {
    for (;;) {
      const std::string head = self.read_request(conn);
      if (head.empty()) return;
      const bool away = head.find("GET /away") == 0;
      const std::string location = away ? other.url("/landed") : "/here";
      if (head.find("GET /here") == 0) {
        conn.send_all(ok_keep_alive);
      } else {
        conn.send_all("HTTP/1.1 302 Found\r\nLocation: " + location +
                      "\r\nContent-Length: 0\r\n\r\n");
      }
    }
  });
  http::Client client(http::ClientOptions{.follow_redirects = true});
  const http::Headers secrets = {{"Authorization", "Bearer token"},
                                 {"Cookie", "session=1"},
                                 {"Proxy-Authorization", "Basic eA=="},
                                 {"X-Kept", "yes"}};
  std::string with_user = origin.url("/away");
  with_user.insert(7, "alice:pw@");
  EXPECT_EQ(client.request("GET", with_user, secrets).status, 200);
  ASSERT_EQ(other.heads().size(), 1u);
  const std::string landed = other.heads()[0];
  for (const char* name : {"Authorization", "Cookie", "Proxy-Authorization"}) {
    EXPECT_EQ(landed.find(name), std::string::npos) << name << " went to another origin:\n"
                                                    << landed;
  }
  EXPECT_NE(landed.find("X-Kept: yes"), std::string::npos);
  // On the same origin they stay.
  std::string same = origin.url("/same");
  same.insert(7, "alice:pw@");
  EXPECT_EQ(client.request("GET", same, secrets).status, 200);
  const auto heads = origin.heads();
  const std::string here = heads.back();
  EXPECT_EQ(here.find("GET /here"), 0u) << here;
  EXPECT_NE(here.find("Cookie: session=1"), std::string::npos) << here;
  EXPECT_NE(here.find("Authorization: Bearer token"), std::string::npos)
      << "the caller's own header wins over the URL's user:pass\n"
      << here;
}

TEST_F(HttpClientTest, UserInformationInTheUrlIsBasicAuth) {
  ScriptedPeer peer([](Socket& conn, int, ScriptedPeer& self) {
    (void)self.read_request(conn);
    conn.send_all(ok_keep_alive);
  });
  std::string url = peer.url("/");
  url.insert(7, "Aladdin:open%20sesame@");
  http::Client client;
  EXPECT_EQ(client.get(url).status, 200);
  ASSERT_EQ(peer.heads().size(), 1u);
  EXPECT_NE(peer.heads()[0].find("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n"),
            std::string::npos)
      << peer.heads()[0];
  EXPECT_EQ(peer.heads()[0].find("Aladdin"), std::string::npos) << "never in the request line";
}

// The head comes before the body, and a streamed body has no size cap unless one is set.
TEST_F(HttpClientTest, StreamedBodiesHaveNoCapUnlessAsked) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(client_router().handler()));
  http::Client client(http::ClientOptions{.max_response = 1000});
  std::vector<std::string> events;
  std::string body;
  http::ResponseHandlers handlers;
  handlers.on_head = [&](const http::ClientResponse& r) {
    events.push_back("head " + std::to_string(r.status));
    EXPECT_TRUE(r.body.empty());
  };
  handlers.on_body = [&](std::string_view bytes, std::uint64_t received, auto) {
    if (body.empty()) events.push_back("body");
    body.append(bytes);
    EXPECT_EQ(received, body.size());
  };
  auto r = client.send({.url = base_url(server) + "/chunks"}, handlers);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body, std::string(4000, 'c')) << "past max_response: it caps memory, not streams";
  EXPECT_EQ(events, (std::vector<std::string>{"head 200", "body"}));
  http::Client capped(http::ClientOptions{.max_body = 3000});
  body.clear();
  try {
    (void)capped.send({.url = base_url(server) + "/chunks"}, handlers);
    ADD_FAILURE() << "max_body ignored";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::message_size);
  }
}

// An upload read as it is sent: with a length (Content-Length) and without (chunked).
TEST_F(HttpClientTest, StreamedUploadsWithAndWithoutALength) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(client_router().handler()));
  http::Client client;
  for (bool known : {true, false}) {
    SCOPED_TRACE(known ? "Content-Length" : "chunked");
    const std::string data(300000, 'u');
    std::size_t at = 0;
    http::ClientRequest put{.method = "POST", .url = base_url(server) + "/echo"};
    put.body_reader = [&](std::span<char> buffer) {
      const std::size_t n = std::min(buffer.size(), std::min<std::size_t>(7000, data.size() - at));
      std::copy_n(data.data() + at, n, buffer.data());
      at += n;
      return n;
    };
    if (known) put.body_length = data.size();
    auto r = client.send(put);
    EXPECT_EQ(r.status, 201);
    EXPECT_TRUE(r.body == data);
    EXPECT_EQ(r.uploaded_bytes, data.size());
  }
  // A reader that gives fewer bytes than promised is an error, not a request the server
  // waits on forever.
  http::ClientRequest short_body{.method = "POST", .url = base_url(server) + "/echo"};
  short_body.body_length = 10;
  short_body.body_reader = [](std::span<char>) { return std::size_t(0); };
  EXPECT_THROW((void)client.send(short_body), Error);
}

TEST_F(HttpClientTest, InterimResponsesAreBounded) {
  ScriptedPeer peer([](Socket& conn, int, ScriptedPeer& self) {
    (void)self.read_request(conn);
    for (int i = 0; i < 100; ++i) {
      if (!conn.send_all("HTTP/1.1 102 Processing\r\n\r\n", std::nothrow)) return;
    }
  });
  http::Client client;
  try {
    (void)client.get(peer.url());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than 16 interim"), std::string::npos) << e.what();
  }
}

// RFC 3986 §5.4's examples, each sent by a real server as a Location against the base
// http://127.0.0.1:PORT/b/c/d;p?q (the RFC's http://a/b/c/d;p?q): the client lands where
// the RFC says, without the fragment. References to other hosts are left to test_url (no
// test talks to any address but loopback); other schemes are refused before connecting.
TEST_F(HttpClientTest, FollowsEveryRfc3986ExampleFromARealServer) {
  auto location = std::make_shared<std::string>();
  auto guard = std::make_shared<std::mutex>();
  BackgroundServer server(
      "tcp://127.0.0.1:0",
      http::connection_handler([location, guard](http::Request& request) -> Task<http::Response> {
        if (request.target == "/b/c/d;p?q") {
          http::Response r = http::Response::text(302, "");
          std::lock_guard lock(*guard);
          r.header("Location", *location);
          co_return r;
        }
        co_return http::Response::text(200, std::string(request.target));
      }));
  const std::pair<const char*, const char*> examples[] = {
      {"g", "/b/c/g"},
      {"./g", "/b/c/g"},
      {"g/", "/b/c/g/"},
      {"/g", "/g"},
      {"?y", "/b/c/d;p?y"},
      {"g?y", "/b/c/g?y"},
      {"g#s", "/b/c/g"},
      {"g?y#s", "/b/c/g?y"},
      {";x", "/b/c/;x"},
      {"g;x", "/b/c/g;x"},
      {"g;x?y#s", "/b/c/g;x?y"},
      {".", "/b/c/"},
      {"./", "/b/c/"},
      {"..", "/b/"},
      {"../", "/b/"},
      {"../g", "/b/g"},
      {"../..", "/"},
      {"../../", "/"},
      {"../../g", "/g"},
      {"../../../g", "/g"},
      {"../../../../g", "/g"},
      {"/./g", "/g"},
      {"/../g", "/g"},
      {"g.", "/b/c/g."},
      {".g", "/b/c/.g"},
      {"g..", "/b/c/g.."},
      {"..g", "/b/c/..g"},
      {"./../g", "/b/g"},
      {"./g/.", "/b/c/g/"},
      {"g/./h", "/b/c/g/h"},
      {"g/../h", "/b/c/h"},
      {"g;x=1/./y", "/b/c/g;x=1/y"},
      {"g;x=1/../y", "/b/c/y"},
      {"g?y/./x", "/b/c/g?y/./x"},
      {"g?y/../x", "/b/c/g?y/../x"},
      {"g#s/./x", "/b/c/g"},
      {"g#s/../x", "/b/c/g"},
  };
  http::Client client(http::ClientOptions{.follow_redirects = true});
  const std::string base = base_url(server) + "/b/c/d;p?q";
  for (const auto& [reference, expected] : examples) {
    {
      std::lock_guard lock(*guard);
      *location = reference;
    }
    auto r = client.get(base);
    EXPECT_EQ(r.status, 200) << reference;
    EXPECT_EQ(r.body, expected) << "reference '" << reference << "'";
    EXPECT_EQ(r.url.rfind(base_url(server) + expected, 0), 0u)
        << reference << ": " << r.url << " (the final URL keeps the fragment, unsent)";
  }
  for (const char* refused : {"g:h", "http:g"}) {
    {
      std::lock_guard lock(*guard);
      *location = refused;
    }
    EXPECT_THROW((void)client.get(base), Error) << refused;
  }
}

namespace {

std::string xattr_of(const std::string& path) {
  char value[256];
  const ::ssize_t n = ::getxattr(path.c_str(), "user.wire.validator", value, sizeof value);
  return n > 0 ? std::string(value, static_cast<std::size_t>(n)) : std::string();
}

// One resource, "ABC..." 100 bytes with ETag "v1", and servers that answer a resume badly.
http::Router resume_routes() {
  http::Router routes;
  static const std::string whole = [] {
    std::string s;
    for (int i = 0; i < 100; ++i) s += static_cast<char>('A' + i % 26);
    return s;
  }();
  auto partial = [](int status, std::string range, std::string body) {
    return [status, range, body](http::Request&) -> Task<http::Response> {
      http::Response r = http::Response::text(status, body, "application/octet-stream");
      if (!range.empty()) r.header("Content-Range", range);
      r.header("ETag", "\"v1\"");
      co_return r;
    };
  };
  routes.add("GET", "/whole", partial(200, "", whole));
  routes.add("GET", "/busy", partial(503, "", "try later\r\n"));
  routes.add("GET", "/good", partial(206, "bytes 40-99/100", whole.substr(40)));
  routes.add("GET", "/long", partial(206, "bytes 40-49/100", std::string(1000, 'x')));
  routes.add("GET", "/past", partial(206, "bytes 40-99/50", whole.substr(40)));
  routes.add("GET", "/elsewhere", partial(206, "bytes 30-99/100", whole.substr(30)));
  return routes;
}

}  // namespace

// A partial file is continued only by its own continuation: an error answer, a 206 that
// lies about its range or its length, or one nobody asked for never changes it.
TEST_F(HttpClientTest, ResumingNeverSplicesOrDamagesTheFile) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(resume_routes().handler()));
  test::TempDir dir;
  const std::string file = dir.file("f");
  http::Client client;
  auto get = [&](const std::string& path) {
    return http::ClientRequest{.url = base_url(server) + path};
  };
  auto first = http::download(client, get("/whole"), file);
  EXPECT_EQ(first.response.status, 200);
  EXPECT_EQ(xattr_of(file), "\"v1\"") << "the validator is saved with the file";
  ASSERT_EQ(::truncate(file.c_str(), 40), 0);
  const std::string kept = test::slurp(file);

  auto busy = http::download(client, get("/busy"), file, {.resume = true});
  EXPECT_EQ(busy.response.status, 503);
  EXPECT_FALSE(busy.file_written);
  EXPECT_EQ(test::slurp(file), kept) << "a 503 replaced the partial file";
  EXPECT_EQ(xattr_of(file), "\"v1\"");
  for (const char* lying : {"/long", "/past", "/elsewhere"}) {
    EXPECT_THROW((void)http::download(client, get(lying), file, {.resume = true}), Error) << lying;
    EXPECT_EQ(test::slurp(file), kept) << lying;
  }
  auto good = http::download(client, get("/good"), file, {.resume = true});
  EXPECT_EQ(good.response.status, 206);
  EXPECT_EQ(good.resumed_from, 40u);
  EXPECT_EQ(test::slurp(file).size(), 100u);
  EXPECT_EQ(xattr_of(file), "\"v1\"") << "a continuation keeps the validator";
  // A 206 that no Range asked for is not a whole file.
  EXPECT_THROW((void)http::download(client, get("/good"), dir.file("new")), Error);
  EXPECT_FALSE(test::exists(dir.file("new")));
  // An error body written without resume takes the validator away with the old content.
  ASSERT_EQ(::truncate(file.c_str(), 40), 0);
  (void)http::download(client, get("/busy"), file);
  EXPECT_EQ(test::slurp(file), "try later\r\n");
  EXPECT_EQ(xattr_of(file), "") << "a validator outlived the content it names";
}

// A body over the cap is refused before the head reaches anyone (no file is truncated).
TEST_F(HttpClientTest, ABodyOverTheCapIsRefusedBeforeItsHead) {
  BackgroundServer server("tcp://127.0.0.1:0", http::connection_handler(resume_routes().handler()));
  test::TempDir dir;
  std::ofstream(dir.file("keep")) << "precious";
  http::Client client(http::ClientOptions{.max_body = 10});
  EXPECT_THROW((void)http::download(client, {.url = base_url(server) + "/whole"}, dir.file("keep")),
               Error);
  EXPECT_EQ(test::slurp(dir.file("keep")), "precious");
}

TEST_F(HttpClientTest, StatusesOutsideHttpAndUnaskedUpgradesAreRefused) {
  for (const char* head : {"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
                           "HTTP/1.1 600 Beyond\r\nContent-Length: 0\r\n\r\n",
                           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nraw"}) {
    SCOPED_TRACE(head);
    ScriptedPeer peer([head](Socket& conn, int, ScriptedPeer& self) {
      (void)self.read_request(conn);
      conn.send_all(head);
    });
    http::Client client;
    EXPECT_THROW((void)client.get(peer.url()), Error);
  }
}

// A redirect with an endless body is followed at once, not drained for ever.
TEST_F(HttpClientTest, ARedirectsBodyIsNotDrainedBeyondALittle) {
  ScriptedPeer peer([](Socket& conn, int, ScriptedPeer& self) {
    const std::string head = self.read_request(conn);
    if (head.find("GET /landed") == 0) {
      conn.send_all(ok_keep_alive);
      return;
    }
    const bool chunked = head.find("GET /chunked") == 0;
    conn.send_all(chunked ? "HTTP/1.1 302 Found\r\nLocation: /landed\r\nTransfer-Encoding: "
                            "chunked\r\n\r\n"
                          : "HTTP/1.1 302 Found\r\nLocation: /landed\r\nContent-Length: "
                            "1000000000000\r\n\r\n");
    const std::string block =
        chunked ? "4000\r\n" + std::string(0x4000, 'z') + "\r\n" : std::string(0x4000, 'z');
    for (int i = 0; i < 4000; ++i) {
      if (!conn.send_all(block, std::nothrow)) return;
    }
  });
  http::Client client(http::ClientOptions{.follow_redirects = true});
  for (const char* path : {"/length", "/chunked"}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = client.get(peer.url(path));
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 3s) << path;
  }
}

// An upload to a peer that reads slowly but steadily is never cut by the idle timeout: not
// while sending, nor while waiting for the answer with the request still in the kernel's
// queue (about 1 s at 3 MB/s, with a 300 ms idle timeout).
TEST_F(HttpClientTest, ASlowSteadyUploadIsNotIdle) {
  constexpr std::size_t size = 3 << 20;
  ScriptedPeer peer([](Socket& conn, int, ScriptedPeer&) {
    std::string got;
    std::vector<char> buffer(64 << 10);
    while (got.find("\r\n\r\n") == std::string::npos ||
           got.size() - got.find("\r\n\r\n") - 4 < size) {
      auto n = conn.recv(std::span<char>(buffer), std::nothrow);
      if (!n || *n == 0) return;
      got.append(buffer.data(), *n);
      std::this_thread::sleep_for(20ms);
    }
    conn.send_all(ok_keep_alive);
  });
  http::Client client(http::ClientOptions{.timeout = 300ms});
  auto r = client.request("POST", peer.url(), {}, std::string(size, 'u'));
  EXPECT_EQ(r.status, 200);
}
