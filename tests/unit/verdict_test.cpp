// Unit tests for the verdict engine (analysis/verdict.h): synthetic but realistic series with
// deterministic pseudo-random noise (fixed seeds); and the words for its results
// (report/words.h).
#include "analysis/verdict.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>

#include "report/words.h"

using namespace leakscope::analysis;
using leakscope::report::finding_text;
using leakscope::report::reason_text;
using leakscope::report::remedy_text;

namespace {

constexpr double KiB = 1024.0, MiB = 1024.0 * 1024.0;

struct Val {
  double bytes, count;
};

// n snapshots, one every dt seconds, from t0; f(t, rng) gives live bytes and blocks.
StackSeries stack(uint32_t id, const char* layer, int n, double dt, uint32_t seed,
                  const std::function<Val(double, std::mt19937&)>& f, double t0 = 0) {
  StackSeries s;
  s.stack = id;
  s.layer = layer;
  std::mt19937 rng(seed);
  for (int i = 0; i < n; ++i) {
    double t = t0 + i * dt;
    Val v = f(t, rng);
    s.points.push_back({t, std::max(0.0, v.bytes), std::max(0.0, v.count)});
  }
  return s;
}

// Process points whose live total is the sum of the stacks at each snapshot; g adds the rest.
std::vector<ProcessPoint> process_of(const std::vector<StackSeries>& stacks,
                                     const std::function<void(ProcessPoint&)>& g = {}) {
  std::vector<ProcessPoint> out;
  size_t n = 0;
  for (const auto& s : stacks) n = std::max(n, s.points.size());
  for (size_t i = 0; i < n; ++i) {
    ProcessPoint p;
    for (const auto& s : stacks) {
      // stacks may start late: align on the end
      size_t off = n - s.points.size();
      if (i >= off) {
        p.t_s = s.points[i - off].t_s;
        p.live += s.points[i - off].bytes;
      }
    }
    p.rss = p.live + 30 * MiB;
    p.python = p.live;
    if (g) g(p);
    out.push_back(p);
  }
  return out;
}

double uni(std::mt19937& rng, double a) { return std::uniform_real_distribution<double>(-a, a)(rng); }

const StackVerdict& find(const VerdictResult& r, uint32_t id) {
  for (const auto& s : r.stacks)
    if (s.stack == id) return s;
  static StackVerdict none;
  ADD_FAILURE() << "stack " << id << " not in result";
  return none;
}

bool has_finding(const VerdictResult& r, Verdict kind, const std::string& layer = "") {
  for (const auto& f : r.findings)
    if (f.kind == kind && (layer.empty() || f.layer == layer)) return true;
  return false;
}

void expect_sane(const VerdictResult& r) {
  auto ok = [](double x) { return std::isfinite(x); };
  EXPECT_TRUE(ok(r.process_rate_bytes_per_s));
  for (const auto& s : r.stacks) {
    EXPECT_TRUE(ok(s.rate_bytes_per_s) && ok(s.rate_count_per_s) && ok(s.growth_bytes) && ok(s.bytes) &&
                ok(s.count) && ok(s.confidence))
        << s.stack << ": " << reason_text(s.reason);
    EXPECT_GE(s.confidence, 0.0);
    EXPECT_LE(s.confidence, 1.0);
    const Reason& w = s.reason;
    EXPECT_TRUE(ok(w.rate_bytes_per_s) && ok(w.count_per_s) && ok(w.average_rate_bytes_per_s) && ok(w.growth_bytes) &&
                ok(w.level_bytes) && ok(w.peak_bytes) && ok(w.p) && ok(w.threshold) && ok(w.duration_s))
        << s.stack << ": " << reason_text(w);
    std::string why = reason_text(w);
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find("nan"), std::string::npos) << why;
    EXPECT_EQ(why.find("inf"), std::string::npos) << why;
  }
  for (const auto& f : r.findings) {
    EXPECT_TRUE(ok(f.bytes));
    EXPECT_FALSE(finding_text(f).empty());
  }
}

// A stable stack next to the one under test, so the process has more than one.
StackSeries background(uint32_t id, int n, double dt, uint32_t seed) {
  return stack(id, "python", n, dt, seed, [](double, std::mt19937& r) {
    return Val{8 * MiB + uni(r, 256 * KiB), 40000 + uni(r, 500)};
  });
}

}  // namespace

TEST(Verdict, Names) {
  EXPECT_STREQ(verdict_name(Verdict::kLeak), "leak");
  EXPECT_STREQ(verdict_name(Verdict::kPlateau), "plateau");
  EXPECT_STREQ(verdict_name(Verdict::kAllocatorRetention), "allocator-retention");
  EXPECT_STREQ(verdict_name(Verdict::kWorkingSet), "working-set");
  EXPECT_STREQ(verdict_name(Verdict::kNoLeak), "no-leak");
  EXPECT_STREQ(verdict_name(Verdict::kInconclusive), "inconclusive");
}

TEST(Verdict, SteadyLeakRateRecovered) {
  // 50 KiB/s of 1 KiB blocks for 5 minutes, with some churn.
  auto leak = stack(1, "python", 301, 1.0, 11, [](double t, std::mt19937& r) {
    return Val{20 * MiB + 50 * KiB * t + uni(r, 64 * KiB), 20000 + 50 * t + uni(r, 60)};
  });
  std::vector<StackSeries> in{leak, background(2, 301, 1.0, 12)};
  for (bool with_process : {false, true}) {
    auto r = judge(in, with_process ? process_of(in) : std::vector<ProcessPoint>{});
    expect_sane(r);
    EXPECT_EQ(r.process, Verdict::kLeak);
    const auto& s = find(r, 1);
    EXPECT_EQ(s.verdict, Verdict::kLeak) << reason_text(s.reason);
    EXPECT_NEAR(s.rate_bytes_per_s, 50 * KiB, 5 * KiB);
    EXPECT_NEAR(s.rate_count_per_s, 50, 5);
    EXPECT_NEAR(s.growth_bytes, 50 * KiB * 240, 0.1 * 50 * KiB * 240);
    EXPECT_GT(s.confidence, 0.9);
    EXPECT_EQ(r.stacks.front().stack, 1u);
    EXPECT_EQ(find(r, 2).verdict, Verdict::kNoLeak) << reason_text(find(r, 2).reason);
    EXPECT_NEAR(r.process_rate_bytes_per_s, 50 * KiB, 5 * KiB);
    ASSERT_FALSE(r.findings.empty());
    EXPECT_EQ(r.findings.front().kind, Verdict::kLeak);
  }
}

