// fd passing (SCM_RIGHTS) and peer credentials, over real Unix sockets: socketpairs, a
// listener in a TempDir, and python3's socket.send_fds / recv_fds as the other end.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <set>

#include "support.hpp"
#include "wire/process.hpp"

using namespace wire;
using namespace std::chrono_literals;

class FdPassingTest : public test::Test {};
class PeerCredentialsTest : public test::Test {};

namespace {

bool has_cloexec(int fd) {
  return (::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

// Reads exactly n bytes from a pipe end, 5 s at most.
std::string read_exactly(int fd, std::size_t n) {
  Stream in(fd, std::chrono::seconds(5));
  return in.read_exact(n);
}

void write_all(int fd, std::string_view data) {
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
}

// A connected TCP pair on loopback.
std::pair<Socket, Socket> tcp_pair() {
  Socket listener = test::loopback_listener();
  Socket client = create_connection(std::vector<Address>{listener.local_address()}, 5s);
  auto [conn, peer] = listener.accept();
  return {std::move(client), std::move(conn)};
}

std::pair<Socket, Socket> unix_pair(Type type = Type::stream) {
  auto pair = Socket::pair(type);
  pair.first.set_timeout(5s);
  pair.second.set_timeout(5s);
  return pair;
}

}  // namespace

TEST_F(FdPassingTest, ASocketSurvivesTheTripAndCarriesTheConnection) {
  auto [sender, receiver] = unix_pair();
  auto [client, server_side] = tcp_pair();
  client.set_timeout(5s);
  send_fds(sender, {server_side.fileno()}, "c");
  server_side.close();  // the receiver's copy keeps the connection open

  ReceivedFds got = recv_fds(receiver, 4, 16);
  EXPECT_EQ(got.bytes, "c");
  ASSERT_EQ(got.fds.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<Socket>(got.fds[0]));
  Socket& passed = std::get<Socket>(got.fds[0]);
  EXPECT_EQ(passed.family(), Family::inet);
  EXPECT_EQ(passed.type(), Type::stream);
  EXPECT_EQ(passed.peer_address(), client.local_address());
  passed.send_all("through the passed fd");
  EXPECT_EQ(client.makefile().read_exact(21), "through the passed fd");
  client.send_all("back");
  passed.set_timeout(5s);
  EXPECT_EQ(passed.recv(4), "back");
}

TEST_F(FdPassingTest, ReceivedFdsAreCloseOnExecAndNewNumbers) {
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;
  ASSERT_EQ(::fcntl(pipe.write_end.fd(), F_SETFD, 0), 0);  // sent without the flag
  send_fds(sender, {pipe.write_end.fd()}, "p");
  ReceivedFds got = recv_fds(receiver, 1, 1);
  ASSERT_EQ(got.fds.size(), 1u);
  const int fd = fd_number(got.fds[0]);
  EXPECT_NE(fd, pipe.write_end.fd());
  EXPECT_TRUE(has_cloexec(fd));
}

TEST_F(FdPassingTest, APipeAFileAndASocketTogetherInOrder) {
  test::TempDir dir;
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;
  OwnedFd file(::open(dir.file("data").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(file);
  auto [client, server_side] = tcp_pair();
  client.set_timeout(5s);

  const int fds[] = {pipe.write_end.fd(), file.fd(), server_side.fileno()};
  send_fds(sender, fds, "three");
  ReceivedFds got = recv_fds(receiver, 3, 16);
  EXPECT_EQ(got.bytes, "three");
  ASSERT_EQ(got.fds.size(), 3u);
  ASSERT_TRUE(std::holds_alternative<OwnedFd>(got.fds[0]));
  ASSERT_TRUE(std::holds_alternative<OwnedFd>(got.fds[1]));
  ASSERT_TRUE(std::holds_alternative<Socket>(got.fds[2]));

  write_all(fd_number(got.fds[0]), "into the pipe");
  EXPECT_EQ(read_exactly(pipe.read_end.fd(), 13), "into the pipe");

  // The file description is shared: the offset moves for both.
  write_all(fd_number(got.fds[1]), "file bytes");
  EXPECT_EQ(::lseek(file.fd(), 0, SEEK_CUR), 10);
  EXPECT_EQ(test::slurp(dir.file("data")), "file bytes");

  std::get<Socket>(got.fds[2]).send_all("sock");
  EXPECT_EQ(client.makefile().read_exact(4), "sock");
}

TEST_F(FdPassingTest, TheMostOneMessageCarries) {
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;
  std::vector<int> fds(max_fds_per_message, pipe.write_end.fd());  // 253 copies of one end
  send_fds(sender, fds, "many");
  ReceivedFds got = recv_fds(receiver, max_fds_per_message, 16);
  ASSERT_EQ(got.fds.size(), max_fds_per_message);
  std::set<int> numbers;
  for (const auto& fd : got.fds) {
    numbers.insert(fd_number(fd));
    write_all(fd_number(fd), "x");
  }
  EXPECT_EQ(numbers.size(), max_fds_per_message) << "each arrives as an fd of its own";
  EXPECT_EQ(read_exactly(pipe.read_end.fd(), max_fds_per_message),
            std::string(max_fds_per_message, 'x'));

  fds.push_back(pipe.write_end.fd());
  auto refused = send_fds(sender, fds, "too many", std::nothrow);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), FdPassingErrc::too_many_fds);
  EXPECT_NE(test::error_of([&] { send_fds(sender, fds, "too many"); }).find("at most 253 fds"),
            std::string::npos);
}

TEST_F(FdPassingTest, TruncationClosesEveryFdThatArrived) {
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;
  const int four[] = {pipe.write_end.fd(), pipe.write_end.fd(), pipe.write_end.fd(),
                      pipe.write_end.fd()};
  send_fds(sender, four, "4");
  const int before = test::open_fd_count();
  auto got = recv_fds(receiver, 1, 16, std::nothrow);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), FdPassingErrc::fds_truncated);
  EXPECT_EQ(test::open_fd_count(), before) << "the fds that arrived were closed";

