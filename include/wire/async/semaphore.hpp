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
#include <cstdint>
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
  class [[nodiscard]] Permit {
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

// A mutual-exclusion lock for coroutines: a Semaphore with one permit, and a guard that
// knows which hold it is for. Not for threads.
//
//   { auto held = co_await lock.lock(); ... }     // unlocked when `held` goes
//   co_await lock.acquire(); ... lock.unlock();   // asyncio's acquire / release
//
// Mixing the two is safe: a guard whose hold was already ended by unlock() does nothing,
// so it can never release the lock of the next holder. unlock() of a lock nobody holds
// is refused (it would let two holders in later).
class Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  bool locked() const noexcept { return semaphore_.available() == 0; }
  bool try_lock() noexcept {
    if (!semaphore_.try_acquire()) return false;
    holder_ = ++generation_;
    return true;
  }
  void unlock() {
    if (!locked() || holder_ == 0) {
      throw Error(std::make_error_code(std::errc::operation_not_permitted), "Lock::unlock", "",
                  "the lock is not locked");
    }
    end_hold();
  }

  class [[nodiscard]] Guard {
   public:
    Guard() noexcept = default;
    Guard(Lock& lock, std::uint64_t hold) noexcept : lock_(&lock), hold_(hold) {}
    Guard(Guard&& other) noexcept
        : lock_(std::exchange(other.lock_, nullptr)), hold_(other.hold_) {}
    Guard& operator=(Guard&& other) noexcept {
      if (this != &other) {
        unlock();
        lock_ = std::exchange(other.lock_, nullptr);
        hold_ = other.hold_;
      }
      return *this;
    }
    ~Guard() { unlock(); }
    // Ends this hold now (nothing if it already ended).
    void unlock() noexcept {
      if (lock_ != nullptr && lock_->holder_ == hold_) lock_->end_hold();
      lock_ = nullptr;
    }
    explicit operator bool() const noexcept { return lock_ != nullptr; }

   private:
    Lock* lock_ = nullptr;
    std::uint64_t hold_ = 0;
  };

  class AcquireAwaiter : public Semaphore::AcquireAwaiter {
   public:
    AcquireAwaiter(AcquireAwaiter&&) noexcept = default;  // before it waits only
    explicit AcquireAwaiter(Lock& lock) noexcept
        : Semaphore::AcquireAwaiter(lock.semaphore_), lock_(lock) {}
    bool await_ready() noexcept { return ready_ = lock_.try_lock(); }
    void await_resume() {
      // Not from try_lock: handed the permit by the last holder.
      if (!ready_) {
        Semaphore::AcquireAwaiter::await_resume();
        lock_.holder_ = ++lock_.generation_;
      }
    }

   protected:
    Lock& lock_;
    bool ready_ = false;
  };
  // co_await lock.acquire(): held until unlock().
  AcquireAwaiter acquire() noexcept { return AcquireAwaiter(*this); }

  class LockAwaiter : public AcquireAwaiter {
   public:
    using AcquireAwaiter::AcquireAwaiter;
    Guard await_resume() {
      AcquireAwaiter::await_resume();
      return Guard(lock_, lock_.holder_);
    }
  };
  // auto held = co_await lock.lock(): unlocked when `held` goes.
  LockAwaiter lock() noexcept { return LockAwaiter(*this); }

 private:
  void end_hold() noexcept {
    holder_ = 0;
    semaphore_.release();
  }

  Semaphore semaphore_{1};
  std::uint64_t holder_ = 0;  // the hold now in force (0: none)
  std::uint64_t generation_ = 0;
};

}  // namespace wire
