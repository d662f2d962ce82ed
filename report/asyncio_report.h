// Pending asyncio tasks in the report (docs/retention.md, "Pending asyncio tasks"): the
// pending count at every snapshot, the tasks grouped by the site that created them (the
// Task object's allocation stack) with what they await, and a finding when they pile up.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/report.h"

namespace leakscope::analysis {
class Replay;
}
namespace leakscope::report {

class Symbolizer;

struct TaskSiteOut {
  std::vector<FrameOut> frames;  // the Task's allocation stack (innermost: the create_task call)
  uint64_t count = 0, unreferenced = 0;
  double oldest_age_s = 0;
  std::vector<std::string> coroutines, awaiting;  // most tasks first
};
struct AsyncioOut {
  std::vector<double> t_s, pending;  // at every snapshot (the last census at or before it)
  uint64_t censuses = 0;             // TASKS records read (thinned like snapshots)
  double sites_at_s = 0;             // the census the sites come from
  bool reach_known = false;          // that census knows which tasks nothing references
  uint64_t unreferenced = 0;
  std::vector<TaskSiteOut> sites;    // most tasks first
  // Growth of the pending count (tasks/s) when it piles up, else nullopt.
  std::optional<double> growth_per_s;
};

// Fills r.asyncio (left null when the capture has no TASKS record) and, when pending tasks
// pile up, a finding. Call after the verdicts are in r.
void add_asyncio(const analysis::Replay& rp, Symbolizer& sym, Report& r);
std::string asyncio_text(const AsyncioOut& a, const RenderOptions& opt);
nlohmann::json asyncio_json(const AsyncioOut& a, const RenderOptions& opt);

}  // namespace leakscope::report
