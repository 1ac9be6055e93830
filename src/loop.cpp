#include "wire/loop.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdio>

#include "async/thread_pool.hpp"

namespace wire {

namespace {
thread_local EventLoop* current_loop = nullptr;

// Batches of ready work run back to back before the selector is polled (with no wait).
constexpr unsigned busy_batches_per_poll = 64;
}  // namespace

struct EventLoop::CallbackTimer : detail::TimerNode {
  EventLoop* loop = nullptr;
  TimerId id = 0;
  std::function<void()> callback;
};

EventLoop::EventLoop(SelectorKind kind) : selector_(Selector::create(kind)) {
  wakeup_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeup_fd_ < 0) throw Error(detail::last_error(), "eventfd", "event loop wakeup");
  try {
    if (auto ec = selector_->loop_add(wakeup_fd_, readable)) {
      throw Error(ec, "register", "event loop wakeup");
    }
  } catch (...) {
    ::close(wakeup_fd_);
    throw;
  }
  now_ = detail::Clock::now();
  exception_handler_ = [](std::exception_ptr error) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wire: task failed: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "wire: task failed with a non-standard exception\n");
    }
  };
}

EventLoop::~EventLoop() {
  // Destroying a task destroys its awaiters, which withdraw themselves from fds_ and heap_.
  while (!tasks_.empty()) {
    Spawned task = tasks_.back();
    tasks_.pop_back();
    task.handle.destroy();
    if (task.on_done != nullptr) task.on_done(task.context, nullptr);
  }
  // Workers finishing now post to this loop: joined before anything they touch goes.
  pool_.reset();
  ready_.clear();
  {
    std::lock_guard<std::mutex> lock(remote_mutex_);
    remote_.clear();
  }
  while (!signal_handlers_.empty()) remove_signal_handler(signal_handlers_.back().signal);
  callback_timers_.clear();
  selector_->loop_remove(wakeup_fd_);
  ::close(wakeup_fd_);
}

EventLoop* EventLoop::current() noexcept {
  return current_loop;
}

void EventLoop::set_exception_handler(std::function<void(std::exception_ptr)> handler) {
  exception_handler_ = std::move(handler);
}

void EventLoop::stop() noexcept {
  stop_requested_.store(true, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  // Async-signal-safe: write(2) on an eventfd.
  [[maybe_unused]] auto n = ::write(wakeup_fd_, &one, sizeof one);
}

void EventLoop::drain_wakeup() noexcept {
  std::uint64_t value;
  [[maybe_unused]] auto n = ::read(wakeup_fd_, &value, sizeof value);
}

void EventLoop::spawn(Task<void> task, DoneHook on_done, void* context) {
  auto handle = task.release();
  if (!handle) return;
  handle.promise().set_on_finish(&EventLoop::on_task_finished, this);
  handle.promise().spawn_index = static_cast<std::uint32_t>(tasks_.size());
  try {
    tasks_.push_back({handle, on_done, context});
  } catch (...) {
    handle.destroy();
    throw;
  }
  try {
    ready_tasks_.push_back(handle);
  } catch (...) {
    tasks_.pop_back();
    handle.destroy();
    throw;
  }
}

bool EventLoop::cancel_task(std::coroutine_handle<> task) noexcept {
  if (!task) return false;
  auto typed = std::coroutine_handle<detail::Promise<void>>::from_address(task.address());
  const std::uint32_t index = typed.promise().spawn_index;
  if (index >= tasks_.size() || tasks_[index].handle != typed) return false;
  const Spawned spawned = tasks_[index];
  tasks_[index] = tasks_.back();
  tasks_[index].handle.promise().spawn_index = index;
  tasks_.pop_back();
  // A task not started yet is still queued: it must not be resumed once destroyed.
  for (auto it = ready_tasks_.begin(); it != ready_tasks_.end(); ++it) {
    if (*it == task) {
      ready_tasks_.erase(it);
      break;
    }
  }
  spawned.handle.destroy();
  if (spawned.on_done != nullptr) spawned.on_done(spawned.context, nullptr);
  return true;
}

void EventLoop::report(std::exception_ptr exception) noexcept {
  try {
    exception_handler_(exception);
  } catch (...) {
  }
}

void EventLoop::on_task_finished(void* context, std::coroutine_handle<> handle) noexcept {
  auto* loop = static_cast<EventLoop*>(context);
  auto typed = std::coroutine_handle<detail::Promise<void>>::from_address(handle.address());
  // Out of the table in O(1): the last entry takes this one's slot.
  const std::uint32_t index = typed.promise().spawn_index;
  const Spawned task = loop->tasks_[index];
  loop->tasks_[index] = loop->tasks_.back();
  loop->tasks_[index].handle.promise().spawn_index = index;
  loop->tasks_.pop_back();
  std::exception_ptr error = typed.promise().exception();
  handle.destroy();  // allowed: the task is suspended at its final point
  if (task.on_done != nullptr) {
    task.on_done(task.context, error);
  } else if (error) {
    loop->report(error);
  }
}

void EventLoop::call_soon_threadsafe(std::function<void()> callback) {
  {
    std::lock_guard<std::mutex> lock(remote_mutex_);
    remote_.push_back(std::move(callback));
  }
  remote_pending_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wakeup_fd_, &one, sizeof one);
}

