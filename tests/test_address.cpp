#include <net/if.h>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

class AddressTest : public test::Test {};

TEST_F(AddressTest, ParsesAndFormatsEveryForm) {
  struct Case {
    const char* text;
    const char* canonical;
    Family family;
    Type type;
  };
  const Case cases[] = {
      {"tcp://127.0.0.1:8080", "tcp://127.0.0.1:8080", Family::inet, Type::stream},
      {"127.0.0.1:8080", "tcp://127.0.0.1:8080", Family::inet, Type::stream},
      {"udp://0.0.0.0:5353", "udp://0.0.0.0:5353", Family::inet, Type::dgram},
      {"tcp://[::1]:8080", "tcp://[::1]:8080", Family::inet6, Type::stream},
      {"[::1]:0", "tcp://[::1]:0", Family::inet6, Type::stream},
      {"udp://[::]:53", "udp://[::]:53", Family::inet6, Type::dgram},
      {"unix:/tmp/app.sock", "unix:/tmp/app.sock", Family::local, Type::stream},
      {"unix:@name", "unix:@name", Family::local, Type::stream},
      {"unixgram:/tmp/log.sock", "unixgram:/tmp/log.sock", Family::local, Type::dgram},
      {"tcp://127.0.0.1:65535", "tcp://127.0.0.1:65535", Family::inet, Type::stream},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    Address a = Address::parse(c.text);
    EXPECT_EQ(a.family(), c.family);
    EXPECT_EQ(a.type(), c.type);
    EXPECT_EQ(a.to_string(), c.canonical);
    EXPECT_EQ(Address::parse(a.to_string()), a);
  }
}

TEST_F(AddressTest, ExposesParts) {
  Address v4 = Address::parse("tcp://127.0.0.1:8080");
  EXPECT_EQ(v4.host(), "127.0.0.1");
  EXPECT_EQ(v4.port(), 8080);
  EXPECT_EQ(v4.with_port(9).port(), 9);
  Address path = Address::parse("unix:/tmp/app.sock");
  EXPECT_EQ(path.path(), "/tmp/app.sock");
  EXPECT_FALSE(path.is_abstract());
  Address abstract = Address::parse("unix:@wire-test");
  EXPECT_TRUE(abstract.is_abstract());
  EXPECT_EQ(abstract.path(), "wire-test");
  EXPECT_EQ(Address::inet("::1", 80).to_string(), "tcp://[::1]:80");
  EXPECT_EQ(Address::inet("127.0.0.1", 53, Type::dgram).to_string(), "udp://127.0.0.1:53");
  EXPECT_TRUE(Address().empty());
}

TEST_F(AddressTest, ParsesScopeIdByInterfaceName) {
  unsigned lo = ::if_nametoindex("lo");
  if (lo == 0) GTEST_SKIP() << "no loopback interface named lo";
  Address a = Address::parse("tcp://[fe80::1%lo]:80");
  EXPECT_EQ(a.scope_id(), lo);
  EXPECT_EQ(a.to_string(), "tcp://[fe80::1%lo]:80");
  EXPECT_EQ(Address::parse("tcp://[fe80::1%" + std::to_string(lo) + "]:80").scope_id(), lo);
}

