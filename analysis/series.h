// Time series the verdict engine works on, built by the replay (analysis/replay.cpp) from a
// capture's snapshots: per stack, live bytes and blocks at each snapshot; per process, memory
// by layer at each snapshot. Plain data, no I/O.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace leakscope::analysis {

struct StackPoint {
  double t_s = 0;       // seconds since tracking started
  double bytes = 0;     // live bytes of this stack at t (an estimate when sampled)
  double count = 0;     // live blocks
};

struct StackSeries {
  uint32_t stack = 0;   // stack id in the capture (innermost node)
  std::string layer;    // python | pymem-raw | malloc | mmap
  std::vector<StackPoint> points;  // ascending t, one per snapshot, from the stack's first sighting
};

struct ProcessPoint {
  double t_s = 0;
  double rss = 0, rss_anon = 0, rss_file = 0;  // from /proc (0 when unknown)
  double live = 0;            // tracked live bytes, all layers
  double python = 0;          // live PyMem MEM+OBJ bytes
  double arena = 0;           // pymalloc arena bytes mapped
  double pymalloc_free = 0;   // arena bytes not holding live small blocks
  double glibc_in_use = 0, glibc_free = 0;  // mallinfo2: uordblks+hblkhd, fordblks
  double mmap = 0;            // tracked live anonymous mmap bytes
  // Work done so far: allocations made since tracking began (SNAPSHOT alloc_count, or the
  // events replayed; estimates when sampled). Never decreases; 0 throughout when unknown.
  double allocs = 0;
};

// Python's cyclic garbage collector at a snapshot: the last GCSTATS record read by then
// (capture/format.md). Counters are the interpreter's own, read without the GIL.
struct GcPoint {
  double t_s = 0;
  bool enabled = true;     // gc.isenabled()
  bool collecting = false; // a collection was running when it was read
  uint64_t debug = 0;      // gc.get_debug()
  // gc.get_count(): generation 0 = tracked objects allocated minus deallocated since the last
  // collection; 1, 2 = collections of the next younger generation since this one's last.
  uint64_t count[3] = {}, threshold[3] = {};
  uint64_t collections[3] = {}, collected[3] = {}, uncollectable[3] = {};  // gc.get_stats(), totals
  uint64_t garbage = 0;    // len(gc.garbage)
  uint64_t long_lived_total = 0, long_lived_pending = 0;
};

// Exact objects per generation and frozen (gc.freeze()) objects, counted with the GIL held.
struct GcCensus {
  double t_s = 0;
  uint64_t objects[3] = {}, frozen = 0;
  bool complete = true;  // false: a list was longer than the walk's bound (lower bounds)
};
}  // namespace leakscope::analysis