void EventLoop::submit_to_thread(detail::ThreadJob* job) {
  if (!pool_) pool_ = std::make_unique<detail::ThreadPool>(*this, max_worker_threads);
  pool_->submit(job);
}

void EventLoop::take_remote() {
  std::vector<std::function<void()>> taken;
  {
    std::lock_guard<std::mutex> lock(remote_mutex_);
    taken.swap(remote_);
    remote_pending_.store(false, std::memory_order_relaxed);
  }
  for (auto& callback : taken) ready_.push_back(std::move(callback));
}

void EventLoop::defer_until_idle(void (*fn)(void*) noexcept, void* context) {
  if (!running_ && inline_steps_ == 0) {
    fn(context);
    return;
  }
  deferred_.push_back({fn, context});
}

void EventLoop::run_deferred_slow() noexcept {
  // What runs here may defer more (a group cancelling its children): taken in turn.
  for (std::size_t i = 0; i < deferred_.size(); ++i) {
    const Deferred next = deferred_[i];
    next.fn(next.context);
  }
  deferred_.clear();
}

void EventLoop::wake(detail::WakeNode& node) noexcept {
  if (node.queued) return;
  node.queued = true;
  node.next = nullptr;
  node.prev = woken_tail_;
  if (woken_tail_ != nullptr) {
    woken_tail_->next = &node;
  } else {
    woken_head_ = &node;
  }
  woken_tail_ = &node;
  ++woken_;
}

void EventLoop::unwake(detail::WakeNode& node) noexcept {
  if (!node.queued) return;
  (node.prev != nullptr ? node.prev->next : woken_head_) = node.next;
  (node.next != nullptr ? node.next->prev : woken_tail_) = node.prev;
  node.next = node.prev = nullptr;
  node.queued = false;
  --woken_;
}

void EventLoop::call_soon(std::function<void()> callback) {
  ready_.push_back(std::move(callback));
}

EventLoop::TimerId EventLoop::call_later(Duration delay, std::function<void()> callback) {
  auto timer = std::make_unique<CallbackTimer>();
  timer->loop = this;
  timer->id = next_timer_id_++;
  timer->callback = std::move(callback);
  timer->fire = [](detail::TimerNode* node) noexcept {
    auto* t = static_cast<CallbackTimer*>(node);
    EventLoop* loop = t->loop;
    auto owned = std::move(loop->callback_timers_[t->id]);
    loop->callback_timers_.erase(t->id);
    loop->ready_.push_back(std::move(owned->callback));
  };
  const TimerId id = timer->id;
  arm(*timer, detail::later(detail::Clock::now(), delay));
  callback_timers_.emplace(id, std::move(timer));
  return id;
}

bool EventLoop::cancel(TimerId id) noexcept {
  auto it = callback_timers_.find(id);
  if (it == callback_timers_.end()) return false;
  disarm(*it->second);
  callback_timers_.erase(it);
  return true;
}

