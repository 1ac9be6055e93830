// wire/async/semaphore.hpp — Semaphore and Lock for coroutines on one loop.
//
//   wire::Semaphore slots(4);                 // at most 4 downloads at once
//   co_await slots.acquire();
//   ... slots.release();
//   { auto permit = co_await slots.hold(); ... }   // released when `permit` goes
//
//   wire::Lock lock;
//   { auto held = co_await lock.lock(); ... }      // one coroutine at a time
//
// First come, first served: release() hands the permit straight to the longest waiter,
// so a stream of newcomers cannot starve it. A waiter cancelled after it was handed a
// permit but before it ran passes the permit on: nothing leaks, nobody waits forever.
// Waiting allocates nothing. Destroyed while tasks wait: their acquire() throws
// errc::operation_canceled. One thread: the loop's.
#pragma once

#include <cstddef>
#include <utility>

#include "wire/async/waiter_list.hpp"

namespace wire {

class Semaphore {
 public:
  explicit Semaphore(std::size_t permits) noexcept : permits_(permits) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  std::size_t available() const noexcept { return permits_; }
  // Takes a permit if one is free and nobody is waiting for one.
  bool try_acquire() noexcept {
    if (permits_ == 0 || !waiters_.empty()) return false;
    --permits_;
    return true;
  }
  void release() noexcept {
    if (waiters_.wake_front(true) == nullptr) ++permits_;
  }

  class AcquireAwaiter : detail::ListedAwaiter {
   public:
    AcquireAwaiter(AcquireAwaiter&&) noexcept = default;  // before it waits only
    explicit AcquireAwaiter(Semaphore& semaphore) noexcept : semaphore_(semaphore) {}
    ~AcquireAwaiter() {
      if (withdraw(semaphore_.waiters_)) semaphore_.release();  // handed one, never used it
    }
    bool await_ready() noexcept { return semaphore_.try_acquire(); }
    void await_suspend(std::coroutine_handle<> handle) {
      wait_in(semaphore_.waiters_, handle, "Semaphore::acquire");
    }
    void await_resume() {
      throw_if_orphaned("Semaphore::acquire");
      granted = false;
    }

   private:
    Semaphore& semaphore_;
  };
  // co_await semaphore.acquire(): a permit, once one is free; give it back with release().
  AcquireAwaiter acquire() noexcept { return AcquireAwaiter(*this); }

  // Gives its permit back when destroyed.
  class Permit {
   public:
    Permit() noexcept = default;
    explicit Permit(Semaphore& semaphore) noexcept : semaphore_(&semaphore) {}
    Permit(Permit&& other) noexcept : semaphore_(std::exchange(other.semaphore_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        release();
        semaphore_ = std::exchange(other.semaphore_, nullptr);
      }
      return *this;
    }
    ~Permit() { release(); }
    void release() noexcept {
      if (semaphore_ != nullptr) std::exchange(semaphore_, nullptr)->release();
    }
    explicit operator bool() const noexcept { return semaphore_ != nullptr; }

   private:
    Semaphore* semaphore_ = nullptr;
  };
  class HoldAwaiter : public AcquireAwaiter {
   public:
    HoldAwaiter(HoldAwaiter&&) noexcept = default;  // before it waits only
    explicit HoldAwaiter(Semaphore& semaphore) noexcept
        : AcquireAwaiter(semaphore), semaphore_(semaphore) {}
    Permit await_resume() {
      AcquireAwaiter::await_resume();
      return Permit(semaphore_);
    }

   private:
    Semaphore& semaphore_;
  };
  // co_await semaphore.hold(): a permit that gives itself back.
  HoldAwaiter hold() noexcept { return HoldAwaiter(*this); }

 private:
  detail::WaiterList waiters_;
  std::size_t permits_;
};

// A mutual-exclusion lock for coroutines: a Semaphore with one permit. Not for threads.
class Lock {
 public:
  Lock() noexcept = default;
  bool locked() const noexcept { return semaphore_.available() == 0; }
  bool try_lock() noexcept { return semaphore_.try_acquire(); }
  // Unlocking a lock nobody holds would let two coroutines in later: refused.
  void unlock() {
    if (!locked()) {
      throw Error(std::make_error_code(std::errc::operation_not_permitted), "Lock::unlock", "",
                  "the lock is not locked");
    }
    semaphore_.release();
  }
  // auto held = co_await lock.lock(): unlocked when `held` goes.
  Semaphore::HoldAwaiter lock() noexcept { return semaphore_.hold(); }

 private:
  Semaphore semaphore_{1};
};

}  // namespace wire
