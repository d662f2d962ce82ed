// Aggregate mode (the default): the writer thread consumes the P and N ring events into an
// in-process live table (address -> stack, size, layer) and per-site totals (site = stack and
// layer), and writes a SNAPSHOT of the sites that changed every --interval (format.md). The
// capture then grows with distinct stacks and snapshots, not with allocations.
// Used by the writer thread only (not thread-safe); its memory comes from the real allocator
// (the writer thread's allocations are never recorded).
#pragma once
#include <cstddef>
#include <cstdint>

namespace leakscope::agent {

void aggregate_consume(uint8_t stream, const uint8_t* p, size_t n);
// Bytes put_snapshot may need at most.
size_t aggregate_snapshot_bound();
// Writes a SNAPSHOT record at `out`; returns its end. Sites whose bytes moved by less than
// max(4 KiB, 1%) since they were last written wait for a later snapshot, unless `final`.
uint8_t* aggregate_put_snapshot(uint8_t* out, uint64_t ns, bool final);
// Detach: the live table and site totals freed (a later attach starts from nothing).
void aggregate_reset();

}  // namespace leakscope::agent
