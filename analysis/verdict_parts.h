// Pieces the verdict engine's files share (verdict.cpp judges stacks and the process,
// findings.cpp and allocator_retention.cpp make the process findings): not an interface for anything else.
#pragma once
#include <cstddef>
#include <vector>

#include "analysis/run_shape.h"
#include "analysis/trend.h"
#include "analysis/verdict.h"

namespace leakscope::analysis::parts {

// One series' verdict before it becomes a StackVerdict.
struct Call {
  Verdict verdict = Verdict::kInconclusive;
  ReasonCode code = ReasonCode::kTooFewSnapshots;
  double rate = 0, growth = 0, confidence = 0, p = 1;
  bool tail_rate = false;  // rate measured over the last third
};

// leak | plateau | no-leak | inconclusive of one analysed series (docs/verdicts.md, steps 3-6).
Call classify(const trend::Trend& tr, const VerdictOptions& opt, double zcrit);

// The tracked live total over the window: its trend and its call.
struct LiveTotal {
  trend::Trend tr;
  Call call;
};

// The leak summary: leaking stacks, else the tracked live total growing like a leak (spread
// over many stacks) unless the stacks say otherwise: the total's growth is a pass in progress,
// or stacks that grew and stopped (plateau, working set) account for half of it. Returns
// whether there is a leak.
bool leak_findings(const VerdictOptions& opt, const shape::Passes& passes, const std::vector<StackVerdict>& stacks,
                   const Call& live_call, std::vector<Finding>& out);

// The working set of a run that goes in passes: how many, how much each builds, the peak.
void working_set_finding(const shape::Passes& ps, std::vector<Finding>& out);

// One finding per notable plateau (largest first, at most max_plateau_findings), then one
// for the rest.
void plateau_findings(std::vector<const StackVerdict*> plateaus, const VerdictOptions& opt,
                      std::vector<Finding>& out);

// Allocator retention findings (largest first) from the process points of the window `pw` and
// of the run up to the window's end `upto` (both ascending). Returns whether there is any.
bool retention_findings(const VerdictOptions& opt, double zcrit, const std::vector<const ProcessPoint*>& pw,
                        const std::vector<const ProcessPoint*>& upto, const LiveTotal& live,
                        std::vector<Finding>& out);

}  // namespace leakscope::analysis::parts
