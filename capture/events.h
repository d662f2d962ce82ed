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

// Reads one varint from [p, end); false when it runs past `end` or does not fit 64 bits (the
// reader's cursor, capture/byte_cursor.h, refuses the same).
inline bool get_varint_checked(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p >= end) return false;
    uint8_t b = *p++;
    if (shift == 63 && b > 1) return false;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

// Where decode_events stopped: ok, or the first malformed record (its first byte) and why.
struct DecodeResult {
  bool ok = true;
  const uint8_t* at = nullptr;
  const char* why = nullptr;
  operator bool() const { return ok; }  // NOLINT: a decode that succeeded
};

// Decodes the event records in [p, end) into `v`:
//   v.alloc(tag, addr, size, stack)   ALLOC_OBJ / ALLOC_MEM / ALLOC_RAW / ALLOC_MALLOC / MMAP
//   v.free(addr)                      FREE
//   v.arena(alloc, addr, size)        ARENA_ALLOC / ARENA_FREE
//   v.munmap(addr, size)              MUNMAP
//   v.tick(ns)                        TICK (when V has it; else a TICK is malformed)
// `stream` (kStreamPy or kStreamNative; 0: either) refuses records that belong to the other
// stream. Returns ok when [p, end) held whole records only; else the first malformed one (an
// unknown tag, a record cut short, a record in the wrong stream). The records before it have
// been delivered. The one decoder of event records: the reader, the agent's aggregate mode
// and `findleaks` (a stopped process's ring backlog) all use it.
template <typename V>
DecodeResult decode_events(const uint8_t* p, const uint8_t* end, EventDelta& d, V&& v, uint8_t stream = 0) {
  while (p < end) {
    const uint8_t* rec = p;
    const uint8_t tag = *p++;
    uint64_t a = 0, size = 0, s = 0;
    auto cut = [rec] { return DecodeResult{false, rec, "a record runs past its end"}; };
    switch (tag) {
      case kAllocObj: case kAllocMem: case kAllocRaw: case kAllocMalloc: case kMmap:
        if (stream && (tag == kAllocObj || tag == kAllocMem) != (stream == kStreamPy))
          return {false, rec, "allocation record in the wrong stream"};
        if (!get_varint_checked(p, end, &a) || !get_varint_checked(p, end, &size) || !get_varint_checked(p, end, &s))
          return cut();
        d.last_addr += static_cast<uint64_t>(unzigzag(a));
        d.last_stack += static_cast<uint64_t>(unzigzag(s));
        v.alloc(tag, d.last_addr, size, d.last_stack);
        break;
      case kFree:
        if (!get_varint_checked(p, end, &a)) return cut();
        d.last_addr += static_cast<uint64_t>(unzigzag(a));
        v.free(d.last_addr);
        break;
      case kArenaAlloc: case kArenaFree: case kMunmap:
        if (stream && (tag == kMunmap) != (stream == kStreamNative))
          return {false, rec, tag == kMunmap ? "munmap record in the wrong stream" : "arena record in the wrong stream"};
        if (!get_varint_checked(p, end, &a) || !get_varint_checked(p, end, &size)) return cut();
        d.last_addr += static_cast<uint64_t>(unzigzag(a));
        if (tag == kMunmap) v.munmap(d.last_addr, size);
        else v.arena(tag == kArenaAlloc, d.last_addr, size);
        break;
      case kTick:
        if constexpr (requires { v.tick(uint64_t{0}); }) {
          if (!get_varint_checked(p, end, &a)) return cut();
          v.tick(a);
          break;
        } else {
          return {false, rec, "unknown event record"};
        }
      default:
        return {false, rec, "unknown event record"};
    }
  }
  return {};
}

}  // namespace leakscope::capture
