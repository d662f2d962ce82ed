// Verdict engine: "is it a leak?" for a process observed over time. Works on the series the
// replay builds (analysis/series.h): per stack, live bytes/blocks at each snapshot; per
// process, memory by layer at each snapshot. Pure computation, no I/O, deterministic. Results
// are codes and numbers, never sentences: report/words.cpp words them.
//
// Method (docs/verdicts.md explains it for users):
//  - The first warmup_fraction of the run is ignored; the window starts at the last snapshot
//    of the warm-up (its value is the baseline). A stack not yet seen counts as 0 bytes.
//  - Long windows are cut into at most max_points groups of consecutive snapshots and each
//    group is represented by its minimum, which removes transient spikes (churn) and keeps
//    what stays allocated.
//  - Mann-Kendall trend test (significance) and Theil-Sen slope (rate) on the whole window,
//    on its first two thirds (head) and on its last third (tail). For a leak the trend must
//    also survive an autocorrelation correction (Hamed-Rao / AR(1): slow random wandering
//    is not a leak) or the steps between snapshots must lean upward (Wilcoxon signed-rank:
//    growth in bursts).
//  - leak: significant upward trend, rate >= min_rate_bytes_per_s, growth >= min_growth_bytes,
//    and still growing at the end (the tail is not significantly slower than the head); or a
//    late start: the tail alone grows significantly, faster than the floor, to new highs.
//  - plateau: grew significantly after warm-up, then the tail went flat (cache-like).
//  - allocator retention (process only): the allocator holds much more freed memory than the
//    program has live (pymalloc free arena bytes, glibc mallinfo2 fordblks), or RSS stays up
//    (or grows) while tracked live memory fell (or stayed flat).
//  - work, teardown, passes (analysis/run_shape.h): every series is also judged against the
//    work done (allocations made), so idle time does not pass for growth that stopped; a run
//    that ends by freeing what it built (teardown) is judged up to where the fall began; when
//    the tracked total rises and falls in passes, what one pass builds and the next frees is a
//    working set, at each stack and for the process.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/series.h"

