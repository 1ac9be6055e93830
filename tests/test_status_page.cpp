// The status page (/_wire/status, status.json, metrics) through real sockets and the tools a
// user would point at it: the counters against the requests the test made, with 1 and 4
// workers, read by Prometheus's own text parser (Debian's python3-prometheus-client) and by
// python3's json; the page rendered by headless Chromium; `wire serve --status`, its default
// by address, a `_wire` in the served folder, and hostile names. Loopback and Unix paths in a
// TempDir only.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "support.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"
#include "wire/http/status_page.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::BackgroundServer;
using test::Child;

namespace {

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::size_t occurrences(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
  return n;
}

// Every byte but letters, digits and "-._~" as %XX: a hostile name as a request target.
std::string percent_encode_all(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

struct Answer {
  int status = 0;
  std::string head;  // status line and headers, lower-cased names kept as sent
  std::string body;
  std::size_t size = 0;  // every byte of the response, as the server's counters count them
  std::string header(const std::string& name) const {
    std::string lower_head = head;
    for (auto& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto at = lower_head.find("\r\n" + name + ":");
    if (at == std::string::npos) return {};
    const auto start = head.find_first_not_of(' ', at + 3 + name.size());
    return head.substr(start, head.find("\r\n", start) - start);
  }
};

// One connection that counts every byte it sends and receives: what the server's
// received/sent counters must say. Responses here always carry a Content-Length.
class RawClient {
 public:
  explicit RawClient(const Address& address)
      : socket_(create_connection(std::vector<Address>{address}, 5s)) {
    socket_.set_timeout(5s);
  }
  Answer exchange(const std::string& request, bool head_only = false) {
    socket_.send_all(request);
    sent_ += request.size();
    Answer answer;
    std::size_t head_end;
    while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) fill();
    answer.head = buffer_.substr(0, head_end + 2);
    answer.status = std::stoi(buffer_.substr(9, 3));
    const std::string length = answer.header("content-length");
    const std::size_t body_size = head_only || length.empty() ? 0 : std::stoul(length);
    while (buffer_.size() < head_end + 4 + body_size) fill();
    answer.body = buffer_.substr(head_end + 4, body_size);
    answer.size = head_end + 4 + body_size;
    buffer_.erase(0, answer.size);
    received_ += answer.size;
    return answer;
  }
  Answer get(const std::string& target, const std::string& method = "GET") {
    return exchange(method + " " + target + " HTTP/1.1\r\nHost: x\r\n\r\n", method == "HEAD");
  }
  std::uint64_t sent() const { return sent_; }
  std::uint64_t received() const { return received_; }
  Socket& socket() { return socket_; }

 private:
  void fill() {
    std::string more = socket_.recv(65536);
    if (more.empty()) throw std::runtime_error("the server closed before a whole response");
    buffer_ += more;
  }
  Socket socket_;
  std::string buffer_;
  std::uint64_t sent_ = 0;
  std::uint64_t received_ = 0;
};

// What Prometheus's text parser and python3's json make of a scrape and a status.json:
// "type NAME TYPE", "sample NAME{label=\"json string\"} VALUE" and "json a.b.c VALUE" (a
// string value as a JSON string; "a.b#" for a list's length), keyed by all but the value.
std::map<std::string, std::string> parsed_by_python(const test::TempDir& dir,
                                                    const std::string& metrics,
                                                    const std::string& json = "") {
  write_file(dir.file("metrics.txt"), metrics);
  write_file(dir.file("status.json"), json);
  const char* script = R"(
import json, sys
from prometheus_client.parser import text_string_to_metric_families
def num(v):
    return str(int(v)) if float(v).is_integer() else repr(float(v))
for family in text_string_to_metric_families(open(sys.argv[1], encoding='utf-8').read()):
    print('type\t%s\t%s' % (family.name, family.type))
    for s in family.samples:
        labels = ','.join('%s=%s' % (k, json.dumps(v)) for k, v in sorted(s.labels.items()))
        print('sample\t%s{%s}\t%s' % (s.name, labels, num(s.value)))
def flat(key, v):
    if isinstance(v, dict):
        for k, x in v.items():
            flat(key + '.' + k if key else k, x)
    elif isinstance(v, list):
        print('json\t%s#\t%d' % (key, len(v)))
        for i, x in enumerate(v):
            flat('%s.%d' % (key, i), x)
    elif isinstance(v, str):
        print('json\t%s\t%s' % (key, json.dumps(v)))
    else:
        print('json\t%s\t%s' % (key, num(v)))
if open(sys.argv[2]).read():
    flat('', json.load(open(sys.argv[2], encoding='utf-8')))
)";
  // Debian's python3, which sees Debian's python3-prometheus-client.
  Child python({"/usr/bin/python3", "-c", script, dir.file("metrics.txt"), dir.file("status.json")},
               Child::Options{});
  const std::string output = python.read_all();
  EXPECT_EQ(python.wait_at_most(10s), 0) << output;
  std::map<std::string, std::string> values;
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    const auto first = line.find('\t');
    const auto last = line.rfind('\t');
    if (first == std::string::npos || first == last) continue;
    values[line.substr(0, last)] = line.substr(last + 1);
  }
  return values;
}

