// The shape of a run: see run_shape.h.
#include "analysis/run_shape.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace leakscope::analysis::shape {

namespace {

bool finite(double x) { return std::isfinite(x); }

// Trailing minimum over k snapshots: a transient allocation lifts a single snapshot, never k in
// a row, while a fall shows at once.
std::vector<double> trailing_min(const std::vector<double>& v, size_t end, size_t k) {
  std::vector<double> out(end + 1);
  for (size_t i = 0; i <= end; ++i) {
    double m = v[i];
    for (size_t j = 1; j < k && j <= i; ++j) m = std::min(m, v[i - j]);
    out[i] = m;
  }
  return out;
}

// Running median of 5 snapshots (fewer at the ends): the level of a noisy series.
std::vector<double> running_median5(const std::vector<double>& v) {
  std::vector<double> out(v.size()), w;
  for (size_t i = 0; i < v.size(); ++i) {
    w.assign(v.begin() + static_cast<std::ptrdiff_t>(i >= 2 ? i - 2 : 0),
             v.begin() + static_cast<std::ptrdiff_t>(std::min(v.size(), i + 3)));
    std::nth_element(w.begin(), w.begin() + w.size() / 2, w.end());
    out[i] = w[w.size() / 2];
  }
  return out;
}

double median_interval(const std::vector<double>& grid, size_t from, size_t to) {
  std::vector<double> d;
  for (size_t i = from; i < to; ++i) d.push_back(grid[i + 1] - grid[i]);
  if (d.empty()) return 0;
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return d[d.size() / 2];
}

// Robust standard deviation of the noise around a series that may rise and fall in ramps: from
// its second differences (zero along a ramp, sqrt(6) sigma for independent noise).
double ramp_noise(const std::vector<double>& v, size_t end) {
  std::vector<double> d;
  for (size_t i = 2; i <= end; ++i) d.push_back(std::fabs(v[i] - 2 * v[i - 1] + v[i - 2]));
  if (d.empty()) return 0;
  std::nth_element(d.begin(), d.begin() + d.size() / 2, d.end());
  return 1.4826 * d[d.size() / 2] / std::sqrt(6.0);
}

}  // namespace

WorkClock work_clock(const std::vector<double>& grid, const std::vector<double>& work, size_t base, size_t end) {
  WorkClock c;
  if (work.size() != grid.size() || end >= grid.size() || end <= base + 1) return c;
  // (rate, work) of each interval; the work-weighted median rate is the pace of the work itself,
  // whatever share of the time the program spent idle.
  std::vector<std::pair<double, double>> iv;
  double total = 0;
  for (size_t i = base; i < end; ++i) {
    const double dw = work[i + 1] - work[i], dt = grid[i + 1] - grid[i];
    if (!finite(dw) || dw < 0 || !(dt > 0)) return c;  // not a count of work done
    iv.emplace_back(dw / dt, dw);
    total += dw;
  }
  if (!(total >= 100)) return c;  // (almost) no allocations: nothing to measure the work by
  std::sort(iv.begin(), iv.end());
  double acc = 0;
  for (const auto& [rate, dw] : iv) {
    acc += dw;
    if (acc >= 0.5 * total) {
      c.rate = rate;
      break;
    }
  }
  if (!(c.rate > 0)) return c;
  c.valid = true;
  c.tau.resize(end - base + 1);
  for (size_t k = 0; k < c.tau.size(); ++k) c.tau[k] = grid[base] + (work[base + k] - work[base]) / c.rate;
  c.idle_s = std::max(0.0, (grid[end] - grid[base]) - (c.tau.back() - c.tau.front()));
  return c;
}

Teardown find_teardown(const std::vector<double>& grid, const std::vector<double>& live, size_t base,
                       const VerdictOptions& opt) {
  Teardown td;
  const size_t n = grid.size();
  if (live.size() != n || n < base + 8) return td;
  const double span = grid[n - 1] - grid[base];
  if (!(span > 0)) return td;
  // Levels, not single snapshots: churn and noise make no peak. The last snapshot is taken as
  // it is (the fall may be in it alone).
  std::vector<double> m = running_median5(live);
  m[n - 1] = live[n - 1];
  size_t e = base;
  for (size_t i = base; i + 1 < n; ++i)
    if (m[i] >= m[e]) e = i;
  const double gained = m[e] - m[base], drop = m[e] - live[n - 1];
  if (!(gained >= opt.min_growth_bytes) || !(drop >= std::max(opt.min_growth_bytes, 0.5 * gained))) return td;
  // The teardown began where the growth first reached the level the fall starts from (within 5%
  // of the growth, or twice the noise of a 5-snapshot median): shutting down can hold everything
  // a while before freeing it (asyncio.run cancelling tasks and waiting for them).
  const double near = std::max(0.05 * gained, 2 * 1.2533 / std::sqrt(5.0) * ramp_noise(live, n - 1));
  size_t start = base;
  while (start < e && m[start] < m[e] - near) ++start;
  const double tf = std::clamp(opt.tail_fraction, 0.05, 0.95);
  if (start < base + 5 || grid[n - 1] - grid[start] > tf * span) return td;
  // The low is reached only at the very end: no stretch of running at the low level follows.
  size_t low = n - 1;
  for (size_t i = e + 1; i < n; ++i)
    if (live[i] <= live[n - 1] + 0.1 * drop) {
      low = i;
      break;
    }
  const double hold = grid[n - 1] - grid[low];
  if (hold > std::max(2.5 * median_interval(grid, base, n - 1), 0.05 * span)) return td;
  td.found = true;
  td.end = start;
  td.from = live[start];
  td.to = live[n - 1];
  return td;
}