// Each bad string fails with invalid_address and a message naming the bad part.
TEST_F(AddressTest, RejectsBadStringsNamingTheBadPart) {
  struct Case {
    const char* text;
    const char* names;
  };
  const Case cases[] = {
      {"tcp://127.0.0.1:70000", "port '70000' out of range"},
      {"tcp://127.0.0.1:99999999", "port '99999999' out of range"},
      {"tcp://[::1", "missing ']'"},
      {"tcp://[::1]", "missing ':PORT'"},
      {"tcp://:80", "empty host"},
      {":80", "empty host"},
      {"tcp://127.0.0.1:", "empty port"},
      {"tcp://127.0.0.1:http", "port 'http' is not a number"},
      {"tcp://127.0.0.1", "missing ':PORT'"},
      {"::1:80", "needs brackets"},
      {"ftp://127.0.0.1:21", "unknown scheme 'ftp'"},
      {"unix:", "empty Unix socket path"},
      {"unix:@", "empty abstract socket name"},
      {"tcp://[zz::1]:80", "'zz::1' is not an IPv6 address"},
      {"tcp://[fe80::1%nosuchif0]:80", "unknown network interface 'nosuchif0'"},
      {"tcp://example.invalid:80", "not a numeric address"},
      {"", "empty address"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    try {
      (void)Address::parse(c.text);
      ADD_FAILURE() << "parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::invalid_address);
      EXPECT_NE(std::string(e.what()).find(c.names), std::string::npos) << e.what();
      EXPECT_EQ(e.operation(), "parse address");
    }
    auto r = Address::parse(c.text, std::nothrow);
    EXPECT_FALSE(r);
    EXPECT_EQ(r.error(), errc::invalid_address);
  }
  std::string long_path = "unix:/" + std::string(200, 'x');
  EXPECT_THROW((void)Address::parse(long_path), Error);
  EXPECT_THROW((void)Address::inet("not-an-ip", 1), Error);
  EXPECT_THROW((void)Address::unix_path(""), Error);
}

// The C calls under Address stop at a NUL: text after one used to be dropped silently
// ("127.0.0.1\0evil:80" was tcp://127.0.0.1:80). Any NUL is an error now, in every form,
// and the message shows it as \x00 rather than carrying it.
TEST_F(AddressTest, ANulByteAnywhereIsAnError) {
  using namespace std::string_literals;
  struct Case {
    std::string text;
    const char* names;
  };
  const Case cases[] = {
      {"127.0.0.1\0evil:80"s, "NUL byte at offset 9 in '127.0.0.1\\x00evil:80'"},
      {"tcp://127.0.0.1:80\0"s, "NUL byte at offset 18"},
      {"tcp://[::1\0]:80"s, "NUL byte at offset 10"},
      {"tcp://[fe80::1%lo\0x]:80"s, "NUL byte at offset 17"},
      {"unix:/tmp/a\0b"s, "NUL byte at offset 11"},
      {"unix:@a\0b"s, "NUL byte at offset 7"},
      {"\0"s, "NUL byte at offset 0"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.names);
    EXPECT_EQ(Address::parse(c.text, std::nothrow).error(), errc::invalid_address);
    try {
      (void)Address::parse(c.text);
      ADD_FAILURE() << "parsed";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(e.code(), errc::invalid_address);
      EXPECT_NE(what.find(c.names), std::string::npos) << what;
      EXPECT_EQ(what.find('\0'), std::string::npos) << "the message carries the NUL";
    }
    EXPECT_EQ(resolve(c.text, 1s, std::nothrow).error(), errc::invalid_address);
  }
  EXPECT_THROW((void)Address::inet("127.0.0.1\0evil"s, 80), Error);
  EXPECT_THROW((void)Address::unix_path("/tmp/a\0b"s), Error);
  // Abstract names are bytes to the kernel, NUL included: the binary API takes them.
  EXPECT_EQ(Address::abstract("a\0b"s).path(), "a\0b"s);
}

TEST_F(AddressTest, AHostNameHoldsOnlyWhatAHostNameCan) {
  for (const char* text : {"tcp://local host:80", "tcp://localhost\r\nX:80", "tcp://a/b:80"}) {
    SCOPED_TRACE(text);
    auto r = resolve(text, 1s, std::nothrow);
    EXPECT_EQ(r.error(), errc::invalid_address);
    try {
      (void)resolve(text, 1s);
      ADD_FAILURE() << "resolved";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no host name can"), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
}

// Tricky forms parse, print canonically, and parse back to the same address and text.
TEST_F(AddressTest, TrickyFormsRoundTrip) {
  using namespace std::string_literals;
  struct Case {
    std::string text;
    std::string canonical;
  };
  const Case cases[] = {
      {"[0:0:0:0:0:0:0:1]:00080", "tcp://[::1]:80"},
      {"udp://[::ffff:127.0.0.1]:53", "udp://[::ffff:127.0.0.1]:53"},
      {"tcp://[fe80::1%0]:80", "tcp://[fe80::1]:80"},  // scope 0 is no scope
      {"unix:/tmp/with space:and\nnewline", "unix:/tmp/with space:and\nnewline"},
      {"unix:relative/@at", "unix:relative/@at"},
      {"unixgram:@name with spaces", "unixgram:@name with spaces"},
      {"unix:/" + std::string(106, 'p'), "unix:/" + std::string(106, 'p')},  // the longest
      {"unix:@" + std::string(107, 'n'), "unix:@" + std::string(107, 'n')},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    Address a = Address::parse(c.text);
    EXPECT_EQ(a.to_string(), c.canonical);
    Address again = Address::parse(a.to_string());
    EXPECT_EQ(again, a);
    EXPECT_EQ(again.to_string(), c.canonical);
  }
  EXPECT_THROW((void)Address::parse("unix:/" + std::string(107, 'p')), Error);
  EXPECT_THROW((void)Address::parse("unix:@" + std::string(108, 'n')), Error);
}

TEST_F(AddressTest, ResolvesNumericWithoutTheResolver) {
  auto all = resolve("tcp://127.0.0.1:80");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0], Address::parse("127.0.0.1:80"));
  auto unix_all = resolve("unix:@x");
  ASSERT_EQ(unix_all.size(), 1u);
  EXPECT_TRUE(unix_all[0].is_abstract());
}

TEST_F(AddressTest, ResolvesLocalhostToLoopback) {
  auto all = resolve("tcp://localhost:8080", 5s);
  ASSERT_FALSE(all.empty());
  for (const auto& a : all) {
    EXPECT_EQ(a.port(), 8080);
    EXPECT_TRUE(a.host() == "127.0.0.1" || a.host() == "::1") << a.to_string();
  }
  auto udp = resolve("udp://localhost:53");
  ASSERT_FALSE(udp.empty());
  EXPECT_EQ(udp[0].type(), Type::dgram);
}

TEST_F(AddressTest, ListenAddressKeepsLoopbackUnlessAHostIsNamed) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "tcp://127.0.0.1:8000"},
      {"9000", "tcp://127.0.0.1:9000"},
      {":9000", "tcp://127.0.0.1:9000"},
      {"tcp://:9000", "tcp://127.0.0.1:9000"},
      {"0.0.0.0", "tcp://0.0.0.0:8000"},
      {"0.0.0.0:9000", "tcp://0.0.0.0:9000"},
      {"tcp://0.0.0.0", "tcp://0.0.0.0:8000"},
      {"localhost", "tcp://localhost:8000"},
      {"localhost:9000", "tcp://localhost:9000"},
      {"::", "tcp://[::]:8000"},
      {"::1", "tcp://[::1]:8000"},
      {"[::1]", "tcp://[::1]:8000"},
      {"[::1]:9000", "tcp://[::1]:9000"},
      {"tcp://127.0.0.1:0", "tcp://127.0.0.1:0"},
      {"udp://:53", "udp://127.0.0.1:53"},
      {"unix:/run/app.sock", "unix:/run/app.sock"},
      {"unix:@app", "unix:@app"},
  };
  for (const auto& [text, expected] : cases) {
    EXPECT_EQ(listen_address(text, 8000), expected) << text;
  }
}

