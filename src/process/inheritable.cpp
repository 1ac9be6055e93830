#include "wire/process/inheritable.hpp"

#include <fcntl.h>

#include <string>

namespace wire {

Result<void> set_inheritable(int fd, bool inheritable, std::nothrow_t) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return detail::last_error();
  const int wanted = inheritable ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC);
  if (wanted != flags && ::fcntl(fd, F_SETFD, wanted) < 0) return detail::last_error();
  return {};
}

void set_inheritable(int fd, bool inheritable) {
  if (auto r = set_inheritable(fd, inheritable, std::nothrow); !r) {
    throw Error(r.error(), "set_inheritable", "fd " + std::to_string(fd));
  }
}

Result<bool> is_inheritable(int fd, std::nothrow_t) noexcept {
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0) return detail::last_error();
  return (flags & FD_CLOEXEC) == 0;
}

bool is_inheritable(int fd) {
  auto r = is_inheritable(fd, std::nothrow);
  if (!r) throw Error(r.error(), "is_inheritable", "fd " + std::to_string(fd));
  return *r;
}

}  // namespace wire
