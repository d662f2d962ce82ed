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
}  // namespace leakscope::analysis
