// One decoder of the P and N event records (format.md), shared by the agent's aggregate mode
// (records it wrote itself) and `findleaks` (the unconsumed backlog of a stopped process's
// rings, which is outside input). Bounds-checked, allocation-free, no exceptions.
#pragma once
#include <cstddef>
#include <cstdint>

#include "capture/format.h"

namespace leakscope::capture {

// Delta state of one event stream: carried from record to record, section to section.
struct EventDelta {
  uint64_t last_addr = 0, last_stack = 0;
};

// Reads one varint from [p, end); false when it runs past `end` or over 10 bytes.
inline bool get_varint_checked(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (p >= end) return false;
    uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << (shift < 64 ? shift : 63);
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Decodes the event records in [p, end) into `v`:
//   v.alloc(tag, addr, size, stack)   ALLOC_OBJ / ALLOC_MEM / ALLOC_RAW / ALLOC_MALLOC / MMAP
//   v.free(addr)                      FREE
//   v.arena(alloc, addr, size)        ARENA_ALLOC / ARENA_FREE
//   v.munmap(addr, size)              MUNMAP
// Returns true when [p, end) held whole records only; false at the first malformed one (an
// unknown tag, a record cut short). The records before it have been delivered.
template <typename V>
bool decode_events(const uint8_t* p, const uint8_t* end, EventDelta& d, V&& v) {
  while (p < end) {
    const uint8_t tag = *p++;
    uint64_t a = 0, size = 0, s = 0;
    switch (tag) {
      case kAllocObj: case kAllocMem: case kAllocRaw: case kAllocMalloc: case kMmap:
        if (!get_varint_checked(p, end, &a) || !get_varint_checked(p, end, &size) || !get_varint_checked(p, end, &s))
          return false;
        d.last_addr += static_cast<uint64_t>(unzigzag(a));
        d.last_stack += static_cast<uint64_t>(unzigzag(s));
        v.alloc(tag, d.last_addr, size, d.last_stack);
        break;
      case kFree:
        if (!get_varint_checked(p, end, &a)) return false;
        d.last_addr += static_cast<uint64_t>(unzigzag(a));
        v.free(d.last_addr);
        break;
      case kArenaAlloc: case kArenaFree: case kMunmap:
        if (!get_varint_checked(p, end, &a) || !get_varint_checked(p, end, &size)) return false;
        d.last_addr += static_cast<uint64_t>(unzigzag(a));
        if (tag == kMunmap) v.munmap(d.last_addr, size);
        else v.arena(tag == kArenaAlloc, d.last_addr, size);
        break;
      default:
        return false;
    }
  }
  return true;
}

}  // namespace leakscope::capture