TEST(Verdict, SlowLeakUnderHeavyChurnIsFound) {
  // 2 KiB/s hidden under +-5 MiB of transient buffers at every snapshot, 20 minutes at 1 Hz.
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    auto s = stack(7, "malloc", 1201, 1.0, seed, [](double t, std::mt19937& r) {
      return Val{50 * MiB + 2 * KiB * t + uni(r, 5 * MiB), 30000 + 2 * t + uni(r, 3000)};
    });
    auto r = judge({s}, {});
    expect_sane(r);
    const auto& v = find(r, 7);
    EXPECT_EQ(v.verdict, Verdict::kLeak) << "seed " << seed << ": " << reason_text(v.reason);
    EXPECT_NEAR(v.rate_bytes_per_s, 2 * KiB, 1 * KiB) << "seed " << seed;
    EXPECT_GT(v.rate_count_per_s, 0) << "seed " << seed;
    EXPECT_EQ(r.process, Verdict::kLeak);
  }
}

TEST(Verdict, HeavyChurnWithoutLeakIsNotALeak) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    auto s = stack(7, "malloc", 1201, 1.0, 100 + seed, [](double, std::mt19937& r) {
      return Val{50 * MiB + uni(r, 5 * MiB), 30000 + uni(r, 3000)};
    });
    auto r = judge({s}, {});
    expect_sane(r);
    EXPECT_EQ(find(r, 7).verdict, Verdict::kNoLeak) << "seed " << seed << ": " << reason_text(find(r, 7).reason);
    EXPECT_EQ(r.process, Verdict::kNoLeak);
  }
}

TEST(Verdict, CacheFillingInFirst40PercentIsPlateau) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    // A bounded cache: fills linearly to 100 MiB by t=240 of 600 s, then stays full; churn around it.
    auto cache = stack(3, "python", 601, 1.0, seed, [](double t, std::mt19937& r) {
      double fill = std::min(1.0, t / 240);
      return Val{100 * MiB * fill + 4 * MiB + uni(r, 3 * MiB), 100000 * fill + uni(r, 2000)};
    });
    std::vector<StackSeries> in{cache, background(2, 601, 1.0, seed + 50)};
    auto r = judge(in, process_of(in));
    expect_sane(r);
    const auto& v = find(r, 3);
    EXPECT_EQ(v.verdict, Verdict::kPlateau) << "seed " << seed << ": " << reason_text(v.reason);
    EXPECT_NEAR(v.growth_bytes, 50 * MiB, 8 * MiB) << "seed " << seed;
    EXPECT_EQ(r.process, Verdict::kPlateau);
    EXPECT_TRUE(has_finding(r, Verdict::kPlateau, "python"));
    EXPECT_FALSE(has_finding(r, Verdict::kLeak));
    for (const auto& f : r.findings)
      if (f.kind == Verdict::kPlateau) {
        EXPECT_EQ(f.stack, 3);
      }
  }
}

TEST(Verdict, LruCacheWithSaturatingFillIsPlateau) {
  // lru_cache hit by random keys: misses (and growth) slow down as it fills; full by mid-run.
  auto cache = stack(4, "python", 601, 1.0, 21, [](double t, std::mt19937& r) {
    double fill = 1 - std::exp(-t / 60);
    return Val{60 * MiB * fill + uni(r, 1 * MiB), 200000 * fill + uni(r, 1000)};
  });
  auto r = judge({cache}, {});
  expect_sane(r);
  EXPECT_EQ(find(r, 4).verdict, Verdict::kPlateau) << reason_text(find(r, 4).reason);
  EXPECT_NE(r.process, Verdict::kLeak);
}

TEST(Verdict, CacheFillingSlowlyUntil60PercentIsPlateau) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto cache = stack(5, "pymem-raw", 601, 1.0, seed, [](double t, std::mt19937& r) {
      double fill = std::min(1.0, t / 360);
      return Val{80 * MiB * fill + 2 * MiB + uni(r, 2 * MiB), 5000 * fill + uni(r, 100)};
    });
    auto r = judge({cache}, {});
    expect_sane(r);
    const auto& v = find(r, 5);
    EXPECT_EQ(v.verdict, Verdict::kPlateau) << "seed " << seed << ": " << reason_text(v.reason);
    EXPECT_NEAR(v.rate_bytes_per_s, 0, 16 * KiB) << "seed " << seed;  // not growing any more
    EXPECT_EQ(r.process, Verdict::kPlateau);
  }
}

TEST(Verdict, ConstantWithNoiseIsNoLeak) {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    auto s = stack(9, "python", 601, 1.0, seed, [](double, std::mt19937& r) {
      return Val{30 * MiB + uni(r, 4 * MiB), 50000 + uni(r, 4000)};
    });
    std::vector<StackSeries> in{s, background(2, 601, 1.0, seed + 7)};
    auto r = judge(in, process_of(in));
    expect_sane(r);
    EXPECT_EQ(find(r, 9).verdict, Verdict::kNoLeak) << "seed " << seed << ": " << reason_text(find(r, 9).reason);
    EXPECT_EQ(r.process, Verdict::kNoLeak) << "seed " << seed;
  }
  // Quiet enough to rule out a leak at the 1 KiB/s floor: confident.
  auto quiet = stack(9, "python", 601, 1.0, 3, [](double, std::mt19937& r) {
    return Val{30 * MiB + uni(r, 100 * KiB), 50000 + uni(r, 100)};
  });
  auto r = judge({quiet}, {});
  EXPECT_EQ(find(r, 9).verdict, Verdict::kNoLeak) << reason_text(find(r, 9).reason);
  EXPECT_GT(find(r, 9).confidence, 0.9);
}

