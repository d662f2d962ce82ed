// Verdict engine: see verdict.h and docs/verdicts.md.
#include "analysis/verdict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
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

constexpr double kHuge = 1e12;  // stands in for an infinite z (no noise at all)

struct Pt {
  double t = 0, y = 0;
};

bool finite(double x) { return std::isfinite(x); }

double norm_sf(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }
double norm_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// z such that P(Z > z) = alpha (bisection; alpha is a user option, called once).
double upper_quantile(double alpha) {
  if (!(alpha > 0) || alpha >= 0.5) return 0;
  double lo = 0, hi = 40;
  for (int i = 0; i < 200; ++i) {
    double mid = 0.5 * (lo + hi);
    (norm_sf(mid) > alpha ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double clamp01(double x) { return finite(x) ? std::clamp(x, 0.0, 1.0) : 0.0; }

// Median (average of the two middle values for even sizes). Reorders v.
double median_of(std::vector<double>& v) {
  if (v.empty()) return 0;
  size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double m = v[mid];
  if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + mid));
  return m;
}

// Theil-Sen line with a robust noise scale (1.4826 * MAD of the residuals) and the slope's
// standard error from that scale. O(n^2) with n <= max_points.
struct Fit {
  double slope = 0, intercept = 0, sigma = 0, se = 0;
};

Fit theil_sen(const Pt* p, size_t n) {
  Fit f;
  if (n == 0) return f;
  std::vector<double> v;
  if (n >= 2) {
    v.reserve(n * (n - 1) / 2);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = i + 1; j < n; ++j) {
        double dt = p[j].t - p[i].t;
        if (dt > 0) v.push_back((p[j].y - p[i].y) / dt);
      }
    if (!v.empty()) f.slope = median_of(v);
  }
  v.assign(n, 0);
  for (size_t i = 0; i < n; ++i) v[i] = p[i].y - f.slope * p[i].t;
  f.intercept = median_of(v);
  double sum_abs = 0;
  for (size_t i = 0; i < n; ++i) {
    v[i] = std::fabs(p[i].y - (f.intercept + f.slope * p[i].t));
    sum_abs += v[i];
  }
  f.sigma = 1.4826 * median_of(v);
  if (!(f.sigma > 0)) f.sigma = 1.2533 * sum_abs / static_cast<double>(n);
  double tbar = 0;
  for (size_t i = 0; i < n; ++i) tbar += p[i].t;
  tbar /= static_cast<double>(n);
  double sxx = 0;
  for (size_t i = 0; i < n; ++i) sxx += (p[i].t - tbar) * (p[i].t - tbar);
  f.se = sxx > 0 ? f.sigma / std::sqrt(sxx) : 0;
  return f;
}

// Mann-Kendall trend test with the tie correction; p_up is the one-sided p-value of an
// upward trend (small = significant growth, close to 1 = significant decline).
struct MannKendall {
  double s = 0, z = 0, p_up = 0.5;
  // p-value of growth that is neither a random walk nor noise around a flat level: see trend_test.
  double p_leak = 0.5;
};

MannKendall mann_kendall(const Pt* p, size_t n) {
  MannKendall mk;
  if (n < 3) return mk;
  long long s = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = i + 1; j < n; ++j) s += (p[j].y > p[i].y) - (p[j].y < p[i].y);
  std::vector<double> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = p[i].y;
  std::sort(y.begin(), y.end());
  double ties = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && y[j] == y[i]) ++j;
    double g = static_cast<double>(j - i);
    if (g > 1) ties += g * (g - 1) * (2 * g + 5);
    i = j;
  }
  double dn = static_cast<double>(n);
  double var = (dn * (dn - 1) * (2 * dn + 5) - ties) / 18.0;
  mk.s = static_cast<double>(s);
  if (var > 0) mk.z = (s > 0 ? mk.s - 1 : s < 0 ? mk.s + 1 : 0.0) / std::sqrt(var);
  mk.p_up = norm_sf(mk.z);
  if (ties == 0 && n <= 12) {
    // Exact null distribution (all orders equally likely): S = n(n-1)/2 - 2 * inversions, and
    // the number of permutations with k inversions is a Mahonian number.
    size_t pairs = n * (n - 1) / 2;
    std::vector<double> c(pairs + 1, 0.0), next;
    c[0] = 1;
    for (size_t m = 2; m <= n; ++m) {
      next.assign(pairs + 1, 0.0);
      for (size_t k = 0; k <= pairs; ++k)
        if (c[k] > 0)
          for (size_t j = 0; j < m && k + j <= pairs; ++j) next[k + j] += c[k];
      c.swap(next);
    }
    double total = 0, at_most = 0;
    long long inv_obs = (static_cast<long long>(pairs) - s) / 2;
    for (size_t k = 0; k <= pairs; ++k) {
      total += c[k];
      if (static_cast<long long>(k) <= inv_obs) at_most += c[k];
    }
    mk.p_up = at_most / total;
  }
  return mk;
}

