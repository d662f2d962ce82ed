// Live bytes per symbolized site over the run, for the HTML page's flame graph at any moment
// (docs/exports.md, "HTML"). Bounded whatever the capture: at most kHistorySnapshots snapshots,
// evenly chosen (the last always among them), and the kHistorySites sites with the highest
// peak; the other sites are summed per layer. Built only when asked (BuildOptions::history), so
// text and JSON reports do not pay for it. Not thread-safe.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "report/report.h"

namespace leakscope::analysis {
class Replay;
}
namespace leakscope::report {

class Symbolizer;

inline constexpr size_t kHistorySnapshots = 60;
inline constexpr size_t kHistorySites = 500;

struct HistorySite {
  std::string layer;
  std::vector<FrameOut> frames;  // innermost first; empty for a layer's "other sites"
  std::vector<double> bytes;     // live at each HistoryOut::t_s (estimates when sampled)
};
struct HistoryOut {
  std::vector<double> t_s;         // the chosen snapshots, seconds since the start, ascending
  size_t snapshots = 0;            // how many the capture had to choose from
  std::vector<HistorySite> sites;  // highest peak first
  std::vector<HistorySite> other;  // per layer, the sum of the sites left out
  size_t other_sites = 0;          // how many were left out
};

// Reads the history off a finished replay. `is_arena` is early_arena_flags(rp) (sites.h):
// early pymalloc arenas are taken off their mmap site as `report` does.
std::shared_ptr<const HistoryOut> build_history(const analysis::Replay& rp, Symbolizer& sym,
                                                const std::vector<char>& is_arena);

}  // namespace leakscope::report