TEST(Verdict, ShortRunIsInconclusive) {
  auto grow = [](double t, std::mt19937&) { return Val{1 * MiB + 1 * MiB * t, 100 * t}; };
  // 2 s, 5 points
  auto r = judge({stack(1, "python", 5, 0.5, 1, grow)}, {});
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kInconclusive);
  EXPECT_EQ(find(r, 1).verdict, Verdict::kInconclusive);
  EXPECT_TRUE(has_finding(r, Verdict::kInconclusive));
  EXPECT_DOUBLE_EQ(find(r, 1).bytes, 3 * MiB);
  // enough points, too short
  r = judge({stack(1, "python", 41, 0.05, 1, grow)}, {});
  EXPECT_EQ(r.process, Verdict::kInconclusive);
  // long enough, too few points
  r = judge({stack(1, "python", 5, 25, 1, grow)}, {});
  EXPECT_EQ(r.process, Verdict::kInconclusive);
  // just enough of both: judged
  r = judge({stack(1, "python", 8, 1, 1, grow)}, {});
  EXPECT_EQ(r.process, Verdict::kLeak) << reason_text(find(r, 1).reason);
}

namespace {
// Live memory drops from 400 MiB to 5 MiB at 30% of a 300 s run; RSS stays at ~400 MiB.
std::vector<StackSeries> big_free(const char* layer) {
  auto s = stack(1, layer, 301, 1.0, 5, [](double t, std::mt19937& r) {
    bool before = t < 90;
    return Val{(before ? 400 * MiB : 5 * MiB) + uni(r, 100 * KiB), before ? 4e6 : 5e4};
  });
  return {s, background(2, 301, 1.0, 6)};
}
}  // namespace

TEST(Verdict, PymallocRetention) {
  auto in = big_free("python");
  auto proc = process_of(in, [](ProcessPoint& p) {
    p.rss = 425 * MiB;
    p.arena = 410 * MiB;                // arenas stay mapped: survivors pin them
    p.pymalloc_free = p.arena - p.python;
    p.glibc_in_use = 12 * MiB;
    p.glibc_free = 1 * MiB;
  });
  auto r = judge(in, proc);
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kAllocatorRetention);
  EXPECT_NE(find(r, 1).verdict, Verdict::kLeak) << reason_text(find(r, 1).reason);
  ASSERT_TRUE(has_finding(r, Verdict::kAllocatorRetention, "pymalloc"));
  EXPECT_FALSE(has_finding(r, Verdict::kAllocatorRetention, "glibc"));
  for (const auto& f : r.findings)
    if (f.kind == Verdict::kAllocatorRetention) {
      EXPECT_EQ(f.code, FindingCode::kPymallocRetained);
      EXPECT_EQ(f.remedy, RemedyCode::kPymalloc);
      EXPECT_NE(remedy_text(f.remedy).find("PYTHONMALLOC=malloc"), std::string::npos);
      EXPECT_NE(remedy_text(f.remedy).find("fragmentation"), std::string::npos);
      EXPECT_GT(f.bytes, 300 * MiB);
    }
}

TEST(Verdict, GlibcRetention) {
  auto in = big_free("malloc");
  auto proc = process_of(in, [](ProcessPoint& p) {
    p.rss = 425 * MiB;
    p.python = 8 * MiB;
    p.arena = 9 * MiB;
    p.pymalloc_free = 1 * MiB;
    p.glibc_in_use = p.live - 8 * MiB;
    p.glibc_free = 405 * MiB - p.glibc_in_use;
  });
  auto r = judge(in, proc);
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kAllocatorRetention);
  ASSERT_TRUE(has_finding(r, Verdict::kAllocatorRetention, "glibc"));
  EXPECT_FALSE(has_finding(r, Verdict::kAllocatorRetention, "pymalloc"));
  for (const auto& f : r.findings)
    if (f.kind == Verdict::kAllocatorRetention) {
      EXPECT_EQ(f.code, FindingCode::kGlibcRetained);
      EXPECT_EQ(f.remedy, RemedyCode::kGlibc);
      EXPECT_NE(remedy_text(f.remedy).find("malloc_trim(0)"), std::string::npos);
      EXPECT_NE(remedy_text(f.remedy).find("MALLOC_ARENA_MAX=2"), std::string::npos);
    }
}

TEST(Verdict, MemoryReturnedToTheOsIsNotRetention) {
  auto in = big_free("malloc");
  auto proc = process_of(in, [](ProcessPoint& p) {
    p.rss = p.live + 20 * MiB;  // RSS follows live down
    p.glibc_in_use = p.live;
    p.glibc_free = 3 * MiB;
  });
  auto r = judge(in, proc);
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kNoLeak);
  EXPECT_FALSE(has_finding(r, Verdict::kAllocatorRetention));
}

TEST(Verdict, RetentionWithoutAllocatorCountersIsProcessLayer) {
  auto in = big_free("malloc");
  auto proc = process_of(in, [](ProcessPoint& p) { p.rss = 425 * MiB; });  // e.g. jemalloc
  auto r = judge(in, proc);
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kAllocatorRetention);
  EXPECT_TRUE(has_finding(r, Verdict::kAllocatorRetention, "process"));
}

