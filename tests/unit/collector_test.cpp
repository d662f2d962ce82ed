// Unit tests for the collector's findings (analysis/collector.h): a collector turned off while
// tracked objects pile up, gc.garbage that fills, and the cases that must stay quiet.
#include <gtest/gtest.h>

#include <vector>

#include "analysis/collector.h"

using namespace leakscope::analysis;

namespace {

// n snapshots 0.5 s apart; count0(i) gives generation 0's count at snapshot i.
template <typename F>
std::vector<GcPoint> series(size_t n, bool enabled, F count0) {
  std::vector<GcPoint> v(n);
  for (size_t i = 0; i < n; ++i) {
    v[i].t_s = 0.5 * static_cast<double>(i);
    v[i].enabled = enabled;
    v[i].threshold[0] = 700, v[i].threshold[1] = 10, v[i].threshold[2] = 10;
    v[i].count[0] = count0(i);
  }
  return v;
}

std::vector<ProcessPoint> python_growing(size_t n, double per_point) {
  std::vector<ProcessPoint> v(n);
  for (size_t i = 0; i < n; ++i) v[i].t_s = 0.5 * static_cast<double>(i), v[i].python = per_point * static_cast<double>(i);
  return v;
}

std::vector<Finding> run(const std::vector<GcPoint>& gc, const std::vector<ProcessPoint>& proc = {}) {
  std::vector<Finding> out;
  collector_findings(gc, proc, out);
  return out;
}

}  // namespace

TEST(Collector, DisabledWhileObjectsAccumulate) {
  auto gc = series(10, false, [](size_t i) { return 1000 + 50000 * i; });
  auto f = run(gc, python_growing(10, 1 << 20));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].kind, Verdict::kGc);
  EXPECT_EQ(f[0].code, FindingCode::kGcDisabled);
  EXPECT_EQ(f[0].remedy, RemedyCode::kGcCollect);
  EXPECT_DOUBLE_EQ(f[0].objects, 450000);
  EXPECT_DOUBLE_EQ(f[0].duration_s, 4.5);
  EXPECT_DOUBLE_EQ(f[0].bytes, 9.0 * (1 << 20));
}

TEST(Collector, ThresholdZeroIsCollectionOffToo) {
  auto gc = series(10, true, [](size_t i) { return 50000 * i; });
  for (auto& p : gc) p.threshold[0] = 0;
  auto f = run(gc);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].code, FindingCode::kGcThresholdZero);
}

TEST(Collector, QuietWhenEnabledOrFlatOrCollectedByHand) {
  EXPECT_TRUE(run(series(10, true, [](size_t i) { return 100 + i; })).empty()) << "enabled";
  EXPECT_TRUE(run(series(10, false, [](size_t) { return 300000; })).empty()) << "off, nothing accumulates";
  EXPECT_TRUE(run(series(10, false, [](size_t i) { return 900 * i; })).empty()) << "off, too few objects";
  // Accumulated, then stopped growing well before the end: a load phase, not a stream of cycles.
  EXPECT_TRUE(run(series(12, false, [](size_t i) { return i < 5 ? 100000 * i : 400000; })).empty());
  // gc.collect() by hand every other snapshot: the count starts again from each collection.
  auto gc = series(10, false, [](size_t i) { return 2000 * (i % 2); });
  for (size_t i = 0; i < gc.size(); ++i) gc[i].collections[2] = i / 2;
  EXPECT_TRUE(run(gc).empty()) << "collected by hand";
}

TEST(Collector, OffOnlyAtTheEndCountsFromThere) {
  // Enabled for 6 snapshots, then off for 2: too short a stretch to say anything.
  auto gc = series(8, true, [](size_t i) { return i < 6 ? 100 : 100000 * i; });
  gc[6].enabled = gc[7].enabled = false;
  EXPECT_TRUE(run(gc).empty());
  // Off for the last 5 snapshots: counted from the first of them.
  gc = series(12, true, [](size_t i) { return i < 7 ? 100 : 60000 * (i - 6); });
  for (size_t i = 7; i < gc.size(); ++i) gc[i].enabled = false;
  auto f = run(gc);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_DOUBLE_EQ(f[0].objects, 60000.0 * 4);
}

TEST(Collector, GarbageWithSaveAllOrUncollectable) {
  auto gc = series(5, true, [](size_t) { return 10; });
  for (size_t i = 0; i < gc.size(); ++i) gc[i].garbage = 1000 * i, gc[i].debug = kGcDebugSaveAll;
  auto f = run(gc);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].code, FindingCode::kGcGarbage);
  EXPECT_EQ(f[0].remedy, RemedyCode::kGcSaveAll);
  EXPECT_DOUBLE_EQ(f[0].objects, 4000);
  EXPECT_DOUBLE_EQ(f[0].objects_growth, 4000);
  gc = series(5, true, [](size_t) { return 10; });
  gc.back().uncollectable[1] = 3;
  f = run(gc);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].remedy, RemedyCode::kGcUncollectable);
  EXPECT_DOUBLE_EQ(f[0].uncollectable, 3);
  EXPECT_TRUE(run(series(5, true, [](size_t) { return 10; })).empty());
}

TEST(Collector, FindingsGoAfterTheLeakSummary) {
  std::vector<Finding> out(2);
  out[0].kind = Verdict::kLeak;
  out[1].kind = Verdict::kPlateau;
  auto gc = series(5, true, [](size_t) { return 10; });
  gc.back().garbage = 5;
  collector_findings(gc, {}, out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].kind, Verdict::kLeak);
  EXPECT_EQ(out[1].kind, Verdict::kGc);
  EXPECT_EQ(out[2].kind, Verdict::kPlateau);
  EXPECT_TRUE(run({}).empty());
}