  // Two sent, room for one: the kernel's rounding would deliver both; still an error.
  send_fds(sender, std::span<const int>(four, 2), "2");
  EXPECT_NE(
      test::error_of([&] { recv_fds(receiver, 1, 16); }).find("more fds arrived than max_fds"),
      std::string::npos);
  EXPECT_EQ(test::open_fd_count(), before);

  // The stream goes on: the next message is whole.
  send_fds(sender, std::span<const int>(four, 1), "1");
  EXPECT_EQ(recv_fds(receiver, 1, 16).fds.size(), 1u);
}

TEST_F(FdPassingTest, AShortDatagramIsAnErrorAndItsFdsAreClosed) {
  auto [sender, receiver] = unix_pair(Type::dgram);
  test::Pipe pipe;
  send_fds(sender, {pipe.write_end.fd()}, "a long datagram");
  const int before = test::open_fd_count();
  auto got = recv_fds(receiver, 1, 4, std::nothrow);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), FdPassingErrc::datagram_truncated);
  EXPECT_EQ(test::open_fd_count(), before);

  send_fds(sender, {pipe.write_end.fd()}, "fits");
  ReceivedFds whole = recv_fds(receiver, 1, 4);
  EXPECT_EQ(whole.bytes, "fits");
  EXPECT_EQ(whole.fds.size(), 1u);
}

TEST_F(FdPassingTest, ALongMessageOnAStreamComesInPiecesWithItsFdsFirst) {
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;
  send_fds(sender, {pipe.write_end.fd()}, "abcdef");
  ReceivedFds first = recv_fds(receiver, 1, 2);
  EXPECT_EQ(first.bytes, "ab");
  EXPECT_EQ(first.fds.size(), 1u);
  ReceivedFds rest = recv_fds(receiver, 1, 16);
  EXPECT_EQ(rest.bytes, "cdef");
  EXPECT_TRUE(rest.fds.empty());
}

TEST_F(FdPassingTest, APeerThatClosesAfterSendingStillDeliversThenEof) {
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;
  send_fds(sender, {pipe.write_end.fd()}, "last words");
  sender.close();
  ReceivedFds got = recv_fds(receiver, 1, 4);
  EXPECT_EQ(got.bytes, "last");
  EXPECT_EQ(got.fds.size(), 1u);
  EXPECT_EQ(recv_fds(receiver, 1, 64).bytes, " words");
  ReceivedFds eof = recv_fds(receiver, 1, 64);
  EXPECT_TRUE(eof.bytes.empty());
  EXPECT_TRUE(eof.fds.empty());
}

