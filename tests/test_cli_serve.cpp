// `wire serve` as python3 -m http.server's users type it: a bare port first, -d/--directory,
// --bind with loopback kept unless a host is named, and the URL it prints taken as it is by
// wire get, curl and python3's urllib. Servers bind loopback only (port 0, abstract names).
#include <fstream>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;
using test::Child;

namespace {

void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

// A `wire serve` child and the URL its first line prints ("Serving DIR at URL").
class Served {
 public:
  // `args` after WIRE_CLI; or, with `shell`, a /bin/sh command line run as it is.
  explicit Served(std::vector<std::string> args, bool shell = false)
      : child_(shell ? std::vector<std::string>{"/bin/sh", "-c", args.at(0)}
                     : with_binary(std::move(args)),
               Child::Options::merged()) {
    line_ = child_.read_line();
    const auto at = line_.find(" at ");
    if (line_.rfind("Serving ", 0) != 0 || at == std::string::npos) {
      throw std::runtime_error("unexpected first line: " + line_ + child_.read_all());
    }
    url_ = line_.substr(at + 4);
    while (!url_.empty() && url_.back() == '\n') url_.pop_back();
  }
  ~Served() {
    child_.signal(SIGTERM);
    (void)child_.read_all();
    EXPECT_EQ(child_.wait(), 0) << "a graceful stop exits 0";
  }
  const std::string& url() const { return url_; }
  const std::string& line() const { return line_; }

 private:
  static std::vector<std::string> with_binary(std::vector<std::string> args) {
    args.insert(args.begin(), WIRE_CLI);
    return args;
  }
  Child child_;
  std::string line_;
  std::string url_;
};

// What `args` print on stdout; the test fails unless they exit 0 within 5 s.
std::string output_of(std::vector<std::string> args) {
  Child child(args, Child::Options{});
  const std::optional<int> code = child.wait_at_most(5s);
  EXPECT_EQ(code, 0) << args.front();
  return code ? child.read_all() : std::string();
}

// GETs `url` with python3's urllib: the body, or "HTTP <code>".
std::string urllib_get(const std::string& url) {
  return output_of({"/usr/bin/python3", "-c",
                    "import sys, urllib.request, urllib.error\n"
                    "try:\n"
                    "    sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read()"
                    ".decode())\n"
                    "except urllib.error.HTTPError as e:\n"
                    "    sys.stdout.write('HTTP %d' % e.code)\n",
                    url});
}

std::string curl_get(const std::vector<std::string>& extra, const std::string& url) {
  std::vector<std::string> args = {"curl", "-sS", "--max-time", "5"};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(url);
  return output_of(args);
}

// A usage error: exit 2 within 5 s, before anything listens, with a `wire: ` line.
std::string refused(std::vector<std::string> args) {
  args.insert(args.begin(), WIRE_CLI);
  Child child(args, Child::Options::merged());
  const std::optional<int> code = child.wait_at_most(5s);
  EXPECT_EQ(code, 2) << args[2];
  const std::string said = code ? child.read_all() : "";
  EXPECT_EQ(said.rfind("wire: ", 0), 0u) << said;
  EXPECT_EQ(said.find('\n'), said.size() - 1) << "one line: " << said;
  return said;
}

}  // namespace

class CliServeTest : public test::Test {
 protected:
  void SetUp() override {
    test::Test::SetUp();
    site = dir.file("site");
    std::filesystem::create_directories(site);
    write_file(site + "/hello.txt", "hello from site");
  }
  test::TempDir dir;
  std::string site;
};

// `python3 -m http.server 8000` is `wire serve 8000` (port 0 here: any free one).
TEST_F(CliServeTest, ABarePortFirstIsThePortOnLoopback) {
  Served served({"serve", "0", site, "-q"});
  EXPECT_EQ(served.url().rfind("http://127.0.0.1:", 0), 0u) << served.line();
  EXPECT_NE(served.url(), "http://127.0.0.1:0/") << "the bound port is printed";
  EXPECT_EQ(urllib_get(served.url() + "hello.txt"), "hello from site");
  EXPECT_EQ(curl_get({}, served.url() + "hello.txt"), "hello from site");
}

TEST_F(CliServeTest, BindWithAPortAloneKeepsLoopback) {
  for (const std::vector<std::string>& bind :
       {std::vector<std::string>{"--bind", ":0"}, {"--bind", "tcp://:0"}, {"-b", "0"}}) {
    SCOPED_TRACE(bind[1]);
    std::vector<std::string> args = {"serve", site, "-q"};
    args.insert(args.end(), bind.begin(), bind.end());
    Served served(args);
    EXPECT_EQ(served.url().rfind("http://127.0.0.1:", 0), 0u) << served.line();
    EXPECT_EQ(urllib_get(served.url() + "hello.txt"), "hello from site");
  }
  // python3 -m http.server --bind HOST PORT: a host alone takes the PORT given first.
  Served host_alone({"serve", "0", site, "--bind", "127.0.0.1", "-q"});
  EXPECT_EQ(urllib_get(host_alone.url() + "hello.txt"), "hello from site");
  if (test::ipv6_loopback_available()) {
    Served v6({"serve", "0", site, "--bind", "::1", "-q"});
    EXPECT_EQ(v6.url().rfind("http://[::1]:", 0), 0u) << v6.line();
    EXPECT_EQ(curl_get({}, v6.url() + "hello.txt"), "hello from site");
  }
}

