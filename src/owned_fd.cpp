#include "wire/owned_fd.hpp"

#include <unistd.h>

namespace wire {

OwnedFd& OwnedFd::operator=(OwnedFd&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = other.release();
  }
  return *this;
}

void OwnedFd::close() noexcept {
  if (fd_ >= 0) ::close(release());
}

}  // namespace wire
