// `wire get` run as a user runs it, with curl's flags, against wire's own server, a raw
// scripted peer, python3's http.server and nginx. Exit codes: 0 ok, 1 runtime or HTTP
// error, 2 usage error.
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "support.hpp"
#include "wire/http/client.hpp"
#include "wire/http/server.hpp"
#include "wire/http/static_files.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::BackgroundServer;
using test::Child;
using test::exists;
using test::random_bytes;
using test::slurp;

namespace {

// Answers with what it was sent: "METHOD TARGET\n", each header "name: value\n", "\n", the
// body. Redirects /redirect?to=URL.
http::Handler mirror() {
  return [](http::Request& request) -> Task<http::Response> {
    if (request.path == "/redirect") {
      http::Response r = http::Response::text(302, "");
      r.header("Location", std::string(request.query.substr(3)));
      co_return r;
    }
    if (request.path == "/missing") co_return http::Response::text(404, "no such thing\n");
    std::string out = std::string(request.method) + " " + std::string(request.target) + "\n";
    for (const auto& h : request.head->headers()) {
      out += std::string(h.name) + ": " + std::string(h.value) + "\n";
    }
    out += "\n" + request.body;
    co_return http::Response::text(200, std::move(out));
  };
}

struct GetRun {
  int code;
  std::string out, err;
};

// Runs wire with `args`, stdin from `input`, and returns exit code, stdout and stderr.
GetRun wire_get(std::vector<std::string> args, const std::string& input = "") {
  test::TempDir io;
  std::ofstream(io.file("in"), std::ios::binary) << input;
  args.insert(args.begin(), {WIRE_CLI, "get"});
  Child::Options options;
  options.stdin_path = io.file("in");
  options.stderr_path = io.file("err");
  Child child(args, options);
  std::string out = child.read_all();
  int code = child.wait();
  return {code, out, slurp(io.file("err"))};
}

class CliGetTest : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    server =
        std::make_unique<BackgroundServer>("tcp://127.0.0.1:0", http::connection_handler(mirror()));
    base = "http://127.0.0.1:" + std::to_string(server->address().port());
  }
  void TearDown() override {
    server.reset();
    test::Test::TearDown();
  }
  std::unique_ptr<BackgroundServer> server;
  std::string base;
};

}  // namespace

TEST_F(CliGetTest, OutputFilesAppearOnlyWithAResponseAndWriteErrorsFail) {
  test::TempDir dir;
  // Refused: no empty file left behind.
  Socket probe = create_server("tcp://127.0.0.1:0");
  const std::string closed = "http://127.0.0.1:" + std::to_string(probe.local_address().port());
  probe.close();
  GetRun refused = wire_get({"-o", dir.file("never.txt"), closed + "/x"});
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("Connection refused"), std::string::npos) << refused.err;
  EXPECT_FALSE(exists(dir.file("never.txt")));
  // A full disk is an error that names the file.
  GetRun full = wire_get({"-o", "/dev/full", base + "/x"});
  EXPECT_EQ(full.code, 1);
  EXPECT_NE(full.err.find("write /dev/full: No space left on device"), std::string::npos)
      << full.err;
  // -o - is stdout.
  GetRun dash = wire_get({"-o", "-", base + "/dash"});
  EXPECT_EQ(dash.code, 0);
  EXPECT_EQ(dash.out.rfind("GET /dash\n", 0), 0u) << dash.out;
  GetRun saved = wire_get({"-o", dir.file("saved.txt"), base + "/saved"});
  EXPECT_EQ(saved.code, 0);
  EXPECT_EQ(saved.out, "");
  EXPECT_EQ(slurp(dir.file("saved.txt")).rfind("GET /saved\n", 0), 0u);
}

