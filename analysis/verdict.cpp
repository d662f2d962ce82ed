// Verdict engine: see verdict.h and docs/verdicts.md.
#include "analysis/verdict.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "analysis/run_shape.h"
#include "analysis/trend.h"
#include "analysis/verdict_parts.h"

namespace leakscope::analysis {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kLeak: return "leak";
    case Verdict::kPlateau: return "plateau";
    case Verdict::kAllocatorRetention: return "allocator-retention";
    case Verdict::kNoLeak: return "no-leak";
    case Verdict::kInconclusive: return "inconclusive";
    case Verdict::kWorkingSet: return "working-set";
    case Verdict::kGc: return "gc";
  }
  return "inconclusive";
}

namespace parts {

using namespace trend;  // the statistics (trend.h)

namespace {
double prob_below(double floor, const Fit& f) {
  if (f.se > 0) return norm_cdf((floor - f.slope) / f.se);
  return f.slope < floor ? 1.0 : 0.0;
}
}  // namespace

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

}  // namespace parts

namespace {

using namespace trend;  // the statistics (trend.h)
using parts::Call;
using parts::classify;
using parts::LiveTotal;

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
    case ReasonCode::kWhileWorking:
      r.rate_bytes_per_s = c.rate, r.count_per_s = count_rate, r.growth_bytes = c.growth;
      break;
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
    case ReasonCode::kWorkingSet:
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
    case Verdict::kWorkingSet: return 2;
    case Verdict::kAllocatorRetention: return 3;
    case Verdict::kNoLeak: return 4;
    case Verdict::kInconclusive: return 5;
    case Verdict::kGc: return 6;  // a finding kind, never a stack's verdict
  }
  return 6;
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
// which is when the stack did not exist yet) at grid[base..end], up to the last sample's time.
template <typename Get>
void on_grid(const std::vector<Sample>& s, const std::vector<double>& grid, size_t base, size_t end, Get get,
             std::vector<Pt>& out) {
  out.clear();
  if (s.empty()) return;
  double last = s.back().t;
  size_t j = 0;
  for (size_t g = base; g <= end && g < grid.size(); ++g) {
    double t = grid[g];
    if (t > last + tol(last)) break;
    while (j < s.size() && s[j].t <= t + tol(t)) ++j;
    out.push_back({t, j == 0 ? 0.0 : get(s[j - 1])});
  }
}

