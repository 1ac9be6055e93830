// wire/owned_fd.hpp — OwnedFd, the sole owner of one file descriptor that is not a Socket.
//
//   wire::OwnedFd file(::open("data.bin", O_RDONLY | O_CLOEXEC));
//   if (!file) throw ...;                      // open failed: OwnedFd(-1) owns nothing
//   ::read(file.fd(), buffer, sizeof buffer);   // still owned
//   int raw = file.release();                   // now the caller closes raw
//
// Ownership: an OwnedFd owns its fd from construction until close(), release() or its
// destructor, like Socket does for sockets; it is move-only. It is what wire hands back for an
// fd that is not a socket (a pipe, a file, an eventfd, a pidfd received or created for you),
// so such an fd can never leak on an exception path.
#pragma once

namespace wire {

class OwnedFd {
 public:
  // Owns nothing: fd() is -1.
  OwnedFd() noexcept = default;
  // Takes ownership of `fd` (-1, or any negative value, owns nothing).
  explicit OwnedFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { close(); }

  // The fd, still owned; -1 when empty.
  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return is_open(); }
  // Gives up ownership: the caller must close the returned fd (-1 when empty).
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes the fd now (idempotent). As with Socket::close, close(2) errors are not reported:
  // Linux releases the number whatever close returns, and a retry could close another's fd.
  void close() noexcept;

 private:
  int fd_ = -1;
};

}  // namespace wire
