// Runs every example program against a local peer and checks what it prints.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstring>

#include <thread>

#include "support.hpp"

using namespace wire;
using namespace std::chrono_literals;

extern char** environ;

namespace {

// An example process with its stdout on a pipe, read through a wire::Stream.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    args[0] = std::string(WIRE_EXAMPLES_DIR) + "/" + args[0];
    int out[2];
    if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    ::posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error("posix_spawn " + args[0] + ": " + std::strerror(rc));
    }
    out_fd_ = out[0];
    out_ = std::make_unique<Stream>(out_fd_, 10s);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    out_.reset();
    if (out_fd_ >= 0) ::close(out_fd_);
  }
  std::string read_line() { return out_->read_line(); }
  // Everything until the child closes stdout, then its exit status.
  std::string read_all() {
    std::string all;
    for (std::string chunk; !(chunk = out_->read(4096)).empty();) all += chunk;
    return all;
  }
  int wait() {
    int status = 0;
    for (int i = 0; i < 1000; ++i) {  // bounded: 10 s
      pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(10ms);
    }
    throw std::runtime_error("example did not exit");
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::unique_ptr<Stream> out_;
};

// The address at the end of "listening on ADDRESS ..." lines.
Address listening_address(const std::string& line) {
  const std::string prefix = "listening on ";
  EXPECT_EQ(line.substr(0, prefix.size()), prefix) << line;
  std::string rest = line.substr(prefix.size());
  return Address::parse(rest.substr(0, rest.find_first_of(" \n")));
}

// Answers one HTTP request with a fixed response, in a thread.
class TinyHttpPeer {
 public:
  TinyHttpPeer() : listener_(create_server("tcp://127.0.0.1:0")) {
    listener_.set_timeout(10s);
    thread_ = std::thread([this] {
      auto [conn, peer] = listener_.accept();
      request_ = conn.makefile().read_until("\r\n\r\n");
      conn.send_all("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 18\r\n\r\n"
                    "<html>Hello</html>");
    });
  }
  ~TinyHttpPeer() {
    if (thread_.joinable()) thread_.join();
  }
  std::string address() const { return listener_.local_address().to_string(); }
  const std::string& request() {
    thread_.join();
    return request_;
  }

 private:
  Socket listener_;
  std::string request_;
  std::thread thread_;
};

}  // namespace

class ExamplesTest : public test::Test {};

TEST_F(ExamplesTest, FilenoPrintsAnFd) {
  Child child({"fileno"});
  std::string out = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  int fd = -1;
  ASSERT_EQ(std::sscanf(out.c_str(), "Underlying FD is %d", &fd), 1) << out;
  EXPECT_GE(fd, 3);
}

TEST_F(ExamplesTest, TcpServerAcceptsOnANewFd) {
  Child child({"tcp_server", "tcp://127.0.0.1:0"});
  std::string first = child.read_line();
  Address address = listening_address(first);
  Socket client = create_connection(std::vector<Address>{address}, 5s);
  client.send_all("hi");
  std::string reply;
  for (std::string chunk; !(chunk = client.recv(100)).empty();) reply += chunk;
  EXPECT_EQ(reply, "hello from the server\n");
  std::string rest = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_NE(rest.find("accepted " + client.local_address().to_string()), std::string::npos) << rest;
  EXPECT_NE(rest.find("received 2 bytes: hi"), std::string::npos) << rest;
}

TEST_F(ExamplesTest, TcpClientSendsAndPrintsTheReply) {
  Socket server = create_server("tcp://127.0.0.1:0");
  Child child({"tcp_client", server.local_address().to_string(), "question"});
  server.set_timeout(10s);
  auto [conn, peer] = server.accept();
  Stream f = conn.makefile();
  EXPECT_EQ(f.read(100), "question");
  EXPECT_EQ(f.read(100), "") << "the client half-closes after sending";
  conn.send_all("answer");
  conn.close();
  EXPECT_EQ(child.read_all(), "answer");
  EXPECT_EQ(child.wait(), 0);
}

TEST_F(ExamplesTest, UdpExchangesDatagrams) {
  Child child({"udp"});
  std::string out = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_NE(out.find("server got 'query' from a client"), std::string::npos) << out;
  EXPECT_NE(out.find("client got 'answer' from udp://127.0.0.1:"), std::string::npos) << out;
}

TEST_F(ExamplesTest, UnixSocketUsesAPath) {
  test::TempDir dir;
  Child child({"unix_socket", dir.file("example.sock")});
  std::string out = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(out, "server got 'ping over unix:" + dir.file("example.sock") + "'\n");
  struct ::stat st{};
  ASSERT_EQ(::stat(dir.file("example.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(ExamplesTest, HttpGetSendsFormattedBytes) {
  TinyHttpPeer peer;
  Child child({"http_get", peer.address()});
  std::string out = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(peer.request(), "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 200 OK"), std::string::npos) << out;
  EXPECT_NE(out.find("<html>Hello</html>"), std::string::npos) << out;
}

TEST_F(ExamplesTest, MakefileReadsHeadersLineByLine) {
  TinyHttpPeer peer;
  Child child({"makefile", peer.address()});
  std::string out = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  EXPECT_EQ(peer.request(), "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
  int socket_fd = -1, stream_fd = -2;
  ASSERT_EQ(std::sscanf(out.c_str(), "socket fd %d, stream fd %d", &socket_fd, &stream_fd), 2);
  EXPECT_EQ(socket_fd, stream_fd) << "makefile wraps the same fd";
  EXPECT_NE(out.find("header: HTTP/1.1 200 OK\r\n"), std::string::npos) << out;
  EXPECT_NE(out.find("header: Content-Length: 18\r\n"), std::string::npos) << out;
}

TEST_F(ExamplesTest, DetachHandsTheFdOver) {
  Child child({"detach"});
  std::string out = child.read_all();
  EXPECT_EQ(child.wait(), 0);
  int detached = -1, adopted = -2;
  ASSERT_EQ(std::sscanf(out.c_str(), "detached fd %d", &detached), 1) << out;
  auto at = out.find("adopted fd ");
  ASSERT_NE(at, std::string::npos) << out;
  ASSERT_EQ(std::sscanf(out.c_str() + at, "adopted fd %d", &adopted), 1);
  EXPECT_EQ(detached, adopted);
  EXPECT_NE(out.find("the old object refuses: fileno: socket is closed or detached"),
            std::string::npos)
      << out;
}

TEST_F(ExamplesTest, CloseOnEofClosesWhenThePeerDoes) {
  Child child({"close_on_eof", "tcp://127.0.0.1:0", "2"});
  Address address = listening_address(child.read_line());
  for (int i = 0; i < 2; ++i) {
    Socket client = create_connection(std::vector<Address>{address}, 5s);
    client.send_all("abc");
    EXPECT_EQ(client.recv(3), "abc");
    client.shutdown(Shutdown::write);
    EXPECT_EQ(client.recv(10), "") << "the server closes its side after our FIN";
    EXPECT_NE(child.read_line().find("closed after 3 bytes; closing fd"), std::string::npos);
  }
  EXPECT_EQ(child.wait(), 0);
}