namespace leakscope::analysis {

// kGc is the kind of a finding about Python's cyclic garbage collector (analysis/collector.h),
// never a verdict.
enum class Verdict { kLeak, kPlateau, kAllocatorRetention, kNoLeak, kInconclusive, kWorkingSet, kGc };
// "leak", "plateau", "allocator-retention", "no-leak", "inconclusive", "working-set", "gc"
const char* verdict_name(Verdict v);

// Why a stack got its verdict, as data: report/words.cpp turns it into a sentence. Each code
// lists the Reason fields its sentence uses (rate = rate_bytes_per_s, growth = growth_bytes,
// ...); the other fields stay at their defaults.
enum class ReasonCode : uint8_t {
  kSustained,         // leak: rate, count_per_s, growth, p
  kAccelerating,      // leak: rate (last third), count_per_s, average_rate (whole window)
  kLateStart,         // leak: rate (last third), count_per_s
  kWhileWorking,      // leak judged against the work done: rate (while working), count_per_s,
                      // growth, idle_s (time the work does not account for)
  kPlateau,           // plateau: growth, level (at the end), rate (over the last third)
  kWarmupPlateau,     // plateau that filled during warm-up: growth
  kFreed,             // no-leak: peak, level (at the end)
  kWorkingSet,        // working-set: passes, peak, level (at the end)
  kSlowRate,          // no-leak: rate, threshold (min_rate_bytes_per_s)
  kSmallGrowth,       // no-leak: growth, threshold (min_growth_bytes)
  kWander,            // no-leak: growth (a random walk, not a steady rise)
  kShrinking,         // no-leak: rate
  kStable,            // no-leak: rate
  kTiny,              // no-leak: threshold (min_growth_bytes; the stack varied by less)
  kTooFewSnapshots,   // inconclusive: fewer than 3 snapshots of the stack after warm-up
  kEndsEarly,         // inconclusive: not seen in the last part of the run
  kUnclearEnd,        // inconclusive: rate (grew, but the tail is too short to tell)
  kRunTooShort,       // inconclusive: duration_s, snapshots (the whole run)
};

struct Reason {
  ReasonCode code = ReasonCode::kTooFewSnapshots;
  double rate_bytes_per_s = 0, count_per_s = 0, average_rate_bytes_per_s = 0;
  double growth_bytes = 0, level_bytes = 0, peak_bytes = 0;
  double p = 1;          // one-sided p-value of the growth trend
  double threshold = 0;  // the option the stack stayed below (bytes or bytes/s, see the code)
  double duration_s = 0;
  size_t snapshots = 0;
  double idle_s = 0;
  size_t passes = 0;
  // Any code: > 0 when the run ended with a teardown, the time it began (every stack was judged
  // up to there; the sentences of leaks say so).
  double teardown_s = 0;
};

struct StackVerdict {
  uint32_t stack = 0;
  std::string layer;
  Verdict verdict = Verdict::kInconclusive;
  // Sustained growth rate after warm-up (Theil-Sen slope over the window). For a leak found
  // by its late start, the slope of the last third; for a plateau, the slope of the last
  // third (how fast it grows now, about 0).
  double rate_bytes_per_s = 0, rate_count_per_s = 0;
  // Live bytes at the end minus at the end of warm-up: for a leak, the fitted trend over the
  // window (rate * duration), otherwise the change of the noise-filtered level.
  double growth_bytes = 0;
  double bytes = 0, count = 0;  // live at the stack's last point
  double confidence = 0;        // 0..1
  Reason reason;                // why this verdict
};

// What a process-level finding says, as data (report/words.cpp words it). Each code lists the
// Finding fields its sentence uses besides kind and layer (rate = rate_bytes_per_s, live =
// live_bytes, ...); the other number fields stay 0.
enum class FindingCode : uint8_t {
  kStacksLeak,         // stacks, rate (all leaking stacks), top_rate, top_count_per_s; layer: the fastest's
  kSpreadLeak,         // rate (tracked live), threshold (min_rate_bytes_per_s); layer "process"
  kPymallocRetained,   // rss (0: unknown), live, arena, free (free inside the arenas)
  kGlibcRetained,      // rss (0: unknown), live, free (mallinfo2 fordblks)
  kRssAfterFree,       // rss, peak_live, live: live fell, RSS did not, no counter explains it
  kRssGrowsGlibc,      // rate (RSS), live_rate: glibc's free bytes grew with RSS
  kRssGrowsPymalloc,   // rate (RSS), live_rate: pymalloc's free arena space grew with RSS
  kRssGrowsUntracked,  // rate (RSS), live_rate: no allocator counter grew with it
  kPlateau,            // bytes (growth), live (at the end); layer: the stack's
  kWorkingSet,         // passes, bytes (a pass's rise), peak_live, live (at the last trough); layer "process"
  kMorePlateaus,       // stacks (how many beyond max_plateau_findings), bytes (their growth)
  kRunTooShort,        // duration_s, snapshots, min_duration_s, min_snapshots
  // Python's cyclic garbage collector (analysis/collector.h); layer "python":
  kGcDisabled,         // gc.disable(): duration_s (off until the end), objects (tracked objects
                       // that accumulated without a collection), bytes (Python live growth then)
  kGcThresholdZero,    // gc.set_threshold(0): the same fields
  kGcGarbage,          // objects (len(gc.garbage) at the end), objects_growth (since the first
                       // snapshot), uncollectable (the collector's uncollectable total)
};

// What to do about a finding (report/words.cpp has the advice).
enum class RemedyCode : uint8_t {
  kNone,
  kReleaseKept,        // leaking stacks: what keeps their objects alive
  kSharedCaller,       // a leak spread over many stacks
  kPymalloc,           // pymalloc arena fragmentation
  kGlibc,              // glibc malloc keeping freed memory
  kGlibcOrPymalloc,    // retention no counter explains: both of the above
  kBoundCache,         // a plateau: bound the cache
  kSmallerPasses,      // a working set: only if its peak is too high
  kRunLonger,          // too short to judge
  kGcCollect,          // the collector was off: turn it on, or collect, or break the cycles
  kGcSaveAll,          // gc.garbage grows because gc.DEBUG_SAVEALL is set
  kGcUncollectable,    // gc.garbage holds what the collector could not free
};

// Process-level finding: a leak summary (layer of the fastest stack, or "process" when the
// growth is spread over many stacks), allocator retention (layer "pymalloc", "glibc", or
// "process" when no allocator counter explains it), a plateau (layer of the stack), or a note
// (kInconclusive: too short; layer "process"). It names a stack only through `stack`.
struct Finding {
  Verdict kind = Verdict::kNoLeak;
  FindingCode code = FindingCode::kRunTooShort;
  RemedyCode remedy = RemedyCode::kNone;
  std::string layer;
  double bytes = 0;    // leak: growth after warm-up; retention: retained bytes; plateau: growth
  int64_t stack = -1;  // StackSeries::stack the finding is about (fastest leak, plateau), else -1
  // The numbers its sentence needs (see FindingCode).
  size_t stacks = 0, snapshots = 0, passes = 0;
  double rate_bytes_per_s = 0;  // growth of: all leaking stacks, tracked live memory, or RSS
  double top_rate_bytes_per_s = 0, top_count_per_s = 0;  // the fastest leaking stack
  double live_rate_bytes_per_s = 0;                      // tracked live memory (beside RSS)
  double rss_bytes = 0, live_bytes = 0, peak_live_bytes = 0, arena_bytes = 0, free_bytes = 0;
  double threshold = 0;  // min_rate_bytes_per_s (kSpreadLeak)
  double duration_s = 0, min_duration_s = 0;
  int min_snapshots = 0;
  double objects = 0, objects_growth = 0, uncollectable = 0;  // Python's collector (kGc*)
};

struct VerdictOptions {
  double warmup_fraction = 0.2;        // ignore the first part of the run (imports, caches filling)
  double min_duration_s = 3.0;         // shorter -> inconclusive
  int min_points = 8;                  // fewer snapshots -> inconclusive
  double min_rate_bytes_per_s = 1024;  // slower growth is not reported as a leak (noise floor)
  double alpha = 0.001;                // significance of the growth trend (one-sided)
  double alpha_stop = 0.001;           // significance of "the growth stopped" (plateau vs leak)
  double min_growth_bytes = 64 * 1024; // less growth after warm-up is neither leak nor plateau
  int max_points = 200;                // cap on points per test (groups of snapshots beyond)
  double tail_fraction = 1.0 / 3;      // "the end of the run" for plateau vs leak
  double notable_plateau_bytes = 1 << 20;        // smaller plateaus get no process finding
  size_t max_plateau_findings = 5;
  double retention_min_bytes = 32.0 * (1 << 20); // retained less than this is normal
  double retention_ratio = 1.0;        // retained must be >= this * live bytes
};

struct VerdictResult {
  // leak if any stack leaks (or the tracked total does, spread over many stacks); else
  // allocator-retention; else working-set (the total rose and fell in passes); else plateau (a
  // notable stack plateaued); else no-leak; inconclusive if the run is shorter than
  // min_duration_s or has fewer than min_points.
  Verdict process = Verdict::kInconclusive;
  // Every input stack judged; most severe first: leaks by rate desc, plateaus by growth desc,
  // then no-leak and inconclusive by live bytes desc (ties by stack id).
  std::vector<StackVerdict> stacks;
  std::vector<Finding> findings;  // leak summary, retention, plateaus, notes
  double process_rate_bytes_per_s = 0;  // growth of the tracked live total after warm-up
  double judged_until_s = 0;  // end of the window: the last snapshot, or where a teardown began
  double teardown_s = 0;      // > 0: the run ended with a teardown that began then
  double idle_s = 0;          // wall time of the window the work done does not account for
};

VerdictResult judge(const std::vector<StackSeries>& stacks, const std::vector<ProcessPoint>& process,
                    const VerdictOptions& opt = {});

}  // namespace leakscope::analysis