TEST(Verdict, StepGrowthIsLeak) {
  // 500 KiB leaked in one burst every 10 s (50 KiB/s on average), 5 minutes at 1 Hz.
  auto s = stack(6, "malloc", 301, 1.0, 3, [](double t, std::mt19937& r) {
    double steps = std::floor(t / 10);
    return Val{10 * MiB + 500 * KiB * steps + uni(r, 32 * KiB), 1000 + 500 * steps};
  });
  auto r = judge({s}, {});
  expect_sane(r);
  const auto& v = find(r, 6);
  EXPECT_EQ(v.verdict, Verdict::kLeak) << reason_text(v.reason);
  EXPECT_NEAR(v.rate_bytes_per_s, 50 * KiB, 7.5 * KiB);
  EXPECT_NEAR(v.rate_count_per_s, 50, 7.5);
  EXPECT_EQ(r.process, Verdict::kLeak);
}

TEST(Verdict, GrownThenFreedIsNotALeak) {
  for (double freed_at : {210.0, 270.0}) {
    auto s = stack(8, "python", 301, 1.0, 4, [freed_at](double t, std::mt19937& r) {
      double b = t < 60 ? 0 : t < freed_at ? 40 * MiB * (t - 60) / 150 : 0;
      return Val{b + 1 * MiB + uni(r, 200 * KiB), b / 100};
    });
    auto r = judge({s}, {});
    expect_sane(r);
    EXPECT_EQ(find(r, 8).verdict, Verdict::kNoLeak) << freed_at << ": " << reason_text(find(r, 8).reason);
    EXPECT_EQ(r.process, Verdict::kNoLeak) << freed_at;
  }
}

TEST(Verdict, SawtoothIsNotALeak) {
  // A buffer that fills for 100 s and is flushed, over and over.
  auto s = stack(8, "malloc", 601, 1.0, 4, [](double t, std::mt19937& r) {
    double b = 20 * MiB * std::fmod(t, 100) / 100;
    return Val{b + uni(r, 200 * KiB), b / 4096};
  });
  auto r = judge({s}, {});
  expect_sane(r);
  EXPECT_NE(find(r, 8).verdict, Verdict::kLeak) << reason_text(find(r, 8).reason);
}

TEST(Verdict, LeakStartingLateIsFound) {
  // Flat until 70% of the run, then 100 KiB/s.
  auto s = stack(10, "python", 601, 1.0, 8, [](double t, std::mt19937& r) {
    return Val{5 * MiB + 100 * KiB * std::max(0.0, t - 420) + uni(r, 1 * MiB), 100 * std::max(0.0, t - 420)};
  });
  auto r = judge({s}, {});
  expect_sane(r);
  EXPECT_EQ(find(r, 10).verdict, Verdict::kLeak) << reason_text(find(r, 10).reason);
  EXPECT_NEAR(find(r, 10).rate_bytes_per_s, 100 * KiB, 30 * KiB);
}

TEST(Verdict, StackFirstSeenAfterWarmupLeaks) {
  // Appears at t=150 of 300 and grows from there: counted as 0 before its first snapshot.
  auto s = stack(11, "malloc", 151, 1.0, 9, [](double t, std::mt19937& r) {
    return Val{20 * KiB * (t - 150) + uni(r, 4 * KiB), 2 * (t - 150)};
  }, 150);
  std::vector<StackSeries> in{s, background(2, 301, 1.0, 10)};
  auto r = judge(in, process_of(in));
  expect_sane(r);
  EXPECT_EQ(find(r, 11).verdict, Verdict::kLeak) << reason_text(find(r, 11).reason);
  EXPECT_EQ(r.process, Verdict::kLeak);
}

TEST(Verdict, SortedMostSevereFirst) {
  auto mk = [](uint32_t id, double rate, uint32_t seed) {
    return stack(id, "python", 301, 1.0, seed, [rate](double t, std::mt19937& r) {
      return Val{1 * MiB + rate * t + uni(r, 16 * KiB), rate * t / 512};
    });
  };
  auto plateau = stack(30, "python", 301, 1.0, 33, [](double t, std::mt19937& r) {
    return Val{30 * MiB * std::min(1.0, t / 120) + uni(r, 64 * KiB), 0};
  });
  auto tiny = stack(40, "python", 301, 1.0, 34, [](double, std::mt19937&) { return Val{100, 1}; });
  std::vector<StackSeries> in{tiny, mk(20, 20 * KiB, 1), plateau, background(50, 301, 1.0, 2), mk(10, 80 * KiB, 3)};
  auto r = judge(in, {});
  expect_sane(r);
  ASSERT_EQ(r.stacks.size(), 5u);
  EXPECT_EQ(r.stacks[0].stack, 10u);
  EXPECT_EQ(r.stacks[1].stack, 20u);
  EXPECT_EQ(r.stacks[2].stack, 30u);
  EXPECT_EQ(r.stacks[2].verdict, Verdict::kPlateau) << reason_text(r.stacks[2].reason);
  EXPECT_EQ(r.stacks[3].stack, 50u);  // no-leak, more bytes first
  EXPECT_EQ(r.stacks[4].stack, 40u);
  EXPECT_NEAR(r.stacks[0].rate_count_per_s, 160, 16);
  EXPECT_NEAR(r.stacks[1].rate_count_per_s, 40, 4);
  EXPECT_EQ(r.process, Verdict::kLeak);
  ASSERT_FALSE(r.findings.empty());
  EXPECT_EQ(r.findings[0].code, FindingCode::kStacksLeak);
  EXPECT_EQ(r.findings[0].stacks, 2u);
  EXPECT_NE(finding_text(r.findings[0]).find("2 stacks leak"), std::string::npos) << finding_text(r.findings[0]);
  EXPECT_EQ(r.findings[0].stack, 10);
}