TEST_F(CliGetTest, StatusesAndTheFailSilentAndShowErrorFlags) {
  GetRun plain = wire_get({base + "/missing"});
  EXPECT_EQ(plain.code, 1);
  EXPECT_EQ(plain.out, "no such thing\n") << "the body is printed, unlike -f";
  EXPECT_NE(plain.err.find("wire: GET " + base + "/missing: 404 Not Found"), std::string::npos)
      << plain.err;
  GetRun fail = wire_get({"-f", base + "/missing"});
  EXPECT_EQ(fail.code, 1);
  EXPECT_EQ(fail.out, "");
  GetRun silent = wire_get({"-s", base + "/missing"});
  EXPECT_EQ(silent.code, 1);
  EXPECT_EQ(silent.err, "");
  GetRun shown = wire_get({"-sS", "http://127.0.0.1:1/"});
  EXPECT_EQ(shown.code, 1);
  EXPECT_NE(shown.err.find("wire: connect tcp://127.0.0.1:1"), std::string::npos) << shown.err;
  GetRun quiet = wire_get({"-s", "http://127.0.0.1:1/"});
  EXPECT_EQ(quiet.code, 1);
  EXPECT_EQ(quiet.err, "");
}

TEST_F(CliGetTest, UsageErrorsExitTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-H", "nocolon", base + "/"},
           {"-H", "Bad Name: x", base + "/"},
           {"-H", "X-Injected: a\r\nHost: evil", base + "/"},
           {"-w", "%{no_such_variable}", base + "/"},
           {"-C", "-", base + "/"},  // resuming needs a file
           {"-u", "nopassword", base + "/"},
           {"http://127.0.0.1/a b"},
           {"http://127.0.0.1/\r\nX: y"},
           // Nothing typed may end up as a header or a request of its own.
           {"-A", "x\r\nX-Injected: 1", base + "/"},
           {"-X", "GET /admin HTTP/1.1\r\nHost: internal\r\n\r\nGET", base + "/"},
           {"-X", "GET /x", base + "/"},
           {"-I", "-d", "a=1", base + "/"},
           {"-I", "-X", "POST", base + "/"},
           {"-O", base + "/dir/"},
           {"--timeout", "nan", base + "/"},
           {"--timeout", "1e10", base + "/"},
           {"-m", "inf", base + "/"},
           {"-m", "0", base + "/"},
       }) {
    GetRun r = wire_get(args);
    EXPECT_EQ(r.code, 2) << args[0] << " " << args[1 % args.size()] << "\n" << r.err;
    EXPECT_FALSE(r.err.empty());
  }
}

