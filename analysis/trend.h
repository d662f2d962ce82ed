// The statistics the verdict engine (verdict.cpp) is made of: Theil-Sen slopes, Mann-Kendall
// trend tests with an autocorrelation correction, grouping to a bounded number of points, and
// the analysis of one series into a Trend (docs/verdicts.md). Pure functions, deterministic.
#pragma once
#include <cstddef>
#include <vector>

#include "analysis/verdict.h"

namespace leakscope::analysis::trend {

constexpr double kHuge = 1e12;  // stands in for an infinite z (no noise at all)

struct Pt {
  double t = 0, y = 0;
};

// Theil-Sen line with a robust noise scale (1.4826 * MAD of the residuals) and the slope's
// standard error from that scale. O(n^2) with n <= max_points.
struct Fit {
  double slope = 0, intercept = 0, sigma = 0, se = 0;
};

// Mann-Kendall trend test with the tie correction; p_up is the one-sided p-value of an
// upward trend (small = significant growth, close to 1 = significant decline).
struct MannKendall {
  double s = 0, z = 0, p_up = 0.5;
  // p-value of growth that is neither a random walk nor noise around a flat level: see trend_test.
  double p_leak = 0.5;
};

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

bool finite(double x);

double norm_sf(double z);

double norm_cdf(double z);

// z such that P(Z > z) = alpha (bisection; alpha is a user option, called once).
double upper_quantile(double alpha);

double clamp01(double x);

// Median (average of the two middle values for even sizes). Reorders v.
double median_of(std::vector<double>& v);

Fit theil_sen(const Pt* p, size_t n);

MannKendall mann_kendall(const Pt* p, size_t n);

// Wilcoxon signed-rank test on the successive differences: one-sided p-value of a positive
// drift. Insensitive to autocorrelated wandering (a random walk has symmetric steps), strong
// for growth in bursts (every step up, none down).
double drift_p(const Pt* p, size_t n);

// Mann-Kendall on the groups, then the evidence for a leak: the trend must also survive the
// autocorrelation of the residuals around the line (Hamed and Rao's variance correction from
// the significant autocorrelations of their ranks: a random walk wanders in long runs and fools
// the plain test), or else the successive differences must drift upward (growth in bursts,
// whose residuals are autocorrelated too).
MannKendall trend_test(const Pt* p, size_t n, const Fit& f);

// At most max_points groups of consecutive points, each represented by its mean time and its
// minimum value: transient allocations (churn) lift single snapshots, never a whole group's
// minimum, while what stays allocated lifts them all. The oldest few points are dropped so
// that every group has the same size (the minimum's bias is then the same in every group).
std::vector<Pt> group_min(const std::vector<Pt>& w, int max_points);

double median_y(const Pt* p, size_t n);

Trend analyze(const std::vector<Pt>& raw, const VerdictOptions& opt);

}  // namespace leakscope::analysis::trend
