// wire::relay between real sockets and pipes: datagram sizing learnt from the kernel, CRLF,
// idle and quit bounds, and unconnected datagram sockets answering their senders.
#include <fcntl.h>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

class RelayTest : public test::Test {};

namespace {

// A pipe whose write end the test feeds; both ends closed with it.
struct Pipe {
  int read = -1, write = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    read = fds[0];
    write = fds[1];
  }
  ~Pipe() {
    close_write();
    if (read >= 0) ::close(read);
  }
  void put(std::string_view data) {
    while (!data.empty()) {
      auto n = ::write(write, data.data(), data.size());
      if (n <= 0) throw std::runtime_error("write");
      data.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void close_write() {
    if (write >= 0) ::close(std::exchange(write, -1));
  }
};

std::string drain(int fd) {
  std::string all;
  char buffer[65536];
  ::fcntl(fd, F_SETFL, O_NONBLOCK);
  for (::ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) > 0;) all.append(buffer, n);
  return all;
}

}  // namespace

// A Unix datagram socket with a small send buffer takes less than one read: the relay
// learns the limit from EMSGSIZE (the buffer less 32 bytes) and loses nothing.
TEST_F(RelayTest, DatagramsShrinkToWhatTheKernelTakes) {
  auto [a, b] = Socket::pair(Type::dgram);
  a.set_option(option::send_buffer_size, 4096);  // the kernel doubles it
  b.set_option(option::receive_buffer_size, 1 << 20);
  const std::size_t limit = static_cast<std::size_t>(a.get_option(option::send_buffer_size)) - 32;
  std::string data(20000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  Pipe input, output;
  input.put(data);
  input.close_write();
  std::thread reader([&, &b = b] {
    b.set_timeout(5s);
    std::string got;
    std::vector<std::size_t> sizes;
    while (got.size() < data.size()) {
      auto d = b.recvfrom(std::size_t{1} << 16, std::nothrow);
      if (!d) break;
      sizes.push_back(d->data.size());
      got += d->data;
    }
    EXPECT_TRUE(got == data);
    for (auto size : sizes) EXPECT_LE(size, limit);
    EXPECT_EQ(sizes.at(0), limit) << "the first datagram is as large as the kernel takes";
  });
  RelayStats stats = relay(a, input.read, output.write, {.linger = 0s});
  reader.join();
  EXPECT_EQ(stats.sent, data.size());
}

TEST_F(RelayTest, CrlfIdleTimeoutAndQuit) {
  Socket listener = test::loopback_listener();
  listener.set_timeout(5s);
  Socket client = create_connection(listener.local_address().to_string(), 5s);
  auto [conn, peer] = listener.accept();
  conn.set_timeout(5s);
  Pipe input, output;
  input.put("a\nb\r\n");
  // Input stays open and silent, the peer too: the idle timeout ends the relay.
  RelayStats stats = relay(client, input.read, output.write, {.idle_timeout = 200ms, .crlf = true});
  EXPECT_TRUE(stats.timed_out);
  EXPECT_EQ(conn.recv(100), "a\r\nb\r\n");

  Socket second = create_connection(listener.local_address().to_string(), 5s);
  auto [conn2, peer2] = listener.accept();
  Pipe input2, output2;
  input2.put("bye");
  input2.close_write();
  // The peer never closes: quit_after_input ends the relay after the input was sent.
  stats = relay(second, input2.read, output2.write, {.quit_after_input = 0s});
  EXPECT_FALSE(stats.timed_out);
  EXPECT_TRUE(stats.input_ended);
  conn2.set_timeout(5s);
  EXPECT_EQ(conn2.recv(100), "bye");
  EXPECT_EQ(conn2.recv(100), "") << "half-closed at the input's end";
}

// An unconnected datagram socket answers the last sender (Senders::every), calling
// on_sender as the sender changes; its input waits until someone has sent.
TEST_F(RelayTest, UnconnectedDatagramSocketAnswersItsSenders) {
  Socket server = create_server("udp://127.0.0.1:0");
  Socket a = create_connection(server.local_address().to_string(), 5s);
  Socket b = create_connection(server.local_address().to_string(), 5s);
  a.set_timeout(5s);
  b.set_timeout(5s);
  Pipe input, output;
  std::vector<Address> senders;
  std::thread peers([&, &a = a, &b = b] {
    a.send_all("from a");
    b.send_all("from b");
    input.put("reply");  // goes to the last sender known when it is read
    EXPECT_EQ(b.recv(16), "reply");
  });
  RelayStats stats = relay(server, input.read, output.write,
                           {.linger = std::nullopt,
                            .idle_timeout = 1s,
                            .senders = RelayOptions::Senders::every,
                            .on_sender = [&](const Address& from) { senders.push_back(from); }});
  peers.join();
  EXPECT_TRUE(stats.timed_out);
  EXPECT_EQ(drain(output.read), "from afrom b");
  EXPECT_EQ(senders, (std::vector<Address>{a.local_address(), b.local_address()}));
}

TEST_F(RelayTest, TheSocketItselfIsNeitherInputNorOutput) {
  auto [a, b] = Socket::pair();
  try {
    (void)relay(a, a.fileno(), STDOUT_FILENO);
    ADD_FAILURE() << "relayed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("is the socket itself"), std::string::npos);
  }
}