// The rule for a folder whose name is all digits: a first argument of digits is a port,
// so such a folder is written ./8000 (or given with -d, or second after a PORT).
TEST_F(CliServeTest, AFolderNamedWithDigitsIsReachable) {
  std::filesystem::create_directories(dir.file("0"));
  write_file(dir.file("0") + "/in-zero.txt", "in the folder named 0");
  const std::string cd = "cd '" + dir.file("") + "' && exec " + WIRE_CLI + " serve -q ";
  {
    Served served({cd + "./0 --bind 127.0.0.1:0"}, true);
    EXPECT_EQ(served.line().rfind("Serving ./0 at http://127.0.0.1:", 0), 0u) << served.line();
    EXPECT_EQ(curl_get({}, served.url() + "in-zero.txt"), "in the folder named 0");
  }
  {
    Served served({cd + "-d 0 --bind :0"}, true);
    EXPECT_EQ(urllib_get(served.url() + "in-zero.txt"), "in the folder named 0");
  }
  {
    // A bare 0 is the port: the folder served is ".", which lists 0/.
    Served served({cd + "0"}, true);
    EXPECT_EQ(served.line().rfind("Serving . at http://127.0.0.1:", 0), 0u) << served.line();
    EXPECT_NE(curl_get({}, served.url()).find("href=\"0/\""), std::string::npos);
  }
  Served second({"serve", "0", dir.file("0"), "-q"});
  EXPECT_EQ(urllib_get(second.url() + "in-zero.txt"), "in the folder named 0");
}

TEST_F(CliServeTest, DirectoryIsTheDirPositionalByAnotherName) {
  {
    Served served({"serve", "-d", site, "--bind", ":0", "-q"});
    EXPECT_EQ(curl_get({}, served.url() + "hello.txt"), "hello from site");
  }
  {
    Served same({"serve", site, "--directory", site + "/./", "--bind", ":0", "-q"});
    EXPECT_EQ(urllib_get(same.url() + "hello.txt"), "hello from site");
  }
  std::filesystem::create_directories(dir.file("other"));
  const std::string said = refused({"serve", site, "-d", dir.file("other"), "--bind", ":0"});
  EXPECT_NE(said.find("differ; give the folder once"), std::string::npos) << said;
}

// Before: "Serving . at http+unix:wire-...:/", which names a file, not the abstract socket.
TEST_F(CliServeTest, AnAbstractSocketsUrlWorksAsPrintedInWireGetAndCurl) {
  const std::string name = "wire-test-serve-" + std::to_string(::getpid());
  Served served({"serve", site, "--bind", "unix:@" + name, "-q"});
  EXPECT_EQ(served.url(), "http+unix:@" + name + ":/");
  EXPECT_EQ(output_of({WIRE_CLI, "get", served.url() + "hello.txt"}), "hello from site");
  EXPECT_EQ(curl_get({"--abstract-unix-socket", name}, "http://localhost/hello.txt"),
            "hello from site");
}

TEST_F(CliServeTest, ContradictionsAndBadValuesAreUsageErrors) {
  EXPECT_NE(refused({"serve", "70000"}).find("'70000' is out of range 0-65535"), std::string::npos);
  EXPECT_NE(refused({"serve", "0", "--bind", "127.0.0.1:0"}).find("both say where to listen"),
            std::string::npos);
  EXPECT_NE(refused({"serve", "0", "--bind", "unix:@x"}).find("both say where to listen"),
            std::string::npos);
  EXPECT_NE(refused({"serve", site, site}).find("'" + site + "' is not a port"), std::string::npos);
  EXPECT_NE(refused({"serve", "--bind", "127.0.0.1:abc"}).find("--bind: "), std::string::npos);
  EXPECT_NE(refused({"serve", "--bind", "http://127.0.0.1:0"}).find("unknown scheme 'http'"),
            std::string::npos);
  EXPECT_NE(refused({"serve", "0", site, "extra"}).find("extra"), std::string::npos);
}

TEST_F(CliServeTest, HelpSaysWhereItListensAndTheDigitsRule) {
  const std::string help = output_of({WIRE_CLI, "serve", "--help"});
  for (const char* words : {"127.0.0.1", "./8000", "--directory", "every interface", "0.0.0.0",
                            "python3 -m http.server"}) {
    EXPECT_NE(help.find(words), std::string::npos) << words << "\n" << help;
  }
}
