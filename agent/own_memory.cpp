// leakscope's own memory: see own_memory.h.
#include "agent/own_memory.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>

#include "agent/agent.h"

namespace leakscope::agent {
namespace {

// The list: slots claimed with a CAS on `lo` (0 = free); `hi` is written before `lo` is
// published. More mappings than slots are simply not listed (a scan may then read them).
constexpr size_t kSlots = 4096;
struct Slot {
  std::atomic<uint64_t> lo{0};
  std::atomic<uint64_t> hi{0};
};
Slot g_list[kSlots];

void list_add(uint64_t lo, uint64_t hi) {
  for (Slot& s : g_list) {
    if (s.lo.load(std::memory_order_relaxed) != 0) continue;
    uint64_t expected = 0;
    s.hi.store(hi, std::memory_order_relaxed);
    if (s.lo.compare_exchange_strong(expected, lo, std::memory_order_release)) return;
  }
}
void list_remove(uint64_t lo) {
  for (Slot& s : g_list) {
    uint64_t v = lo;
    if (s.lo.load(std::memory_order_relaxed) == lo && s.lo.compare_exchange_strong(v, 0)) return;
  }
}

size_t page_round(size_t n) { return (n + 4095) & ~static_cast<size_t>(4095); }

// Size classes 16 B .. 16 KiB; bigger requests get a mapping of their own.
constexpr size_t kClasses = 11;
constexpr size_t kMaxSmall = 16u << 10;
constexpr size_t kChunk = 256u << 10;
struct FreeNode {
  FreeNode* next;
};
FreeNode* g_free[kClasses] = {};
uint8_t* g_bump = nullptr;
size_t g_bump_left = 0;
constexpr size_t kMaxChunks = 1u << 16;  // 16 GiB of small blocks
void* g_chunks[kMaxChunks];
size_t g_nchunks = 0;

size_t class_of(size_t n) {
  size_t c = 0, sz = 16;
  while (sz < n) {
    sz <<= 1;
    ++c;
  }
  return c;
}

}  // namespace

void* own_map(size_t n) {
  n = page_round(n);
  void* p = g_real.mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  list_add(reinterpret_cast<uint64_t>(p), reinterpret_cast<uint64_t>(p) + n);
  return p;
}

void* own_map_huge(size_t n) {
  void* p = own_map(n);
  // Probed at random (live tables, the retention walk's nodes and maps): huge pages spare
  // most TLB misses and page faults. Only a hint (THP may be off); not for the rings, which
  // are written in order.
  if (p && n >= (4u << 20)) madvise(p, page_round(n), MADV_HUGEPAGE);
  return p;
}

void own_unmap(void* p, size_t n) {
  if (!p) return;
  list_remove(reinterpret_cast<uint64_t>(p));
  g_real.munmap(p, page_round(n));
}

size_t own_ranges(capture::ScanRange* out, size_t max) {
  size_t k = 0;
  for (Slot& s : g_list) {
    uint64_t lo = s.lo.load(std::memory_order_acquire);
    if (!lo || k >= max) continue;
    out[k++] = capture::ScanRange{lo, s.hi.load(std::memory_order_relaxed)};
  }
  return k;
}

void* own_alloc(size_t n) {
  if (n == 0) n = 1;
  if (n > kMaxSmall) return own_map_huge(n);
  size_t c = class_of(n), sz = size_t{16} << c;
  if (FreeNode* f = g_free[c]) {
    g_free[c] = f->next;
    return f;
  }
  if (g_bump_left < sz) {  // a new chunk (the old one's tail, under 16 KiB, stays unused)
    if (g_nchunks == kMaxChunks) return nullptr;
    g_bump = static_cast<uint8_t*>(own_map(kChunk));
    g_bump_left = g_bump ? kChunk : 0;
    if (!g_bump) return nullptr;
    g_chunks[g_nchunks++] = g_bump;
  }
  void* p = g_bump;
  g_bump += sz;
  g_bump_left -= sz;
  return p;
}

void own_free(void* p, size_t n) {
  if (!p) return;
  if (n == 0) n = 1;
  if (n > kMaxSmall) return own_unmap(p, n);
  size_t c = class_of(n);
  FreeNode* f = static_cast<FreeNode*>(p);
  f->next = g_free[c];
  g_free[c] = f;
}

void own_pool_release() {
  for (size_t i = 0; i < g_nchunks; ++i) own_unmap(g_chunks[i], kChunk);
  g_nchunks = 0;
  for (FreeNode*& f : g_free) f = nullptr;
  g_bump = nullptr;
  g_bump_left = 0;
}

void own_out_of_memory() { abort(); }

}  // namespace leakscope::agent
