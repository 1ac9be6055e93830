#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <thread>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

class StreamTest : public test::Test {};

namespace {

// A pipe whose two ends close with the test.
struct Pipe {
  Pipe() {
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (fds[0] >= 0) ::close(std::exchange(fds[0], -1));
  }
  void close_write() {
    if (fds[1] >= 0) ::close(std::exchange(fds[1], -1));
  }
  int fds[2];
};

}  // namespace

TEST_F(StreamTest, MakefileReadsLinesAndWritesOnTheSameFd) {
  auto [a, b] = Socket::pair();
  Stream fa = a.makefile();
  Stream fb = b.makefile();
  EXPECT_EQ(fa.fileno(), a.fileno());
  fa.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(fa.pending(), 27u);
  fa.flush();
  EXPECT_EQ(fa.pending(), 0u);
  EXPECT_EQ(fb.read_line(), "GET / HTTP/1.1\r\n");
  EXPECT_EQ(fb.read_until("\r\n"), "Host: x\r\n");
  EXPECT_EQ(fb.read_until("\r\n"), "\r\n");
  EXPECT_EQ(fb.buffered(), 0u);
}

TEST_F(StreamTest, ReadExactAndReadAcrossManySmallWrites) {
  auto [a, b] = Socket::pair();
  Stream f = b.makefile();
  std::thread writer([&] {
    for (int i = 0; i < 100; ++i) a.send_all("0123456789");
    a.shutdown(Shutdown::write);
  });
  EXPECT_EQ(f.read_exact(15), "012345678901234");
  std::string rest;
  for (std::string chunk; !(chunk = f.read(7)).empty();) {
    EXPECT_LE(chunk.size(), 7u);
    rest += chunk;
  }
  writer.join();
  EXPECT_EQ(rest.size(), 985u);
  EXPECT_EQ(rest.substr(0, 5), "56789");
}

TEST_F(StreamTest, PartialLastLineThenEmptyAtEnd) {
  auto [a, b] = Socket::pair();
  Stream f = b.makefile();
  a.send_all("one\ntwo");
  a.close();
  EXPECT_EQ(f.read_line(), "one\n");
  EXPECT_EQ(f.read_line(), "two");
  EXPECT_EQ(f.read_line(), "");
  EXPECT_EQ(f.read(10), "");
}

TEST_F(StreamTest, ReadExactFailsAtEndOfStreamKeepingTheBytes) {
  auto [a, b] = Socket::pair();
  Stream f = b.makefile();
  a.send_all("short");
  a.close();
  try {
    (void)f.read_exact(10);
    ADD_FAILURE() << "read_exact returned";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::unexpected_eof);
    EXPECT_NE(std::string(e.what()).find("after 5 of 10 bytes"), std::string::npos) << e.what();
  }
  EXPECT_EQ(f.buffered(), 5u);
  EXPECT_EQ(f.read(100), "short");
}

TEST_F(StreamTest, LineLongerThanMaxIsAnErrorNotUnboundedMemory) {
  auto [a, b] = Socket::pair();
  Stream f = b.makefile();
  std::thread writer([&] { (void)a.send_all(std::string(100000, 'x'), std::nothrow); });
  auto r = f.read_line(1000, std::nothrow);
  EXPECT_EQ(r.error(), errc::line_too_long);
  EXPECT_LE(f.buffered(), 1000u + 8192u) << "read past max_len by more than one chunk";
  b.shutdown(Shutdown::read);
  a.close();  // unblocks the writer if it is still sending
  writer.join();

  auto [c, d] = Socket::pair();
  Stream g = d.makefile();
  c.send_all(
      "exactly10\n"
      "eleven bytes\n");
  EXPECT_EQ(g.read_line(10), "exactly10\n");
  EXPECT_THROW((void)g.read_line(10), Error);
}

