// EventLoop::add_signal_handler: the async-signal-safe half notes the signal and wakes the
// owning loop; the loop runs the callback on its own thread.
//
// Why not signalfd: it only sees a signal blocked in every thread, and a thread the user
// (or a library) made without blocking it would take the signal's default action instead.
// A handler that writes to the loop's eventfd works whatever the threads' masks are; this
// is what asyncio's set_wakeup_fd does too.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "wire/loop.hpp"

namespace wire {

namespace {
constexpr int max_signal = 65;                  // _NSIG on Linux
std::atomic<int> wake_fd_of[max_signal];        // the owning loop's eventfd, or -1 (0: none)
std::atomic<unsigned> pending[max_signal];      // arrivals not yet run
std::atomic<unsigned> generation{0};            // bumped by every arrival
std::atomic<const void*> owner_of[max_signal];  // the owning loop

extern "C" void note_signal(int signal) {
  const int saved = errno;
  if (signal > 0 && signal < max_signal) {
    pending[signal].fetch_add(1, std::memory_order_relaxed);
    generation.fetch_add(1, std::memory_order_release);
    const int fd = wake_fd_of[signal].load(std::memory_order_acquire) - 1;
    if (fd >= 0) {
      const std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
    }
  }
  errno = saved;
}
}  // namespace

void EventLoop::add_signal_handler(int signal, std::function<void()> callback) {
  if (signal <= 0 || signal >= max_signal || signal == SIGKILL || signal == SIGSTOP) {
    throw Error(std::make_error_code(std::errc::invalid_argument), "add_signal_handler", "",
                "signal " + std::to_string(signal) + " cannot be caught");
  }
  for (SignalHandler& handler : signal_handlers_) {
    if (handler.signal == signal) {
      handler.callback = std::move(callback);
      return;
    }
  }
  const void* expected = nullptr;
  if (!owner_of[signal].compare_exchange_strong(expected, this)) {
    throw Error(std::make_error_code(std::errc::device_or_resource_busy), "add_signal_handler", "",
                "another event loop handles signal " + std::to_string(signal));
  }
  SignalHandler handler{signal, std::move(callback), {}};
  try {
    signal_handlers_.reserve(signal_handlers_.size() + 1);
  } catch (...) {
    owner_of[signal].store(nullptr);
    throw;
  }
  pending[signal].store(0, std::memory_order_relaxed);
  wake_fd_of[signal].store(wakeup_fd_ + 1, std::memory_order_release);
  struct ::sigaction action {};
  action.sa_handler = note_signal;
  action.sa_flags = SA_RESTART;
  ::sigemptyset(&action.sa_mask);
  if (::sigaction(signal, &action, &handler.previous) != 0) {
    const auto error = detail::last_error();
    wake_fd_of[signal].store(0);
    owner_of[signal].store(nullptr);
    throw Error(error, "sigaction", "signal " + std::to_string(signal));
  }
  signal_handlers_.push_back(std::move(handler));
}

bool EventLoop::remove_signal_handler(int signal) noexcept {
  for (auto it = signal_handlers_.begin(); it != signal_handlers_.end(); ++it) {
    if (it->signal != signal) continue;
    ::sigaction(signal, &it->previous, nullptr);
    wake_fd_of[signal].store(0, std::memory_order_release);
    owner_of[signal].store(nullptr);
    signal_handlers_.erase(it);
    return true;
  }
  return false;
}

void EventLoop::run_signal_handlers() {
  if (signal_handlers_.empty()) return;
  const unsigned now = generation.load(std::memory_order_acquire);
  if (now == signals_seen_) return;
  signals_seen_ = now;
  for (const SignalHandler& handler : signal_handlers_) {
    if (pending[handler.signal].exchange(0, std::memory_order_relaxed) != 0) {
      ready_.push_back(handler.callback);
    }
  }
}

}  // namespace wire
