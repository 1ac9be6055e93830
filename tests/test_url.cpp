// URLs for the HTTP client: parse_url, RFC 3986 reference resolution and the redirect rule.
// Pure functions, no sockets (the redirect rule against a real server is in
// test_http_client.cpp).
#include "http/url.hpp"
#include "support.hpp"

using namespace wire;
using namespace std::string_literals;
using http::detail::redirect_allowed;
using http::detail::remove_dot_segments;
using http::detail::resolve_location;

class UrlTest : public test::Test {};

namespace {

// The message of the invalid_address error parse_url throws for `url`.
std::string refusal(std::string_view url) {
  try {
    (void)http::parse_url(url);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::invalid_address) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "parsed: " << url;
  return {};
}

}  // namespace

// RFC 3986 §5.4, every example, against its base.
TEST_F(UrlTest, ResolvesTheRfc3986Examples) {
  const std::string base = "http://a/b/c/d;p?q";
  const std::pair<const char*, const char*> examples[] = {
      // §5.4.1 normal
      {"g:h", "g:h"},
      {"g", "http://a/b/c/g"},
      {"./g", "http://a/b/c/g"},
      {"g/", "http://a/b/c/g/"},
      {"/g", "http://a/g"},
      {"//g", "http://g"},
      {"?y", "http://a/b/c/d;p?y"},
      {"g?y", "http://a/b/c/g?y"},
      {"#s", "http://a/b/c/d;p?q#s"},
      {"g#s", "http://a/b/c/g#s"},
      {"g?y#s", "http://a/b/c/g?y#s"},
      {";x", "http://a/b/c/;x"},
      {"g;x", "http://a/b/c/g;x"},
      {"g;x?y#s", "http://a/b/c/g;x?y#s"},
      {"", "http://a/b/c/d;p?q"},
      {".", "http://a/b/c/"},
      {"./", "http://a/b/c/"},
      {"..", "http://a/b/"},
      {"../", "http://a/b/"},
      {"../g", "http://a/b/g"},
      {"../..", "http://a/"},
      {"../../", "http://a/"},
      {"../../g", "http://a/g"},
      // §5.4.2 abnormal
      {"../../../g", "http://a/g"},
      {"../../../../g", "http://a/g"},
      {"/./g", "http://a/g"},
      {"/../g", "http://a/g"},
      {"g.", "http://a/b/c/g."},
      {".g", "http://a/b/c/.g"},
      {"g..", "http://a/b/c/g.."},
      {"..g", "http://a/b/c/..g"},
      {"./../g", "http://a/b/g"},
      {"./g/.", "http://a/b/c/g/"},
      {"g/./h", "http://a/b/c/g/h"},
      {"g/../h", "http://a/b/c/h"},
      {"g;x=1/./y", "http://a/b/c/g;x=1/y"},
      {"g;x=1/../y", "http://a/b/c/y"},
      {"g?y/./x", "http://a/b/c/g?y/./x"},
      {"g?y/../x", "http://a/b/c/g?y/../x"},
      {"g#s/./x", "http://a/b/c/g#s/./x"},
      {"g#s/../x", "http://a/b/c/g#s/../x"},
      {"http:g", "http:g"},  // strict
  };
  for (const auto& [reference, expected] : examples) {
    EXPECT_EQ(resolve_location(base, reference), expected) << "reference '" << reference << "'";
  }
}

TEST_F(UrlTest, RemovesDotSegmentsAsRfc3986Says) {
  EXPECT_EQ(remove_dot_segments("/a/b/c/./../../g"), "/a/g");  // §5.2.4's own examples
  EXPECT_EQ(remove_dot_segments("mid/content=5/../6"), "mid/6");
  EXPECT_EQ(remove_dot_segments("/../../.."), "/");
  EXPECT_EQ(remove_dot_segments(""), "");
  EXPECT_EQ(remove_dot_segments("/a/.."), "/");
  EXPECT_EQ(remove_dot_segments("/a/..b"), "/a/..b");
}

