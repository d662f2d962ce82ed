// The verdict engine's statistics: see trend.h.
#include "analysis/trend.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace leakscope::analysis::trend {

bool finite(double x) { return std::isfinite(x); }

double norm_sf(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }
double norm_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

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

double median_of(std::vector<double>& v) {
  if (v.empty()) return 0;
  size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + mid, v.end());
  double m = v[mid];
  if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + mid));
  return m;
}


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

}  // namespace leakscope::analysis::trend
