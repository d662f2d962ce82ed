// Aggregate mode (the default): the writer thread consumes the P and N ring events into an
// in-process live table (address -> stack, size, layer) and per-site totals (site = stack and
// layer), and writes a SNAPSHOT of the sites that changed every --interval (format.md). The
// capture then grows with distinct stacks and snapshots, not with allocations.
// Used by the writer thread only (not thread-safe); its memory comes from the real allocator
// (the writer thread's allocations are never recorded).
#pragma once
#include <cstddef>
#include <cstdint>

#include "capture/live_table.h"
#include "capture/scan_abi.h"

namespace leakscope::agent {

void aggregate_consume(uint8_t stream, const uint8_t* p, size_t n);
// Bytes put_snapshot may need at most.
size_t aggregate_snapshot_bound();
// Writes a SNAPSHOT record at `out`; returns its end. Sites whose bytes moved by less than
// max(4 KiB, 1%) since they were last written wait for a later snapshot, unless `final`.
uint8_t* aggregate_put_snapshot(uint8_t* out, uint64_t ns, bool final);
// The `mark` control request: the live total now and the highest since the previous mark (or
// since tracking began); a new window starts at the live total now.
void aggregate_mark(uint64_t* live, uint64_t* window_peak);
// A followed fork child (docs/process-trees.md): every site with live memory is written by the
// next snapshot (the child's capture says on its own what it inherited); the peak and the
// allocation totals start at the fork.
void aggregate_after_fork_child();
uint64_t aggregate_live_bytes();  // the live total now (as far as the rings are consumed)
// Detach: the live table and site totals freed (a later attach starts from nothing).
void aggregate_reset();
// findleaks (docs/findleaks.md): fills the descriptor's live-table, young-cache and delta
// fields, and writes the mmap and arena lists at `lists` (at most `room` bytes, the size
// aggregate_describe_bound() said); returns the bytes written. Offsets are from the
// descriptor's start, which `lists` must directly follow.
size_t aggregate_describe(capture::ScanDescriptor* d, uint8_t* lists, size_t room);
size_t aggregate_describe_bound();
// The retention walk (docs/retention.md): the P-stream block at addr (young cache, then the
// table). Read-only; the caller has had the rings consumed (writer_flush_sync) and holds the
// GIL, so nothing changes the P table meanwhile.
bool aggregate_lookup_py(uint64_t addr, capture::LiveEntry* out);
size_t aggregate_live_py_count();
void aggregate_prefetch_py(uint64_t addr);  // the slots aggregate_lookup_py(addr) will read  // P-stream blocks live (an upper bound)

}  // namespace leakscope::agent