Passes find_passes(const std::vector<double>& grid, const std::vector<double>& live, size_t base, size_t end,
                   const VerdictOptions& opt) {
  Passes ps;
  if (live.size() != grid.size() || end >= grid.size() || end < base + 5) return ps;
  const std::vector<double> s = trailing_min(live, end, 3);
  // Within the window only: the warm-up's rise (imports, start-up) is no pass, and its range
  // would hide passes smaller than it (a CI run judged p15's passes under load that way).
  const auto [lo, hi] = std::minmax_element(s.begin() + static_cast<std::ptrdiff_t>(base), s.end());
  // A pass moves live memory by a third of its range, and by far more than the noise (churn).
  const double h = std::max(opt.min_growth_bytes, (*hi - *lo) / 3);
  if (!(*hi - *lo >= h) || h < 4 * ramp_noise(live, end)) return ps;
  // Zigzag: turning points confirmed once the series moved h away from them, troughs and peaks
  // alternating from a trough at the start.
  struct Turn {
    size_t i;
    double v;
  };
  std::vector<Turn> troughs, peaks;
  bool rising = false;  // tracking a peak (after a confirmed trough)
  Turn ext{base, s[base]};
  for (size_t i = base + 1; i <= end; ++i) {
    if (!rising) {
      if (s[i] < ext.v) ext = {i, s[i]};
      else if (s[i] - ext.v >= h) troughs.push_back(ext), rising = true, ext = {i, s[i]};
    } else {
      if (s[i] > ext.v) ext = {i, s[i]};
      else if (ext.v - s[i] >= h) peaks.push_back(ext), rising = false, ext = {i, s[i]};
    }
  }
  // troughs[k] precedes peaks[k]; a rise in progress at the end counts as a pass.
  const size_t rises = peaks.size() + (rising ? 1 : 0);
  if (rises < 2 || troughs.size() < 2) return ps;
  double size = 0, longest = 0;
  for (size_t k = 0; k < peaks.size(); ++k) {
    const double rise = peaks[k].v - troughs[k].v;
    size = std::max(size, rise);
    if (k + 1 < troughs.size()) {
      if (peaks[k].v - troughs[k + 1].v < 0.5 * rise) return ps;  // kept most of it: not a pass
      // The window may start inside a pass: that first one's length is not known.
      if (k == 0 && troughs[0].i == base) continue;
      if (troughs[k + 1].i - troughs[k].i < 5) return ps;  // a pass lasts a few snapshots at least
      longest = std::max(longest, grid[troughs[k + 1].i] - grid[troughs[k].i]);
    }
  }
  const Turn& last = troughs.back();
  ps.found = true;
  ps.count = rises;
  ps.last_trough = last.i;
  ps.trough = last.v;
  ps.peak = *std::max_element(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(end) + 1);
  const double current = rising ? ext.v - last.v : 0;
  ps.size = std::max(size, current);
  // The pass in progress: as long as an earlier one at most, and as large (its rise) or no higher
  // (its level) than they were: a leak that started after the last trough would outgrow them.
  // The level matters too because troughs differ: black's last pass starts lower than the one
  // before (it frees more in between), so its rise is larger though it reaches no higher (a
  // loaded CI run had a rise 1.3 times the largest, and judged the formatter's lines a leak).
  double earlier_peak = 0;
  for (const Turn& p : peaks) earlier_peak = std::max(earlier_peak, p.v);
  ps.current_like_before = !rising || (grid[end] - grid[last.i] <= 1.5 * longest &&
                                       (current <= 1.25 * size || ext.v <= earlier_peak));
  return ps;
}

}  // namespace leakscope::analysis::shape
