// Poisson sampling by bytes (as tcmalloc, jemalloc, Go and heapprofd do): each thread counts
// down an exponentially distributed number of bytes (mean g_sample_rate); the allocation that
// crosses zero is recorded. An allocation of size s is therefore sampled with probability
// 1 - exp(-s/R), and the reader weights it by the inverse (format.md, INFO sample_rate).
// Sampled addresses live in a set whose lookups take no lock, so a free of an unsampled block
// (nearly all of them) costs one hash probe; inserts and removals take a spin lock and are
// as rare as samples. The table grows by copy and pointer swap; old tables are kept (they
// are small and few) so a concurrent reader never touches freed memory.
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmath>

#include "agent/spin_lock.h"
#include "agent/agent.h"
#include "agent/own_memory.h"

namespace leakscope::agent {

alignas(4096) std::atomic<uint8_t> g_sample_filter[1u << kSampleFilterBits];
constinit thread_local int64_t t_sample_left = 0;
namespace {
thread_local uint64_t t_rng = 0;

constexpr uintptr_t kEmpty = 0, kTomb = 1;
struct Table {
  std::atomic<uintptr_t>* slots;
  uint64_t mask;
};
std::atomic<Table*> g_table{nullptr};
// g_sample_filter (agent.h): a free whose counter is 0 is certainly unsampled. 64 KiB of
// byte counters stay in cache; counters saturate at 255 and then stay.
SpinLock g_set_lock;
uint64_t g_used = 0;  // live + tombstones, under the lock

inline uint64_t hash_ptr(uintptr_t p) {
  uint64_t x = p >> 4;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

void set_lock() { g_set_lock.lock(); }
void set_unlock() { g_set_lock.unlock(); }

Table* new_table(uint64_t cap) {
  void* m = own_map(sizeof(Table) + cap * sizeof(uintptr_t));
  if (m == nullptr) return nullptr;
  Table* t = static_cast<Table*>(m);
  t->slots = reinterpret_cast<std::atomic<uintptr_t>*>(t + 1);
  t->mask = cap - 1;
  return t;
}

// Needs the set lock.
bool grow_locked() {
  Table* old = g_table.load(std::memory_order_relaxed);
  uint64_t cap = old ? (old->mask + 1) * 2 : 1u << 16;
  Table* t = new_table(cap);
  if (!t) return false;
  uint64_t used = 0;
  if (old) {
    for (uint64_t i = 0; i <= old->mask; ++i) {
      uintptr_t v = old->slots[i].load(std::memory_order_relaxed);
      if (v == kEmpty || v == kTomb) continue;
      uint64_t j = hash_ptr(v) & t->mask;
      while (t->slots[j].load(std::memory_order_relaxed) != kEmpty) j = (j + 1) & t->mask;
      t->slots[j].store(v, std::memory_order_relaxed);
      ++used;
    }
  }
  g_used = used;
  g_table.store(t, std::memory_order_release);
  return true;
}

int64_t draw_interval() {
  if (t_rng == 0) {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t_rng = (static_cast<uint64_t>(ts.tv_nsec) << 20) ^ static_cast<uint64_t>(gettid()) ^ 0x9E3779B97F4A7C15ull;
    if (t_rng == 0) t_rng = 1;
  }
  t_rng ^= t_rng << 13;
  t_rng ^= t_rng >> 7;
  t_rng ^= t_rng << 17;
  double u = (static_cast<double>(t_rng >> 11) + 0.5) / 9007199254740992.0;  // (0, 1)
  double v = -std::log(u) * static_cast<double>(g_sample_rate);
  return v < 1 ? 1 : static_cast<int64_t>(v);
}
}  // namespace

bool sample_take_slow(size_t n) {
  if (t_rng == 0) {  // first allocation on this thread: start a countdown, then decide
    t_sample_left = draw_interval() - static_cast<int64_t>(n);
    if (t_sample_left > 0) return false;
  }
  t_sample_left = draw_interval();
  return true;
}

void sampled_remember(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  set_lock();
  Table* t = g_table.load(std::memory_order_relaxed);
  if (!t || (g_used + 1) * 4 > (t->mask + 1) * 3) {
    if (!grow_locked()) {
      set_unlock();
      return;
    }
    t = g_table.load(std::memory_order_relaxed);
  }
  uint64_t j = hash_ptr(v) & t->mask;
  for (;;) {
    uintptr_t cur = t->slots[j].load(std::memory_order_relaxed);
    if (cur == kEmpty) {
      ++g_used;
      break;
    }
    if (cur == kTomb || cur == v) break;
    j = (j + 1) & t->mask;
  }
  t->slots[j].store(v, std::memory_order_release);
  std::atomic<uint8_t>& c = g_sample_filter[sample_filter_index(v)];
  uint8_t cv = c.load(std::memory_order_relaxed);
  if (cv < 255) c.store(static_cast<uint8_t>(cv + 1), std::memory_order_release);
  set_unlock();
}

bool sampled_forget_slow(const void* p) {
  uintptr_t v = reinterpret_cast<uintptr_t>(p);
  Table* t = g_table.load(std::memory_order_acquire);
  if (!t) return false;
  // Lock-free probe: nearly every free ends here.
  uint64_t j = hash_ptr(v) & t->mask;
  for (;;) {
    uintptr_t cur = t->slots[j].load(std::memory_order_acquire);
    if (cur == kEmpty) return false;
    if (cur == v) break;
    j = (j + 1) & t->mask;
  }
  set_lock();
  t = g_table.load(std::memory_order_relaxed);  // may have grown meanwhile
  bool found = false;
  for (j = hash_ptr(v) & t->mask;; j = (j + 1) & t->mask) {
    uintptr_t cur = t->slots[j].load(std::memory_order_relaxed);
    if (cur == kEmpty) break;
    if (cur == v) {
      t->slots[j].store(kTomb, std::memory_order_release);
      found = true;
      std::atomic<uint8_t>& c = g_sample_filter[sample_filter_index(v)];
      uint8_t cv = c.load(std::memory_order_relaxed);
      if (cv > 0 && cv < 255) c.store(static_cast<uint8_t>(cv - 1), std::memory_order_release);
      break;
    }
  }
  set_unlock();
  return found;
}

void sample_filter_mark(const void* p) {
  set_lock();  // the counters are changed under this lock only
  std::atomic<uint8_t>& c = g_sample_filter[sample_filter_index(reinterpret_cast<uintptr_t>(p))];
  uint8_t cv = c.load(std::memory_order_relaxed);
  if (cv < 255) c.store(static_cast<uint8_t>(cv + 1), std::memory_order_release);
  set_unlock();
}

void sampling_reset() {
  set_lock();
  if (Table* t = g_table.load(std::memory_order_relaxed)) madvise(t->slots, (t->mask + 1) * sizeof(uintptr_t), MADV_DONTNEED);
  g_used = 0;
  madvise(static_cast<void*>(g_sample_filter), sizeof g_sample_filter, MADV_DONTNEED);
  set_unlock();
}

// A followed fork child: a thread that no longer exists may have held the set's lock at the
// fork (the set may then be mid-update: a sampled block missed, never a hang).
void sampling_after_fork_child() { g_set_lock.reset_in_fork_child(); }

}  // namespace leakscope::agent
