// Thinning of an aggregate capture (capture/thin.h has the rule). The writer thread rewrites
// its capture when enough has been appended since the last rewrite (writer.cpp): definitions are copied as they
// are, snapshots and stats older than the full-resolution window are merged per bucket (the
// last state of each site wins), and the result replaces the capture with rename(2), so a kill
// at any moment leaves either the old file or the new one, both readable.
#pragma once
#include <cstdint>

namespace leakscope::agent {

struct CompactResult {
  bool ok = false;
  int fd = -1;            // the new capture, opened for appending (the old one is left open)
  uint64_t size = 0;      // its size
  uint32_t chunks = 0;    // its chunk count: the next sequence number
  uint64_t snapshots_in = 0, snapshots_out = 0;
  char why[160] = {};     // when !ok
};

// `path` must name the file open as `fd` (checked). `between_chunks` runs after each chunk
// read, so the writer keeps draining the event rings during a long rewrite.
CompactResult compact_capture(const char* path, int fd, uint64_t now_ns, uint64_t interval_ns,
                              uint64_t full_ns, uint32_t compactions, void (*between_chunks)());

}  // namespace leakscope::agent
