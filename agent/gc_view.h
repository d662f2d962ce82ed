// The collector's view (docs/report-json.md, "gc"): the state of Python's cyclic garbage
// collector in every snapshot, as a GCSTATS record (capture/format.md) next to each STATS one.
// python/gcstate.h reads each CPython version's `interp->gc`.
#pragma once
#include <cstddef>
#include <cstdint>

#include "python/gcstate.h"

namespace leakscope::agent {

// Writer thread, no GIL: the GCSTATS record at `p` (at most capture::kMaxGcStatsRecord bytes),
// its time `t_ns` (since start). Writes nothing and returns p while the agent's Python
// wrappers are not installed (no Python, not yet, detached) or the interpreter is finalizing.
// The counters are read without the GIL: racy but benign (python/gcstate.h).
uint8_t* put_gcstats(uint8_t* p, uint64_t t_ns);

// GIL held by the caller: exact objects per generation and frozen objects (gc.freeze()),
// walking the collector's lists, each bounded by 20 M objects. False when Python is not
// installed or the version has no view. Never allocates, never runs Python code.
bool gc_census(lsp_gc_census* out);
// Hands a census to the writer: the next GCSTATS record carries it (and only that one).
void gc_census_note(const lsp_gc_census& c);

}  // namespace leakscope::agent