TEST_F(FdPassingTest, EofBeforeAnyByteIsAnEmptyResult) {
  auto [sender, receiver] = unix_pair();
  sender.close();
  ReceivedFds got = recv_fds(receiver, 1, 16);
  EXPECT_TRUE(got.bytes.empty());
  EXPECT_TRUE(got.fds.empty());
}

TEST_F(FdPassingTest, ATimeoutBoundsTheWait) {
  auto [sender, receiver] = unix_pair();
  receiver.set_timeout(50ms);
  auto got = recv_fds(receiver, 1, 16, std::nothrow);
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error(), errc::timed_out);
}

TEST_F(FdPassingTest, BadInputGetsAClearError) {
  auto [sender, receiver] = unix_pair();
  test::Pipe pipe;

  // An fd that is not open: EBADF, and the message names it.
  const int closed_fd = ::dup(pipe.write_end.fd());
  ::close(closed_fd);
  const int fds[] = {pipe.write_end.fd(), closed_fd};
  auto bad = send_fds(sender, fds, "x", std::nothrow);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), std::errc::bad_file_descriptor);
  const std::string message = test::error_of([&] { send_fds(sender, fds, "x"); });
  EXPECT_NE(message.find("send_fds "), std::string::npos) << message;
  EXPECT_NE(message.find("fd " + std::to_string(closed_fd) + " is not open: Bad file descriptor"),
            std::string::npos)
      << message;
  EXPECT_NE(test::error_of([&] { send_fds(sender, {987654}, "x"); }).find("fd 987654 is not open"),
            std::string::npos);

  // Zero bytes of data.
  auto empty = send_fds(sender, {pipe.write_end.fd()}, "", std::nothrow);
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error(), FdPassingErrc::no_data);
  EXPECT_EQ(empty.error(), std::errc::invalid_argument);
  EXPECT_NE(test::error_of([&] {
              send_fds(sender, {pipe.write_end.fd()}, "");
            }).find("at least one byte of data"),
            std::string::npos);

  // No room to receive.
  EXPECT_EQ(recv_fds(receiver, 0, 16, std::nothrow).error(), FdPassingErrc::no_room);
  EXPECT_EQ(recv_fds(receiver, 1, 0, std::nothrow).error(), FdPassingErrc::no_room);

  // Nothing was sent by any of these: the stream is still empty.
  receiver.set_timeout(0ms);
  EXPECT_EQ(recv_fds(receiver, 1, 16, std::nothrow).error(),
            std::errc::resource_unavailable_try_again);

  // A closed socket.
  Socket closed;
  EXPECT_EQ(send_fds(closed, {pipe.write_end.fd()}, "x", std::nothrow).error(),
            errc::socket_closed);
  EXPECT_EQ(recv_fds(closed, 1, 1, std::nothrow).error(), errc::socket_closed);
}

TEST_F(FdPassingTest, ANonUnixSocketIsRefusedBeforeAnythingIsSent) {
  auto [client, server_side] = tcp_pair();
  test::Pipe pipe;
  auto sent = send_fds(client, {pipe.write_end.fd()}, "x", std::nothrow);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error(), FdPassingErrc::not_unix_socket);
  EXPECT_NE(test::error_of([&] {
              send_fds(client, {pipe.write_end.fd()}, "x");
            }).find("only be passed over a Unix domain socket"),
            std::string::npos);
  EXPECT_EQ(recv_fds(server_side, 1, 1, std::nothrow).error(), FdPassingErrc::not_unix_socket);
  // The byte did not go without its fd.
  server_side.set_timeout(0ms);
  EXPECT_EQ(server_side.recv(1, std::nothrow).error(), std::errc::resource_unavailable_try_again);
}

TEST_F(FdPassingTest, NoSigpipeWhenThePeerIsGone) {
  auto [sender, receiver] = unix_pair();
  receiver.close();
  test::Pipe pipe;
  // A SIGPIPE would kill the test binary here.
  auto sent = send_fds(sender, {pipe.write_end.fd()}, "x", std::nothrow);
  ASSERT_FALSE(sent);
  EXPECT_EQ(sent.error(), std::errc::broken_pipe);
}

