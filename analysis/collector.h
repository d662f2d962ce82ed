// Findings about Python's cyclic garbage collector, from the collector's state at each snapshot
// (GCSTATS records, analysis/series.h GcPoint) and the process points. Codes and numbers only
// (report/words.cpp words them); docs/verdicts.md, "Python's collector", explains them.
//  - kGcDisabled / kGcThresholdZero: automatic collection is off at the end of the run
//    (gc.disable(), or gc.set_threshold(0)) and, since the last collection, the tracked objects
//    kept accumulating: generation 0's count (allocations minus deallocations of tracked
//    objects) rose by at least max(min_objects, 10 thresholds) and was still rising in the last
//    third of that stretch. Reference cycles among them are never freed.
//  - kGcGarbage: gc.garbage is not empty at the end, or the collector counted uncollectable
//    objects: with gc.DEBUG_SAVEALL every object it frees is kept there instead.
// They do not change the verdict: the memory such objects hold is judged at its stacks.
#pragma once
#include <cstdint>
#include <vector>

#include "analysis/series.h"
#include "analysis/verdict.h"

namespace leakscope::analysis {

struct CollectorOptions {
  double min_objects = 10000;  // accumulated tracked objects below this are no finding
  size_t min_points = 3;       // snapshots the collection-off stretch needs
};

inline constexpr uint64_t kGcDebugSaveAll = 32;  // gc.DEBUG_SAVEALL

// Appends the collector's findings (at most two) to `out`, after its leak findings.
void collector_findings(const std::vector<GcPoint>& gc, const std::vector<ProcessPoint>& process,
                        std::vector<Finding>& out, const CollectorOptions& opt = {});

}  // namespace leakscope::analysis