// Timers: a binary min-heap of nodes that know their own index, so an awaiter destroyed
// mid-wait removes its node in O(log n) without searching.
void EventLoop::arm(detail::TimerNode& timer, detail::Clock::time_point when) noexcept {
  if (timer.armed()) disarm(timer);
  timer.heap_index = static_cast<std::uint32_t>(heap_.size());
  timer.sequence = timer_sequence_++;
  heap_.push_back(HeapEntry{when, &timer});
  heap_up(timer.heap_index);
}

void EventLoop::disarm(detail::TimerNode& timer) noexcept {
  if (!timer.armed()) return;
  const std::size_t index = timer.heap_index;
  const std::size_t last = heap_.size() - 1;
  timer.heap_index = detail::TimerNode::not_armed;
  if (index != last) {
    heap_[index] = heap_[last];
    heap_[index].node->heap_index = static_cast<std::uint32_t>(index);
  }
  heap_.pop_back();
  if (index < heap_.size()) {
    heap_down(index);
    heap_up(index);
  }
}

namespace {
template <typename Entry>
bool earlier(const Entry& a, const Entry& b) {
  // Sequence numbers wrap after 2^32 arms; the signed difference orders them anyway.
  return a.when < b.when ||
         (a.when == b.when && static_cast<std::int32_t>(a.node->sequence - b.node->sequence) < 0);
}
}  // namespace

// Both sifts carry the moving entry in hand and write each entry once where it lands.
void EventLoop::heap_up(std::size_t index) noexcept {
  const HeapEntry moving = heap_[index];
  while (index > 0) {
    const std::size_t parent = (index - 1) / 2;
    if (!earlier(moving, heap_[parent])) break;
    heap_[index] = heap_[parent];
    heap_[index].node->heap_index = static_cast<std::uint32_t>(index);
    index = parent;
  }
  heap_[index] = moving;
  moving.node->heap_index = static_cast<std::uint32_t>(index);
}

void EventLoop::heap_down(std::size_t index) noexcept {
  const HeapEntry moving = heap_[index];
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && earlier(heap_[child + 1], heap_[child])) ++child;
    if (!earlier(heap_[child], moving)) break;
    heap_[index] = heap_[child];
    heap_[index].node->heap_index = static_cast<std::uint32_t>(index);
    index = child;
  }
  heap_[index] = moving;
  moving.node->heap_index = static_cast<std::uint32_t>(index);
}

void EventLoop::fire_timers() {
  now_ = detail::Clock::now();
  while (!heap_.empty() && heap_.front().when <= now_) {
    detail::TimerNode* timer = heap_.front().node;
    disarm(*timer);
    timer->fire(timer);
    run_deferred();
  }
}

std::error_code EventLoop::wait_io(detail::IoWaiter& waiter) noexcept {
  const int fd = waiter.fd;
  if (fd < 0) return errc::socket_closed;
  // The loop's own eventfd is registered without an FdState: a second registration (an
  // AsyncFd borrowing it) would corrupt the backend's table.
  if (fd == wakeup_fd_) return std::make_error_code(std::errc::device_or_resource_busy);
  try {
    if (static_cast<std::size_t>(fd) >= fds_.size()) fds_.resize(fd + 1);
  } catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
  }
  FdState& state = fds_[fd];
  // One reader and one writer per fd at a time, like asyncio's sock_recv / sock_sendall.
  if (state.waiter(waiter.direction) != nullptr) {
    return std::make_error_code(std::errc::device_or_resource_busy);
  }
  const unsigned wanted = state.interest() | waiter.direction;
  if (state.interest() == 0) {
    if (auto ec = selector_->loop_add(fd, wanted)) return ec;
  } else if (wanted != state.interest()) {
    if (auto ec = selector_->loop_modify(fd, wanted)) return ec;
  }
  state.set_interest(wanted);
  state.set_waiter(waiter.direction, &waiter);
  waiter.waiting = true;
  ++io_waiters_;
  return {};
}

std::error_code EventLoop::wait_io_first(detail::IoWaiter& waiter) noexcept {
  if (auto ec = wait_io(waiter)) return ec;
  if (!is_first(waiter.fd)) {
    try {
      first_fds_.push_back(waiter.fd);
    } catch (const std::bad_alloc&) {
      cancel_io(waiter);
      return std::make_error_code(std::errc::not_enough_memory);
    }
  }
  return {};
}