TEST(Verdict, LeakSpreadOverManyStacks) {
  // 200 stacks each leaking 300 B/s (below the floor alone), 60 KB/s together.
  std::vector<StackSeries> in;
  for (uint32_t i = 0; i < 200; ++i)
    in.push_back(stack(100 + i, "python", 601, 1.0, i, [](double t, std::mt19937& r) {
      return Val{64 * KiB + 300 * t + uni(r, 8 * KiB), 3 * t};
    }));
  auto r = judge(in, process_of(in));
  expect_sane(r);
  for (const auto& s : r.stacks) ASSERT_NE(s.verdict, Verdict::kLeak) << s.stack << ": " << reason_text(s.reason);
  EXPECT_EQ(r.process, Verdict::kLeak);
  EXPECT_TRUE(has_finding(r, Verdict::kLeak, "process"));
  EXPECT_NEAR(r.process_rate_bytes_per_s, 60000, 6000);
}

TEST(Verdict, Robustness) {
  // empty
  auto r = judge({}, {});
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kInconclusive);
  EXPECT_TRUE(r.stacks.empty());
  // a stack with no points, and a single point
  StackSeries empty;
  empty.stack = 1;
  StackSeries one;
  one.stack = 2;
  one.points.push_back({0.5, 100, 1});
  r = judge({empty, one}, {});
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kInconclusive);
  EXPECT_EQ(r.stacks.size(), 2u);
  // flat zeros everywhere, with process points all zero
  auto zeros = stack(3, "python", 100, 1.0, 1, [](double, std::mt19937&) { return Val{0, 0}; });
  std::vector<ProcessPoint> proc(100);
  for (int i = 0; i < 100; ++i) proc[i].t_s = i;
  r = judge({zeros, empty}, proc);
  expect_sane(r);
  EXPECT_EQ(r.process, Verdict::kNoLeak);
  EXPECT_EQ(find(r, 3).verdict, Verdict::kNoLeak);
  EXPECT_EQ(r.process_rate_bytes_per_s, 0);
  // NaN / inf points are ignored; a stack that stops early is inconclusive, not a leak
  auto nan = stack(4, "python", 100, 1.0, 1, [](double t, std::mt19937&) { return Val{1e6 * t, t}; });
  nan.points[50].bytes = NAN;
  nan.points[60].t_s = INFINITY;
  auto early = stack(5, "python", 30, 1.0, 1, [](double t, std::mt19937&) { return Val{1e6 * t, t}; });
  r = judge({nan, early}, {});
  expect_sane(r);
  EXPECT_EQ(find(r, 4).verdict, Verdict::kLeak) << reason_text(find(r, 4).reason);
  EXPECT_EQ(find(r, 5).verdict, Verdict::kInconclusive) << reason_text(find(r, 5).reason);
  // unsorted points are sorted
  auto rev = stack(6, "python", 100, 1.0, 1, [](double t, std::mt19937&) { return Val{1e6 * t, t}; });
  std::reverse(rev.points.begin(), rev.points.end());
  r = judge({rev}, {});
  EXPECT_EQ(find(r, 6).verdict, Verdict::kLeak) << reason_text(find(r, 6).reason);
}

TEST(Verdict, CacheFilledDuringWarmupIsPlateau) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    // Fills to 12 MiB by 25% of the run (warm-up is the first 20%), then stays full with noise:
    // the post-warm-up window alone shows little growth, the whole series shows "grew, then flat".
    auto cache = stack(4, "python", 31, 0.2, seed, [](double t, std::mt19937& r) {
      double fill = std::min(1.0, t / 1.5);
      return Val{12 * MiB * fill + uni(r, 64 * KiB), 3000 * fill + uni(r, 10)};
    });
    std::vector<StackSeries> in{cache, background(2, 31, 0.2, seed + 70)};
    auto r = judge(in, process_of(in));
    expect_sane(r);
    const auto& v = find(r, 4);
    EXPECT_EQ(v.verdict, Verdict::kPlateau) << "seed " << seed << ": " << reason_text(v.reason);
    EXPECT_FALSE(has_finding(r, Verdict::kLeak)) << "seed " << seed;
    EXPECT_TRUE(has_finding(r, Verdict::kPlateau, "python")) << "seed " << seed;
  }
}

TEST(Verdict, StableFromTheStartIsNotAPlateau) {
  // Allocated before the first snapshot and never changed: no growth was seen, no plateau.
  auto fixed = stack(5, "python", 31, 0.2, 9, [](double, std::mt19937& r) {
    return Val{12 * MiB + uni(r, 64 * KiB), 3000 + uni(r, 10)};
  });
  std::vector<StackSeries> in{fixed, background(2, 31, 0.2, 11)};
  auto r = judge(in, process_of(in));
  EXPECT_EQ(find(r, 5).verdict, Verdict::kNoLeak) << reason_text(find(r, 5).reason);
}

// ---- work, idle time, teardown and passes (analysis/run_shape.h)

// Process points for `in` (process_of) that also count the work done: allocations at `rate` per
// second while working(t), at 1% of it otherwise.
std::vector<ProcessPoint> with_work(const std::vector<StackSeries>& in, double rate,
                                    const std::function<bool(double)>& working) {
  double work = 0, last = 0;
  return process_of(in, [&](ProcessPoint& p) {
    work += (p.t_s - last) * (working(p.t_s) ? rate : rate / 100);
    last = p.t_s;
    p.allocs = work;
  });
}