// Wilcoxon signed-rank test on the successive differences: one-sided p-value of a positive
// drift. Insensitive to autocorrelated wandering (a random walk has symmetric steps), strong
// for growth in bursts (every step up, none down).
double drift_p(const Pt* p, size_t n) {
  std::vector<double> d;
  for (size_t i = 0; i + 1 < n; ++i)
    if (p[i + 1].y != p[i].y) d.push_back(p[i + 1].y - p[i].y);
  size_t m = d.size();
  if (m < 3) return 0.5;
  std::vector<size_t> idx(m);
  for (size_t i = 0; i < m; ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return std::fabs(d[a]) < std::fabs(d[b]); });
  double w = 0, ties = 0;
  for (size_t i = 0; i < m;) {
    size_t j = i;
    while (j < m && std::fabs(d[idx[j]]) == std::fabs(d[idx[i]])) ++j;
    double rank = 0.5 * static_cast<double>(i + 1 + j), g = static_cast<double>(j - i);
    for (size_t k = i; k < j; ++k)
      if (d[idx[k]] > 0) w += rank;
    ties += g * g * g - g;
    i = j;
  }
  double dm = static_cast<double>(m);
  double mean = dm * (dm + 1) / 4, var = dm * (dm + 1) * (2 * dm + 1) / 24 - ties / 48;
  if (!(var > 0)) return 0.5;
  return norm_sf((w - mean - 0.5) / std::sqrt(var));
}

// Mann-Kendall on the groups, then the evidence for a leak: the trend must also survive the
// autocorrelation of the residuals around the line (Hamed and Rao's variance correction from
// the significant autocorrelations of their ranks: a random walk wanders in long runs and fools
// the plain test), or else the successive differences must drift upward (growth in bursts,
// whose residuals are autocorrelated too).
MannKendall trend_test(const Pt* p, size_t n, const Fit& f) {
  MannKendall mk = mann_kendall(p, n);
  mk.p_leak = mk.p_up;
  if (n < 4) return mk;
  std::vector<double> r(n), rank(n);
  std::vector<size_t> idx(n);
  double scale = 0;
  for (size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(p[i].y));
  for (size_t i = 0; i < n; ++i) {
    r[i] = p[i].y - (f.intercept + f.slope * p[i].t);
    if (std::fabs(r[i]) <= 1e-9 * scale) r[i] = 0;  // rounding, not noise
    idx[i] = i;
  }
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return r[a] < r[b]; });
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && r[idx[j]] == r[idx[i]]) ++j;
    for (size_t k = i; k < j; ++k) rank[idx[k]] = 0.5 * static_cast<double>(i + j - 1);
    i = j;
  }
  double mean = 0.5 * static_cast<double>(n - 1), den = 0;
  for (size_t i = 0; i < n; ++i) den += (rank[i] - mean) * (rank[i] - mean);
  double ratio = 1;
  if (den > 0) {
    const double dn = static_cast<double>(n), bound = 1.96 / std::sqrt(dn);
    double sum = 0, rho1 = 0;
    for (size_t k = 1; k + 2 < n; ++k) {
      double num = 0;
      for (size_t i = 0; i + k < n; ++i) num += (rank[i] - mean) * (rank[i + k] - mean);
      double rho = num / den;
      if (k == 1) rho1 = rho;
      if (std::fabs(rho) <= bound) continue;
      double m = static_cast<double>(n - k);
      sum += m * (m - 1) * (m - 2) * rho;
    }
    ratio = 1 + 2 * sum / (dn * (dn - 1) * (dn - 2));
    // The all-lags sum undercorrects slowly wandering series (their far lags turn negative once
    // detrended); the AR(1) factor (1+r)/(1-r), r bias-corrected, covers those. Take the larger.
    if (rho1 > bound) {
      double r1 = std::min(0.98, rho1 + (1 + 3 * rho1) / dn);
      ratio = std::max(ratio, (1 + r1) / (1 - r1));
    }
    ratio = std::clamp(ratio, 1.0, dn);
  }
  double p_corrected = ratio > 1 ? std::max(mk.p_up, norm_sf(mk.z / std::sqrt(ratio))) : mk.p_up;
  mk.p_leak = std::max(mk.p_up, std::min(p_corrected, drift_p(p, n)));
  return mk;
}

// At most max_points groups of consecutive points, each represented by its mean time and its
// minimum value: transient allocations (churn) lift single snapshots, never a whole group's
// minimum, while what stays allocated lifts them all. The oldest few points are dropped so
// that every group has the same size (the minimum's bias is then the same in every group).
std::vector<Pt> group_min(const std::vector<Pt>& w, int max_points) {
  size_t cap = static_cast<size_t>(std::max(max_points, 16));
  size_t m = w.size();
  if (m <= cap) return w;
  size_t g = (m + cap - 1) / cap, groups = m / g, skip = m - groups * g;
  std::vector<Pt> out(groups);
  for (size_t b = 0; b < groups; ++b) {
    const Pt* q = &w[skip + b * g];
    double t = 0, y = q[0].y;
    for (size_t i = 0; i < g; ++i) {
      t += q[i].t;
      y = std::min(y, q[i].y);
    }
    out[b] = {t / static_cast<double>(g), y};
  }
  return out;
}

