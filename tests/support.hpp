// Test support: fd-leak checking and loopback helpers shared by the test files.
#pragma once

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <thread>
#include <string>

#include "wire/wire.hpp"

namespace wire {
// GoogleTest prints Addresses as text in failure messages.
inline void PrintTo(const Address& address, std::ostream* os) { *os << address.to_string(); }
}  // namespace wire

namespace wire::test {

inline int open_fd_count() {
  int count = 0;
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    while (::readdir(dir) != nullptr) ++count;
    ::closedir(dir);
  }
  return count;
}

// Every test checks that it closed every fd it opened.
class Test : public ::testing::Test {
 protected:
  void SetUp() override { fds_before_ = open_fd_count(); }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_before_) << "the test leaked file descriptors";
  }

 private:
  int fds_before_ = 0;
};

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "wire-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Whether ::1 can be bound here; IPv6 tests skip with this reason when not.
inline bool ipv6_loopback_available() {
  auto s = Socket::create(Family::inet6, Type::stream, std::nothrow);
  if (!s) return false;
  return bool(s->bind(Address::parse("tcp://[::1]:0"), std::nothrow));
}

// A listening TCP socket on 127.0.0.1 with an ephemeral port.
inline Socket loopback_listener(const char* address = "tcp://127.0.0.1:0") {
  return create_server(address);
}

}  // namespace wire::test

namespace wire::test {

// A loopback listener that never accepts and whose backlog is full, so a new connect to it
// stays in SYN_SENT: the kernel drops SYNs once the accept queue is full. Connect attempts
// to address() hang until their own timeout.
class Blackhole {
 public:
  Blackhole() : listener_(create_server("tcp://127.0.0.1:0", ServerOptions{.backlog = 0})) {
    address_ = listener_.local_address();
    for (int i = 0; i < 16; ++i) {
      Socket s(Family::inet, Type::stream);
      s.set_timeout(std::chrono::milliseconds(200));
      auto r = s.connect(address_, std::nothrow);
      if (!r) {
        if (r.error() != errc::timed_out) throw Error(r.error(), "fill backlog", address_.to_string());
        return;  // this one hung: the queue is full
      }
      fillers_.push_back(std::move(s));
    }
    throw std::runtime_error("backlog never filled");
  }
  const Address& address() const { return address_; }

 private:
  Socket listener_;
  Address address_;
  std::vector<Socket> fillers_;
};

}  // namespace wire::test
