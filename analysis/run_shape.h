// The shape of a run, found before any stack is judged (docs/verdicts.md, "Work, idle time,
// teardown and passes"): a clock that advances with the work done (allocations made) instead of
// wall time, the teardown that ends a run (live memory falling as the program exits), and
// passes (live memory rising and falling in cycles: a working set). Pure functions over the
// snapshot grid (ascending, distinct times), deterministic.
#pragma once
#include <cstddef>
#include <vector>

#include "analysis/verdict.h"

namespace leakscope::analysis::shape {

// The work clock over the window grid[base..end]: at each snapshot, the window's start time
// plus the allocations made since then divided by the typical work rate. Idle stretches take no
// time on it; the work clock of a program that works steadily is its wall clock.
struct WorkClock {
  bool valid = false;       // work is known and grew over the window
  std::vector<double> tau;  // tau[k] is the work time of grid[base + k], k = 0 .. end - base
  double rate = 0;          // typical work rate (allocations/s): the work-weighted median rate
  double idle_s = 0;        // wall time of the window the work does not account for (>= 0)
};

// work[i]: allocations made by grid[i] (never decreasing; all 0 when unknown).
WorkClock work_clock(const std::vector<double>& grid, const std::vector<double>& work, size_t base, size_t end);

// The teardown: the run ends with the tracked live total falling from the window's highest
// level, giving back at least half of what the window gained (and at least min_growth_bytes),
// and reaching its low only in the last snapshots. It begins where the growth first came within
// 5% (or twice the noise) of that highest level, since shutting down may hold everything for a
// while before freeing it (asyncio.run waiting for the tasks it cancelled), and it lasts at most
// the window's last tail_fraction. A program that frees and then goes on running has freed its
// memory; one that frees as it exits has not, and is judged as it was when the teardown began.
struct Teardown {
  bool found = false;
  size_t end = 0;           // grid index where the teardown began (the window's end)
  double from = 0, to = 0;  // live total there and at the last snapshot
};

// live[i]: tracked live bytes at grid[i]; the window starts at base.
Teardown find_teardown(const std::vector<double>& grid, const std::vector<double>& live, size_t base,
                       const VerdictOptions& opt);

// Passes: the tracked live total (its trailing minimum over 3 snapshots, so that churn does not
// count) rises and falls by at least a third of its range, and each fall gives back at least
// half of the rise before it. What one pass builds and the next frees is a working set.
struct Passes {
  bool found = false;        // at least two rises with a fall between them, a trough in the window
  bool current_like_before = false;  // the pass in progress at the end is no longer (in time)
                                     // than the earlier ones and no larger (rise) or no higher
                                     // (level), or the run ends falling
  size_t count = 0;          // rises, the pass in progress included
  size_t last_trough = 0;    // grid index where the pass in progress started
  double size = 0;           // the largest rise of a pass, trough to peak (the working set)
  double peak = 0;           // the highest live level up to grid[end]
  double trough = 0;         // live level at the last trough
};

Passes find_passes(const std::vector<double>& grid, const std::vector<double>& live, size_t base, size_t end,
                   const VerdictOptions& opt);

}  // namespace leakscope::analysis::shape
