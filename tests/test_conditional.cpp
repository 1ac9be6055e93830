// What conditional and range requests parse (src/http/conditional.hpp): HTTP dates, Range,
// If-None-Match. Pure functions; the server's answers are in test_http_server.cpp.
#include "http/conditional.hpp"
#include "support.hpp"
#include "wire/http/server.hpp"

using namespace wire;
using http::detail::etag_matches;
using http::detail::parse_range;

class ConditionalTest : public test::Test {};

TEST_F(ConditionalTest, HttpDatesRoundTrip) {
  EXPECT_EQ(http::http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110's
  EXPECT_EQ(http::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  for (std::int64_t t : {std::int64_t{0}, std::int64_t{951782400}, std::int64_t{253402300799}}) {
    EXPECT_EQ(http::parse_http_date(http::http_date(t)), t) << http::http_date(t);
  }
}

// A date that is not one is -1, so If-Modified-Since is ignored (RFC 9110 §13.1.3) rather
// than read as another date, as timegm would have it.
TEST_F(ConditionalTest, InvalidDatesAreRefused) {
  for (const char* text : {
           "Wed, 06 Nov 1994 08:49:37 GMT",  // a Sunday
           "Sat, 31 Feb 2024 08:49:37 GMT",  // no such day
           "Sun, 06 Nov 1994 24:00:00 GMT",  // no such hour
           "Sun, 06 Nov 1994 08:60:37 GMT",
           "Sun, 06 Nov 1994 08:49:37 UTC",
           "Sunday, 06-Nov-94 08:49:37 GMT",  // RFC 850: not parsed
           "Wed, 31 Dec 1969 23:59:59 GMT",
           "",
       }) {
    EXPECT_EQ(http::parse_http_date(text), -1) << text;
  }
}

TEST_F(ConditionalTest, SingleByteRanges) {
  std::uint64_t first = 0, last = 0;
  EXPECT_EQ(parse_range("bytes=0-99", 1000, first, last), 1);
  EXPECT_EQ(first, 0u);
  EXPECT_EQ(last, 99u);
  EXPECT_EQ(parse_range("bytes=-5", 1000, first, last), 1);
  EXPECT_EQ(first, 995u);
  EXPECT_EQ(last, 999u);
  EXPECT_EQ(parse_range("bytes=990-5000", 1000, first, last), 1);
  EXPECT_EQ(last, 999u) << "clamped to the end";
  EXPECT_EQ(parse_range("bytes=1000-", 1000, first, last), -1);
  EXPECT_EQ(parse_range("bytes=-0", 1000, first, last), -1);
  EXPECT_EQ(parse_range("bytes=0-0", 0, first, last), -1);
  EXPECT_EQ(parse_range("bytes=5-3", 1000, first, last), 0) << "invalid: ignored";
  EXPECT_EQ(parse_range("bytes=0-1,5-6", 1000, first, last), 0) << "several: the whole file";
  EXPECT_EQ(parse_range("items=0-1", 1000, first, last), 0);
  EXPECT_EQ(parse_range("bytes= 0-1", 1000, first, last), 0);
}

TEST_F(ConditionalTest, IfNoneMatchComparesWeakly) {
  const std::string etag = "\"3e8-5f\"";
  EXPECT_TRUE(etag_matches(etag, etag));
  EXPECT_TRUE(etag_matches("W/" + etag, etag));
  EXPECT_TRUE(etag_matches("\"a\", \t" + etag + " ,\"b\"", etag));
  EXPECT_TRUE(etag_matches("*", etag));
  EXPECT_FALSE(etag_matches("\"3e8-5e\"", etag));
  EXPECT_FALSE(etag_matches("3e8-5f", etag)) << "unquoted";
  EXPECT_FALSE(etag_matches("", etag));
}