double median_y(const Pt* p, size_t n) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = p[i].y;
  return median_of(v);
}

struct Trend {
  bool valid = false, split = false;
  size_t n = 0;
  double span = 0, tail_span = 0;
  Fit all, head, tail;
  MannKendall mk_all, mk_tail;
  double level_start = 0, level_end = 0, level_peak = 0, head_max = 0;
  double z_stop = 0;       // how much slower the tail grows than the head, in standard errors
  double z_stop_all = 0;   // how much slower the tail grows than the whole window
  double end_resid = 0;    // median residual of the last points from the whole-window line
  double noise = 0;        // robust standard deviation of one group around the local level
  size_t head_n = 0;       // bins in the head (tail = the rest)
};

Trend analyze(const std::vector<Pt>& raw, const VerdictOptions& opt) {
  Trend tr;
  if (raw.size() < 3) return tr;
  std::vector<Pt> b = group_min(raw, opt.max_points);
  size_t n = b.size();
  tr.valid = true;
  tr.n = n;
  tr.span = raw.back().t - raw.front().t;
  tr.all = theil_sen(b.data(), n);
  tr.mk_all = trend_test(b.data(), n, tr.all);
  size_t k = std::clamp<size_t>(n / 10, 1, 5);
  tr.level_start = median_y(b.data(), k);
  tr.level_end = median_y(b.data() + n - k, k);
  // Peak of the running median of k groups (one noisy group is not a peak).
  tr.level_peak = -std::numeric_limits<double>::infinity();
  for (size_t i = 0; i + k <= n; ++i) tr.level_peak = std::max(tr.level_peak, median_y(b.data() + i, k));
  // Noise from successive differences (insensitive to the shape of the trend).
  if (n >= 3) {
    std::vector<double> d(n - 1);
    for (size_t i = 0; i + 1 < n; ++i) d[i] = std::fabs(b[i + 1].y - b[i].y);
    tr.noise = 1.4826 * median_of(d) / std::sqrt(2.0);
  }
  std::vector<double> r(k);
  for (size_t i = 0; i < k; ++i) {
    const Pt& p = b[n - k + i];
    r[i] = p.y - (tr.all.intercept + tr.all.slope * p.t);
  }
  tr.end_resid = median_of(r);

  double tf = std::clamp(opt.tail_fraction, 0.05, 0.95);
  double t_split = b.front().t + (1 - tf) * (b.back().t - b.front().t);
  size_t h = 0;
  while (h < n && b[h].t < t_split) ++h;
  if (h >= 3 && n - h >= 3) {
    tr.split = true;
    tr.head_n = h;
    tr.head = theil_sen(b.data(), h);
    tr.tail = theil_sen(b.data() + h, n - h);
    tr.mk_tail = trend_test(b.data() + h, n - h, tr.tail);
    tr.head_max = b[0].y;
    for (size_t i = 0; i < h; ++i) tr.head_max = std::max(tr.head_max, b[i].y);
    tr.tail_span = b.back().t - b[h].t;
    double d = std::sqrt(tr.head.se * tr.head.se + tr.tail.se * tr.tail.se);
    double diff = tr.head.slope - tr.tail.slope;
    tr.z_stop = d > 0 ? diff / d : diff > 0 ? kHuge : diff < 0 ? -kHuge : 0;
    d = std::sqrt(tr.all.se * tr.all.se + tr.tail.se * tr.tail.se);
    diff = tr.all.slope - tr.tail.slope;
    tr.z_stop_all = d > 0 ? diff / d : diff > 0 ? kHuge : diff < 0 ? -kHuge : 0;
  }
  return tr;
}

enum class Shape {
  kSustained, kAccelerating, kLateStart,                                      // leak
  kPlateau,                                                                   // plateau
  kFreed, kSlowRate, kSmallGrowth, kWander, kShrinking, kStable, kTiny,       // no-leak
  kTooShort, kEndsEarly, kUnclearEnd                                          // inconclusive
};