std::string value_of(const std::map<std::string, std::string>& values, const std::string& key) {
  auto at = values.find(key);
  return at == values.end() ? "(missing " + key + ")" : at->second;
}

std::uint64_t number_of(const std::map<std::string, std::string>& values, const std::string& key) {
  auto at = values.find(key);
  if (at == values.end()) {
    ADD_FAILURE() << "missing " << key;
    return 0;
  }
  return std::stoull(at->second);
}

// Whether `text` holds a row "FD <number> <rest>" (std::regex is avoided: GCC 12 warns
// inside it under the sanitizer presets).
bool has_fd_row(const std::string& text, const std::string& rest) {
  for (auto at = text.find("FD "); at != std::string::npos; at = text.find("FD ", at + 1)) {
    std::size_t end = at + 3;
    while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end]))) ++end;
    if (end > at + 3 && text.compare(end, rest.size() + 1, " " + rest) == 0) return true;
  }
  return false;
}

// A Prometheus label value as the parser script prints it back: a JSON string.
std::string json_quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// The page's text as a reader sees it: tags gone, whitespace collapsed.
std::string visible_text(const std::string& html) {
  std::string text;
  bool in_tag = false;
  for (char c : html) {
    if (c == '<') in_tag = true;
    if (in_tag || std::isspace(static_cast<unsigned char>(c))) {
      if (!text.empty() && text.back() != ' ') text += ' ';
    } else {
      text += c;
    }
    if (c == '>') in_tag = false;
  }
  return text;
}

}  // namespace

// Library use with 1 and 4 workers: every counter equals what the test did, byte for byte.
class StatusPageWorkers : public test::Test, public ::testing::WithParamInterface<int> {
 protected:
  test::TempDir dir_;
};