TEST(Verdict, LeakWhileWorkingThenIdleIsLeak) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    // 20 KiB/s kept while the program works (70 s), then 30 s idle.
    auto s = stack(7, "python", 101, 1.0, seed, [](double t, std::mt19937& r) {
      double b = 20 * KiB * std::min(t, 70.0);
      return Val{2 * MiB + b + uni(r, 16 * KiB), b / 1024};
    });
    std::vector<StackSeries> in{s, background(2, 101, 1.0, seed + 20)};
    auto r = judge(in, with_work(in, 5000, [](double t) { return t < 70; }));
    expect_sane(r);
    const auto& v = find(r, 7);
    EXPECT_EQ(v.verdict, Verdict::kLeak) << "seed " << seed << ": " << reason_text(v.reason);
    EXPECT_EQ(v.reason.code, ReasonCode::kWhileWorking) << "seed " << seed;
    EXPECT_NEAR(v.rate_bytes_per_s, 20 * KiB, 4 * KiB) << "seed " << seed;
    EXPECT_NEAR(v.reason.idle_s, 30, 5) << "seed " << seed;
    EXPECT_NEAR(r.idle_s, 30, 5) << "seed " << seed;
    EXPECT_EQ(r.process, Verdict::kLeak) << "seed " << seed;
    // Wall time alone sees growth that stopped.
    auto wall = judge(in, process_of(in));
    EXPECT_EQ(find(wall, 7).verdict, Verdict::kPlateau) << "seed " << seed << ": " << reason_text(find(wall, 7).reason);
  }
}

TEST(Verdict, CacheFillingWhileWorkingIsPlateau) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    // Fills to 40 MiB by t=40 of 100 s; the program works steadily throughout.
    auto cache = stack(3, "python", 101, 1.0, seed, [](double t, std::mt19937& r) {
      double fill = std::min(1.0, t / 40);
      return Val{40 * MiB * fill + 2 * MiB + uni(r, 1 * MiB), 40000 * fill + uni(r, 100)};
    });
    std::vector<StackSeries> in{cache, background(2, 101, 1.0, seed + 30)};
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    EXPECT_EQ(find(r, 3).verdict, Verdict::kPlateau) << "seed " << seed << ": " << reason_text(find(r, 3).reason);
    EXPECT_EQ(r.process, Verdict::kPlateau) << "seed " << seed;
    EXPECT_NEAR(r.idle_s, 0, 2) << "seed " << seed;
  }
}

TEST(Verdict, LeakEndingInTeardownIsLeak) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    // Grows at 20 KiB/s until t=85; shutting down holds everything until t=97, then frees it.
    auto s = stack(7, "python", 101, 1.0, seed, [](double t, std::mt19937& r) {
      double b = t < 98 ? 20 * KiB * std::min(t, 85.0) : 0;
      return Val{b + uni(r, 16 * KiB), b / 1024};
    });
    std::vector<StackSeries> in{s, background(2, 101, 1.0, seed + 40)};
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    const auto& v = find(r, 7);
    EXPECT_EQ(v.verdict, Verdict::kLeak) << "seed " << seed << ": " << reason_text(v.reason);
    EXPECT_NEAR(v.rate_bytes_per_s, 20 * KiB, 4 * KiB) << "seed " << seed;
    // Where the growth met the flat level, within the background's noise (+-256 KiB: 13 s of growth).
    EXPECT_NEAR(r.teardown_s, 80, 8) << "seed " << seed;
    EXPECT_EQ(r.judged_until_s, r.teardown_s);
    EXPECT_NE(reason_text(v.reason).find("Judged up to"), std::string::npos) << reason_text(v.reason);
    EXPECT_EQ(r.process, Verdict::kLeak) << "seed " << seed;
  }
}

TEST(Verdict, CacheFreedAtExitIsNotALeak) {
  // Filled by t=40, full until the program exits and frees it (t=98).
  auto cache = stack(3, "python", 101, 1.0, 5, [](double t, std::mt19937& r) {
    double b = t < 98 ? 40 * MiB * std::min(1.0, t / 40) : 0;
    return Val{b + uni(r, 256 * KiB), b / 1024};
  });
  std::vector<StackSeries> in{cache, background(2, 101, 1.0, 6)};
  auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
  expect_sane(r);
  EXPECT_NE(find(r, 3).verdict, Verdict::kLeak) << reason_text(find(r, 3).reason);
  EXPECT_NE(r.process, Verdict::kLeak);
  EXPECT_EQ(r.teardown_s, 0);
}

// Three passes of 40 s (a formatter: parse, format, check), each building 30 MiB at a stack of
// its own and dropping it at the end of the pass; the last one is still held at the end.
std::vector<StackSeries> passes(uint32_t seed) {
  std::vector<StackSeries> in;
  for (uint32_t k = 0; k < 3; ++k)
    in.push_back(stack(10 + k, "python", 121, 1.0, seed + k, [k](double t, std::mt19937& r) {
      double from = 40.0 * k, to = from + 40;
      bool last = k == 2;
      double b = t < from || (t >= to && !last) ? 0 : 30 * MiB * std::min(1.0, (t - from) / 38);
      return Val{b + uni(r, 64 * KiB), b / 1024};
    }));
  in.push_back(background(2, 121, 1.0, seed + 50));
  return in;
}

TEST(Verdict, PassesAreAWorkingSet) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto in = passes(seed);
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    for (const auto& s : r.stacks)
      EXPECT_NE(s.verdict, Verdict::kLeak) << "seed " << seed << " stack " << s.stack << ": " << reason_text(s.reason);
    EXPECT_EQ(find(r, 12).verdict, Verdict::kWorkingSet) << "seed " << seed << ": " << reason_text(find(r, 12).reason);
    EXPECT_EQ(find(r, 11).verdict, Verdict::kWorkingSet) << "seed " << seed << ": " << reason_text(find(r, 11).reason);
    EXPECT_EQ(r.process, Verdict::kWorkingSet) << "seed " << seed;
    ASSERT_TRUE(has_finding(r, Verdict::kWorkingSet, "process")) << "seed " << seed;
    for (const auto& f : r.findings)
      if (f.kind == Verdict::kWorkingSet) {
        EXPECT_EQ(f.passes, 3u) << "seed " << seed;
        EXPECT_NEAR(f.bytes, 30 * MiB, 3 * MiB) << "seed " << seed;
        EXPECT_NEAR(f.peak_live_bytes, 38 * MiB, 3 * MiB) << "seed " << seed;
      }
  }
}