struct Call {
  Verdict verdict = Verdict::kInconclusive;
  Shape shape = Shape::kTooShort;
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
    c.shape = Shape::kSustained;
    c.rate = tr.all.slope;
    c.growth = trend_growth;
    c.p = tr.mk_all.p_leak;
    double persist = tr.split ? 1 - tr.mk_tail.p_up : 0.5;
    c.confidence = clamp01((1 - tr.mk_all.p_leak) * (0.6 + 0.4 * persist));
    if (tail_rising && -tr.z_stop >= zcrit && tr.tail.slope > 1.5 * tr.all.slope) {
      // Faster at the end than on average (started late, or accelerating): the current rate.
      c.shape = Shape::kAccelerating;
      c.rate = tr.tail.slope;
      c.tail_rate = true;
      c.growth = std::max(level_growth, trend_growth);
    }
    return c;
  }
  if (tail_rising && tr.tail.slope * tr.tail_span >= opt.min_growth_bytes && tr.level_end > tr.head_max) {
    c.verdict = Verdict::kLeak;
    c.shape = Shape::kLateStart;
    c.rate = tr.tail.slope;
    c.tail_rate = true;
    c.growth = std::max(level_growth, tr.tail.slope * tr.tail_span);
    c.p = tr.mk_tail.p_leak;
    c.confidence = clamp01(0.8 * (1 - tr.mk_tail.p_leak));
    return c;
  }
  if (up && stopped && level_growth >= opt.min_growth_bytes) {
    c.verdict = Verdict::kPlateau;
    c.shape = Shape::kPlateau;
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
    c.shape = Shape::kUnclearEnd;
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
    c.shape = Shape::kFreed;
    c.confidence = clamp01(tr.split ? prob_below(floor, tr.tail) : 0.5);
    return c;
  }
  if (up && tr.all.slope >= floor && !up_leak) {
    c.shape = Shape::kWander;
  } else if (up && tr.all.slope >= floor) {
    c.shape = Shape::kSmallGrowth;
  } else if (up && tr.all.slope > 0) {
    c.shape = Shape::kSlowRate;
  } else if (tr.mk_all.p_up > 1 - alpha) {
    c.shape = Shape::kShrinking;
  } else {
    c.shape = Shape::kStable;
  }
  c.confidence = clamp01(prob_below(floor, tr.all));
  return c;
}

// ---- formatting

std::string fmt_bytes(double b) {
  char buf[64];
  const char* sign = b < 0 ? "-" : "";
  double a = std::fabs(b);
  if (!finite(a)) a = 0;
  if (a < 1024)
    snprintf(buf, sizeof buf, "%s%.0f B", sign, a);
  else if (a < 1024.0 * 1024)
    snprintf(buf, sizeof buf, "%s%.1f KiB", sign, a / 1024);
  else if (a < 1024.0 * 1024 * 1024)
    snprintf(buf, sizeof buf, "%s%.1f MiB", sign, a / (1024.0 * 1024));
  else
    snprintf(buf, sizeof buf, "%s%.2f GiB", sign, a / (1024.0 * 1024 * 1024));
  return buf;
}

std::string fmt_rate(double b) { return fmt_bytes(b) + "/s"; }

std::string fmt_num(double x, const char* f) {
  char buf[64];
  snprintf(buf, sizeof buf, f, finite(x) ? x : 0.0);
  return buf;
}

std::string reason_for(const Call& c, const Trend& tr, double count_rate, const VerdictOptions& opt) {
  switch (c.shape) {
    case Shape::kSustained:
      return "Grows steadily after warm-up at " + fmt_rate(c.rate) + " (" + fmt_num(count_rate, "%.3g") +
             " blocks/s), " + fmt_bytes(c.growth) + " in all, and is still growing at the end (trend p=" +
             fmt_num(c.p, "%.2g") + ").";
    case Shape::kAccelerating:
      return "Grows after warm-up and faster and faster: " + fmt_rate(c.rate) + " (" + fmt_num(count_rate, "%.3g") +
             " blocks/s) over the last part of the run, " + fmt_rate(tr.all.slope) + " on average.";
    case Shape::kLateStart:
      return "Started growing late: " + fmt_rate(c.rate) + " (" + fmt_num(count_rate, "%.3g") +
             " blocks/s) over the last part of the run, above any earlier level.";
    case Shape::kPlateau:
      return "Grew by " + fmt_bytes(c.growth) + " after warm-up, then stayed flat at " + fmt_bytes(tr.level_end) +
             " (now " + fmt_rate(c.rate) + "): cache-like, not a leak.";
    case Shape::kFreed:
      return "Grew to " + fmt_bytes(tr.level_peak) + ", then was freed (now " + fmt_bytes(tr.level_end) +
             "): not a leak.";
    case Shape::kSmallGrowth:
      return "Grew by only " + fmt_bytes(c.growth) + " after warm-up, below the " + fmt_bytes(opt.min_growth_bytes) +
             " threshold.";
    case Shape::kWander:
      return "Rose by " + fmt_bytes(c.growth) + " after warm-up, but in slow irregular swings (like a random walk), "
             "not a steady leak.";
    case Shape::kSlowRate:
      return "Grows slowly, " + fmt_rate(c.rate) + ", below the " + fmt_rate(opt.min_rate_bytes_per_s) +
             " noise floor.";
    case Shape::kShrinking:
      return "Shrinks after warm-up (" + fmt_rate(c.rate) + ").";
    case Shape::kStable:
      return "Stable after warm-up: no significant trend (" + fmt_rate(c.rate) + ").";
    case Shape::kTiny:
      return "Stable after warm-up: varies by less than " + fmt_bytes(opt.min_growth_bytes) + ".";
    case Shape::kTooShort:
      return "Too few snapshots of this stack after warm-up to judge.";
    case Shape::kUnclearEnd:
      return "Grew after warm-up (" + fmt_rate(c.rate) + "), but the last few snapshots are too few to tell a "
             "leak from a cache that filled; run longer.";
    case Shape::kEndsEarly:
      return "Not seen in the last part of the run; cannot tell how it ends.";
  }
  return "";
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

const char* kGlibcRemedy =
    "Call malloc_trim(0) after large frees (from Python: ctypes.CDLL(\"libc.so.6\").malloc_trim(0)); "
    "with many threads, run with MALLOC_ARENA_MAX=2 to limit per-thread arenas; set "
    "MALLOC_TRIM_THRESHOLD_ (e.g. 131072) so freed memory at the top of the heap is returned sooner "
    "and MALLOC_MMAP_THRESHOLD_ (e.g. 131072) so large blocks get their own mapping, returned on free.";

const char* kPymallocRemedy =
    "pymalloc returns an arena (1 MiB; 256 KiB before Python 3.10) to the OS only when every object in "
    "it is freed, so a few long-lived objects created among many short-lived ones pin whole arenas "
    "(fragmentation). Free the survivors too, or create long-lived objects before or after the bulk "
    "temporary work (copy out what you keep, process in batches, use compact containers such as "
    "array, bytes or numpy instead of many small objects); or run with PYTHONMALLOC=malloc so small "
    "objects come from glibc, which can return memory (with malloc_trim(0)).";

}  // namespace

