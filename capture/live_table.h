// Live-block table shared by the agent (aggregate mode, writer thread) and the reader side
// (analysis/replay): address -> size, layer, stack. Open addressing with linear probing and
// backward-shift deletion (no tombstones). Address 0 is never a key. Not thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <vector>

namespace leakscope::capture {

class LiveTable {
 public:
  struct Entry {
    uint64_t addr;
    uint64_t size : 56;
    uint64_t layer : 8;
    uint32_t stack;
  };
  LiveTable() : slots_(1u << 14), mask_((1u << 14) - 1) {}
  // Inserts or replaces; returns the replaced entry's size, or -1 when addr was not live.
  int64_t insert(uint64_t addr, uint64_t size, uint32_t stack, uint8_t layer) {
    if ((used_ + 1) * 10 > slots_.size() * 7) grow();
    uint64_t i = hash(addr) & mask_;
    while (slots_[i].addr && slots_[i].addr != addr) i = (i + 1) & mask_;
    int64_t prev = slots_[i].addr ? static_cast<int64_t>(slots_[i].size) : -1;
    if (!slots_[i].addr) ++used_;
    slots_[i].addr = addr;
    slots_[i].size = size;
    slots_[i].layer = layer;
    slots_[i].stack = stack;
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
  size_t size() const { return used_; }
  template <typename F>
  void for_each(F&& f) const {
    for (const Entry& e : slots_)
      if (e.addr) f(e);
  }

 private:
  static uint64_t hash(uint64_t a) {
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    return a ^ (a >> 33);
  }
  void grow() {
    std::vector<Entry> old;
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
  std::vector<Entry> slots_;
  uint64_t mask_;
  size_t used_ = 0;
};

// Anonymous mappings by start address; munmap and mremap may cut any part of one.
using MapTable = std::map<uint64_t, LiveTable::Entry>;

// Removes [addr, addr + size) from `maps`, keeping the parts of a mapping outside the range.
// For each mapping it cuts, calls cut(entry, removed_bytes, whole): `whole` when nothing of
// the mapping is left.
template <typename F>
void unmap_range(MapTable& maps, uint64_t addr, uint64_t size, F&& cut) {
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
    LiveTable::Entry ent = it->second;
    it = maps.erase(it);
    const uint64_t keep_lo = b < addr ? addr - b : 0, keep_hi = e > end ? e - end : 0;
    cut(ent, static_cast<uint64_t>(ent.size) - keep_lo - keep_hi, keep_lo == 0 && keep_hi == 0);
    if (keep_lo) {
      LiveTable::Entry lo = ent;
      lo.size = keep_lo;
      maps[b] = lo;
    }
    if (keep_hi) {
      LiveTable::Entry hi = ent;
      hi.addr = end;
      hi.size = keep_hi;
      it = std::next(maps.emplace(end, hi).first);
    }
  }
}

}  // namespace leakscope::capture