TEST_P(StatusPageWorkers, CountersMatchTheRequestsAndPrometheusParsesThem) {
  auto stats = std::make_shared<http::ServerStats>();
  http::Router router;
  router.add("GET", "/hello", [](http::Request&) -> Task<http::Response> {
    co_return http::Response::text(200, "hello\n");
  });
  http::Options options;
  options.stats = stats;
  ServeOptions serve_options;
  serve_options.workers = GetParam();
  serve_options.counters = stats;
  http::StatusPageOptions page;
  page.fd_table_interval = 0ms;  // the fd rows below are checked against this very moment
  BackgroundServer server(
      "tcp://127.0.0.1:0",
      http::connection_handler(http::with_status_page(router.handler(), stats, page), options),
      serve_options);

  // One connection per request, so with 4 workers they spread over several.
  std::uint64_t client_sent = 0, client_received = 0;
  auto one = [&](const std::string& request) {
    RawClient client(server.address());
    const int status = client.exchange(request).status;
    client_sent += client.sent();
    client_received += client.received();
    return status;
  };
  for (int i = 0; i < 3; ++i) EXPECT_EQ(one("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(one("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"), 404);
  EXPECT_EQ(one("GET /hello HTTP/1.1\r\n\r\n"), 400) << "refused: no Host";

  // The six clients closed; the server sees each EOF in its own time.
  RawClient scrape(server.address());
  int scrapes = 0;
  Answer metrics;
  std::uint64_t earlier_scrape_bytes = 0;  // responses before the last one, all 200
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    earlier_scrape_bytes = scrape.received();
    metrics = scrape.get("/_wire/metrics");
    ++scrapes;
    ASSERT_EQ(metrics.status, 200) << metrics.body;
    if (contains(metrics.body, "\nwire_connections_closed_total 6\n")) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << metrics.body;
    std::this_thread::sleep_for(5ms);
  }
  const std::uint64_t scrape_sent_at_metrics = scrape.sent();
  const Answer json = scrape.get("/_wire/status.json");
  ASSERT_EQ(json.status, 200);
  EXPECT_EQ(json.header("content-type"), "application/json");
  EXPECT_EQ(metrics.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");

  const auto v = parsed_by_python(dir_, metrics.body, json.body);
  EXPECT_EQ(value_of(v, "type\twire_connections_accepted"), "counter");
  EXPECT_EQ(value_of(v, "type\twire_connections_open"), "gauge");
  EXPECT_EQ(value_of(v, "type\twire_http_requests"), "counter");
  EXPECT_EQ(value_of(v, "type\twire_http_sent_bytes"), "counter");
  EXPECT_EQ(value_of(v, "type\tprocess_open_fds"), "gauge");
  EXPECT_EQ(number_of(v, "sample\twire_connections_accepted_total{}"), 7u);
  EXPECT_EQ(number_of(v, "sample\twire_connections_closed_total{}"), 6u);
  EXPECT_EQ(number_of(v, "sample\twire_connections_open{}"), 1u);
  EXPECT_EQ(number_of(v, "sample\twire_connection_states{state=\"ESTAB\"}"), 1u)
      << "the scrape's own connection";
  EXPECT_EQ(number_of(v, "sample\twire_http_requests_total{code=\"200\"}"),
            3u + static_cast<unsigned>(scrapes - 1));
  EXPECT_EQ(number_of(v, "sample\twire_http_requests_total{code=\"404\"}"), 2u);
  EXPECT_EQ(number_of(v, "sample\twire_http_requests_total{code=\"400\"}"), 1u);
  // Received: every request so far, the scrape's own included (read before it is answered);
  // sent: every response before this one.
  EXPECT_EQ(number_of(v, "sample\twire_http_received_bytes_total{}"),
            client_sent + scrape_sent_at_metrics);
  EXPECT_EQ(number_of(v, "sample\twire_http_sent_bytes_total{}"),
            client_received + earlier_scrape_bytes);
  EXPECT_EQ(number_of(v, "sample\twire_listening_sockets{address=\"" +
                             server.address().to_string().substr(6) + "\"}"),
            static_cast<std::uint64_t>(GetParam()));
  EXPECT_GT(number_of(v, "sample\tprocess_open_fds{}"), 0u);

  // status.json agrees, one request (the metrics scrape) later.
  EXPECT_EQ(number_of(v, "json\tconnections.accepted"), 7u);
  EXPECT_EQ(number_of(v, "json\tconnections.closed"), 6u);
  EXPECT_EQ(number_of(v, "json\tconnections.open"), 1u);
  EXPECT_EQ(number_of(v, "json\trequests.by_status.200"),
            number_of(v, "sample\twire_http_requests_total{code=\"200\"}") + 1);
  EXPECT_EQ(number_of(v, "json\trequests.by_status.404"), 2u);
  EXPECT_EQ(number_of(v, "json\trequests.total"), 3u + 2u + 1u + static_cast<unsigned>(scrapes));
  EXPECT_EQ(number_of(v, "json\tbytes.received"), client_sent + scrape.sent());
  EXPECT_EQ(number_of(v, "json\tbytes.sent"),
            number_of(v, "sample\twire_http_sent_bytes_total{}") + metrics.size);
  EXPECT_EQ(number_of(v, "json\tfds.listening#"), static_cast<std::uint64_t>(GetParam()));
  EXPECT_EQ(number_of(v, "json\tfds.clients#"), 1u);
  EXPECT_EQ(value_of(v, "json\tfds.clients.0.peer"),
            "\"" + scrape.socket().local_address().to_string().substr(6) + "\"");
  EXPECT_EQ(value_of(v, "json\tfds.clients.0.state"), "\"ESTAB\"");
  EXPECT_EQ(number_of(v, "json\tpid"), static_cast<std::uint64_t>(::getpid()));
}

INSTANTIATE_TEST_SUITE_P(StatusPageWorkers, StatusPageWorkers, ::testing::Values(1, 4),
                         [](const auto& info) { return std::to_string(info.param) + "_workers"; });

// with_status_page in front of a user's own Router, as its header shows it.
class StatusPageLibrary : public test::Test {
 protected:
  void start(http::StatusPageOptions page = {}, int workers = 1) {
    stats = std::make_shared<http::ServerStats>();
    http::Router router;
    router.add("GET", "/hello", [](http::Request&) -> Task<http::Response> {
      co_return http::Response::text(200, "hello\n");
    });
    // A route the page's prefix must hide: it is never reached.
    router.add("GET", "/_wire/mine", [](http::Request&) -> Task<http::Response> {
      co_return http::Response::text(200, "the inner handler\n");
    });
    http::Options options;
    options.stats = stats;
    ServeOptions serve_options;
    serve_options.counters = stats;
    serve_options.workers = workers;
    server = std::make_unique<BackgroundServer>(
        "tcp://127.0.0.1:0",
        http::connection_handler(http::with_status_page(router.handler(), stats, page), options),
        serve_options);
  }
  void TearDown() override {
    server.reset();
    test::Test::TearDown();
  }
  std::shared_ptr<http::ServerStats> stats;
  std::unique_ptr<BackgroundServer> server;
  test::TempDir dir;
};

TEST_F(StatusPageLibrary, GetAndHeadOnlyNeverCachedNothingLoadedAndTheRestPassesThrough) {
  start();
  RawClient client(server->address());
  for (const char* page : {"/_wire/status", "/_wire/status.json", "/_wire/metrics"}) {
    SCOPED_TRACE(page);
    const Answer get = client.get(page);
    EXPECT_EQ(get.status, 200);
    EXPECT_EQ(get.header("cache-control"), "no-store");
    EXPECT_EQ(get.header("x-content-type-options"), "nosniff");
    EXPECT_FALSE(get.body.empty());
    const Answer head = client.get(page, "HEAD");
    EXPECT_EQ(head.status, 200);
    EXPECT_EQ(head.header("cache-control"), "no-store");
    EXPECT_GT(std::stoul(head.header("content-length")), 0u) << "the length GET would have";
    for (const char* method : {"POST", "PUT", "DELETE"}) {
      const Answer other = client.exchange(std::string(method) + " " + page +
                                           " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
      EXPECT_EQ(other.status, 405) << method;
      EXPECT_EQ(other.header("allow"), "GET, HEAD");
    }
  }
  const Answer html = client.get("/_wire/status");
  EXPECT_EQ(html.header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(html.header("content-security-policy").rfind("default-src 'none';", 0), 0u)
      << html.head;
  EXPECT_TRUE(contains(html.body, "<meta http-equiv=\"refresh\" content=\"2\">"));
  // Nothing to fetch and nothing to run: no script, no src, no stylesheet link, no URL.
  for (const char* loads : {"<script", "src=", "<link", "http:", "https:", "url(", "@import"}) {
    EXPECT_FALSE(contains(html.body, loads)) << loads;
  }
  // /_wire and /_wire/ lead to the page; any other name under /_wire is not the inner's.
  for (const char* target : {"/_wire", "/_wire/"}) {
    const Answer moved = client.get(target);
    EXPECT_EQ(moved.status, 302) << target;
    EXPECT_EQ(moved.header("location"), "/_wire/status");
    // Nothing there takes a POST: a redirect would send the client on to a 405.
    const Answer post = client.exchange(std::string("POST ") + target +
                                        " HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    EXPECT_EQ(post.status, 405) << target;
    EXPECT_EQ(post.header("allow"), "GET, HEAD") << target;
    EXPECT_EQ(post.header("location"), "") << target;
  }
  EXPECT_EQ(client.get("/_wire/mine").status, 404);
  EXPECT_EQ(client.get("/_wire/status/").status, 404);
  EXPECT_EQ(client.get("/_wire/status?refresh=1").status, 200) << "a query is no other page";
  EXPECT_EQ(client.get("/hello").body, "hello\n");
  EXPECT_EQ(client.get("/_wirex").status, 404) << "the inner's 404: only /_wire is taken";
}

// Four workers answering twenty views from four clients at once read the fd table once: it is
// the whole machine's /proc/net, and a worker reading it answers nobody. A connection opened
// after that read is not in what they show (the interval here is an hour), and every page says
// how old its table is.
TEST_F(StatusPageLibrary, ViewsWithinTheIntervalShareOneReadOfTheFdTable) {
  http::StatusPageOptions page;
  page.fd_table_interval = std::chrono::hours(1);
  start(page, 4);
  std::vector<std::thread> viewers;
  for (int i = 0; i < 4; ++i) {
    viewers.emplace_back([this] {
      RawClient client(server->address());
      for (const char* target : {"/_wire/status", "/_wire/status.json", "/_wire/metrics",
                                 "/_wire/status.json", "/_wire/status"}) {
        const Answer answer = client.get(target);
        EXPECT_EQ(answer.status, 200) << target;
        EXPECT_FALSE(contains(answer.body, "not read yet")) << "the first view waits for it";
      }
    });
  }
  for (auto& viewer : viewers) viewer.join();

  RawClient late(server->address());
  EXPECT_EQ(late.get("/hello").status, 200);
  const Answer json = late.get("/_wire/status.json");
  const Answer metrics = late.get("/_wire/metrics");
  const Answer html = late.get("/_wire/status");
  const auto v = parsed_by_python(dir, metrics.body, json.body);
  EXPECT_EQ(number_of(v, "json\tfd_table_reads"), 1u) << json.body;
  EXPECT_EQ(number_of(v, "sample\twire_fd_table_reads_total{}"), 1u) << metrics.body;
  EXPECT_TRUE(v.count("json\tfds.age_seconds")) << json.body;
  EXPECT_TRUE(v.count("sample\twire_fd_table_age_seconds{}")) << metrics.body;
  EXPECT_EQ(number_of(v, "json\tfds.listening#"), 4u) << "read while the server listened";
  const std::string late_peer = late.socket().local_address().to_string().substr(6);
  EXPECT_FALSE(contains(json.body, "\"" + late_peer + "\"")) << "read before it connected";
  EXPECT_TRUE(contains(visible_text(html.body), " s ago")) << html.body;
}

// Past the interval, the next views bring a fresh read: a connection opened after the first
// read shows up (waited for with a bounded poll), and no view made more than one read.
TEST_F(StatusPageLibrary, ANewConnectionShowsUpOnceTheIntervalHasPassed) {
  http::StatusPageOptions page;
  page.fd_table_interval = 50ms;
  start(page);
  RawClient viewer(server->address());
  ASSERT_EQ(viewer.get("/_wire/status.json").status, 200);
  RawClient newcomer(server->address());
  EXPECT_EQ(newcomer.get("/hello").status, 200);
  const std::string peer = "\"" + newcomer.socket().local_address().to_string().substr(6) + "\"";
  int views = 1;
  Answer json;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    json = viewer.get("/_wire/status.json");
    ++views;
    ASSERT_EQ(json.status, 200);
    if (contains(json.body, "\"peer\": " + peer)) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << json.body;
    std::this_thread::sleep_for(5ms);
  }
  const auto v = parsed_by_python(dir, "", json.body);
  const auto reads = number_of(v, "json\tfd_table_reads");
  EXPECT_GE(reads, 2u) << "a second read found the newcomer";
  EXPECT_LE(reads, static_cast<std::uint64_t>(views));
}

// A file name, a description and a path with markup in them: shown as text everywhere.
TEST_F(StatusPageLibrary, HostileNamesAreEscapedInTheHtmlAndTheJson) {
  const std::string hostile = "<img src=x onerror=alert(1)>\"q'&\x01.txt";
  http::StatusPageOptions page;
  page.description = "<script>alert(\"described\")</script>";
  start(page);
  // Held open by this process, so it is in the fd table the page shows.
  const std::string path = dir.file(hostile);
  write_file(path, "x");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  RawClient client(server->address());
  const Answer html = client.get("/_wire/status");
  const Answer json = client.get("/_wire/status.json");
  ::close(fd);
  EXPECT_FALSE(contains(html.body, "<img")) << html.body;
  EXPECT_FALSE(contains(html.body, "<script")) << html.body;
  EXPECT_TRUE(contains(html.body, "&lt;img src=x onerror=alert(1)&gt;&quot;q&#39;&amp;"))
      << html.body;
  EXPECT_TRUE(contains(html.body, "&lt;script&gt;alert(&quot;described&quot;)&lt;/script&gt;"));
  EXPECT_FALSE(contains(json.body, "<")) << "not even inside JSON strings";
  const auto v = parsed_by_python(dir, "", json.body);
  EXPECT_EQ(value_of(v, "json\tdescription"), "\"<script>alert(\\\"described\\\")</script>\"");
  bool found = false;
  for (const auto& [key, value] : v) {
    if (key.rfind("json\tfds.other.", 0) == 0 && key.size() > 7 &&
        key.substr(key.size() - 7) == ".target") {
      found = found || value == "\"" + path.substr(0, path.size() - hostile.size()) +
                                    "<img src=x onerror=alert(1)>\\\"q'&\\u0001.txt\"";
    }
  }
  EXPECT_TRUE(found) << "python3's json reads the name back exactly";
}

TEST(StatusPageDefault, OnForLoopbackAndUnixAddressesOnly) {
  // Addresses parsed, never connected to.
  for (const char* on : {"tcp://127.0.0.1:8000", "tcp://127.1.2.3:80", "tcp://[::1]:8000",
                         "tcp://[::ffff:127.0.0.1]:8000", "unix:/run/app.sock", "unix:@name"}) {
    EXPECT_TRUE(http::status_page_on_by_default(Address::parse(on))) << on;
  }
  for (const char* off : {"tcp://0.0.0.0:8000", "tcp://[::]:8000", "tcp://192.0.2.1:80",
                          "tcp://[2001:db8::1]:80", "tcp://[::ffff:192.0.2.1]:80"}) {
    EXPECT_FALSE(http::status_page_on_by_default(Address::parse(off))) << off;
  }
}

namespace {

// A `wire serve` child: the URL of its first line, and what it printed after that.
class Served {
 public:
  explicit Served(std::vector<std::string> args)
      : child_(with_binary(std::move(args)), Child::Options::merged()) {
    const std::string line = child_.read_line();
    const auto at = line.find(" at ");
    if (line.rfind("Serving ", 0) != 0 || at == std::string::npos) {
      throw std::runtime_error("unexpected first line: " + line + child_.read_all());
    }
    first_line_ = line;
    url_ = line.substr(at + 4);
    while (!url_.empty() && url_.back() == '\n') url_.pop_back();
  }
  ~Served() {
    if (!stopped_) (void)stop();
  }
  // Stops it gracefully (exit 0 expected) and returns what it printed after the first line.
  std::string stop() {
    stopped_ = true;
    child_.signal(SIGTERM);
    std::string rest = child_.read_all();
    EXPECT_EQ(child_.wait(), 0) << rest;
    return rest;
  }
  const std::string& url() const { return url_; }
  const std::string& first_line() const { return first_line_; }
  // 127.0.0.1 and the port printed, whatever host the URL names (0.0.0.0 included).
  Address loopback() const {
    const auto colon = url_.rfind(':');
    return Address::inet("127.0.0.1",
                         static_cast<std::uint16_t>(std::stoi(url_.substr(colon + 1))));
  }

 private:
  static std::vector<std::string> with_binary(std::vector<std::string> args) {
    args.insert(args.begin(), WIRE_CLI);
    return args;
  }
  Child child_;
  std::string first_line_;
  std::string url_;
  bool stopped_ = false;
};

// Headless Chromium's DOM of `url` once loaded: what a browser makes of the page.
std::string chromium_dom(const test::TempDir& dir, const std::string& url) {
  const std::string profile = dir.file("chromium-profile");
  std::filesystem::create_directories(profile);
  Child::Options files;
  files.stdout_path = dir.file("dom.html");
  files.stderr_path = dir.file("chromium.log");
  // Without the background-networking flags it tries to reach Google's servers.
  Child chromium({"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--user-data-dir=" + profile, "--dump-dom", url},
                 files);
  const auto code = chromium.wait_at_most(20s);
  EXPECT_EQ(code, 0) << test::slurp(dir.file("chromium.log"));
  return test::slurp(dir.file("dom.html"));
}

}  // namespace

class StatusPageCli : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    site = dir.file("site");
    std::filesystem::create_directories(site);
    write_file(site + "/a.txt", "aaa");
  }
  test::TempDir dir;
  std::string site;
};

// The page as a browser renders it: the listening socket, a connection this test holds open
// (its address as the server sees the peer, ESTAB), and a file with markup in its name that
// the server holds open for a download that stalls, shown as text.
TEST_F(StatusPageCli, ChromiumShowsTheListenerAHeldConnectionAndEscapedNames) {
  if (!test::have_program("chromium")) GTEST_SKIP() << "chromium is not installed";
  const std::string folder = dir.file("<script>alert(1)<\\script>");
  std::filesystem::create_directories(folder);
  const std::string hostile = "<img src=x onerror=alert(2)>.bin";
  {
    // Sparse: 64 MiB that take no disk and more than any socket buffer holds.
    const int fd = ::open((folder + "/" + hostile).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 64 << 20), 0);
    ::close(fd);
  }
  write_file(folder + "/a.txt", "aaa");
  Served served({"serve", "0", folder, "-q"});
  const Address address = served.loopback();
  RawClient held(address);
  EXPECT_EQ(held.get("/a.txt").body, "aaa");
  Socket stalled = create_connection(std::vector<Address>{address}, 5s);
  stalled.send_all("GET /" + percent_encode_all(hostile) + " HTTP/1.1\r\nHost: x\r\n\r\n");
  stalled.set_timeout(5s);
  EXPECT_EQ(stalled.recv(12), "HTTP/1.1 200") << "the download started; it is never read";

  const std::string dom = chromium_dom(dir, served.url() + "_wire/status");
  const std::string text = visible_text(dom);
  const std::string port = std::to_string(address.port());
  EXPECT_TRUE(has_fd_row(text, "listening 127.0.0.1:" + port + " ")) << text;
  const std::string peer = held.socket().local_address().to_string().substr(6);
  EXPECT_TRUE(has_fd_row(text, "client " + peer + " ESTAB ")) << text;
  // Markup in names stays text: the DOM holds no element made of it.
  EXPECT_FALSE(contains(dom, "<img")) << dom;
  EXPECT_EQ(occurrences(dom, "<script"), 0u) << dom;
  EXPECT_TRUE(contains(dom, "&lt;img src=x onerror=alert(2)&gt;.bin")) << dom;
  EXPECT_TRUE(contains(dom, "&lt;script&gt;alert(1)&lt;\\script&gt;")) << dom;
  EXPECT_TRUE(contains(text, "wire status"));
  // A reset ends the stalled download at once (a graceful stop would wait out its grace).
  stalled.set_option(option::linger, std::chrono::seconds(0));
  stalled.close();
  served.stop();
}

TEST_F(StatusPageCli, OffWithTheFlagAndByDefaultOnOtherAddresses) {
  {
    Served off({"serve", "0", site, "-q", "--status", "off"});
    RawClient client(off.loopback());
    EXPECT_EQ(client.get("/_wire/status").status, 404);
    EXPECT_EQ(client.get("/_wire/metrics").status, 404);
    EXPECT_EQ(client.get("/a.txt").body, "aaa");
  }
  {
    // Every interface: bound only to learn the default, talked to through 127.0.0.1.
    Served everywhere({"serve", site, "-q", "--bind", "0.0.0.0:0"});
    RawClient client(everywhere.loopback());
    EXPECT_EQ(client.get("/_wire/status").status, 404);
    EXPECT_EQ(client.get("/a.txt").body, "aaa");
  }
  {
    Served asked({"serve", site, "-q", "--bind", "0.0.0.0:0", "--status", "on"});
    RawClient client(asked.loopback());
    EXPECT_EQ(client.get("/_wire/status").status, 200);
  }
  Child help({WIRE_CLI, "serve", "--help"}, Child::Options{});
  const std::string usage = help.read_all();
  EXPECT_EQ(help.wait_at_most(5s), 0);
  for (const char* words : {"--status", "/_wire/status", "/_wire/metrics", "loopback"}) {
    EXPECT_TRUE(contains(usage, words)) << words << "\n" << usage;
  }
  Child bad({WIRE_CLI, "serve", "0", site, "--status", "maybe"}, Child::Options::merged());
  EXPECT_EQ(bad.wait_at_most(5s), 2);
  const std::string said = bad.read_all();
  EXPECT_EQ(said.rfind("wire: ", 0), 0u) << said;
  EXPECT_TRUE(contains(said, "--status")) << said;
}

// The choice documented in the README: while the page is on, /_wire is the page's; the
// folder's _wire is neither served nor listed, and wire serve says so once at start.
TEST_F(StatusPageCli, AWireFolderIsNeitherServedNorListedAndSaidOnce) {
  std::filesystem::create_directories(site + "/_wire");
  write_file(site + "/_wire/status", "a file named status");
  write_file(site + "/_wire/notes.txt", "notes");
  {
    Served served({"serve", "0", site, "-q"});
    RawClient client(served.loopback());
    const Answer page = client.get("/_wire/status");
    EXPECT_EQ(page.status, 200);
    EXPECT_TRUE(contains(page.body, "<h1>wire status</h1>"));
    for (const char* target : {"/_wire/notes.txt", "/%5Fwire/notes.txt", "//_wire/notes.txt",
                               "/./_wire/status", "/%5Fwire/"}) {
      EXPECT_EQ(client.get(target).status, 404) << target;
    }
    const Answer listing = client.get("/");
    EXPECT_EQ(listing.status, 200);
    EXPECT_TRUE(contains(listing.body, "a.txt"));
    EXPECT_FALSE(contains(listing.body, "_wire")) << listing.body;
    for (int i = 0; i < 3; ++i) EXPECT_EQ(client.get("/a.txt").status, 200);
    const std::string rest = served.stop();
    EXPECT_EQ(occurrences(rest,
                          "_wire is not served: /_wire is the status page's (--status "
                          "off serves it)"),
              1u)
        << rest;
    EXPECT_TRUE(contains(rest, "wire: " + site + "/_wire is not served")) << rest;
  }
  {
    Served off({"serve", "0", site, "-q", "--status", "off"});
    RawClient client(off.loopback());
    EXPECT_EQ(client.get("/_wire/status").body, "a file named status");
    EXPECT_EQ(client.get("/_wire/notes.txt").body, "notes");
    EXPECT_TRUE(contains(client.get("/").body, "href=\"_wire/\""));
    EXPECT_FALSE(contains(off.stop(), "not served"));
  }
  // Without a _wire, nothing is said and the listing shows no status URL.
  std::filesystem::remove_all(site + "/_wire");
  Served plain({"serve", "0", site, "-q"});
  RawClient client(plain.loopback());
  EXPECT_FALSE(contains(client.get("/").body, "_wire"));
  EXPECT_FALSE(contains(plain.stop(), "_wire"));
}

// On by default on a Unix socket; a path with a quote and a backslash in it comes through
// Prometheus's parser as the label value it is. Four workers share one listener's queue.
TEST_F(StatusPageCli, UnixSocketsGetThePageAndLabelValuesAreEscaped) {
  // Quote, backslash and a byte that is not UTF-8 (it becomes U+FFFD: the format is UTF-8).
  const std::string path = dir.file("we\"ird\\name\xff.sock");
  std::string label = json_quoted("unix:" + path);  // as python's json.dumps writes it
  label.replace(label.find('\xff'), 1, "\\ufffd");
  Served served({"serve", site, "-q", "--bind", "unix:" + path, "--workers", "4"});
  RawClient client(Address::unix_path(path));
  EXPECT_EQ(client.get("/a.txt").body, "aaa");
  const Answer metrics = client.get("/_wire/metrics");
  ASSERT_EQ(metrics.status, 200);
  const auto v = parsed_by_python(dir, metrics.body);
  EXPECT_EQ(number_of(v, "sample\twire_listening_sockets{address=" + label + "}"), 4u)
      << metrics.body;
  EXPECT_EQ(number_of(v, "sample\twire_connection_states{state=\"ESTAB\"}"), 1u);
  EXPECT_EQ(number_of(v, "sample\twire_http_requests_total{code=\"200\"}"), 1u);
  served.stop();
}

// A folder and a socket path named with terminal escapes: the "Serving" line shows them as
// \xNN, as every other line naming them does, so a name cannot retitle or recolour the terminal.
TEST_F(StatusPageCli, TheServingLineShowsControlBytesEscaped) {
  const std::string folder = dir.file("x\x1b]0;owned\x07\x1b[31m");
  std::filesystem::create_directories(folder);
  write_file(folder + "/a.txt", "aaa");
  const std::string path = dir.file("s\x1b[2J.sock");
  Served served({"serve", folder, "-q", "--bind", "unix:" + path});
  const std::string& line = served.first_line();
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  EXPECT_EQ(line.find('\x07'), std::string::npos) << line;
  EXPECT_TRUE(contains(line, "x\\x1b]0;owned\\x07\\x1b[31m at ")) << line;
  EXPECT_TRUE(contains(line, "s\\x1b[2J.sock:/")) << line;
  RawClient client(Address::unix_path(path));
  EXPECT_EQ(client.get("/a.txt").body, "aaa") << "served all the same";
  served.stop();
}