VerdictResult judge(const std::vector<StackSeries>& stacks, const std::vector<ProcessPoint>& process,
                    const VerdictOptions& opt) {
  VerdictResult res;
  const double zcrit = upper_quantile(opt.alpha_stop);

  // Snapshot times: the process points', else every stack point's.
  std::vector<double> grid;
  for (const ProcessPoint& p : process)
    if (finite(p.t_s)) grid.push_back(p.t_s);
  if (grid.empty())
    for (const StackSeries& s : stacks)
      for (const StackPoint& p : s.points)
        if (finite(p.t_s)) grid.push_back(p.t_s);
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  const size_t n = grid.size();
  const double t_start = n ? grid.front() : 0, t_end = n ? grid.back() : 0, duration = t_end - t_start;
  const bool too_short = n < static_cast<size_t>(std::max(opt.min_points, 3)) || !(duration >= opt.min_duration_s) ||
                         !(duration > 0);

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

  if (too_short) {
    char buf[160];
    snprintf(buf, sizeof buf, "Run too short to judge: %.1f s and %zu snapshots.", std::max(duration, 0.0), n);
    for (StackVerdict& sv : res.stacks) sv.reason = buf;
    Finding f;
    f.kind = Verdict::kInconclusive;
    f.layer = "process";
    char text[256];
    snprintf(text, sizeof text,
             "Run too short to judge: %.1f s and %zu snapshots; verdicts need at least %.1f s and %d snapshots.",
             std::max(duration, 0.0), n, opt.min_duration_s, opt.min_points);
    f.text = text;
    f.remedy =
        "Run the program longer (minutes for slow leaks; the first part is ignored as warm-up), or take "
        "snapshots more often (--interval).";
    res.findings.push_back(std::move(f));
    sort_stacks(res.stacks);
    return res;
  }

  const double cutoff = t_start + std::clamp(opt.warmup_fraction, 0.0, 0.9) * duration;
  const size_t base = static_cast<size_t>(std::upper_bound(grid.begin(), grid.end(), cutoff) - grid.begin()) - 1;
  const double window_start = grid[base];

  // ---- per stack
  std::vector<double> total(n - base, 0.0);  // sum of stacks, used when there are no process points
  std::vector<Pt> wb, wc;
  for (size_t i = 0; i < stacks.size(); ++i) {
    StackVerdict& sv = res.stacks[i];
    const std::vector<Sample>& s = cleaned[i];
    on_grid(s, grid, base, [](const Sample& x) { return x.bytes; }, wb);
    for (size_t k = 0; k < wb.size(); ++k) total[k] += wb[k].y;
    if (wb.size() < 3) {
      sv.reason = reason_for(Call{}, Trend{}, 0, opt);
      continue;
    }
    if (wb.back().t < t_end - 0.5 * (t_end - window_start)) {
      Call c;
      c.shape = Shape::kEndsEarly;
      sv.reason = reason_for(c, Trend{}, 0, opt);
      continue;
    }
    double lo = wb[0].y, hi = wb[0].y;
    for (const Pt& p : wb) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
    if (hi - lo < opt.min_growth_bytes) {
      // Cheap path for the many small, stable stacks: least-squares slopes only.
      on_grid(s, grid, base, [](const Sample& x) { return x.count; }, wc);
      auto ols = [](const std::vector<Pt>& w) {
        double mt = 0, my = 0;
        for (const Pt& p : w) mt += p.t, my += p.y;
        mt /= static_cast<double>(w.size()), my /= static_cast<double>(w.size());
        double sxy = 0, sxx = 0;
        for (const Pt& p : w) sxy += (p.t - mt) * (p.y - my), sxx += (p.t - mt) * (p.t - mt);
        return sxx > 0 ? sxy / sxx : 0.0;
      };
      sv.verdict = Verdict::kNoLeak;
      sv.rate_bytes_per_s = ols(wb);
      sv.rate_count_per_s = ols(wc);
      sv.growth_bytes = wb.back().y - wb.front().y;
      sv.confidence = 0.99;
      Call c;
      c.shape = Shape::kTiny;
      sv.reason = reason_for(c, Trend{}, 0, opt);
      continue;
    }
    Trend tr = analyze(wb, opt);
    Call c = classify(tr, opt, zcrit);
    on_grid(s, grid, base, [](const Sample& x) { return x.count; }, wc);
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
    sv.reason = reason_for(c, tr, count_rate, opt);
  }

  // ---- a cache that filled (mostly) during warm-up: the window alone shows no growth, but
  // "grew, then flat" is a plateau whenever the growth happened. The level at the end (median
  // of the last third) must stand well above the first samples, and the last third must be
  // flat compared with that growth.
  for (size_t i = 0; i < res.stacks.size() && i < cleaned.size(); ++i) {
    StackVerdict& sv = res.stacks[i];
    const std::vector<Sample>& smp = cleaned[i];
    if (sv.verdict != Verdict::kNoLeak || smp.size() < 6) continue;
    const double t0 = smp.front().t, t1 = smp.back().t;
    if (t1 <= t0) continue;
    double start = smp.front().bytes;
    for (const Sample& x : smp)
      if (x.t <= t0 + 0.1 * (t1 - t0)) start = std::min(start, x.bytes);
    const double tail_from = t1 - std::clamp(opt.tail_fraction, 0.05, 0.95) * (t1 - std::max(t0, window_start));
    std::vector<double> tail;
    for (const Sample& x : smp)
      if (x.t >= tail_from) tail.push_back(x.bytes);
    if (tail.size() < 3) continue;
    std::vector<double> sorted = tail;
    std::sort(sorted.begin(), sorted.end());
    const double end = sorted[sorted.size() / 2];
    const double growth = end - start;
    const double tail_range = sorted.back() - sorted.front();
    if (growth < std::max(opt.min_growth_bytes, 4.0 * tail_range)) continue;
    sv.verdict = Verdict::kPlateau;
    sv.growth_bytes = growth;
    sv.confidence = 0.8;
    char buf[256];
    snprintf(buf, sizeof buf, "Grew by %.1f MiB early in the run (during warm-up), then stayed flat: cache-like.",
             growth / (1024.0 * 1024.0));
    sv.reason = buf;
  }

  // ---- the tracked live total, RSS and allocator layers
  std::vector<const ProcessPoint*> pw;  // process points in the window, ascending
  {
    std::vector<const ProcessPoint*> all;
    for (const ProcessPoint& p : process)
      if (finite(p.t_s)) all.push_back(&p);
    std::stable_sort(all.begin(), all.end(), [](auto* a, auto* b) { return a->t_s < b->t_s; });
    for (auto* p : all)
      if (p->t_s >= window_start - tol(window_start)) pw.push_back(p);
  }
  auto series_of = [&](auto get) {
    std::vector<Pt> w;
    for (auto* p : pw) {
      double y = get(*p);
      w.push_back({p->t_s, finite(y) ? y : 0.0});
    }
    return w;
  };
  std::vector<Pt> live_w;
  bool have_live = false;
  for (auto* p : pw) have_live |= p->live > 0;
  if (have_live) {
    live_w = series_of([](const ProcessPoint& p) { return p.live; });
  } else {
    for (size_t k = 0; k < total.size(); ++k) live_w.push_back({grid[base + k], total[k]});
  }
  Trend live_tr = analyze(live_w, opt);
  Call live_call = classify(live_tr, opt, zcrit);
  res.process_rate_bytes_per_s = live_call.verdict == Verdict::kLeak ? live_call.rate : live_tr.all.slope;

  // ---- findings: leaks
  std::vector<const StackVerdict*> leaks, plateaus;
  for (const StackVerdict& sv : res.stacks) {
    if (sv.verdict == Verdict::kLeak) leaks.push_back(&sv);
    if (sv.verdict == Verdict::kPlateau && sv.growth_bytes >= opt.notable_plateau_bytes) plateaus.push_back(&sv);
  }
  bool leak = false;
  if (!leaks.empty()) {
    leak = true;
    std::sort(leaks.begin(), leaks.end(), [](auto* a, auto* b) {
      return a->rate_bytes_per_s != b->rate_bytes_per_s ? a->rate_bytes_per_s > b->rate_bytes_per_s
                                                         : a->stack < b->stack;
    });
    double rate = 0, growth = 0;
    for (auto* sv : leaks) rate += sv->rate_bytes_per_s, growth += sv->growth_bytes;
    const StackVerdict& top = *leaks.front();
    Finding f;
    f.kind = Verdict::kLeak;
    f.layer = top.layer;
    f.bytes = growth;
    f.stack = top.stack;
    f.text = std::to_string(leaks.size()) + (leaks.size() == 1 ? " stack leaks" : " stacks leak") + ", " +
             fmt_rate(rate) + " in all after warm-up; the fastest (" + top.layer + ") grows at " +
             fmt_rate(top.rate_bytes_per_s) + " (" + fmt_num(top.rate_count_per_s, "%.3g") + " blocks/s).";
    f.remedy =
        "Whatever these stacks allocate is kept alive. In Python: a container that only grows (list, dict, "
        "set, a cache without a bound, a registry or callbacks never removed) or objects kept by a global "
        "or a long-lived closure; in native code: a missing free/delete, or a reference never released "
        "(Py_INCREF without Py_DECREF).";
    res.findings.push_back(std::move(f));
  } else if (live_call.verdict == Verdict::kLeak) {
    leak = true;
    Finding f;
    f.kind = Verdict::kLeak;
    f.layer = "process";
    f.bytes = live_call.growth;
    f.text = "Tracked live memory grows at " + fmt_rate(live_call.rate) +
             " after warm-up, but no single stack grows faster than " + fmt_rate(opt.min_rate_bytes_per_s) +
             ": the leak is spread over many stacks.";
    f.remedy =
        "Look at the stacks that grew the most (each is slow, together they leak); they usually share a "
        "caller that keeps what it creates.";
    res.findings.push_back(std::move(f));
  }

  // ---- findings: allocator retention
  bool retention = false;
  if (!pw.empty()) {
    const double live_e = end_level(pw, [](const ProcessPoint& p) { return p.live; });
    const double rss_e = end_level(pw, [](const ProcessPoint& p) { return p.rss; });
    const double python_e = end_level(pw, [](const ProcessPoint& p) { return p.python; });
    const double arena_e = end_level(pw, [](const ProcessPoint& p) { return p.arena; });
    const double gfree_e = end_level(pw, [](const ProcessPoint& p) { return p.glibc_free; });
    bool have_pyfree = false;
    for (const ProcessPoint& p : process) have_pyfree |= p.pymalloc_free > 0;
    const double pyfree_e =
        have_pyfree ? end_level(pw, [](const ProcessPoint& p) { return p.pymalloc_free; })
                    : std::max(0.0, arena_e - python_e);
    // Retained: large, at least retention_ratio times what is live, and RSS (when known) well
    // above the live bytes, so that the retained memory is really held.
    auto qualifies = [&](double retained) {
      return retained >= opt.retention_min_bytes && retained >= opt.retention_ratio * live_e &&
             (rss_e <= 0 || rss_e - live_e >= opt.retention_min_bytes);
    };
    auto held = [&](double retained) { return rss_e > 0 ? std::min(retained, rss_e - live_e) : retained; };
    auto lead = [&]() {
      return rss_e > 0 ? "RSS stays at " + fmt_bytes(rss_e) + " while only " + fmt_bytes(live_e) + " is live: "
                       : "Only " + fmt_bytes(live_e) + " is live, yet ";
    };
    std::vector<Finding> ret;
    if (qualifies(pyfree_e)) {
      Finding f;
      f.kind = Verdict::kAllocatorRetention;
      f.layer = "pymalloc";
      f.bytes = held(pyfree_e);
      f.text = lead() + "pymalloc holds " + fmt_bytes(arena_e) + " of arenas, " + fmt_bytes(pyfree_e) +
               " of it free, and cannot return them while a few surviving objects pin them (fragmentation).";
      f.remedy = kPymallocRemedy;
      ret.push_back(std::move(f));
    }
    if (qualifies(gfree_e)) {
      Finding f;
      f.kind = Verdict::kAllocatorRetention;
      f.layer = "glibc";
      f.bytes = held(gfree_e);
      f.text = lead() + "glibc malloc holds " + fmt_bytes(gfree_e) +
               " of freed memory (mallinfo2 fordblks) and has not returned it to the OS.";
      f.remedy = kGlibcRemedy;
      ret.push_back(std::move(f));
    }
    if (ret.empty() && rss_e > 0) {
      // No allocator counter explains it; look at RSS against the tracked live total.
      const ProcessPoint* peak = nullptr;
      for (const ProcessPoint& p : process)
        if (finite(p.t_s) && finite(p.live) && (!peak || p.live > peak->live)) peak = &p;
      const double drop = peak ? peak->live - live_e : 0;
      std::vector<Pt> rss_w = series_of([](const ProcessPoint& p) { return p.rss; });
      Trend rss_tr = analyze(rss_w, opt);
      Call rss_call = classify(rss_tr, opt, zcrit);
      Finding f;
      f.kind = Verdict::kAllocatorRetention;
      f.layer = "process";
      if (peak && drop >= opt.retention_min_bytes && drop >= 0.5 * peak->live && peak->rss > 0 &&
          rss_e >= peak->rss - 0.25 * drop && rss_e - live_e >= opt.retention_min_bytes) {
        f.bytes = std::min(drop, rss_e - live_e);
        f.text = "RSS stays at " + fmt_bytes(rss_e) + " although live memory fell from " + fmt_bytes(peak->live) +
                 " to " + fmt_bytes(live_e) +
                 ": the freed memory was not returned to the OS, and neither pymalloc's nor glibc's counters "
                 "account for it (another allocator, or counters unavailable).";
      } else if (rss_call.verdict == Verdict::kLeak && live_call.verdict != Verdict::kLeak &&
                 rss_call.rate - std::max(0.0, live_tr.all.slope) >= opt.min_rate_bytes_per_s &&
                 rss_call.growth - std::max(0.0, live_tr.level_end - live_tr.level_start) >=
                     opt.retention_min_bytes) {
        // Attribute the growth to an allocator whose free bytes grew along with RSS.
        const double rss_growth = rss_call.growth;
        auto grew = [&](auto get) {
          return end_level(pw, get) - (finite(get(*pw.front())) ? get(*pw.front()) : 0.0);
        };
        const double g_glibc = grew([](const ProcessPoint& p) { return p.glibc_free; });
        const double g_py = have_pyfree ? grew([](const ProcessPoint& p) { return p.pymalloc_free; }) : 0;
        f.bytes = rss_growth;
        f.text = "RSS grows at " + fmt_rate(rss_call.rate) + " after warm-up while tracked live memory does not (" +
                 fmt_rate(live_tr.all.slope) + ")";
        if (g_glibc >= 0.5 * rss_growth && g_glibc >= g_py) {
          f.layer = "glibc";
          f.text += ": glibc's free-but-retained memory grows with it (fragmentation).";
          f.remedy = kGlibcRemedy;
        } else if (g_py >= 0.5 * rss_growth) {
          f.layer = "pymalloc";
          f.text += ": pymalloc's empty arena space grows with it (fragmentation).";
          f.remedy = kPymallocRemedy;
        } else {
          f.text +=
              ": memory an allocator keeps, or memory leakscope does not track (allocated before tracking "
              "started, by another allocator, or directly with brk/syscalls).";
        }
      }
      if (!f.text.empty()) {
        if (f.remedy.empty())
          f.remedy = std::string("If glibc: ") + kGlibcRemedy + " If Python objects: " + kPymallocRemedy;
        ret.push_back(std::move(f));
      }
    }
    std::sort(ret.begin(), ret.end(), [](const Finding& a, const Finding& b) { return a.bytes > b.bytes; });
    retention = !ret.empty();
    for (Finding& f : ret) res.findings.push_back(std::move(f));
  }

  // ---- findings: plateaus
  std::sort(plateaus.begin(), plateaus.end(), [](auto* a, auto* b) {
    return a->growth_bytes != b->growth_bytes ? a->growth_bytes > b->growth_bytes : a->stack < b->stack;
  });
  for (size_t i = 0; i < plateaus.size() && i < opt.max_plateau_findings; ++i) {
    const StackVerdict& sv = *plateaus[i];
    Finding f;
    f.kind = Verdict::kPlateau;
    f.layer = sv.layer;
    f.bytes = sv.growth_bytes;
    f.stack = sv.stack;
    f.text = "A " + sv.layer + " stack grew by " + fmt_bytes(sv.growth_bytes) + " after warm-up, then stayed flat (" +
             fmt_bytes(sv.bytes) + " live at the end): cache-like, not a leak.";
    f.remedy =
        "If it is a cache (functools.lru_cache, a memo dict, a pool), this is its working size; bound it "
        "(maxsize=...) or clear it if that size is too large.";
    res.findings.push_back(std::move(f));
  }
  if (plateaus.size() > opt.max_plateau_findings) {
    Finding f;
    f.kind = Verdict::kPlateau;
    f.layer = "process";
    size_t more = plateaus.size() - opt.max_plateau_findings;
    double bytes = 0;
    for (size_t i = opt.max_plateau_findings; i < plateaus.size(); ++i) bytes += plateaus[i]->growth_bytes;
    f.bytes = bytes;
    f.text = std::to_string(more) + " more stacks grew then stayed flat (" + fmt_bytes(bytes) + " in all).";
    res.findings.push_back(std::move(f));
  }

  res.process = leak ? Verdict::kLeak
                : retention ? Verdict::kAllocatorRetention
                : !plateaus.empty() ? Verdict::kPlateau
                : Verdict::kNoLeak;
  sort_stacks(res.stacks);
  return res;
}

}  // namespace leakscope::analysis