void EventLoop::cancel_io(detail::IoWaiter& waiter) noexcept {
  if (!waiter.waiting) return;
  FdState& state = fds_[waiter.fd];
  if (!first_fds_.empty()) std::erase(first_fds_, waiter.fd);
  if (state.waiter(waiter.direction) == &waiter) state.set_waiter(waiter.direction, nullptr);
  waiter.waiting = false;
  --io_waiters_;
  // The interest stays: the next wait on this fd usually wants it again. A report that
  // finds no waiter drops it (see dispatch).
}

void EventLoop::forget_fd(int fd, std::error_code reason) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= fds_.size()) return;
  FdState& state = fds_[fd];
  if (state.interest() != 0) selector_->loop_remove(fd);
  state.set_interest(0);
  // Aborting the reader resumes its coroutine, which may end the writer's (a relay, a task
  // group) or make fds_ grow: the writer is looked up again afterwards, never kept.
  for (unsigned direction : {unsigned(readable), unsigned(writable)}) {
    detail::IoWaiter* waiter = fds_[fd].waiter(direction);
    if (waiter == nullptr) continue;
    cancel_io(*waiter);
    // The waiter resumes inside the caller's step (close() in some coroutine, or code
    // outside run()): what it defers waits until that step is over.
    ++inline_steps_;
    waiter->ops->abort(waiter, reason);
    --inline_steps_;
  }
  if (inline_steps_ == 0 && !running_) run_deferred();
}

void EventLoop::dispatch(int fd, unsigned events) {
  if (static_cast<std::size_t>(fd) >= fds_.size()) return;
  for (unsigned direction : {unsigned(readable), unsigned(writable)}) {
    if (!(events & direction)) continue;
    detail::IoWaiter* waiter = fds_[fd].waiter(direction);
    if (waiter == nullptr) continue;
    if (!waiter->ops->attempt(waiter)) continue;  // spurious: still would block
    cancel_io(*waiter);
    // Either may end the waiter's owner (and free the waiter): touch it no more after this.
    if (waiter->handle) {
      waiter->handle.resume();
    } else if (waiter->ops->complete != nullptr) {
      waiter->ops->complete(waiter);
    }
    run_deferred();
  }
  // Level-triggered interest nobody waits for would be reported again at once: drop it.
  // With no waiter left at all the fd leaves the selector, so an fd closed behind the
  // loop's back cannot linger in it.
  FdState& state = fds_[fd];
  if (state.interest() == 0) return;
  const unsigned wanted =
      (state.reader() ? unsigned(readable) : 0u) | (state.writer() ? unsigned(writable) : 0u);
  if (wanted == state.interest()) return;
  if (wanted == 0) {
    selector_->loop_remove(fd);
  } else {
    (void)selector_->loop_modify(fd, wanted);
  }
  state.set_interest(wanted);
}

void EventLoop::run_ready() {
  // Only what is queued now: work queued by this batch waits for the next iteration, so
  // I/O and timers are not starved.
  std::size_t tasks = ready_tasks_.size();
  while (tasks-- > 0) {
    auto handle = ready_tasks_.front();
    ready_tasks_.pop_front();
    handle.resume();
    run_deferred();
  }
  // Woken coroutines: those woken by this batch wait for the next (their count is taken
  // now), and one destroyed meanwhile has already taken itself out.
  std::size_t woken = woken_;
  while (woken-- > 0 && woken_head_ != nullptr) {
    detail::WakeNode* node = woken_head_;
    unwake(*node);
    node->handle.resume();
    run_deferred();
  }
  std::size_t callbacks = ready_.size();
  while (callbacks-- > 0) {
    auto callback = std::move(ready_.front());
    ready_.pop_front();
    try {
      callback();
    } catch (...) {
      report(std::current_exception());  // a callback's failure is logged, the loop runs on
    }
    run_deferred();
  }
}