TEST_F(AddressTest, ListenAddressRefusesBadSyntaxWithoutALookup) {
  for (const char* text : {"127.0.0.1:abc", ":70000", "1.2.3.4:", "::1:xyz", "bad host",
                           "http://x:80", "unix:", "unix:@", "[::1"}) {
    try {
      (void)listen_address(text, 8000);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), errc::invalid_address) << text;
      EXPECT_EQ(std::string(e.what()).rfind("listen on " + std::string(text), 0), 0u) << e.what();
    }
  }
}

// What it completes is what servers bind: loopback for a port alone.
TEST_F(AddressTest, ListenAddressBindsWhereItSays) {
  Socket tcp = create_server(listen_address(":0", 8000));
  EXPECT_EQ(tcp.local_address().host(), "127.0.0.1");
  EXPECT_NE(tcp.local_address().port(), 0);
  Socket port_only = create_server(listen_address("0", 8000));
  EXPECT_EQ(port_only.local_address().host(), "127.0.0.1");
  Socket connected = create_connection(tcp.local_address().to_string(), 5s);
  auto [conn, peer] = tcp.accept();
  EXPECT_EQ(peer.host(), "127.0.0.1");
  if (test::ipv6_loopback_available()) {
    Socket v6 = create_server(listen_address("::1", 0));
    EXPECT_EQ(v6.local_address().host(), "::1");
  }
  const std::string name = "wire-test-listen-" + std::to_string(::getpid());
  Socket abstract = create_server(listen_address("unix:@" + name, 8000));
  EXPECT_TRUE(abstract.local_address().is_abstract());
  EXPECT_EQ(abstract.local_address().path(), name);
}

// A service name stands for a port in resolve() (nc's localhost:http), looked up for the
// address's protocol; parse() stays numeric and says where names go.
TEST_F(AddressTest, ResolvesServiceNamesForTheProtocol) {
  EXPECT_EQ(resolve("tcp://127.0.0.1:http").at(0), Address::parse("tcp://127.0.0.1:80"));
  EXPECT_EQ(resolve("127.0.0.1:https").at(0).port(), 443);
  EXPECT_EQ(resolve("udp://[::1]:domain").at(0), Address::parse("udp://[::1]:53"));
  for (const auto& a : resolve("tcp://localhost:http", 5s)) EXPECT_EQ(a.port(), 80);
  auto unknown = resolve("tcp://127.0.0.1:no-such-service", 1s, std::nothrow);
  EXPECT_EQ(unknown.error(), errc::invalid_address);
  try {
    (void)resolve("tcp://127.0.0.1:no-such-service");
    ADD_FAILURE() << "resolved";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown service 'no-such-service' for tcp"),
              std::string::npos)
        << e.what();
  }
  try {
    (void)Address::parse("tcp://127.0.0.1:http");
    ADD_FAILURE() << "parsed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("service names need wire::resolve"), std::string::npos);
  }
  EXPECT_EQ(resolve("tcp://127.0.0.1:x y", 1s, std::nothrow).error(), errc::invalid_address);
}

TEST_F(AddressTest, JoinsHostAndPortAsNcTakesThem) {
  EXPECT_EQ(join_host_port("127.0.0.1", "80"), "127.0.0.1:80");
  EXPECT_EQ(join_host_port("::1", "80"), "[::1]:80");
  EXPECT_EQ(join_host_port("[::1]", "80"), "[::1]:80");
  EXPECT_EQ(join_host_port("udp://::1", "53"), "udp://[::1]:53");
  EXPECT_EQ(join_host_port("tcp://localhost", "http"), "tcp://localhost:http");
  EXPECT_EQ(Address::parse(join_host_port("fe80::1%lo", "80")).port(), 80);
}