// Snapshot times, the window after warm-up and the run's shape, shared by every step of judge().
struct Window {
  const VerdictOptions& opt;
  double zcrit = 0;
  std::vector<double> grid;  // snapshot times, ascending, distinct
  size_t base = 0;           // grid index where the window starts (the last warm-up snapshot)
  size_t end = 0;            // grid index where it ends: the last snapshot, or a teardown's start
  double t_end = 0, window_start = 0;
  double teardown_s = 0;     // > 0: the run ended with a teardown that began then (= t_end)
  shape::WorkClock clock{};  // the work clock over grid[base..end]
  shape::Passes passes{};    // live memory rising and falling in passes
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

// The trend and call of a window series (v[k] at grid[base + k]) on the wall clock, or on the
// work clock when that one says leak and the wall clock does not: growth that stopped only
// because the work stopped (docs/verdicts.md, "Work"). scratch: reused across calls.
struct Judged {
  Trend tr;
  Call c;
  bool work = false;  // judged on the work clock
};

Judged judge_series(const Window& w, const std::vector<Pt>& v, std::vector<Pt>& scratch) {
  Judged j;
  j.tr = analyze(v, w.opt);
  j.c = classify(j.tr, w.opt, w.zcrit);
  if (j.c.verdict == Verdict::kLeak || !w.clock.valid || v.size() > w.clock.tau.size()) return j;
  scratch = v;
  for (size_t k = 0; k < scratch.size(); ++k) scratch[k].t = w.clock.tau[k];
  Trend tk = analyze(scratch, w.opt);
  Call ck = classify(tk, w.opt, w.zcrit);
  if (ck.verdict != Verdict::kLeak) return j;
  ck.code = ReasonCode::kWhileWorking;
  j.tr = tk;
  j.c = ck;
  j.work = true;
  return j;
}

// Least-squares slope (the cheap path for small, stable stacks).
double ols_slope(const std::vector<Pt>& v) {
  double mt = 0, my = 0;
  for (const Pt& p : v) mt += p.t, my += p.y;
  mt /= static_cast<double>(v.size()), my /= static_cast<double>(v.size());
  double sxy = 0, sxx = 0;
  for (const Pt& p : v) sxy += (p.t - mt) * (p.y - my), sxx += (p.t - mt) * (p.t - mt);
  return sxx > 0 ? sxy / sxx : 0.0;
}

// Judges one stack over the window. wb, wc, scratch: reused across stacks.
void judge_stack(const Window& w, const std::vector<Sample>& s, StackVerdict& sv, std::vector<Pt>& wb,
                 std::vector<Pt>& wc, std::vector<Pt>& scratch) {
  const VerdictOptions& opt = w.opt;
  on_grid(s, w.grid, w.base, w.end, [](const Sample& x) { return x.bytes; }, wb);
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
  on_grid(s, w.grid, w.base, w.end, [](const Sample& x) { return x.count; }, wc);
  if (hi - lo < opt.min_growth_bytes) {
    sv.verdict = Verdict::kNoLeak;
    sv.rate_bytes_per_s = ols_slope(wb);
    sv.rate_count_per_s = ols_slope(wc);
    sv.growth_bytes = wb.back().y - wb.front().y;
    sv.confidence = 0.99;
    Call c;
    c.code = ReasonCode::kTiny;
    sv.reason = reason_of(c, Trend{}, 0, opt);
    return;
  }
  const Judged j = judge_series(w, wb, scratch);
  const Call& c = j.c;
  if (j.work)
    for (size_t k = 0; k < wc.size(); ++k) wc[k].t = w.clock.tau[k];
  std::vector<Pt> cb = group_min(wc, opt.max_points);
  double count_rate = 0;
  if (c.tail_rate && j.tr.split && j.tr.head_n < cb.size())
    count_rate = theil_sen(cb.data() + j.tr.head_n, cb.size() - j.tr.head_n).slope;
  else
    count_rate = theil_sen(cb.data(), cb.size()).slope;
  sv.verdict = c.verdict;
  sv.rate_bytes_per_s = c.rate;
  sv.rate_count_per_s = count_rate;
  sv.growth_bytes = c.growth;
  sv.confidence = c.confidence;
  sv.reason = reason_of(c, j.tr, count_rate, opt);
  if (j.work) sv.reason.idle_s = w.clock.idle_s;
}

// In a run that goes in passes, a stack that grew and was freed, or whose growth all came in the
// pass in progress at the end (it held at most a quarter of it at the last trough, and that
// pass is like the earlier ones), is part of the working set: what one pass builds, the next
// frees. wb: the stack's bytes over the window.
void as_working_set(const Window& w, const std::vector<Pt>& wb, StackVerdict& sv) {
  const shape::Passes& ps = w.passes;
  if (!ps.found || wb.size() < 3) return;
  const Verdict v = sv.verdict;
  const bool freed = v == Verdict::kNoLeak && sv.reason.code == ReasonCode::kFreed;
  const bool grew = v == Verdict::kLeak || v == Verdict::kPlateau ||
                    (v == Verdict::kInconclusive && sv.reason.code == ReasonCode::kUnclearEnd);
  if (!freed && !grew) return;
  const double y0 = wb.front().y, ye = wb.back().y;
  if (grew) {
    const size_t k = ps.last_trough - w.base;  // find_passes: the last trough is in the window
    if (!ps.current_like_before || k >= wb.size()) return;
    const double yt = wb[k].y;
    if (!(ye > yt) || yt - y0 > 0.25 * std::max(0.0, ye - y0)) return;
  }
  double peak = 0;
  for (const Pt& p : wb) peak = std::max(peak, p.y);
  sv.verdict = Verdict::kWorkingSet;
  sv.growth_bytes = ye - y0;
  sv.confidence = 0.8;
  sv.reason = Reason{};
  sv.reason.code = ReasonCode::kWorkingSet;
  sv.reason.passes = ps.count;
  sv.reason.peak_bytes = peak;
  sv.reason.level_bytes = ye;
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

// The tracked live total and the work done at each snapshot: the process points' (the last at
// each time), else the sum of the stacks and no work.
struct RunSeries {
  std::vector<double> live, work;
  bool have_work = false;
};

RunSeries run_series(const std::vector<double>& grid, const std::vector<const ProcessPoint*>& all,
                     const std::vector<std::vector<Sample>>& stacks) {
  RunSeries rs;
  const size_t n = grid.size();
  rs.live.assign(n, 0);
  rs.work.assign(n, 0);
  bool have_live = false;
  size_t g = 0;
  for (const ProcessPoint* p : all) {
    while (g < n && grid[g] < p->t_s - tol(p->t_s)) ++g;
    if (g == n) break;
    if (std::fabs(grid[g] - p->t_s) > tol(p->t_s)) continue;
    rs.live[g] = finite(p->live) ? p->live : 0;
    rs.work[g] = finite(p->allocs) ? p->allocs : 0;
    have_live |= rs.live[g] > 0;
    rs.have_work |= rs.work[g] > 0;
  }
  if (!have_live) {
    std::fill(rs.live.begin(), rs.live.end(), 0.0);
    std::vector<Pt> v;
    for (const auto& s : stacks) {
      on_grid(s, grid, 0, n - 1, [](const Sample& x) { return x.bytes; }, v);
      for (size_t k = 0; k < v.size(); ++k) rs.live[k] += v[k].y;
    }
  }
  return rs;
}

// The window's end (before a teardown), the work clock and the passes, from the tracked total.
void shape_run(const RunSeries& rs, Window& w, VerdictResult& res) {
  const std::vector<double>& grid = w.grid;
  const shape::Teardown td = shape::find_teardown(grid, rs.live, w.base, w.opt);
  w.end = td.found ? td.end : grid.size() - 1;
  w.t_end = grid[w.end];
  w.teardown_s = td.found ? w.t_end : 0;
  if (rs.have_work) w.clock = shape::work_clock(grid, rs.work, w.base, w.end);
  w.passes = shape::find_passes(grid, rs.live, w.base, w.end, w.opt);
  res.judged_until_s = w.t_end;
  res.teardown_s = w.teardown_s;
  res.idle_s = w.clock.valid ? w.clock.idle_s : 0;
}

// Every stack over the window: its trend on both clocks, a plateau filled during warm-up, its
// part in the working set.
void judge_stacks(const Window& w, const std::vector<std::vector<Sample>>& cleaned, VerdictResult& res) {
  std::vector<Pt> wb, wc, scratch;
  std::vector<Sample> upto;
  for (size_t i = 0; i < cleaned.size(); ++i) {
    StackVerdict& sv = res.stacks[i];
    judge_stack(w, cleaned[i], sv, wb, wc, scratch);
    upto.clear();
    for (const Sample& x : cleaned[i])
      if (x.t <= w.t_end + tol(w.t_end)) upto.push_back(x);
    warmup_plateau(w, upto, sv);
    on_grid(cleaned[i], w.grid, w.base, w.end, [](const Sample& x) { return x.bytes; }, wb);
    as_working_set(w, wb, sv);
    sv.reason.teardown_s = w.teardown_s;
  }
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

  // ---- the run's shape, then every stack over the window it gives
  std::vector<const ProcessPoint*> all;  // process points, ascending
  for (const ProcessPoint& p : process)
    if (finite(p.t_s)) all.push_back(&p);
  std::stable_sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->t_s < b->t_s; });
  const RunSeries rs = run_series(grid, all, cleaned);
  shape_run(rs, w, res);
  judge_stacks(w, cleaned, res);