TEST_F(CliGetTest, HeadersUserAgentAndCredentials) {
  GetRun r = wire_get({"-H", "User-Agent:", "-H", "X-Empty;", "-H", "X-Custom:  spaced  ", "-A",
                       "ignored-because-removed", "-u", "alice:s3cret", base + "/h"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.find("user-agent"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("X-Empty: \n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("X-Custom: spaced\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Authorization: Basic YWxpY2U6czNjcmV0\n"), std::string::npos) << r.out;
  GetRun agent = wire_get({"-A", "tester/1.0", base + "/a"});
  EXPECT_NE(agent.out.find("User-Agent: tester/1.0\n"), std::string::npos) << agent.out;
  GetRun url_user =
      wire_get({"http://bob:pw@127.0.0.1:" + std::to_string(server->address().port()) + "/u"});
  EXPECT_NE(url_user.out.find("Authorization: Basic Ym9iOnB3\n"), std::string::npos)
      << url_user.out;
}

TEST_F(CliGetTest, DataFlagsAsCurlHasThem) {
  test::TempDir dir;
  std::ofstream(dir.file("form.txt"), std::ios::binary) << "x=1\r\ny=2\n";
  GetRun joined = wire_get({"-d", "a=1", "-d", "b=2", base + "/post"});
  EXPECT_EQ(joined.out.rfind("POST /post\n", 0), 0u) << joined.out;
  EXPECT_NE(joined.out.find("Content-Type: application/x-www-form-urlencoded\n"),
            std::string::npos);
  EXPECT_EQ(joined.out.substr(joined.out.find("\n\n") + 2), "a=1&b=2");
  GetRun stripped = wire_get({"-d", "@" + dir.file("form.txt"), base + "/post"});
  EXPECT_EQ(stripped.out.substr(stripped.out.find("\n\n") + 2), "x=1y=2") << "-d drops CR/LF";
  GetRun binary = wire_get({"--data-binary", "@" + dir.file("form.txt"), base + "/post"});
  EXPECT_EQ(binary.out.substr(binary.out.find("\n\n") + 2), "x=1\r\ny=2\n");
  EXPECT_EQ(binary.out.find("x-www-form-urlencoded"), std::string::npos);
  GetRun from_stdin = wire_get({"--data-binary", "@-", base + "/post"}, "from stdin\n");
  EXPECT_EQ(from_stdin.out.substr(from_stdin.out.find("\n\n") + 2), "from stdin\n");
  GetRun get_with_body = wire_get({"-X", "GET", "-d", "q=1", base + "/search"});
  EXPECT_EQ(get_with_body.out.rfind("GET /search\n", 0), 0u) << "-X GET -d keeps GET";
}

TEST_F(CliGetTest, UploadFileIsStreamedAsPut) {
  test::TempDir dir;
  const std::string data = random_bytes(900000);  // under the server's 1 MiB body limit
  std::ofstream(dir.file("up.bin"), std::ios::binary) << data;
  GetRun put = wire_get({"-T", dir.file("up.bin"), base + "/dir/"});
  EXPECT_EQ(put.code, 0) << put.err;
  EXPECT_EQ(put.out.rfind("PUT /dir/up.bin\n", 0), 0u) << "a URL ending in / gets the name";
  EXPECT_NE(put.out.find("Content-Length: " + std::to_string(data.size()) + "\n"),
            std::string::npos);
  EXPECT_TRUE(put.out.substr(put.out.find("\n\n") + 2) == data);
  GetRun chunked = wire_get({"-T", "-", base + "/in"}, "streamed from stdin");
  EXPECT_NE(chunked.out.find("Transfer-Encoding: chunked\n"), std::string::npos) << chunked.out;
  EXPECT_EQ(chunked.out.substr(chunked.out.find("\n\n") + 2), "streamed from stdin");
}

TEST_F(CliGetTest, WriteOutVerboseHeadAndInclude) {
  GetRun w =
      wire_get({"-L", "-o", "/dev/null", "-w",
                "%{http_code} %{num_redirects} %{url_effective} %{remote_ip} %{content_type}\\n",
                base + "/redirect?to=/landed"});
  EXPECT_EQ(w.code, 0) << w.err;
  EXPECT_EQ(w.out, "200 1 " + base + "/landed 127.0.0.1 text/plain; charset=utf-8\n");
  GetRun v = wire_get({"-v", base + "/v"});
  EXPECT_NE(
      v.err.find("* connected to tcp://127.0.0.1:" + std::to_string(server->address().port())),
      std::string::npos)
      << v.err;
  EXPECT_NE(v.err.find("> GET /v HTTP/1.1\n"), std::string::npos) << v.err;
  EXPECT_NE(v.err.find("< HTTP/1.1 200 OK\n"), std::string::npos) << v.err;
  EXPECT_EQ(v.out.rfind("GET /v\n", 0), 0u) << "stdout holds the body only";
  GetRun head = wire_get({"-I", base + "/h"});
  EXPECT_EQ(head.out.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head.out;
  EXPECT_EQ(head.out.find("GET /h"), std::string::npos) << "no body for HEAD";
}

// python3's http.server answers HTTP/1.0: -i shows the version the server sent.
TEST_F(CliGetTest, IncludeShowsTheServersRealVersion) {
  if (!test::have_program("/usr/bin/python3")) GTEST_SKIP() << "python3 is not installed";
  test::TempDir dir;
  std::ofstream(dir.file("page.txt")) << "from python\n";
  Child python({"/usr/bin/python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                dir.file(""), "0"});
  const std::string line = python.read_line();  // "Serving HTTP on 127.0.0.1 port N (...)"
  const auto at = line.find(" port ");
  ASSERT_NE(at, std::string::npos) << line;
  const std::string port = line.substr(at + 6, line.find(' ', at + 6) - at - 6);
  GetRun r = wire_get({"-i", "http://127.0.0.1:" + port + "/page.txt"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("\r\n\r\nfrom python\n"), std::string::npos);
}

// -i used to keep the whole body in memory to print the head first (2.1 GB RSS for 2 GB).
TEST_F(CliGetTest, IncludeStreamsTheBodyInBoundedMemory) {
  if (!test::have_program("/usr/bin/python3")) GTEST_SKIP() << "python3 is not installed";
  test::TempDir dir;
  { std::ofstream sparse(dir.file("big.bin")); }
  ASSERT_EQ(::truncate(dir.file("big.bin").c_str(), 256 << 20), 0);
  BackgroundServer files("tcp://127.0.0.1:0",
                         http::connection_handler(http::static_files(dir.file(""))));
  const std::string url = "http://127.0.0.1:" + std::to_string(files.address().port()) + "/big.bin";
  // The child's peak RSS, from the kernel's accounting of waited-for children.
  Child python({"/usr/bin/python3", "-c",
                "import resource, subprocess, sys\n"
                "r = subprocess.run([sys.argv[1], 'get', '-i', sys.argv[2]], "
                "stdout=subprocess.DEVNULL)\n"
                "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n",
                WIRE_CLI, url});
  std::istringstream result(python.read_all());
  int code = -1;
  long max_rss_kib = 0;
  result >> code >> max_rss_kib;
  EXPECT_EQ(python.wait(), 0);
  EXPECT_EQ(code, 0);
  EXPECT_GT(max_rss_kib, 0);
  // Far below the 256 MiB body either way; under ASan the runtime's own shadow and
  // quarantine put the peak at 64 MiB before wire buffers anything (seen in CI).
#if defined(__SANITIZE_ADDRESS__)
  constexpr long bound_kib = 160 * 1024;
#else
  constexpr long bound_kib = 64 * 1024;
#endif
  EXPECT_LT(max_rss_kib, bound_kib) << "a 256 MiB body was buffered";
}

TEST_F(CliGetTest, RemoteNameTakesTheUrlsLastSegment) {
  test::TempDir dir;
  Child get({"/bin/sh", "-c", "cd \"$1\" && exec \"$2\" get -O \"$3\"", "sh", dir.file(""),
             WIRE_CLI, base + "/files/report%20v2.txt?download=1"});
  EXPECT_EQ(get.wait(), 0);
  EXPECT_EQ(slurp(dir.file("report v2.txt")).rfind("GET /files/report%20v2.txt?download=1\n", 0),
            0u);
  for (const char* bad : {"/files/", "/files/..", "/x/%2e%2e", "/a%2Fb"}) {
    Child refused({"/bin/sh", "-c", "cd \"$1\" && exec \"$2\" get -O \"$3\" 2>/dev/null", "sh",
                   dir.file(""), WIRE_CLI, base + bad});
    EXPECT_NE(refused.wait(), 0) << bad;
  }
}

// -C - continues a file: only the missing bytes come over, If-Range guards against a file
// that changed meanwhile (then it is written afresh), and a complete file is left alone.
TEST_F(CliGetTest, ContinueAtResumesSafely) {
  test::TempDir www, dir;
  const std::string data = random_bytes(2 << 20);
  std::ofstream(www.file("big.bin"), std::ios::binary) << data;
  BackgroundServer files("tcp://127.0.0.1:0",
                         http::connection_handler(http::static_files(www.file(""))));
  const std::string url = "http://127.0.0.1:" + std::to_string(files.address().port()) + "/big.bin";
  const std::string out = dir.file("big.bin");
  ASSERT_EQ(wire_get({"-o", out, url}).code, 0);
  ASSERT_EQ(::truncate(out.c_str(), 1000000), 0);
  GetRun resumed = wire_get({"-C", "-", "-o", out, "-w", "%{http_code} %{size_download}", url});
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_EQ(resumed.out, "206 " + std::to_string(data.size() - 1000000));
  EXPECT_TRUE(slurp(out) == data);
  GetRun complete = wire_get({"-C", "-", "-o", out, url});
  EXPECT_EQ(complete.code, 0) << complete.err;
  EXPECT_NE(complete.err.find("already complete"), std::string::npos) << complete.err;
  EXPECT_TRUE(slurp(out) == data);
  // The server's file changes: the partial one must not be spliced onto the new version.
  ASSERT_EQ(::truncate(out.c_str(), 1000000), 0);
  const std::string changed = random_bytes(2 << 20, 7);
  std::this_thread::sleep_for(1100ms);  // a new mtime second, so a new ETag and date
  std::ofstream(www.file("big.bin"), std::ios::binary | std::ios::trunc) << changed;
  GetRun fresh = wire_get({"-C", "-", "-o", out, "-w", "%{http_code}", url});
  EXPECT_EQ(fresh.code, 0) << fresh.err;
  EXPECT_EQ(fresh.out, "200");
  EXPECT_TRUE(slurp(out) == changed) << "spliced two versions";
}

TEST_F(CliGetTest, MaxTimeAndMaxFilesize) {
  test::TempDir www;
  std::ofstream(www.file("two.bin"), std::ios::binary) << std::string(2 << 20, 'z');
  BackgroundServer files("tcp://127.0.0.1:0",
                         http::connection_handler(http::static_files(www.file(""))));
  const std::string url = "http://127.0.0.1:" + std::to_string(files.address().port());
  GetRun capped = wire_get({"--max-filesize", "1000000", "-o", "/dev/null", url + "/two.bin"});
  EXPECT_EQ(capped.code, 1);
  EXPECT_NE(capped.err.find("larger than the limit of 1000000 bytes"), std::string::npos)
      << capped.err;
  // A server that answers the head and then trickles: -m ends it.
  Socket listener = create_server("tcp://127.0.0.1:0");
  std::thread peer([&] {
    auto [conn, addr] = listener.accept();
    conn.set_timeout(5s);
    (void)conn.makefile().read_until("\r\n\r\n");
    conn.send_all("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    for (int i = 0; i < 30 && conn.send_all("x", std::nothrow); ++i) {
      std::this_thread::sleep_for(50ms);
    }
  });
  GetRun slow = wire_get(
      {"-m", "0.3", "http://127.0.0.1:" + std::to_string(listener.local_address().port()) + "/"});
  peer.join();
  EXPECT_EQ(slow.code, 1);
  EXPECT_NE(slow.err.find("maximum time of 0.3 s"), std::string::npos) << slow.err;
}

// nginx with gzip on as the server: --compressed asks for it and prints the decoded body.
TEST_F(CliGetTest, CompressedAgainstNginxGzip) {
  if (!test::Nginx::available()) GTEST_SKIP() << "nginx is not installed (make test installs it)";
  test::TempDir dir;
  std::filesystem::create_directories(dir.file("www"));
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + " of a compressible file\n";
  std::ofstream(dir.file("www/text.txt")) << text;
  test::Nginx nginx(dir, dir.file("www"),
                    "gzip on;\n  gzip_min_length 0;\n  gzip_types text/plain;\n  default_type "
                    "text/plain;");
  const std::string url = nginx.url("/text.txt");
  GetRun decoded = wire_get({"--compressed", "-w", "\\n%{size_download}", url});
  EXPECT_EQ(decoded.code, 0) << decoded.err;
  const auto cut = decoded.out.rfind('\n');
  EXPECT_TRUE(decoded.out.substr(0, cut) == text) << "not the decoded text";
  EXPECT_LT(std::stoul(decoded.out.substr(cut + 1)), text.size() / 4) << "it came compressed";
  GetRun head = wire_get({"--compressed", "-I", url});
  EXPECT_NE(head.out.find("Content-Encoding: gzip"), std::string::npos) << head.out;
  GetRun plain = wire_get({url});
  EXPECT_TRUE(plain.out == text) << "without --compressed nothing is asked for or decoded";
}

// deflate as zlib data (the RFC) and as raw deflate (what some servers send), gzip members
// one after another, a bomb stopped by --max-filesize, and data that is not what it says.
TEST_F(CliGetTest, CompressedCodingsFromPython) {
  if (!test::have_program("/usr/bin/python3")) GTEST_SKIP() << "python3 is not installed";
  const char* script = R"(
import gzip, http.server, sys, zlib
text = b''.join(b'row %d of the table\n' % i for i in range(5000))
def raw(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()
bodies = {
    '/zlib': ('deflate', zlib.compress(text)),
    '/raw': ('deflate', raw(text)),
    '/members': ('gzip', gzip.compress(text[:1000]) + gzip.compress(text[1000:])),
    '/bomb': ('gzip', gzip.compress(b'\0' * (64 << 20))),
    '/garbage': ('gzip', b'this is not gzip at all'),
    '/cut': ('gzip', gzip.compress(text)[:-40]),
    '/twice': (['gzip', 'gzip'], gzip.compress(gzip.compress(text))),
    '/listed': (['deflate, gzip'], gzip.compress(zlib.compress(text))),
    '/br': ('br', b'not really brotli'),
}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a): pass
    def do_GET(self):
        coding, body = bodies[self.path]
        self.send_response(200)
        for c in (coding if isinstance(coding, list) else [coding]):
            self.send_header('Content-Encoding', c)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = http.server.HTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
)";
  Child python({"/usr/bin/python3", "-c", script});
  const std::string base_url = "http://127.0.0.1:" + python.read_line();
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "row " + std::to_string(i) + " of the table\n";
  for (const char* path : {"/zlib", "/raw", "/members", "/twice", "/listed"}) {
    GetRun r = wire_get({"--compressed", base_url.substr(0, base_url.size() - 1) + path});
    EXPECT_EQ(r.code, 0) << path << ": " << r.err;
    EXPECT_TRUE(r.out == text) << path;
  }
  const std::string trimmed = base_url.substr(0, base_url.size() - 1);  // the line's '\n'
  GetRun bomb =
      wire_get({"--compressed", "--max-filesize", "1000000", "-o", "/dev/null", trimmed + "/bomb"});
  EXPECT_EQ(bomb.code, 1);
  EXPECT_NE(bomb.err.find("larger than the limit"), std::string::npos) << bomb.err;
  for (const char* path : {"/garbage", "/cut", "/br"}) {
    GetRun bad = wire_get({"--compressed", "-o", "/dev/null", trimmed + path});
    EXPECT_EQ(bad.code, 1) << path;
    EXPECT_NE(bad.err.find("decode response"), std::string::npos) << path << ": " << bad.err;
  }
}

// The meter shows on a terminal's stderr when the body goes elsewhere, and is erased.
TEST_F(CliGetTest, ProgressMeterOnlyOnATerminalAndErased) {
  if (!test::have_program("/usr/bin/python3")) GTEST_SKIP() << "python3 is not installed";
  test::TempDir www;
  std::ofstream(www.file("big.bin"), std::ios::binary) << std::string(8 << 20, 'p');
  BackgroundServer files("tcp://127.0.0.1:0",
                         http::connection_handler(http::static_files(www.file(""))));
  const std::string url = "http://127.0.0.1:" + std::to_string(files.address().port()) + "/big.bin";
  // stderr on a pseudo-terminal, stdout to a file.
  Child python({"/usr/bin/python3", "-c",
                "import os, pty, subprocess, sys\n"
                "m, s = pty.openpty()\n"
                "p = subprocess.Popen([sys.argv[1], 'get', '-o', os.devnull, sys.argv[2]], "
                "stderr=s, stdout=subprocess.DEVNULL)\n"
                "os.close(s)\n"
                "out = b''\n"
                "while True:\n"
                "    try: chunk = os.read(m, 4096)\n"
                "    except OSError: break\n"
                "    if not chunk: break\n"
                "    out += chunk\n"
                "sys.stdout.write('%d %r' % (p.wait(), out))\n",
                WIRE_CLI, url});
  const std::string seen = python.read_all();
  EXPECT_EQ(python.wait(), 0);
  EXPECT_EQ(seen.rfind("0 ", 0), 0u) << seen;
  // The first chunk always draws (later ones at most 5 times a second); the end erases.
  EXPECT_NE(seen.find("% "), std::string::npos) << "no meter: " << seen;
  EXPECT_NE(seen.find("8.0 MiB"), std::string::npos) << "no total: " << seen;
  EXPECT_NE(seen.find("\\r\\x1b[K'"), std::string::npos) << "not erased: " << seen;
  GetRun piped = wire_get({"-o", "/dev/null", url});
  EXPECT_EQ(piped.err, "") << "no meter when stderr is not a terminal";
}

// What the hostile review found, each as its class.
TEST_F(CliGetTest, OptionsMayFollowTheUrlAndTakeOneValueEach) {
  GetRun r = wire_get({"-H", "X-A: 1", base + "/after", "-s", "-d", "a=1", "-H", "X-B: 2"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("POST /after\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("X-A: 1\n"), std::string::npos);
  EXPECT_NE(r.out.find("X-B: 2\n"), std::string::npos);
  EXPECT_EQ(r.out.substr(r.out.find("\n\n") + 2), "a=1");
}

TEST_F(CliGetTest, FoldersAreNotBodiesAndNothingIsSentForThem) {
  test::TempDir dir;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-d", "@" + dir.file(""), base + "/x"},
           {"--data-binary", "@" + dir.file(""), base + "/x"},
           {"-T", dir.file(""), base + "/x"},
           {"-d", "@" + dir.file("missing"), base + "/x"},
       }) {
    GetRun r = wire_get(args);
    EXPECT_EQ(r.code, 1) << args[0];
    EXPECT_EQ(r.out, "") << "something was sent for " << args[1];
  }
  GetRun named = wire_get({"-T", dir.file(""), base + "/x"});
  EXPECT_NE(named.err.find("Is a directory"), std::string::npos) << named.err;
}

TEST_F(CliGetTest, UploadNamesArePercentEncodedIntoTheUrl) {
  test::TempDir dir;
  std::ofstream(dir.file("a b#c?d%41")) << "x";
  GetRun r = wire_get({"-T", dir.file("a b#c?d%41"), base + "/up/"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("PUT /up/a%20b%23c%3Fd%2541\n", 0), 0u) << r.out;
}

// stderr to a pipe whose reader is gone: an error message must not kill wire by SIGPIPE.
TEST_F(CliGetTest, AClosedErrorPipeIsNotADeathBySignal) {
  Child sh({"/bin/bash", "-c",
            "\"$0\" get -v http://127.0.0.1:1/ 2>&1 | true; echo ${PIPESTATUS[0]}", WIRE_CLI});
  EXPECT_EQ(sh.read_all(), "1\n");
  EXPECT_EQ(sh.wait(), 0);
}

TEST_F(CliGetTest, PasswordsNeverAppearInMessages) {
  const std::string port = std::to_string(server->address().port());
  GetRun r = wire_get({"http://me:s3cret@127.0.0.1:" + port + "/missing"});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.find("s3cret"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("me:***@"), std::string::npos) << r.err;
}
