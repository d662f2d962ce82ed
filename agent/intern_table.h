// Interning table used by the agent's stack interning (agent/stacks.cpp). Header-only so it
// can be unit-tested without the rest of the agent. Allocation-free apart from Map/Unmap.
#pragma once
#include <cstddef>
#include <cstdint>

namespace leakscope::agent {

// Open-addressing table: (a, b) -> value, in memory from `Map` (the agent passes the real
// mmap, never the hooked allocator). Not thread-safe: the agent holds the defs lock.
// Removed entries become tombstones (skipped by find, dropped on growth).
template <void* (*Map)(size_t), void (*Unmap)(void*, size_t)>
struct BasicInternTable {
  struct Slot {
    uint64_t a, b;
    uint32_t value;  // 0 = empty
    uint32_t dead;   // tombstone for removed code objects
  };
  Slot* slots = nullptr;
  uint64_t cap = 0, used = 0;

  static uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t h = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2));
    h ^= h >> 31;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
    return h;
  }
  bool grow() {
    uint64_t ncap = cap ? cap * 2 : 1u << 14;
    void* m = Map(ncap * sizeof(Slot));
    if (m == nullptr) return false;
    Slot* ns = static_cast<Slot*>(m);
    used = 0;
    for (uint64_t i = 0; i < cap; ++i) {
      if (slots[i].value == 0 || slots[i].dead) continue;
      uint64_t j = mix(slots[i].a, slots[i].b) & (ncap - 1);
      while (ns[j].value != 0) j = (j + 1) & (ncap - 1);
      ns[j] = slots[i];
      ++used;
    }
    if (slots) Unmap(slots, cap * sizeof(Slot));
    slots = ns;
    cap = ncap;
    return true;
  }
  uint64_t size() const { return used; }
  void clear() {
    if (slots) Unmap(slots, cap * sizeof(Slot));
    slots = nullptr;
    cap = used = 0;
  }
  Slot* find(uint64_t a, uint64_t b) {
    if (!cap) return nullptr;
    for (uint64_t j = mix(a, b) & (cap - 1);; j = (j + 1) & (cap - 1)) {
      Slot& s = slots[j];
      if (s.value == 0) return nullptr;
      if (!s.dead && s.a == a && s.b == b) return &s;
    }
  }
  bool insert(uint64_t a, uint64_t b, uint32_t value) {
    if ((used + 1) * 4 >= cap * 3 && !grow()) return false;
    uint64_t j = mix(a, b) & (cap - 1);
    while (slots[j].value != 0) j = (j + 1) & (cap - 1);
    slots[j] = Slot{a, b, value, 0};
    ++used;
    return true;
  }
};


}  // namespace leakscope::agent