// What went wrong before: ../x, ?q=1, //host/p, https://... and HTTP://... against a
// real-looking base.
TEST_F(UrlTest, ResolvesEveryKindOfReference) {
  const std::string base = "http://127.0.0.1:8000/docs/guide/index.html?v=2";
  EXPECT_EQ(resolve_location(base, "../x"), "http://127.0.0.1:8000/docs/x");
  EXPECT_EQ(resolve_location(base, "?q=1"), "http://127.0.0.1:8000/docs/guide/index.html?q=1");
  EXPECT_EQ(resolve_location(base, "//other:81/p"), "http://other:81/p");
  EXPECT_EQ(resolve_location(base, "https://other/p"), "https://other/p");
  EXPECT_EQ(resolve_location(base, "HTTP://Other/a/../p"), "http://Other/p");
  EXPECT_EQ(resolve_location("http://h", "p"), "http://h/p");
  EXPECT_EQ(resolve_location("http://h", ""), "http://h");
  // An http+unix: base keeps its socket; only the target resolves.
  const std::string unix_base = "http+unix:/run/app.sock:/v1/items/7?full=1";
  EXPECT_EQ(resolve_location(unix_base, "8"), "http+unix:/run/app.sock:/v1/items/8");
  EXPECT_EQ(resolve_location(unix_base, "/v2/x"), "http+unix:/run/app.sock:/v2/x");
  EXPECT_EQ(resolve_location(unix_base, "../../.."), "http+unix:/run/app.sock:/");
  EXPECT_EQ(resolve_location(unix_base, "?q"), "http+unix:/run/app.sock:/v1/items/7?q");
  EXPECT_EQ(resolve_location("http+unix:/run/app.sock", "x"), "http+unix:/run/app.sock:/x");
  EXPECT_EQ(resolve_location(unix_base, "http+unix:/run/../other.sock:/a/../b"),
            "http+unix:/run/../other.sock:/b");
  EXPECT_THROW((void)resolve_location(unix_base, "//host/p"), Error);
}

// Bytes RFC 3986 does not allow would go into the request line as they are: CR LF is
// header injection, a space splits the line. parse_url refuses them, naming the byte.
TEST_F(UrlTest, RefusesBytesOutsideRfc3986) {
  const std::pair<std::string, const char*> cases[] = {
      {"http://h/a\r\nX-Injected: 1", "CR (0x0d) at offset 10 is not allowed in a URL's path"},
      {"http://h/a\nb", "LF (0x0a) at offset 10"},
      {"http://h/a b", "space (0x20) at offset 10"},
      {"http://h/a\0b"s, "NUL (0x00) at offset 10"},
      {"http://h/?q=a b", "space (0x20) at offset 13 is not allowed in a URL's query"},
      {"http://h/a<b>", "'<' at offset 10"},
      {"http://h/caf\xc3\xa9", "byte 0xc3 at offset 12"},
      {"http://h/%zz", "'%' not followed by two hex digits at offset 9"},
      {"http://h/%4", "'%' not followed by two hex digits"},
      {"http://h/#a b", "space (0x20) at offset 11 is not allowed in a URL's fragment"},
      {"http://h\r\nX: 1/", "CR (0x0d) at offset 8 is not allowed in a host name"},
      {"http://h o/", "space (0x20) at offset 8 is not allowed in a host name"},
      {"http://us er:pw@h/", "space (0x20) at offset 9 is not allowed in user information"},
      {"http://u:p%0a@h/", "LF (0x0a) (encoded) at offset 10 is not allowed in user information"},
      {"http://@h/", "empty user information"},
      {"http://h:8x/", "port '8x' is not a number"},
      {"http://h:0/", "port '0' out of range"},
      {"http://h:65536/", "port '65536' out of range"},
      {"http://[::1/", "missing ']'"},
      {"http://[::g]/", "'g' is not allowed in an IPv6 address"},
      {"http://[fe80::1%eth0]/", "write an IPv6 zone as %25NAME"},
      {"http+unix:/a\nb.sock:/", "LF (0x0a) at offset 12 is not allowed in a Unix socket path"},
      {"http+unix:/s.sock:/a b", "space (0x20) at offset 20"},
      {"https://h/", "https is not supported"},
      {"ftp://h/", "expected http://"},
      {"http:///x", "empty host"},
  };
  for (const auto& [url, names] : cases) {
    const std::string message = refusal(url);
    EXPECT_NE(message.find(names), std::string::npos) << message;
    EXPECT_EQ(message.find_first_of("\r\n"s + '\0'), std::string::npos) << "raw control bytes";
  }
}

