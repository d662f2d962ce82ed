// Live-block table shared by the agent (aggregate mode, writer thread) and the reader side
// (analysis/replay) and read back from a stopped process by `findleaks` (capture/scan_abi.h):
// address -> size, layer, stack. Open addressing with linear probing and backward-shift
// deletion (no tombstones). Address 0 is never a key. Not thread-safe. The agent gives it an
// allocator of its own memory (agent/own_memory.h), which reachability scans leave out.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <vector>

namespace leakscope::capture {

// Entry flags.
inline constexpr uint32_t kEntryObjDomain = 1;  // a PyMem OBJ-domain block (may hold a PyObject)

struct LiveEntry {
  uint64_t addr;
  uint64_t size : 56;
  uint64_t layer : 8;
  uint32_t stack;
  uint32_t flags;  // kEntry* bits
};
static_assert(sizeof(LiveEntry) == 24, "LiveEntry is read from another process: fixed layout");

template <typename Alloc = std::allocator<LiveEntry>>
class BasicLiveTable {
 public:
  using Entry = LiveEntry;
  BasicLiveTable() : slots_(1u << 14), mask_((1u << 14) - 1) {}
  // Inserts or replaces; returns the replaced entry's size, or -1 when addr was not live.
  int64_t insert(uint64_t addr, uint64_t size, uint32_t stack, uint8_t layer, uint32_t flags = 0) {
    if ((used_ + 1) * 10 > slots_.size() * 7) grow();
    uint64_t i = hash(addr) & mask_;
    while (slots_[i].addr && slots_[i].addr != addr) i = (i + 1) & mask_;
    int64_t prev = slots_[i].addr ? static_cast<int64_t>(slots_[i].size) : -1;
    if (!slots_[i].addr) ++used_;
    slots_[i].addr = addr;
    slots_[i].size = size;
    slots_[i].layer = layer;
    slots_[i].stack = stack;
    slots_[i].flags = flags;
    return prev;
  }
  // Removes addr; returns true and the entry if it was live.
  bool erase(uint64_t addr, Entry* out) {
    uint64_t i = hash(addr) & mask_;
    while (slots_[i].addr) {
      if (slots_[i].addr == addr) {
        *out = slots_[i];
        uint64_t j = i;
        for (;;) {
          j = (j + 1) & mask_;
          if (!slots_[j].addr) break;
          uint64_t k = hash(slots_[j].addr) & mask_;
          if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
            slots_[i] = slots_[j];
            i = j;
          }
        }
        slots_[i] = Entry{};
        --used_;
        return true;
      }
      i = (i + 1) & mask_;
    }
    return false;
  }
  void prefetch(uint64_t addr) const { __builtin_prefetch(&slots_[hash(addr) & mask_]); }
  // Looks addr up without changing anything.
  bool find(uint64_t addr, Entry* out) const {
    uint64_t i = hash(addr) & mask_;
    while (slots_[i].addr) {
      if (slots_[i].addr == addr) {
        *out = slots_[i];
        return true;
      }
      i = (i + 1) & mask_;
    }
    return false;
  }
  size_t size() const { return used_; }
  template <typename F>
  void for_each(F&& f) const {
    for (const Entry& e : slots_)
      if (e.addr) f(e);
  }
  // The slot array (empty slots have addr 0): what `findleaks` reads out of a stopped process.
  const Entry* slots() const { return slots_.data(); }
  size_t capacity() const { return slots_.size(); }

 private:
  static uint64_t hash(uint64_t a) {
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    return a ^ (a >> 33);
  }
  void grow() {
    std::vector<Entry, Alloc> old;
    old.swap(slots_);
    slots_.assign(old.size() * 2, Entry{});
    mask_ = slots_.size() - 1;
    for (const Entry& e : old) {
      if (!e.addr) continue;
      uint64_t i = hash(e.addr) & mask_;
      while (slots_[i].addr) i = (i + 1) & mask_;
      slots_[i] = e;
    }
  }
  std::vector<Entry, Alloc> slots_;
  uint64_t mask_;
  size_t used_ = 0;
};
using LiveTable = BasicLiveTable<>;

// Anonymous mappings by start address; munmap and mremap may cut any part of one.
template <typename Alloc = std::allocator<std::pair<const uint64_t, LiveEntry>>>
using BasicMapTable = std::map<uint64_t, LiveEntry, std::less<uint64_t>, Alloc>;
using MapTable = BasicMapTable<>;

// Removes [addr, addr + size) from `maps`, keeping the parts of a mapping outside the range.
// For each mapping it cuts, calls cut(entry, removed_bytes, whole): `whole` when nothing of
// the mapping is left.
template <typename Maps, typename F>
void unmap_range(Maps& maps, uint64_t addr, uint64_t size, F&& cut) {
  if (maps.empty() || size == 0) return;
  const uint64_t end = addr + size;
  auto it = maps.upper_bound(addr);
  if (it != maps.begin()) --it;
  while (it != maps.end() && it->first < end) {
    const uint64_t b = it->first, e = b + it->second.size;
    if (e <= addr) {
      ++it;
      continue;
    }
    LiveEntry ent = it->second;
    it = maps.erase(it);
    const uint64_t keep_lo = b < addr ? addr - b : 0, keep_hi = e > end ? e - end : 0;
    cut(ent, static_cast<uint64_t>(ent.size) - keep_lo - keep_hi, keep_lo == 0 && keep_hi == 0);
    if (keep_lo) {
      LiveEntry lo = ent;
      lo.size = keep_lo;
      maps[b] = lo;
    }
    if (keep_hi) {
      LiveEntry hi = ent;
      hi.addr = end;
      hi.size = keep_hi;
      it = std::next(maps.emplace(end, hi).first);
    }
  }
}

}  // namespace leakscope::capture
