// The N ring's producer lock (agent.h: native_lock/native_unlock), split from writer.cpp.
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>

#include "agent/spin_lock.h"
#include "agent/agent.h"

namespace leakscope::agent {

namespace {
SpinLock g_native_spin;
}  // namespace

// N ring producer exclusion. While a single thread has ever produced N events it owns the
// ring and appends without any atomic read-modify-write (the common case: one thread, or a
// Python process whose libc-level events come from the GIL holder... until another thread
// shows up). The first other producer switches the ring to shared mode for good and waits for
// the owner to leave its critical section: an asymmetric Dekker handshake where the owner's
// store(busy) -> load(mode) ordering is forced by membarrier(PRIVATE_EXPEDITED) on the slow
// side (the same technique as folly's asymmetric fences). Without membarrier: always lock.
namespace {
enum : int { kModeNone = 0, kModeOwned = 1, kModeShared = 2 };
std::atomic<int> g_native_mode{kModeNone};
std::atomic<const void*> g_native_owner{nullptr};
std::atomic<int> g_owner_busy{0};
bool g_membarrier_ok = false;
thread_local bool t_holds_spin = false;
thread_local bool t_owner = false;  // this thread owns the N ring (owned mode)

}  // namespace

void native_lock_init() {
  // MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 16, MEMBARRIER_CMD_PRIVATE_EXPEDITED = 8
  g_membarrier_ok = syscall(SYS_membarrier, 16, 0, 0) == 0;
}

void native_lock() {
  if (LSP_LIKELY(t_owner)) {
    g_owner_busy.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);  // the slow side's membarrier orders this
    if (LSP_LIKELY(g_native_mode.load(std::memory_order_relaxed) == kModeOwned)) return;
    g_owner_busy.store(0, std::memory_order_release);
    t_owner = false;
  }
  const void* me = &t_holds_spin;
  int mode = g_native_mode.load(std::memory_order_acquire);
  if (mode == kModeNone && g_membarrier_ok) {
    const void* expected = nullptr;
    if (g_native_owner.compare_exchange_strong(expected, me)) {
      g_native_mode.store(kModeOwned, std::memory_order_release);
      mode = kModeOwned;
    } else {
      mode = g_native_mode.load(std::memory_order_acquire);
    }
  }
  if (mode == kModeOwned && g_native_owner.load(std::memory_order_relaxed) == me) {
    g_owner_busy.store(1, std::memory_order_relaxed);
    std::atomic_signal_fence(std::memory_order_seq_cst);
    if (g_native_mode.load(std::memory_order_relaxed) == kModeOwned) {
      t_owner = true;
      return;
    }
    g_owner_busy.store(0, std::memory_order_release);
  }
  g_native_spin.lock();
  t_holds_spin = true;
  if (g_native_mode.load(std::memory_order_relaxed) != kModeShared) {
    // Leave owned mode: after the barrier the owner either sees kModeShared or is visibly busy.
    g_native_mode.store(kModeShared, std::memory_order_seq_cst);
    if (g_membarrier_ok) syscall(SYS_membarrier, 8, 0, 0);
    while (g_owner_busy.load(std::memory_order_acquire)) __builtin_ia32_pause();
  }
}
void native_unlock() {
  if (LSP_LIKELY(t_owner)) {
    g_owner_busy.store(0, std::memory_order_release);
  } else if (t_holds_spin) {
    t_holds_spin = false;
    g_native_spin.unlock();
  }
}

}  // namespace leakscope::agent
