// Verdict engine: see verdict.h and docs/verdicts.md.
#include "analysis/verdict.h"

#include "analysis/trend.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace leakscope::analysis {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kLeak: return "leak";
    case Verdict::kPlateau: return "plateau";
    case Verdict::kAllocatorRetention: return "allocator-retention";
    case Verdict::kNoLeak: return "no-leak";
    case Verdict::kInconclusive: return "inconclusive";
  }
  return "inconclusive";
}

namespace {

using namespace trend;  // the statistics (trend.h)

struct Call {
  Verdict verdict = Verdict::kInconclusive;
  ReasonCode code = ReasonCode::kTooFewSnapshots;
  double rate = 0, growth = 0, confidence = 0, p = 1;
  bool tail_rate = false;  // rate measured over the last third
};

double prob_below(double floor, const Fit& f) {
  if (f.se > 0) return norm_cdf((floor - f.slope) / f.se);
  return f.slope < floor ? 1.0 : 0.0;
}

Call classify(const Trend& tr, const VerdictOptions& opt, double zcrit) {
  Call c;
  if (!tr.valid) return c;
  const double floor = opt.min_rate_bytes_per_s, alpha = opt.alpha;
  const bool up = tr.mk_all.p_up < alpha;          // grew (maybe a plateau)
  const bool up_leak = tr.mk_all.p_leak < alpha;   // grew like a leak, not like a random walk
  // Still growing at the end: the last third alone shows significant growth above the floor.
  const bool tail_rising = tr.split && tr.mk_tail.p_leak < alpha && tr.tail.slope >= floor;
  // Stopped: the last third grows clearly slower (at most half as fast, and significantly so at
  // alpha_stop) than the first two thirds or than the whole window.
  const bool slower_than_head = tr.tail.slope <= 0.5 * tr.head.slope && tr.z_stop >= zcrit;
  const bool slower_than_all = tr.tail.slope <= 0.5 * tr.all.slope && tr.z_stop_all >= zcrit;
  const bool stopped = tr.split && !tail_rising && (slower_than_head || slower_than_all);
  const double level_growth = tr.level_end - tr.level_start;
  const double trend_growth = tr.all.slope * tr.span;
  // The end fell well below the line and gave back most of the growth: freed, not leaking.
  const bool collapsed = tr.end_resid < -3 * tr.all.sigma && level_growth < 0.5 * trend_growth;

  // With a short tail neither "stopped" nor "still growing" can be shown; a cache that filled
  // early would pass as a leak, so demand that the few last points still go up.
  const size_t tail_n = tr.split ? tr.n - tr.head_n : 0;
  const bool short_tail_ok =
      tail_n >= 6 || (tr.mk_tail.s > 0 && tr.tail.slope >= std::max(floor, 0.5 * tr.all.slope));
  if (up_leak && tr.all.slope >= floor && trend_growth >= opt.min_growth_bytes && !stopped && !collapsed &&
      (short_tail_ok || !tr.split)) {
    c.verdict = Verdict::kLeak;
    c.code = ReasonCode::kSustained;
    c.rate = tr.all.slope;
    c.growth = trend_growth;
    c.p = tr.mk_all.p_leak;
    double persist = tr.split ? 1 - tr.mk_tail.p_up : 0.5;
    c.confidence = clamp01((1 - tr.mk_all.p_leak) * (0.6 + 0.4 * persist));
    if (tail_rising && -tr.z_stop >= zcrit && tr.tail.slope > 1.5 * tr.all.slope) {
      // Faster at the end than on average (started late, or accelerating): the current rate.
      c.code = ReasonCode::kAccelerating;
      c.rate = tr.tail.slope;
      c.tail_rate = true;
      c.growth = std::max(level_growth, trend_growth);
    }
    return c;
  }
  if (tail_rising && tr.tail.slope * tr.tail_span >= opt.min_growth_bytes && tr.level_end > tr.head_max) {
    c.verdict = Verdict::kLeak;
    c.code = ReasonCode::kLateStart;
    c.rate = tr.tail.slope;
    c.tail_rate = true;
    c.growth = std::max(level_growth, tr.tail.slope * tr.tail_span);
    c.p = tr.mk_tail.p_leak;
    c.confidence = clamp01(0.8 * (1 - tr.mk_tail.p_leak));
    return c;
  }
  if (up && stopped && level_growth >= opt.min_growth_bytes) {
    c.verdict = Verdict::kPlateau;
    c.code = ReasonCode::kPlateau;
    c.rate = tr.tail.slope;
    c.tail_rate = true;
    c.growth = level_growth;
    c.p = tr.mk_all.p_up;
    c.confidence = clamp01((1 - tr.mk_all.p_up) * norm_cdf(std::min(std::max(tr.z_stop, tr.z_stop_all), 40.0)));
    return c;
  }
  if (up_leak && tr.all.slope >= floor && trend_growth >= opt.min_growth_bytes && !stopped && !collapsed) {
    // Only the short-tail check failed: grew, but the last few snapshots do not tell whether
    // it still does.
    c.verdict = Verdict::kInconclusive;
    c.code = ReasonCode::kUnclearEnd;
    c.rate = tr.all.slope;
    c.growth = trend_growth;
    c.p = tr.mk_all.p_leak;
    return c;
  }
  c.verdict = Verdict::kNoLeak;
  c.rate = tr.all.slope;
  c.growth = level_growth;
  c.p = tr.mk_all.p_up;
  const double rise = tr.level_peak - tr.level_start, fall = tr.level_peak - tr.level_end;
  const double big = std::max(opt.min_growth_bytes, 4 * tr.noise);
  if (collapsed || (rise >= big && fall >= std::max(big, 0.5 * rise))) {
    c.code = ReasonCode::kFreed;
    c.confidence = clamp01(tr.split ? prob_below(floor, tr.tail) : 0.5);
    return c;
  }
  if (up && tr.all.slope >= floor && !up_leak) {
    c.code = ReasonCode::kWander;
  } else if (up && tr.all.slope >= floor) {
    c.code = ReasonCode::kSmallGrowth;
  } else if (up && tr.all.slope > 0) {
    c.code = ReasonCode::kSlowRate;
  } else if (tr.mk_all.p_up > 1 - alpha) {
    c.code = ReasonCode::kShrinking;
  } else {
    c.code = ReasonCode::kStable;
  }
  c.confidence = clamp01(prob_below(floor, tr.all));
  return c;
}

// The numbers of the sentence that explains a stack's verdict (worded in report/words.cpp).
Reason reason_of(const Call& c, const Trend& tr, double count_rate, const VerdictOptions& opt) {
  Reason r;
  r.code = c.code;
  switch (c.code) {
    case ReasonCode::kSustained:
      r.rate_bytes_per_s = c.rate, r.count_per_s = count_rate, r.growth_bytes = c.growth, r.p = c.p;
      break;
    case ReasonCode::kAccelerating:
      r.rate_bytes_per_s = c.rate, r.count_per_s = count_rate, r.average_rate_bytes_per_s = tr.all.slope;
      break;
    case ReasonCode::kLateStart: r.rate_bytes_per_s = c.rate, r.count_per_s = count_rate; break;
    case ReasonCode::kPlateau:
      r.growth_bytes = c.growth, r.level_bytes = tr.level_end, r.rate_bytes_per_s = c.rate;
      break;
    case ReasonCode::kFreed: r.peak_bytes = tr.level_peak, r.level_bytes = tr.level_end; break;
    case ReasonCode::kSmallGrowth: r.growth_bytes = c.growth, r.threshold = opt.min_growth_bytes; break;
    case ReasonCode::kWander: r.growth_bytes = c.growth; break;
    case ReasonCode::kSlowRate: r.rate_bytes_per_s = c.rate, r.threshold = opt.min_rate_bytes_per_s; break;
    case ReasonCode::kShrinking:
    case ReasonCode::kStable:
    case ReasonCode::kUnclearEnd: r.rate_bytes_per_s = c.rate; break;
    case ReasonCode::kTiny: r.threshold = opt.min_growth_bytes; break;
    case ReasonCode::kWarmupPlateau:
    case ReasonCode::kTooFewSnapshots:
    case ReasonCode::kEndsEarly:
    case ReasonCode::kRunTooShort: break;
  }
  return r;
}

int severity(Verdict v) {
  switch (v) {
    case Verdict::kLeak: return 0;
    case Verdict::kPlateau: return 1;
    case Verdict::kAllocatorRetention: return 2;
    case Verdict::kNoLeak: return 3;
    case Verdict::kInconclusive: return 4;
  }
  return 5;
}

void sort_stacks(std::vector<StackVerdict>& v) {
  std::sort(v.begin(), v.end(), [](const StackVerdict& a, const StackVerdict& b) {
    int sa = severity(a.verdict), sb = severity(b.verdict);
    if (sa != sb) return sa < sb;
    double ka = a.bytes, kb = b.bytes;
    if (a.verdict == Verdict::kLeak) ka = a.rate_bytes_per_s, kb = b.rate_bytes_per_s;
    if (a.verdict == Verdict::kPlateau) ka = a.growth_bytes, kb = b.growth_bytes;
    if (ka != kb) return ka > kb;
    return a.stack < b.stack;
  });
}

struct Sample {
  double t, bytes, count;
};

// Finite points of a stack in ascending time.
std::vector<Sample> clean(const StackSeries& s) {
  std::vector<Sample> v;
  v.reserve(s.points.size());
  for (const StackPoint& p : s.points)
    if (finite(p.t_s) && finite(p.bytes) && finite(p.count)) v.push_back({p.t_s, p.bytes, p.count});
  if (!std::is_sorted(v.begin(), v.end(), [](const Sample& a, const Sample& b) { return a.t < b.t; }))
    std::stable_sort(v.begin(), v.end(), [](const Sample& a, const Sample& b) { return a.t < b.t; });
  return v;
}

double tol(double t) { return 1e-9 * std::max(1.0, std::fabs(t)); }

// Values of a step function (last sample at or before each time; 0 before the first sample,
// which is when the stack did not exist yet) at grid[base..], up to the last sample's time.
template <typename Get>
void on_grid(const std::vector<Sample>& s, const std::vector<double>& grid, size_t base, Get get,
             std::vector<Pt>& out) {
  out.clear();
  if (s.empty()) return;
  double last = s.back().t;
  size_t j = 0;
  for (size_t g = base; g < grid.size(); ++g) {
    double t = grid[g];
    if (t > last + tol(last)) break;
    while (j < s.size() && s[j].t <= t + tol(t)) ++j;
    out.push_back({t, j == 0 ? 0.0 : get(s[j - 1])});
  }
}

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

// Snapshot times and the window after warm-up, shared by every step of judge().
struct Window {
  const VerdictOptions& opt;
  double zcrit = 0;
  std::vector<double> grid;  // snapshot times, ascending, distinct
  size_t base = 0;           // grid index where the window starts (the last warm-up snapshot)
  double t_end = 0, window_start = 0;
};

// Snapshot times: the process points', else every stack point's.
std::vector<double> snapshot_grid(const std::vector<StackSeries>& stacks, const std::vector<ProcessPoint>& process) {
  std::vector<double> grid;
  for (const ProcessPoint& p : process)
    if (finite(p.t_s)) grid.push_back(p.t_s);
  if (grid.empty())
    for (const StackSeries& s : stacks)
      for (const StackPoint& p : s.points)
        if (finite(p.t_s)) grid.push_back(p.t_s);
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  return grid;
}

// Judges one stack over the window; adds its bytes at each window snapshot to `total` (the
// tracked total when there are no process points). wb, wc: scratch, reused across stacks.
void judge_stack(const Window& w, const std::vector<Sample>& s, StackVerdict& sv, std::vector<double>& total,
                 std::vector<Pt>& wb, std::vector<Pt>& wc) {
  const VerdictOptions& opt = w.opt;
  on_grid(s, w.grid, w.base, [](const Sample& x) { return x.bytes; }, wb);
  for (size_t k = 0; k < wb.size(); ++k) total[k] += wb[k].y;
  if (wb.size() < 3) {
    sv.reason = reason_of(Call{}, Trend{}, 0, opt);
    return;
  }
  if (wb.back().t < w.t_end - 0.5 * (w.t_end - w.window_start)) {
    Call c;
    c.code = ReasonCode::kEndsEarly;
    sv.reason = reason_of(c, Trend{}, 0, opt);
    return;
  }
  double lo = wb[0].y, hi = wb[0].y;
  for (const Pt& p : wb) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
  if (hi - lo < opt.min_growth_bytes) {
    // Cheap path for the many small, stable stacks: least-squares slopes only.
    on_grid(s, w.grid, w.base, [](const Sample& x) { return x.count; }, wc);
    auto ols = [](const std::vector<Pt>& v) {
      double mt = 0, my = 0;
      for (const Pt& p : v) mt += p.t, my += p.y;
      mt /= static_cast<double>(v.size()), my /= static_cast<double>(v.size());
      double sxy = 0, sxx = 0;
      for (const Pt& p : v) sxy += (p.t - mt) * (p.y - my), sxx += (p.t - mt) * (p.t - mt);
      return sxx > 0 ? sxy / sxx : 0.0;
    };
    sv.verdict = Verdict::kNoLeak;
    sv.rate_bytes_per_s = ols(wb);
    sv.rate_count_per_s = ols(wc);
    sv.growth_bytes = wb.back().y - wb.front().y;
    sv.confidence = 0.99;
    Call c;
    c.code = ReasonCode::kTiny;
    sv.reason = reason_of(c, Trend{}, 0, opt);
    return;
  }
  Trend tr = analyze(wb, opt);
  Call c = classify(tr, opt, w.zcrit);
  on_grid(s, w.grid, w.base, [](const Sample& x) { return x.count; }, wc);
  std::vector<Pt> cb = group_min(wc, opt.max_points);
  double count_rate = 0;
  if (c.tail_rate && tr.split && tr.head_n < cb.size())
    count_rate = theil_sen(cb.data() + tr.head_n, cb.size() - tr.head_n).slope;
  else
    count_rate = theil_sen(cb.data(), cb.size()).slope;
  sv.verdict = c.verdict;
  sv.rate_bytes_per_s = c.rate;
  sv.rate_count_per_s = count_rate;
  sv.growth_bytes = c.growth;
  sv.confidence = c.confidence;
  sv.reason = reason_of(c, tr, count_rate, opt);
}

// A cache that filled (mostly) during warm-up: the window alone shows no growth, but "grew,
// then flat" is a plateau whenever the growth happened. The level at the end (median of the
// last third) must stand well above the first samples, and the last third must be flat
// compared with that growth.
void warmup_plateau(const Window& w, const std::vector<Sample>& smp, StackVerdict& sv) {
  const VerdictOptions& opt = w.opt;
  if (sv.verdict != Verdict::kNoLeak || smp.size() < 6) return;
  const double t0 = smp.front().t, t1 = smp.back().t;
  if (t1 <= t0) return;
  double start = smp.front().bytes;
  for (const Sample& x : smp)
    if (x.t <= t0 + 0.1 * (t1 - t0)) start = std::min(start, x.bytes);
  const double tail_from = t1 - std::clamp(opt.tail_fraction, 0.05, 0.95) * (t1 - std::max(t0, w.window_start));
  std::vector<double> tail;
  for (const Sample& x : smp)
    if (x.t >= tail_from) tail.push_back(x.bytes);
  if (tail.size() < 3) return;
  std::vector<double> sorted = tail;
  std::sort(sorted.begin(), sorted.end());
  const double end = sorted[sorted.size() / 2];
  const double growth = end - start;
  const double tail_range = sorted.back() - sorted.front();
  if (growth < std::max(opt.min_growth_bytes, 4.0 * tail_range)) return;
  sv.verdict = Verdict::kPlateau;
  sv.growth_bytes = growth;
  sv.confidence = 0.8;
  sv.reason = Reason{};
  sv.reason.code = ReasonCode::kWarmupPlateau;
  sv.reason.growth_bytes = growth;
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

// The leak summary: leaking stacks, else the tracked live total growing like a leak (spread
// over many stacks). Returns whether there is a leak.
bool leak_findings(const std::vector<StackVerdict>& stacks, const Call& live_call, const VerdictOptions& opt,
                   std::vector<Finding>& out) {
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

// The tracked live total over the window, its trend and its call.
struct LiveTotal {
  Trend tr;
  Call call;
};

// End levels of the process points (median of the last tenth of the window).
struct EndLevels {
  double live = 0, rss = 0, python = 0, arena = 0, glibc_free = 0, pymalloc_free = 0;
  bool have_pyfree = false;  // the capture has pymalloc's own free count (else arena - python)
};

// Retention no allocator counter explains, judged from RSS against the tracked live total:
// RSS stayed up after live memory fell, or RSS grew while live memory did not.
bool unexplained_retention(const Window& w, const std::vector<const ProcessPoint*>& pw,
                           const std::vector<ProcessPoint>& process, const EndLevels& e, const LiveTotal& live,
                           Finding& f) {
  const VerdictOptions& opt = w.opt;
  const ProcessPoint* peak = nullptr;
  for (const ProcessPoint& p : process)
    if (finite(p.t_s) && finite(p.live) && (!peak || p.live > peak->live)) peak = &p;
  const double drop = peak ? peak->live - e.live : 0;
  std::vector<Pt> rss_w = series_of(pw, [](const ProcessPoint& p) { return p.rss; });
  Trend rss_tr = analyze(rss_w, opt);
  Call rss_call = classify(rss_tr, opt, w.zcrit);
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

// Allocator retention findings, largest first. Returns whether there is any.
bool retention_findings(const Window& w, const std::vector<const ProcessPoint*>& pw,
                        const std::vector<ProcessPoint>& process, const LiveTotal& live, std::vector<Finding>& out) {
  const VerdictOptions& opt = w.opt;
  if (pw.empty()) return false;
  EndLevels e;
  e.live = end_level(pw, [](const ProcessPoint& p) { return p.live; });
  e.rss = end_level(pw, [](const ProcessPoint& p) { return p.rss; });
  e.python = end_level(pw, [](const ProcessPoint& p) { return p.python; });
  e.arena = end_level(pw, [](const ProcessPoint& p) { return p.arena; });
  e.glibc_free = end_level(pw, [](const ProcessPoint& p) { return p.glibc_free; });
  for (const ProcessPoint& p : process) e.have_pyfree |= p.pymalloc_free > 0;
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
    if (unexplained_retention(w, pw, process, e, live, f)) ret.push_back(std::move(f));
  }
  std::sort(ret.begin(), ret.end(), [](const Finding& a, const Finding& b) { return a.bytes > b.bytes; });
  for (Finding& f : ret) out.push_back(std::move(f));
  return !ret.empty();
}

// One finding per notable plateau (largest first, at most max_plateau_findings), then one
// for the rest.
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

// Every stack inconclusive and one note: the run is too short to judge.
void too_short(double duration, size_t n, const VerdictOptions& opt, VerdictResult& res) {
  for (StackVerdict& sv : res.stacks) {
    sv.reason = Reason{};
    sv.reason.code = ReasonCode::kRunTooShort;
    sv.reason.duration_s = std::max(duration, 0.0);
    sv.reason.snapshots = n;
  }
  Finding f;
  f.kind = Verdict::kInconclusive;
  f.code = FindingCode::kRunTooShort;
  f.remedy = RemedyCode::kRunLonger;
  f.layer = "process";
  f.duration_s = std::max(duration, 0.0);
  f.snapshots = n;
  f.min_duration_s = opt.min_duration_s;
  f.min_snapshots = opt.min_points;
  res.findings.push_back(std::move(f));
}

}  // namespace

VerdictResult judge(const std::vector<StackSeries>& stacks, const std::vector<ProcessPoint>& process,
                    const VerdictOptions& opt) {
  VerdictResult res;
  Window w{opt, upper_quantile(opt.alpha_stop), snapshot_grid(stacks, process)};
  const std::vector<double>& grid = w.grid;
  const size_t n = grid.size();
  const double t_start = n ? grid.front() : 0, t_end = n ? grid.back() : 0, duration = t_end - t_start;
  const bool short_run = n < static_cast<size_t>(std::max(opt.min_points, 3)) ||
                         !(duration >= opt.min_duration_s) || !(duration > 0);

  std::vector<std::vector<Sample>> cleaned(stacks.size());
  res.stacks.resize(stacks.size());
  for (size_t i = 0; i < stacks.size(); ++i) {
    cleaned[i] = clean(stacks[i]);
    StackVerdict& sv = res.stacks[i];
    sv.stack = stacks[i].stack;
    sv.layer = stacks[i].layer;
    sv.verdict = Verdict::kInconclusive;
    if (!cleaned[i].empty()) {
      sv.bytes = cleaned[i].back().bytes;
      sv.count = cleaned[i].back().count;
    }
  }

  if (short_run) {
    too_short(duration, n, opt, res);
    sort_stacks(res.stacks);
    return res;
  }

  const double cutoff = t_start + std::clamp(opt.warmup_fraction, 0.0, 0.9) * duration;
  w.base = static_cast<size_t>(std::upper_bound(grid.begin(), grid.end(), cutoff) - grid.begin()) - 1;
  w.window_start = grid[w.base];
  w.t_end = t_end;

  // ---- per stack
  std::vector<double> total(n - w.base, 0.0);  // sum of stacks, used when there are no process points
  {
    std::vector<Pt> wb, wc;
    for (size_t i = 0; i < stacks.size(); ++i) judge_stack(w, cleaned[i], res.stacks[i], total, wb, wc);
  }
  for (size_t i = 0; i < res.stacks.size() && i < cleaned.size(); ++i) warmup_plateau(w, cleaned[i], res.stacks[i]);

  // ---- the tracked live total, RSS and allocator layers
  std::vector<const ProcessPoint*> pw;  // process points in the window, ascending
  {
    std::vector<const ProcessPoint*> all;
    for (const ProcessPoint& p : process)
      if (finite(p.t_s)) all.push_back(&p);
    std::stable_sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->t_s < b->t_s; });
    for (auto* p : all)
      if (p->t_s >= w.window_start - tol(w.window_start)) pw.push_back(p);
  }
  std::vector<Pt> live_w;
  bool have_live = false;
  for (auto* p : pw) have_live |= p->live > 0;
  if (have_live) {
    live_w = series_of(pw, [](const ProcessPoint& p) { return p.live; });
  } else {
    for (size_t k = 0; k < total.size(); ++k) live_w.push_back({grid[w.base + k], total[k]});
  }
  LiveTotal live;
  live.tr = analyze(live_w, opt);
  live.call = classify(live.tr, opt, w.zcrit);
  res.process_rate_bytes_per_s = live.call.verdict == Verdict::kLeak ? live.call.rate : live.tr.all.slope;

  // ---- findings
  std::vector<const StackVerdict*> plateaus;
  for (const StackVerdict& sv : res.stacks)
    if (sv.verdict == Verdict::kPlateau && sv.growth_bytes >= opt.notable_plateau_bytes) plateaus.push_back(&sv);
  const bool leak = leak_findings(res.stacks, live.call, opt, res.findings);
  const bool retention = retention_findings(w, pw, process, live, res.findings);
  plateau_findings(plateaus, opt, res.findings);

  res.process = leak ? Verdict::kLeak
                : retention ? Verdict::kAllocatorRetention
                : !plateaus.empty() ? Verdict::kPlateau
                : Verdict::kNoLeak;
  sort_stacks(res.stacks);
  return res;
}

}  // namespace leakscope::analysis