// python3's socket.send_fds and recv_fds at the other end, in another process: the wire format
// is the kernel's, so the two must agree both ways.
TEST_F(FdPassingTest, Python3IsAPeerBothWays) {
  test::TempDir dir;
  Socket listener = create_server("unix:" + dir.file("fds.sock"));
  listener.set_timeout(5s);
  const std::string script = R"(
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
# Receive a pipe's write end from wire and write through it.
msg, fds, flags, addr = socket.recv_fds(s, 16, 4)
os.write(fds[0], b"python wrote " + msg)
# Send wire a pipe's write end and read what wire writes into it.
r, w = os.pipe()
socket.send_fds(s, [b"py"], [w])
os.close(w)
print(os.read(r, 100).decode(), flush=True)
)";
  test::Child python({"/usr/bin/python3", "-c", script, dir.file("fds.sock")});
  auto [conn, peer] = listener.accept();
  conn.set_timeout(5s);

  test::Pipe pipe;
  send_fds(conn, {pipe.write_end.fd()}, "hello");
  EXPECT_EQ(read_exactly(pipe.read_end.fd(), 18), "python wrote hello");

  ReceivedFds got = recv_fds(conn, 1, 16);
  EXPECT_EQ(got.bytes, "py");
  ASSERT_EQ(got.fds.size(), 1u);
  write_all(fd_number(got.fds[0]), "wire wrote this");
  EXPECT_EQ(python.read_all(), "wire wrote this\n");
  EXPECT_EQ(python.wait(), 0);
}

namespace {

Task<std::string> relay_a_pipe_async(AsyncSocket& sender, AsyncSocket& receiver, int pipe_fd) {
  const int fds[] = {pipe_fd};
  co_await send_fds(sender, fds, "async");
  ReceivedFds got = co_await recv_fds(receiver, 2, 16);
  if (got.fds.size() != 1) co_return "wrong fd count";
  const int fd = fd_number(got.fds[0]);
  if (::write(fd, "via the loop", 12) != 12) co_return "write failed";
  co_return got.bytes;
}

Task<std::string> async_errors(AsyncSocket& sender, AsyncSocket& receiver, int pipe_fd) {
  std::string seen;
  auto empty = co_await send_fds(sender, std::span<const int>(&pipe_fd, 1), "", std::nothrow);
  if (!empty && empty.error() == FdPassingErrc::no_data) seen += "no_data ";
  try {
    const int bad[] = {pipe_fd, 987654};
    co_await send_fds(sender, bad, "x");
  } catch (const Error& e) {
    if (std::string(e.what()).find("fd 987654 is not open") != std::string::npos) seen += "ebadf ";
  }
  auto no_room = co_await recv_fds(receiver, 0, 1, std::nothrow);
  if (!no_room && no_room.error() == FdPassingErrc::no_room) seen += "no_room ";
  // A receive that has to wait: the fds come later, from a timer.
  receiver.loop()->call_later(20ms, [&sender, pipe_fd] {
    send_fds(sender.socket(), {pipe_fd, pipe_fd}, "later");
  });
  auto truncated = co_await recv_fds(receiver, 1, 16, std::nothrow);
  if (!truncated && truncated.error() == FdPassingErrc::fds_truncated) seen += "truncated";
  co_return seen;
}

}  // namespace

TEST_F(FdPassingTest, AwaitableFormsThroughTheLoop) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  AsyncSocket sender(loop, std::move(a));
  AsyncSocket receiver(loop, std::move(b));
  sender.set_timeout(5s);
  receiver.set_timeout(5s);
  test::Pipe pipe;
  EXPECT_EQ(loop.run_until_complete(relay_a_pipe_async(sender, receiver, pipe.write_end.fd())),
            "async");
  EXPECT_EQ(read_exactly(pipe.read_end.fd(), 12), "via the loop");
  const int before = test::open_fd_count();
  EXPECT_EQ(loop.run_until_complete(async_errors(sender, receiver, pipe.write_end.fd())),
            "no_data ebadf no_room truncated");
  EXPECT_EQ(test::open_fd_count(), before);
}

