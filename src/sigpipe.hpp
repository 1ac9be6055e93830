// Internal: calls that cannot take MSG_NOSIGNAL (write(2) to a pipe, sendfile(2), splice(2))
// raise SIGPIPE when the reader is gone. This blocks it for the calling thread during the
// call and swallows the one the call raised, so the caller sees EPIPE (or its partial count)
// and nothing process-wide changes.
//
// The signal is looked for whatever the call returned: sendfile and write can send part of
// what they were given, meet the vanished reader on the next internal chunk, raise SIGPIPE
// and still return the partial count (seen: sendfile(...) = 65536, then killed by SIGPIPE
// once the mask was restored). Deciding by the return value left that signal pending.
#pragma once

#include <errno.h>
#include <signal.h>
#include <sys/types.h>

namespace wire::detail {

inline bool sigpipe_pending() noexcept {
  ::sigset_t pending;
  ::sigpending(&pending);
  return ::sigismember(&pending, SIGPIPE) == 1;
}

template <class Call>
auto without_sigpipe(Call&& call) {
  ::sigset_t pipe_only, old_mask;
  ::sigemptyset(&pipe_only);
  ::sigaddset(&pipe_only, SIGPIPE);
  // One raised before this call (by someone else) is not ours to swallow.
  const bool already_pending = sigpipe_pending();
  ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  auto n = call();
  const int saved = errno;
  if (!already_pending && sigpipe_pending()) {
    ::timespec zero{};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = saved;
  return n;
}

}  // namespace wire::detail