// p15 in a loaded CI run: start-up takes live memory from 0 to 2.8 MiB in its first 1.3 s, then
// four passes of 2.1 s each build 1.1 MiB (less than the start-up's rise) and drop it, the last
// one held at the exit. The warm-up's rise is no pass and must not hide the passes.
TEST(Verdict, PassesSmallerThanTheStartUpAreAWorkingSet) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    std::vector<StackSeries> in;
    in.push_back(stack(30, "python", 44, 0.2, seed, [](double t, std::mt19937& r) {
      const double b = 2.8 * MiB * std::min(1.0, t / 1.3);
      return Val{b + uni(r, 8 * KiB), b / 512};
    }));
    for (uint32_t k = 0; k < 4; ++k)
      in.push_back(stack(10 + k, "python", 44, 0.2, seed + 10 + k, [k](double t, std::mt19937& r) {
        const double from = 0.2 + 2.1 * k, to = from + 2.1;
        const bool last = k == 3;
        const double b = t < from || (t >= to && !last) ? 0 : 1.1 * MiB * std::min(1.0, (t - from) / 2.0);
        return Val{b + uni(r, 4 * KiB), b / 1100};
      }));
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    for (const auto& s : r.stacks)
      EXPECT_NE(s.verdict, Verdict::kLeak) << "seed " << seed << " stack " << s.stack << ": " << reason_text(s.reason);
    EXPECT_NE(r.process, Verdict::kLeak) << "seed " << seed;
  }
}

TEST(Verdict, LeakUnderPassesIsStillALeak) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto in = passes(seed);
    in.push_back(stack(20, "python", 121, 1.0, seed + 60, [](double t, std::mt19937& r) {
      return Val{50 * KiB * t + uni(r, 16 * KiB), t * 50};
    }));
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    EXPECT_EQ(find(r, 20).verdict, Verdict::kLeak) << "seed " << seed << ": " << reason_text(find(r, 20).reason);
    EXPECT_NEAR(find(r, 20).rate_bytes_per_s, 50 * KiB, 10 * KiB) << "seed " << seed;
    EXPECT_EQ(find(r, 12).verdict, Verdict::kWorkingSet) << "seed " << seed << ": " << reason_text(find(r, 12).reason);
    EXPECT_EQ(r.process, Verdict::kLeak) << "seed " << seed;
  }
}

// black in a loaded CI run: the last pass starts from a lower trough (what stayed between the
// earlier passes is freed before it), so it rises more than any earlier pass (40 MiB against
// 30) though it reaches no higher. It is a pass like the others, not a leak.
TEST(Verdict, LastPassFromALowerTroughIsAWorkingSet) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto in = passes(seed);
    in[2] = stack(12, "python", 121, 1.0, seed + 2, [](double t, std::mt19937& r) {
      const double b = t < 80 ? 0 : 40 * MiB * std::min(1.0, (t - 80) / 38);
      return Val{b + uni(r, 64 * KiB), b / 1024};
    });
    in.push_back(stack(21, "python", 121, 1.0, seed + 70, [](double t, std::mt19937& r) {
      const double b = t < 80 ? 15 * MiB * std::min(1.0, t / 2) : 0;
      return Val{b + uni(r, 16 * KiB), b / 1024};
    }));
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    for (const auto& s : r.stacks)
      EXPECT_NE(s.verdict, Verdict::kLeak) << "seed " << seed << " stack " << s.stack << ": " << reason_text(s.reason);
    EXPECT_EQ(find(r, 12).verdict, Verdict::kWorkingSet) << "seed " << seed << ": " << reason_text(find(r, 12).reason);
    EXPECT_EQ(r.process, Verdict::kWorkingSet) << "seed " << seed;
  }
}

// A leak that starts after the last trough lifts the pass in progress above every earlier one:
// it is judged as usual, not folded into the working set.
TEST(Verdict, LeakStartingInTheLastPassIsALeak) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    auto in = passes(seed);
    in.push_back(stack(20, "python", 121, 1.0, seed + 60, [](double t, std::mt19937& r) {
      const double b = t < 85 ? 0 : 1 * MiB * (t - 85);
      return Val{b + uni(r, 16 * KiB), b / 1024};
    }));
    auto r = judge(in, with_work(in, 5000, [](double) { return true; }));
    expect_sane(r);
    EXPECT_EQ(find(r, 20).verdict, Verdict::kLeak) << "seed " << seed << ": " << reason_text(find(r, 20).reason);
    EXPECT_EQ(r.process, Verdict::kLeak) << "seed " << seed;
  }
}

// ---- the words (report/words.cpp): a sentence for every code, in the report's exact form