TEST_F(FdPassingTest, AwaitableSendWaitsForRoomAndDeliversEveryByte) {
  EventLoop loop;
  auto [a, b] = Socket::pair();
  a.set_option(option::send_buffer_size, 4096);
  AsyncSocket sender(loop, std::move(a));
  sender.set_timeout(5s);
  Socket& reader = b;
  reader.set_timeout(0ms);  // drained from the loop's thread: it must never block there
  test::Pipe pipe;
  const std::string big = test::random_bytes(256 * 1024);
  std::string received;
  int fds_seen = 0;
  auto drain_now = [&] {
    for (;;) {
      auto got = recv_fds(reader, 1, 65536, std::nothrow);
      if (!got) return;  // EAGAIN: nothing more for now
      if (got->bytes.empty()) return;
      received += got->bytes;
      fds_seen += static_cast<int>(got->fds.size());
    }
  };
  // The reader drains from a timer, so the sender fills the buffer and has to wait for room.
  std::function<void()> drain = [&] {
    drain_now();
    if (received.size() < big.size()) loop.call_later(1ms, drain);
  };
  loop.call_later(1ms, drain);
  const int fds[] = {pipe.write_end.fd()};
  auto body = [&]() -> Task<void> { co_await send_fds(sender, fds, big); };
  loop.run_until_complete(body());
  drain_now();
  EXPECT_EQ(received.size(), big.size());
  EXPECT_TRUE(received == big);
  EXPECT_EQ(fds_seen, 1);
}

TEST_F(PeerCredentialsTest, ASocketpairNamesThisProcess) {
  auto [a, b] = unix_pair();
  Credentials who = peer_credentials(a);
  EXPECT_EQ(who.pid, ::getpid());
  EXPECT_EQ(who.uid, ::getuid());
  EXPECT_EQ(who.gid, ::getgid());
}

TEST_F(PeerCredentialsTest, AnAcceptedConnectionNamesTheClientProcess) {
  test::TempDir dir;
  Socket listener = create_server("unix:" + dir.file("cred.sock"));
  listener.set_timeout(5s);
  test::Child python(
      {"/usr/bin/python3", "-c",
       "import socket,sys,os\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
       "print(os.getpid(), flush=True)\ns.recv(1)\n",
       dir.file("cred.sock")});
  auto [conn, peer] = listener.accept();
  Credentials who = peer_credentials(conn);
  EXPECT_EQ(who.pid, python.pid());
  EXPECT_EQ(std::to_string(who.pid) + "\n", python.read_line());
  EXPECT_EQ(who.uid, ::getuid());
  EXPECT_EQ(who.gid, ::getgid());

  // The client's side sees the process that listened: this one.
  conn.close();
  EXPECT_EQ(python.wait(), 0);
  Socket client(Family::local, Type::stream);
  client.connect(Address::parse("unix:" + dir.file("cred.sock")));
  EXPECT_EQ(peer_credentials(client).pid, ::getpid());
}

TEST_F(PeerCredentialsTest, ThePeerPidfdIsThatProcess) {
  auto [a, b] = unix_pair();
  auto pidfd = peer_pidfd(a, std::nothrow);
  if (!pidfd && pidfd.error() == std::errc::no_protocol_option) {
    GTEST_SKIP() << "SO_PEERPIDFD needs Linux 6.5+";
  }
  ASSERT_TRUE(pidfd) << pidfd.error().message();
  EXPECT_TRUE(has_cloexec(pidfd->fd()));
  std::ifstream info("/proc/self/fdinfo/" + std::to_string(pidfd->fd()));
  std::string line, pid_line;
  while (std::getline(info, line)) {
    if (line.rfind("Pid:", 0) == 0) pid_line = line;
  }
  EXPECT_EQ(pid_line, "Pid:\t" + std::to_string(::getpid()));
}

TEST_F(PeerCredentialsTest, NoPeerOrNotUnixIsAClearError) {
  auto [client, server_side] = tcp_pair();
  auto tcp = peer_credentials(client, std::nothrow);
  ASSERT_FALSE(tcp);
  EXPECT_EQ(tcp.error(), std::errc::address_family_not_supported);
  EXPECT_NE(test::error_of([&] { peer_credentials(client); }).find("not a Unix domain socket"),
            std::string::npos);
  EXPECT_EQ(peer_pidfd(client, std::nothrow).error(), std::errc::address_family_not_supported);

  Socket unconnected(Family::local, Type::stream);
  EXPECT_EQ(peer_credentials(unconnected, std::nothrow).error(), std::errc::not_connected);
  EXPECT_NE(test::error_of([&] { peer_credentials(unconnected); }).find("no peer"),
            std::string::npos);
  Socket closed;
  EXPECT_EQ(peer_credentials(closed, std::nothrow).error(), errc::socket_closed);
}
