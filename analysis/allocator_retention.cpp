// Allocator retention (process only): the allocator holds much more freed memory than the
// program has live, or RSS stays up (or grows) while tracked live memory fell (or stayed flat).
// See verdict_parts.h and docs/verdicts.md, "Allocator retention".
#include <algorithm>
#include <cmath>

#include "analysis/verdict_parts.h"

namespace leakscope::analysis::parts {

namespace {

using namespace trend;  // the statistics (trend.h)

// Median of the last tenth of a field of the process points in the window (the end level).
template <typename Get>
double end_level(const std::vector<const ProcessPoint*>& w, Get get) {
  if (w.empty()) return 0;
  size_t k = std::max<size_t>(1, w.size() / 10);
  std::vector<double> v;
  for (size_t i = w.size() - k; i < w.size(); ++i) {
    double x = get(*w[i]);
    v.push_back(finite(x) ? x : 0);
  }
  return median_of(v);
}

// A field of the process points as a series.
template <typename Get>
std::vector<Pt> series_of(const std::vector<const ProcessPoint*>& pw, Get get) {
  std::vector<Pt> w;
  for (auto* p : pw) {
    double y = get(*p);
    w.push_back({p->t_s, finite(y) ? y : 0.0});
  }
  return w;
}

// End levels of the process points (median of the last tenth of the window).
struct EndLevels {
  double live = 0, rss = 0, python = 0, arena = 0, glibc_free = 0, pymalloc_free = 0;
  bool have_pyfree = false;  // the capture has pymalloc's own free count (else arena - python)
};

// Retention no allocator counter explains, judged from RSS against the tracked live total:
// RSS stayed up after live memory fell, or RSS grew while live memory did not.
bool unexplained_retention(const VerdictOptions& opt, double zcrit, const std::vector<const ProcessPoint*>& pw,
                           const std::vector<const ProcessPoint*>& upto, const EndLevels& e, const LiveTotal& live,
                           Finding& f) {
  const ProcessPoint* peak = nullptr;
  for (const ProcessPoint* p : upto)
    if (finite(p->live) && (!peak || p->live > peak->live)) peak = p;
  const double drop = peak ? peak->live - e.live : 0;
  std::vector<Pt> rss_w = series_of(pw, [](const ProcessPoint& p) { return p.rss; });
  Trend rss_tr = analyze(rss_w, opt);
  Call rss_call = classify(rss_tr, opt, zcrit);
  f.kind = Verdict::kAllocatorRetention;
  f.layer = "process";
  f.remedy = RemedyCode::kGlibcOrPymalloc;
  if (peak && drop >= opt.retention_min_bytes && drop >= 0.5 * peak->live && peak->rss > 0 &&
      e.rss >= peak->rss - 0.25 * drop && e.rss - e.live >= opt.retention_min_bytes) {
    f.code = FindingCode::kRssAfterFree;
    f.bytes = std::min(drop, e.rss - e.live);
    f.rss_bytes = e.rss;
    f.peak_live_bytes = peak->live;
    f.live_bytes = e.live;
    return true;
  }
  if (!(rss_call.verdict == Verdict::kLeak && live.call.verdict != Verdict::kLeak &&
        rss_call.rate - std::max(0.0, live.tr.all.slope) >= opt.min_rate_bytes_per_s &&
        rss_call.growth - std::max(0.0, live.tr.level_end - live.tr.level_start) >= opt.retention_min_bytes))
    return false;
  // Attribute the growth to an allocator whose free bytes grew along with RSS.
  const double rss_growth = rss_call.growth;
  auto grew = [&](auto get) { return end_level(pw, get) - (finite(get(*pw.front())) ? get(*pw.front()) : 0.0); };
  const double g_glibc = grew([](const ProcessPoint& p) { return p.glibc_free; });
  const double g_py = e.have_pyfree ? grew([](const ProcessPoint& p) { return p.pymalloc_free; }) : 0;
  f.bytes = rss_growth;
  f.rate_bytes_per_s = rss_call.rate;
  f.live_rate_bytes_per_s = live.tr.all.slope;
  f.code = FindingCode::kRssGrowsUntracked;
  if (g_glibc >= 0.5 * rss_growth && g_glibc >= g_py) {
    f.layer = "glibc";
    f.code = FindingCode::kRssGrowsGlibc;
    f.remedy = RemedyCode::kGlibc;
  } else if (g_py >= 0.5 * rss_growth) {
    f.layer = "pymalloc";
    f.code = FindingCode::kRssGrowsPymalloc;
    f.remedy = RemedyCode::kPymalloc;
  }
  return true;
}

}  // namespace

bool retention_findings(const VerdictOptions& opt, double zcrit, const std::vector<const ProcessPoint*>& pw,
                        const std::vector<const ProcessPoint*>& upto, const LiveTotal& live,
                        std::vector<Finding>& out) {
  if (pw.empty()) return false;
  EndLevels e;
  e.live = end_level(pw, [](const ProcessPoint& p) { return p.live; });
  e.rss = end_level(pw, [](const ProcessPoint& p) { return p.rss; });
  e.python = end_level(pw, [](const ProcessPoint& p) { return p.python; });
  e.arena = end_level(pw, [](const ProcessPoint& p) { return p.arena; });
  e.glibc_free = end_level(pw, [](const ProcessPoint& p) { return p.glibc_free; });
  for (const ProcessPoint* p : upto) e.have_pyfree |= p->pymalloc_free > 0;
  e.pymalloc_free = e.have_pyfree ? end_level(pw, [](const ProcessPoint& p) { return p.pymalloc_free; })
                                  : std::max(0.0, e.arena - e.python);
  // Retained: large, at least retention_ratio times what is live, and RSS (when known) well
  // above the live bytes, so that the retained memory is really held.
  auto qualifies = [&](double retained) {
    return retained >= opt.retention_min_bytes && retained >= opt.retention_ratio * e.live &&
           (e.rss <= 0 || e.rss - e.live >= opt.retention_min_bytes);
  };
  auto held = [&](double retained) { return e.rss > 0 ? std::min(retained, e.rss - e.live) : retained; };
  std::vector<Finding> ret;
  if (qualifies(e.pymalloc_free)) {
    Finding f;
    f.kind = Verdict::kAllocatorRetention;
    f.code = FindingCode::kPymallocRetained;
    f.remedy = RemedyCode::kPymalloc;
    f.layer = "pymalloc";
    f.bytes = held(e.pymalloc_free);
    f.rss_bytes = e.rss;
    f.live_bytes = e.live;
    f.arena_bytes = e.arena;
    f.free_bytes = e.pymalloc_free;
    ret.push_back(std::move(f));
  }
  if (qualifies(e.glibc_free)) {
    Finding f;
    f.kind = Verdict::kAllocatorRetention;
    f.code = FindingCode::kGlibcRetained;
    f.remedy = RemedyCode::kGlibc;
    f.layer = "glibc";
    f.bytes = held(e.glibc_free);
    f.rss_bytes = e.rss;
    f.live_bytes = e.live;
    f.free_bytes = e.glibc_free;
    ret.push_back(std::move(f));
  }
  if (ret.empty() && e.rss > 0) {
    Finding f;
    if (unexplained_retention(opt, zcrit, pw, upto, e, live, f)) ret.push_back(std::move(f));
  }
  std::sort(ret.begin(), ret.end(), [](const Finding& a, const Finding& b) { return a.bytes > b.bytes; });
  for (Finding& f : ret) out.push_back(std::move(f));
  return !ret.empty();
}

}  // namespace leakscope::analysis::parts
