// Containers in the agent's own mappings (own_map), usable from any thread (the retention walk
// and the task census run on threads that hold the GIL, not on the writer thread, whose
// OwnAllocator containers are its alone), and the appenders records are built with.
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "agent/own_memory.h"
#include "capture/format.h"

namespace leakscope::agent {

inline constexpr uint32_t kNoNode = 0xffffffffu;

// A growable array in own_map memory. Failure sets `failed` and drops the element.
template <typename T>
struct OwnArray {
  T* p = nullptr;
  size_t n = 0, cap = 0;
  bool failed = false;
  bool reserve(size_t c) {
    if (c <= cap) return true;
    void* m = own_map_huge(c * sizeof(T));
    if (!m) {
      failed = true;
      return false;
    }
    if (p) {
      std::memcpy(m, p, n * sizeof(T));
      own_unmap(p, cap * sizeof(T));
    }
    p = static_cast<T*>(m);
    cap = c;
    return true;
  }
  bool push(const T& v) {
    if (n == cap && !reserve(cap ? cap * 2 : 4096)) return false;
    p[n++] = v;
    return true;
  }
  T& operator[](size_t i) { return p[i]; }
  const T& operator[](size_t i) const { return p[i]; }
  void release() {
    if (p) own_unmap(p, cap * sizeof(T));
    p = nullptr;
    n = cap = 0;
  }
};

// uint64 key (never 0) -> uint32 value, open addressing, own_map memory. Any number of slots
// (a hash's high bits pick the slot): sized to what it will hold, not to a power of two.
struct IndexMap {
  uint64_t* keys = nullptr;
  uint32_t* vals = nullptr;
  size_t slots = 0, used = 0;
  bool failed = false;
  static uint64_t hash(uint64_t a) {
    a ^= a >> 33;
    a *= 0xff51afd7ed558ccdull;
    return a ^ (a >> 33);
  }
  size_t home(uint64_t k) const { return static_cast<size_t>((static_cast<__uint128_t>(hash(k)) * slots) >> 64); }
  size_t next(size_t i) const { return i + 1 == slots ? 0 : i + 1; }
  void prefetch(uint64_t k) const {
    if (!keys) return;
    const size_t i = home(k);
    __builtin_prefetch(&keys[i]);
    __builtin_prefetch(&vals[i]);
  }
  uint32_t find(uint64_t k) const {
    if (!keys) return kNoNode;
    for (size_t i = home(k); keys[i]; i = next(i))
      if (keys[i] == k) return vals[i];
    return kNoNode;
  }
  bool insert(uint64_t k, uint32_t v);  // k must be absent
  // The value of k if present; else inserts (k, v) and returns kNoNode (kNoNode - 1: no memory).
  // Linear probing up to 80% full: keys sit 8 to a cache line, so a probe stays short.
  static bool full(size_t used, size_t slots) { return used * 5 > slots * 4; }
  uint32_t find_or_insert(uint64_t k, uint32_t v) {
    if ((!keys || full(used + 1, slots)) && !rehash(keys ? slots * 2 : 1u << 16)) return kNoNode - 1;
    size_t i = home(k);
    for (; keys[i]; i = next(i))
      if (keys[i] == k) return vals[i];
    keys[i] = k;
    vals[i] = v;
    ++used;
    return kNoNode;
  }
  bool reserve(size_t n) { return (keys && !full(n, slots)) || rehash(n + n / 4 + 64); }
  void release();

 private:
  bool rehash(size_t new_slots);
  friend class Graph;
};

// Record bytes: a varint; and a definition record (tag, varint length, payload) appended to out.
// Failure shows in out.failed.
inline void put_varint(OwnArray<uint8_t>& out, uint64_t v) {
  uint8_t b[capture::kMaxVarint];
  uint8_t* e = capture::put_varint(b, v);
  for (uint8_t* p = b; p < e; ++p) out.push(*p);
}
inline void put_record(OwnArray<uint8_t>& out, uint8_t tag, const OwnArray<uint8_t>& payload) {
  if (payload.failed || !out.reserve(out.n + payload.n + 1 + capture::kMaxVarint)) {
    out.failed = true;
    return;
  }
  out.push(tag);
  put_varint(out, payload.n);
  std::memcpy(out.p + out.n, payload.p, payload.n);
  out.n += payload.n;
}

}  // namespace leakscope::agent