TEST_F(StreamTest, TimedOutReadLineLosesNoByte) {
  auto [a, b] = Socket::pair();
  b.set_timeout(100ms);
  Stream f = b.makefile();
  a.send_all("partial li");
  try {
    (void)f.read_line();
    ADD_FAILURE() << "read_line returned without a newline";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), errc::timed_out);
  }
  EXPECT_EQ(f.buffered(), 10u);
  a.send_all("ne\nnext\n");
  EXPECT_EQ(f.read_line(), "partial line\n");
  EXPECT_EQ(f.read_line(), "next\n");
}

TEST_F(StreamTest, DelimiterSplitAcrossReadsIsFound) {
  auto [a, b] = Socket::pair();
  b.set_timeout(50ms);
  Stream f = b.makefile();
  a.send_all("head\r");
  EXPECT_EQ(f.read_until("\r\n", 100, std::nothrow).error(), errc::timed_out);
  a.send_all("\nbody");
  EXPECT_EQ(f.read_until("\r\n"), "head\r\n");
  EXPECT_EQ(f.read(100), "body");
}

TEST_F(StreamTest, WorksOnPipes) {
  Pipe p;
  Stream writer(p.fds[1]);
  Stream reader(p.fds[0], 1s);
  writer.write("through a pipe\n");
  writer.flush();
  EXPECT_EQ(reader.read_line(), "through a pipe\n");
  auto r = reader.read(1, std::nothrow);
  EXPECT_EQ(r.error(), errc::timed_out) << "a timeout applies to a blocking pipe too";
}

TEST_F(StreamTest, WriteToAPipeWithNoReaderIsEpipeNotDeath) {
  ::signal(SIGPIPE, SIG_DFL);
  Pipe p;
  p.close_read();
  Stream writer(p.fds[1]);
  writer.write("nobody reads this");
  auto r = writer.flush(std::nothrow);
  EXPECT_EQ(r.error(), std::errc::broken_pipe);
  EXPECT_EQ(writer.pending(), 17u) << "unsent bytes stay buffered";
  ::sigset_t pending;
  ::sigpending(&pending);
  EXPECT_FALSE(::sigismember(&pending, SIGPIPE)) << "no SIGPIPE left pending either";
}

TEST_F(StreamTest, WriteToAClosedSocketPeerIsAnError) {
  ::signal(SIGPIPE, SIG_DFL);
  auto [a, b] = Socket::pair();
  b.close();
  Stream f = a.makefile();
  f.write("x");
  EXPECT_THROW(f.flush(), Error);
}

TEST_F(StreamTest, LargeWritesFlushOnTheirOwn) {
  auto [a, b] = Socket::pair();
  Stream f = a.makefile();
  std::string received;
  std::thread reader([&] {
    Stream g = b.makefile();
    received = g.read_exact(3 * Stream::buffer_limit);
  });
  for (int i = 0; i < 3; ++i)
    f.write(std::string(Stream::buffer_limit, static_cast<char>('a' + i)));
  EXPECT_EQ(f.pending(), 0u);
  reader.join();
  EXPECT_EQ(received.size(), 3 * Stream::buffer_limit);
  EXPECT_EQ(received.back(), 'c');
}

TEST_F(StreamTest, DestructorFlushes) {
  auto [a, b] = Socket::pair();
  {
    Stream f = a.makefile();
    f.write("flushed at scope end");
  }
  EXPECT_EQ(b.recv(100), "flushed at scope end");
}

TEST_F(StreamTest, NothrowReadsReturnResults) {
  auto [a, b] = Socket::pair();
  Stream f = b.makefile();
  a.send_all("x\nyz");
  a.close();
  auto line = f.read_line(10, std::nothrow);
  ASSERT_TRUE(line);
  EXPECT_EQ(*line, "x\n");
  auto exact = f.read_exact(2, std::nothrow);
  ASSERT_TRUE(exact);
  EXPECT_EQ(*exact, "yz");
  EXPECT_EQ(f.read_until("", 10, std::nothrow).error(), std::errc::invalid_argument);
}