TEST_F(UrlTest, UserInformationBecomesCredentialsNotPartOfTheHost) {
  auto u = http::parse_url("http://alice:s%40cret:x@Example.org:81/p");
  EXPECT_EQ(u.userinfo, "alice:s@cret:x") << "percent-decoded; the last '@' ends it";
  EXPECT_EQ(u.connect, "tcp://example.org:81");
  EXPECT_EQ(u.host, "example.org:81") << "never in the Host header";
  EXPECT_EQ(http::parse_url("http://bob@h/").userinfo, "bob");
  EXPECT_EQ(http::parse_url("http://h/a@b").userinfo, "") << "an '@' in the path is a path";
  EXPECT_EQ(http::basic_authorization("Aladdin:open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  EXPECT_EQ(http::basic_authorization("a:"), "Basic YTo=");
  EXPECT_EQ(http::basic_authorization("ab:"), "Basic YWI6");
}

TEST_F(UrlTest, TheFragmentIsNotSentAndSchemeAndHostIgnoreCase) {
  auto u = http::parse_url("HTTP://LocalHost:8080/A/b?Q=1#Frag");
  EXPECT_EQ(u.connect, "tcp://localhost:8080");
  EXPECT_EQ(u.host, "localhost:8080");
  EXPECT_EQ(u.target, "/A/b?Q=1") << "the path and query keep their case";
  EXPECT_EQ(http::parse_url("http://h#only").target, "/");
  EXPECT_EQ(http::parse_url("http://h?q#f").target, "/?q");
  EXPECT_EQ(http::parse_url("http://h:/x").connect, "tcp://h:80") << "an empty port is 80";
  EXPECT_EQ(http::parse_url("http://h:00080/").host, "h");
  EXPECT_EQ(http::parse_url("http://h/%2Fa%20b").target, "/%2Fa%20b") << "escapes pass as they are";
  auto zoned = http::parse_url("http://[FE80::1%25lo]:8080/");
  EXPECT_EQ(zoned.connect, "tcp://[fe80::1%lo]:8080");
  EXPECT_EQ(zoned.host, "[fe80::1]:8080") << "the zone is local: not sent";
  auto unix = http::parse_url("HTTP+UNIX:/run/App.sock:/x#frag");
  EXPECT_EQ(unix.connect, "unix:/run/App.sock") << "a file name keeps its case";
  EXPECT_EQ(unix.target, "/x");
  EXPECT_EQ(http::parse_url("http+unix:/run/app.sock:").target, "/");
}

// `wire serve --bind unix:@name` prints http+unix:@name:/ ; wire get takes exactly that.
TEST_F(UrlTest, AnAbstractSocketIsWrittenWithItsAt) {
  auto abstract = http::parse_url("http+unix:@wire-app:/v1/x?y=1");
  EXPECT_EQ(abstract.connect, "unix:@wire-app");
  EXPECT_EQ(abstract.target, "/v1/x?y=1");
  EXPECT_TRUE(Address::parse(abstract.connect).is_abstract());
  EXPECT_EQ(http::parse_url("http+unix:@wire-app:/").target, "/");
  EXPECT_EQ(http::parse_url("http+unix:@wire-app").connect, "unix:@wire-app");
  EXPECT_EQ(resolve_location("http+unix:@wire-app:/a/b", "../c"), "http+unix:@wire-app:/c");
  EXPECT_TRUE(
      redirect_allowed(http::parse_url("http+unix:@a:/"), http::parse_url("http+unix:@a:/x")));
  EXPECT_FALSE(
      redirect_allowed(http::parse_url("http+unix:@a:/"), http::parse_url("http+unix:/a:/")))
      << "@a is not the file a";
  EXPECT_NE(refusal("http+unix:@:/").find("empty"), std::string::npos);
}

TEST_F(UrlTest, RedirectsStayInTheirWorld) {
  const auto url = [](const char* text) { return http::parse_url(text); };
  EXPECT_TRUE(redirect_allowed(url("http://a/"), url("http://b:81/x")));
  EXPECT_FALSE(redirect_allowed(url("http://a/"), url("http+unix:/var/run/docker.sock:/x")));
  EXPECT_TRUE(redirect_allowed(url("http+unix:/s.sock:/a"), url("http+unix:/s.sock:/b")));
  EXPECT_FALSE(redirect_allowed(url("http+unix:/s.sock:/a"), url("http+unix:/t.sock:/a")));
  EXPECT_FALSE(redirect_allowed(url("http+unix:/s.sock:/a"), url("http://127.0.0.1/")));
}

// What wire prints of a peer's bytes (a reason phrase, a Location, a socket name): UTF-8
// stays readable, but no control byte reaches the terminal, C1 (U+009B is CSI) included.
TEST_F(UrlTest, PrintableKeepsUtf8AndEscapesEveryControl) {
  using wire::detail::printable;
  EXPECT_EQ(printable("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(printable("a\x1b[31mb\r\n"), "a\\x1b[31mb\\x0d\\x0a");
  EXPECT_EQ(printable("\xc2\x9b"
                      "31m"),
            "\\xc2\\x9b31m")
      << "C1 CSI as UTF-8";
  EXPECT_EQ(printable("\x9b"
                      "31m"),
            "\\x9b31m")
      << "a lone C1 byte";
  EXPECT_EQ(printable("\xc3"), "\\xc3") << "a cut sequence";
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf") << "overlong";
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80") << "a surrogate";
  EXPECT_EQ(printable(std::string("x\0y", 3)), "x\\x00y");
}

TEST_F(UrlTest, PercentEncodeKeepsUnreservedAndWhatItIsTold) {
  EXPECT_EQ(http::percent_encode("a b#c?d%e/f"), "a%20b%23c%3Fd%25e%2Ff");
  EXPECT_EQ(http::percent_encode("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(http::percent_encode("a:b@c!", "!$&'()*+,;=:@"), "a:b@c!");
  EXPECT_EQ(http::percent_encode(std::string("\0\xff\r", 3), "\r"), "%00%FF\r");
  // What it makes parses back as the same path (a file named so, served and fetched).
  EXPECT_EQ(http::parse_url("http://h/" + http::percent_encode("x y#z")).target, "/x%20y%23z");
}
