// Internal: calls that cannot take MSG_NOSIGNAL (write(2) to a pipe, sendfile(2)) raise
// SIGPIPE when the reader is gone. This blocks it for the calling thread during the call
// and swallows the one it raised, so the caller sees EPIPE and nothing process-wide changes.
#pragma once

#include <errno.h>
#include <signal.h>
#include <sys/types.h>

namespace wire::detail {

template <class Call>
::ssize_t without_sigpipe(Call&& call) {
  ::sigset_t pipe_only, old_mask, pending;
  ::sigemptyset(&pipe_only);
  ::sigaddset(&pipe_only, SIGPIPE);
  ::sigpending(&pending);
  const bool already_pending = ::sigismember(&pending, SIGPIPE) == 1;
  ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  ::ssize_t n = call();
  const int saved = errno;
  if (n < 0 && saved == EPIPE && !already_pending) {
    ::timespec zero{};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = saved;
  return n;
}

}  // namespace wire::detail