TEST(Words, ReasonSentences) {
  Reason r;
  r.code = ReasonCode::kSustained;
  r.rate_bytes_per_s = 50 * KiB;
  r.count_per_s = 12.345;
  r.growth_bytes = 3 * MiB;
  r.p = 0.000123;
  EXPECT_EQ(reason_text(r),
            "Grows steadily after warm-up at 50.0 KiB/s (12.3 blocks/s), 3.0 MiB in all, and is still growing at "
            "the end (trend p=0.00012).");
  r = Reason{};
  r.code = ReasonCode::kWarmupPlateau;
  r.growth_bytes = 7.25 * MiB;
  EXPECT_EQ(reason_text(r), "Grew by 7.2 MiB early in the run (during warm-up), then stayed flat: cache-like.");
  r = Reason{};
  r.code = ReasonCode::kShrinking;
  r.rate_bytes_per_s = -2.5 * 1024 * MiB;
  EXPECT_EQ(reason_text(r), "Shrinks after warm-up (-2.50 GiB/s).");
  r = Reason{};
  r.code = ReasonCode::kRunTooShort;
  r.duration_s = 0.84;
  r.snapshots = 5;
  EXPECT_EQ(reason_text(r), "Run too short to judge: 0.8 s and 5 snapshots.");
  r = Reason{};
  r.code = ReasonCode::kWhileWorking;
  r.rate_bytes_per_s = 400 * KiB;
  r.count_per_s = 579;
  r.growth_bytes = 2.2 * MiB;
  r.idle_s = 2.94;
  r.teardown_s = 10.86;
  EXPECT_EQ(reason_text(r),
            "Grows with the work done: 400.0 KiB/s (579 blocks/s) while the program works, 2.2 MiB in all after "
            "warm-up; it stops only when the work does (the program did little for about 2.9 s). Judged up to "
            "10.9 s, where the program began to tear down (live memory fell as it exited).");
  r = Reason{};
  r.code = ReasonCode::kWorkingSet;
  r.passes = 3;
  r.peak_bytes = 1.5 * MiB;
  r.level_bytes = 1.25 * MiB;
  r.teardown_s = 9;  // said of leaks only
  EXPECT_EQ(reason_text(r),
            "Rises and falls with the program's 3 passes, up to 1.5 MiB (now 1.2 MiB): a working set that one pass "
            "builds and the next frees, not a leak.");
  // Every code has a sentence.
  for (int c = 0; c <= static_cast<int>(ReasonCode::kRunTooShort); ++c) {
    Reason x;
    x.code = static_cast<ReasonCode>(c);
    EXPECT_FALSE(reason_text(x).empty()) << c;
  }
  // Amounts and rates that are not finite read as 0 (the engine's numbers always are).
  r = Reason{};
  r.code = ReasonCode::kLateStart;
  r.rate_bytes_per_s = INFINITY;
  r.count_per_s = NAN;
  EXPECT_EQ(reason_text(r),
            "Started growing late: 0 B/s (0 blocks/s) over the last part of the run, above any earlier level.");
}

TEST(Words, FindingSentencesAndRemedies) {
  Finding f;
  f.code = FindingCode::kStacksLeak;
  f.layer = "python";
  f.stacks = 1;
  f.rate_bytes_per_s = f.top_rate_bytes_per_s = 2 * MiB;
  f.top_count_per_s = 100;
  EXPECT_EQ(finding_text(f),
            "1 stack leaks, 2.0 MiB/s in all after warm-up; the fastest (python) grows at 2.0 MiB/s (100 blocks/s).");
  f = Finding{};
  f.code = FindingCode::kPymallocRetained;
  f.live_bytes = 6 * MiB;
  f.arena_bytes = 151 * MiB;
  f.free_bytes = 146.7 * MiB;
  EXPECT_EQ(finding_text(f).rfind("Only 6.0 MiB is live, yet pymalloc holds 151.0 MiB of arenas, 146.7 MiB", 0), 0u)
      << finding_text(f);
  f.rss_bytes = 206.3 * MiB;
  EXPECT_EQ(finding_text(f).rfind("RSS stays at 206.3 MiB while only 6.0 MiB is live: pymalloc holds", 0), 0u)
      << finding_text(f);
  f = Finding{};
  f.code = FindingCode::kRunTooShort;
  f.duration_s = 0.8;
  f.snapshots = 5;
  f.min_duration_s = 3;
  f.min_snapshots = 8;
  EXPECT_EQ(finding_text(f),
            "Run too short to judge: 0.8 s and 5 snapshots; verdicts need at least 3.0 s and 8 snapshots.");
  f = Finding{};
  f.code = FindingCode::kWorkingSet;
  f.passes = 3;
  f.bytes = 62.5 * MiB;
  f.peak_live_bytes = 88 * MiB;
  f.live_bytes = 19.8 * MiB;
  EXPECT_EQ(finding_text(f),
            "Live memory rose and fell in 3 passes: each builds up to 62.5 MiB that the next frees (peak 88.0 MiB "
            "live, 19.8 MiB between passes). A working set, not a leak.");
  for (int c = 0; c <= static_cast<int>(FindingCode::kRunTooShort); ++c) {
    Finding x;
    x.code = static_cast<FindingCode>(c);
    EXPECT_FALSE(finding_text(x).empty()) << c;
  }
  EXPECT_EQ(remedy_text(RemedyCode::kNone), "");
  for (int c = 1; c <= static_cast<int>(RemedyCode::kRunLonger); ++c)
    EXPECT_FALSE(remedy_text(static_cast<RemedyCode>(c)).empty()) << c;
  const std::string both = remedy_text(RemedyCode::kGlibcOrPymalloc);
  EXPECT_EQ(both, "If glibc: " + remedy_text(RemedyCode::kGlibc) + " If Python objects: " +
                      remedy_text(RemedyCode::kPymalloc));
}

TEST(Words, LeakingSitesAndRates) {
  using leakscope::report::leaking_sites_text;
  using leakscope::report::rate_text;
  EXPECT_EQ(leaking_sites_text(1, "app.py:40 in handle", 447897.6, 800.4),
            "1 site leaks; the fastest, app.py:40 in handle, grows by 437.4 KiB/s (800 objects/s) after warm-up.");
  EXPECT_EQ(leaking_sites_text(4, "x.cpp:28 in f()", 80 * KiB / 60, 1.6),
            "4 sites leak; the fastest, x.cpp:28 in f(), grows by 80.0 KiB/min (2 objects/s) after warm-up.");
  // per second from 10 MiB/min up, per minute below
  EXPECT_EQ(rate_text(200 * KiB), "200.0 KiB/s");
  EXPECT_EQ(rate_text(100 * KiB), "5.9 MiB/min");
  EXPECT_EQ(leakscope::report::format_bytes(1023), "1023 B");
  EXPECT_EQ(leakscope::report::format_bytes(1536), "1.5 KiB");
}
