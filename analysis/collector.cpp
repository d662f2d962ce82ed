// Findings about Python's cyclic garbage collector: see collector.h.
#include "analysis/collector.h"

#include <algorithm>
#include <iterator>

namespace leakscope::analysis {
namespace {

bool off(const GcPoint& p) { return !p.enabled || p.threshold[0] == 0; }

// Live Python bytes at the process point nearest to `t` (0 without process points).
double python_at(const std::vector<ProcessPoint>& process, double t) {
  if (process.empty()) return 0;
  auto it = std::lower_bound(process.begin(), process.end(), t, [](const ProcessPoint& p, double x) { return p.t_s < x; });
  if (it == process.end()) return process.back().python;
  if (it != process.begin() && t - std::prev(it)->t_s < it->t_s - t) --it;
  return it->python;
}

// Collection off at the end while tracked objects accumulate (collector.h).
bool disabled_finding(const std::vector<GcPoint>& gc, const std::vector<ProcessPoint>& process,
                      const CollectorOptions& opt, Finding& f) {
  size_t end = gc.size() - 1, start = gc.size();
  while (start > 0 && off(gc[start - 1])) --start;
  if (start == gc.size()) return false;
  // A collection (gc.collect() while automatic collection is off) frees cycles and resets the
  // count: what accumulates is counted from the last one.
  auto collections = [](const GcPoint& p) { return p.collections[0] + p.collections[1] + p.collections[2]; };
  for (size_t i = end; i > start; --i)
    if (collections(gc[i]) != collections(gc[i - 1])) {
      start = i;
      break;
    }
  if (end + 1 - start < opt.min_points) return false;
  const double c0 = static_cast<double>(gc[start].count[0]), c1 = static_cast<double>(gc[end].count[0]);
  const double need = std::max(opt.min_objects, 10.0 * static_cast<double>(gc[start].threshold[0]));
  if (c1 - c0 < need) return false;
  const double t0 = gc[start].t_s, t1 = gc[end].t_s;
  // Still rising in the last third of the stretch.
  size_t third = start;
  while (third < end && gc[third].t_s < t0 + (t1 - t0) * 2 / 3) ++third;
  if (third >= end || !(static_cast<double>(gc[end].count[0]) > static_cast<double>(gc[third].count[0]) + (c1 - c0) / 20))
    return false;
  f.kind = Verdict::kGc;
  f.code = !gc[end].enabled ? FindingCode::kGcDisabled : FindingCode::kGcThresholdZero;
  f.remedy = RemedyCode::kGcCollect;
  f.layer = "python";
  f.duration_s = t1 - t0;
  f.objects = c1 - c0;
  f.bytes = std::max(0.0, python_at(process, t1) - python_at(process, t0));
  return true;
}

// gc.garbage not empty at the end, or uncollectable objects found (collector.h).
bool garbage_finding(const std::vector<GcPoint>& gc, Finding& f) {
  const GcPoint& last = gc.back();
  double uncollectable = 0;
  for (uint64_t u : last.uncollectable) uncollectable += static_cast<double>(u);
  if (last.garbage == 0 && uncollectable == 0) return false;
  f.kind = Verdict::kGc;
  f.code = FindingCode::kGcGarbage;
  f.remedy = (last.debug & kGcDebugSaveAll) ? RemedyCode::kGcSaveAll : RemedyCode::kGcUncollectable;
  f.layer = "python";
  f.objects = static_cast<double>(last.garbage);
  f.objects_growth = static_cast<double>(last.garbage) - static_cast<double>(gc.front().garbage);
  f.uncollectable = uncollectable;
  return true;
}

}  // namespace

void collector_findings(const std::vector<GcPoint>& gc, const std::vector<ProcessPoint>& process,
                        std::vector<Finding>& out, const CollectorOptions& opt) {
  if (gc.empty()) return;
  std::vector<Finding> found;
  if (Finding f; disabled_finding(gc, process, opt, f)) found.push_back(std::move(f));
  if (Finding f; garbage_finding(gc, f)) found.push_back(std::move(f));
  auto at = out.begin();
  while (at != out.end() && at->kind == Verdict::kLeak) ++at;
  out.insert(at, found.begin(), found.end());
}

}  // namespace leakscope::analysis
