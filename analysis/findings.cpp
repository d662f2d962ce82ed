// The process-level findings of the verdict engine: the leak summary, the working set, the
// plateaus. See verdict_parts.h and docs/verdicts.md.
#include <algorithm>
#include <utility>

#include "analysis/verdict_parts.h"

namespace leakscope::analysis::parts {

bool leak_findings(const VerdictOptions& opt, const shape::Passes& passes, const std::vector<StackVerdict>& stacks,
                   const Call& live_call, std::vector<Finding>& out) {
  std::vector<const StackVerdict*> leaks;
  for (const StackVerdict& sv : stacks)
    if (sv.verdict == Verdict::kLeak) leaks.push_back(&sv);
  if (!leaks.empty()) {
    std::sort(leaks.begin(), leaks.end(), [](auto* a, auto* b) {
      return a->rate_bytes_per_s != b->rate_bytes_per_s ? a->rate_bytes_per_s > b->rate_bytes_per_s
                                                         : a->stack < b->stack;
    });
    double rate = 0, growth = 0;
    for (auto* sv : leaks) rate += sv->rate_bytes_per_s, growth += sv->growth_bytes;
    const StackVerdict& top = *leaks.front();
    Finding f;
    f.kind = Verdict::kLeak;
    f.code = FindingCode::kStacksLeak;
    f.remedy = RemedyCode::kReleaseKept;
    f.layer = top.layer;
    f.bytes = growth;
    f.stack = top.stack;
    f.stacks = leaks.size();
    f.rate_bytes_per_s = rate;
    f.top_rate_bytes_per_s = top.rate_bytes_per_s;
    f.top_count_per_s = top.rate_count_per_s;
    out.push_back(std::move(f));
    return true;
  }
  if (live_call.verdict != Verdict::kLeak) return false;
  if (passes.found && passes.current_like_before) return false;
  double stopped = 0;  // growth of the stacks that grew and then stopped
  for (const StackVerdict& sv : stacks)
    if (sv.verdict == Verdict::kPlateau || sv.verdict == Verdict::kWorkingSet)
      stopped += std::max(0.0, sv.growth_bytes);
  if (stopped >= 0.5 * live_call.growth) return false;
  Finding f;
  f.kind = Verdict::kLeak;
  f.code = FindingCode::kSpreadLeak;
  f.remedy = RemedyCode::kSharedCaller;
  f.layer = "process";
  f.bytes = live_call.growth;
  f.rate_bytes_per_s = live_call.rate;
  f.threshold = opt.min_rate_bytes_per_s;
  out.push_back(std::move(f));
  return true;
}

void plateau_findings(std::vector<const StackVerdict*> plateaus, const VerdictOptions& opt,
                      std::vector<Finding>& out) {
  std::sort(plateaus.begin(), plateaus.end(), [](auto* a, auto* b) {
    return a->growth_bytes != b->growth_bytes ? a->growth_bytes > b->growth_bytes : a->stack < b->stack;
  });
  for (size_t i = 0; i < plateaus.size() && i < opt.max_plateau_findings; ++i) {
    const StackVerdict& sv = *plateaus[i];
    Finding f;
    f.kind = Verdict::kPlateau;
    f.code = FindingCode::kPlateau;
    f.remedy = RemedyCode::kBoundCache;
    f.layer = sv.layer;
    f.bytes = sv.growth_bytes;
    f.stack = sv.stack;
    f.live_bytes = sv.bytes;
    out.push_back(std::move(f));
  }
  if (plateaus.size() > opt.max_plateau_findings) {
    Finding f;
    f.kind = Verdict::kPlateau;
    f.code = FindingCode::kMorePlateaus;
    f.layer = "process";
    double bytes = 0;
    for (size_t i = opt.max_plateau_findings; i < plateaus.size(); ++i) bytes += plateaus[i]->growth_bytes;
    f.bytes = bytes;
    f.stacks = plateaus.size() - opt.max_plateau_findings;
    out.push_back(std::move(f));
  }
}

void working_set_finding(const shape::Passes& ps, std::vector<Finding>& out) {
  Finding f;
  f.kind = Verdict::kWorkingSet;
  f.code = FindingCode::kWorkingSet;
  f.remedy = RemedyCode::kSmallerPasses;
  f.layer = "process";
  f.bytes = ps.size;
  f.passes = ps.count;
  f.peak_live_bytes = ps.peak;
  f.live_bytes = ps.trough;
  out.push_back(std::move(f));
}

}  // namespace leakscope::analysis::parts
