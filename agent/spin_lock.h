// leakscope agent: the one spin lock type of the agent's short critical sections.
//
// Used where a mutex cannot be: inside allocation hooks and signal handlers (no allocation, no
// futex state a fork child could inherit half-held), around work of a few words (a copy of a
// census, a table insert, a ring handover). Taking it is one exchange; a contended waiter
// pauses a few times, then yields, because on a 2-core machine the holder may be preempted and
// spinning would only keep it from running. The thread that held a lock does not exist in a
// fork child: reset_in_fork_child() frees it there (the fork handlers call it).
#pragma once

#include <sched.h>

#include <atomic>

namespace leakscope::agent {

class SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() {
    while (held_.exchange(true, std::memory_order_acquire)) wait_until_free();
  }
  bool try_lock() { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() { held_.store(false, std::memory_order_release); }
  void reset_in_fork_child() { held_.store(false, std::memory_order_relaxed); }

 private:
  void wait_until_free() const {
    for (int i = 0; held_.load(std::memory_order_relaxed); ++i) {
      if (i < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        asm volatile("yield");
#endif
      } else {
        sched_yield();
      }
    }
  }
  std::atomic<bool> held_{false};
};

// Holds a SpinLock for a scope.
class SpinGuard {
 public:
  explicit SpinGuard(SpinLock& l) : l_(l) { l_.lock(); }
  ~SpinGuard() { l_.unlock(); }
  SpinGuard(const SpinGuard&) = delete;
  SpinGuard& operator=(const SpinGuard&) = delete;

 private:
  SpinLock& l_;
};

}  // namespace leakscope::agent