  // ---- the tracked live total, RSS and allocator layers
  std::vector<const ProcessPoint*> pw, upto;  // process points in the window, up to its end
  for (auto* p : all) {
    if (p->t_s > w.t_end + tol(w.t_end)) break;
    upto.push_back(p);
    if (p->t_s >= w.window_start - tol(w.window_start)) pw.push_back(p);
  }
  std::vector<Pt> live_w, scratch;
  for (size_t g = w.base; g <= w.end; ++g) live_w.push_back({grid[g], rs.live[g]});
  LiveTotal live;
  {
    Judged j = judge_series(w, live_w, scratch);
    live.tr = j.tr;
    live.call = j.c;
  }
  res.process_rate_bytes_per_s = live.call.verdict == Verdict::kLeak ? live.call.rate : live.tr.all.slope;

  // ---- findings
  std::vector<const StackVerdict*> plateaus;
  for (const StackVerdict& sv : res.stacks)
    if (sv.verdict == Verdict::kPlateau && sv.growth_bytes >= opt.notable_plateau_bytes) plateaus.push_back(&sv);
  const bool leak = parts::leak_findings(opt, w.passes, res.stacks, live.call, res.findings);
  const bool retention = parts::retention_findings(opt, w.zcrit, pw, upto, live, res.findings);
  if (w.passes.found) parts::working_set_finding(w.passes, res.findings);
  parts::plateau_findings(plateaus, opt, res.findings);

  res.process = leak ? Verdict::kLeak
                : retention ? Verdict::kAllocatorRetention
                : w.passes.found ? Verdict::kWorkingSet
                : !plateaus.empty() ? Verdict::kPlateau
                : Verdict::kNoLeak;
  sort_stacks(res.stacks);
  return res;
}

}  // namespace leakscope::analysis