void EventLoop::run() {
  EventLoop* previous = current_loop;
  current_loop = this;
  struct Restore {
    EventLoop* previous;
    ~Restore() { current_loop = previous; }
  } restore{previous};
  // Nested run() (a callback running a loop of its own on this thread) is not supported;
  // running_ is this loop's own.
  running_ = true;
  struct NotRunning {
    EventLoop& loop;
    ~NotRunning() {
      loop.run_deferred();
      loop.running_ = false;
    }
  } not_running{*this};

  now_ = detail::Clock::now();
  // A stop() that came before run() (a signal during start-up) still stops it; the flag is
  // cleared on the way out so the next run() starts fresh.
  struct ClearStop {
    std::atomic<bool>& flag;
    ~ClearStop() { flag.store(false, std::memory_order_relaxed); }
  } clear_stop{stop_requested_};
  while (!stop_requested_.load(std::memory_order_relaxed)) {
    if (remote_pending_.load(std::memory_order_acquire)) take_remote();
    if (!signal_handlers_.empty()) run_signal_handlers();  // no call when none are set
    run_ready();
    if (stop_requested_.load(std::memory_order_relaxed)) break;
    const bool has_ready = !ready_.empty() || !ready_tasks_.empty() || woken_ > 0 ||
                           remote_pending_.load(std::memory_order_relaxed);
    if (!has_ready && heap_.empty() && io_waiters_ == 0 && tasks_.empty()) break;  // all done
    // Coroutines waking each other (a Queue's producer and consumer) need no trip to the
    // kernel between batches; the selector and the timers are still polled every few
    // batches, so such a pair cannot starve I/O.
    if (has_ready && ++busy_batches_ < busy_batches_per_poll) continue;
    busy_batches_ = 0;

    std::optional<std::chrono::nanoseconds> timeout;
    if (has_ready) {
      timeout = std::chrono::nanoseconds(0);
    } else if (!heap_.empty()) {
      // now_ is from the end of the last iteration (fire_timers): at worst the timer fires
      // late by the time run_ready took, never early, and no clock read is spent here.
      timeout = std::max(std::chrono::nanoseconds(0), heap_.front().when - now_);
    }
    auto ready = selector_->loop_select(timeout);
    if (!ready) throw Error(ready.error(), "select", std::string(to_string(selector_->kind())));
    // The wait may have been long: what the handlers see as now() is after it.
    now_ = detail::Clock::now();
    if (!first_fds_.empty()) {
      for (const Ready& r : *ready) {
        if (r.fd != wakeup_fd_ && is_first(r.fd)) dispatch(r.fd, r.events);
      }
    }
    for (const Ready& r : *ready) {
      if (r.fd == wakeup_fd_) {
        drain_wakeup();
        continue;
      }
      if (!first_fds_.empty() && is_first(r.fd)) continue;  // done above
      dispatch(r.fd, r.events);
    }
    fire_timers();
  }
}

namespace detail {

std::string describe_duration(std::chrono::nanoseconds duration) {
  using namespace std::chrono;
  const auto ns = duration.count();
  char text[48];
  if (ns % 1'000'000'000 == 0) {
    std::snprintf(text, sizeof text, "%lld s", static_cast<long long>(ns / 1'000'000'000));
  } else if (ns >= 1'000'000'000) {
    std::snprintf(text, sizeof text, "%.3g s", static_cast<double>(ns) / 1e9);
  } else if (ns % 1'000'000 == 0) {
    std::snprintf(text, sizeof text, "%lld ms", static_cast<long long>(ns / 1'000'000));
  } else if (ns >= 1'000'000) {
    std::snprintf(text, sizeof text, "%.3g ms", static_cast<double>(ns) / 1e6);
  } else if (ns >= 1'000) {
    std::snprintf(text, sizeof text, "%.3g us", static_cast<double>(ns) / 1e3);
  } else {
    std::snprintf(text, sizeof text, "%lld ns", static_cast<long long>(ns));
  }
  return text;
}

EventLoop& loop_for_timeout() {
  EventLoop* loop = EventLoop::current();
  if (loop == nullptr) {
    throw Error(std::make_error_code(std::errc::operation_not_permitted), "with_timeout", "",
                "no EventLoop is running on this thread");
  }
  return *loop;
}

}  // namespace detail

}  // namespace wire
