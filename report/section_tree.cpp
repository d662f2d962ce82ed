// The "Processes" section of `leakscope report` (render.h) for a capture written with
// `run --follow-fork` (report/tree.h, docs/process-trees.md): every process of the tree with
// its parent, life, end, peak and verdict; workers recycled while growing; captures unread.
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>

#include "report/render.h"
#include "report/tree.h"
#include "report/words.h"

namespace leakscope::report {

namespace {

using nlohmann::json;

std::string command_of(const std::vector<std::string>& argv) {
  std::string c;
  for (const auto& a : argv) c += (c.empty() ? "" : " ") + a;
  return c.size() > 60 ? c.substr(0, 57) + "..." : c;
}

// Depth-first from the root, children by start time: the tree as an indented list.
void tree_lines(const TreeOut& t, size_t at, int depth, std::ostringstream& o, size_t& shown, size_t limit,
                std::vector<char>& seen) {
  if (seen[at] || depth > 64) return;  // pids reused or forged: never a loop
  seen[at] = 1;
  const ProcessOut& p = t.processes[at];
  if (shown++ < limit) {
    char line[512];
    std::string pid = std::string(static_cast<size_t>(depth) * 2, ' ') + std::to_string(p.pid);
    const std::string growth =
        (p.growth_bytes >= 0 ? "+" : "-") + format_bytes(static_cast<uint64_t>(std::abs(p.growth_bytes)));
    snprintf(line, sizeof line, "  %-12s %7.2f s %8.2f s  %-14s %10s %10s  %-12s %s\n", pid.c_str(), p.start_s,
             p.end_s - p.start_s, p.end.c_str(), format_bytes(p.peak_bytes).c_str(),
             growth.c_str(), p.verdict.c_str(), command_of(p.argv).c_str());
    o << line;
  }
  for (size_t i = 1; i < t.processes.size(); ++i)
    if (i != at && t.processes[i].parent_pid == p.pid && t.processes[i].start_s >= p.start_s)
      tree_lines(t, i, depth + 1, o, shown, limit, seen);
}

std::string tree_text(const Report& r, const RenderOptions& opt) {
  if (!r.tree) return "";
  const TreeOut& t = *r.tree;
  std::ostringstream o;
  size_t leaking = 0;
  for (const auto& p : t.processes) leaking += p.verdict == "leak";
  o << "Processes (run --follow-fork): " << t.processes.size() << ", " << leaking << " leaking\n";
  o << "  PID          START      LIFE   END                  PEAK     GROWTH  VERDICT      COMMAND\n";
  size_t shown = 0;
  const size_t limit = std::max<size_t>(opt.limit * 4, 40);
  std::vector<char> seen(t.processes.size(), 0);
  tree_lines(t, 0, 0, o, shown, limit, seen);
  for (size_t i = 1; i < t.processes.size(); ++i)  // any not reached from the root (a reused pid)
    if (!seen[i]) tree_lines(t, i, 1, o, shown, limit, seen);
  if (shown > limit) o << "  ... " << shown - limit << " more (JSON has every process)\n";
  for (const auto& w : t.recycled) {
    char line[512];
    snprintf(line, sizeof line,
             "  recycled workers of %" PRIu64 ": %zu of %zu workers grew over their life, %s each (median, over "
             "%.1f s): a leak that each new worker starts over\n",
             w.parent_pid, w.growing, w.workers, format_bytes(static_cast<uint64_t>(w.median_growth_bytes)).c_str(),
             w.median_life_s);
    o << line;
  }
  for (const auto& u : t.unreadable) o << "  warning: a capture of the tree cannot be read: " << u << "\n";
  if (t.not_read) o << "  warning: " << t.not_read << " more captures of the tree were not read (at most " << kMaxTreeCaptures << ")\n";
  return o.str();
}

void tree_json(const Report& r, const RenderOptions&, json& j) {
  if (!r.tree) return;
  json ps = json::array();
  for (const auto& p : r.tree->processes)
    ps.push_back({{"pid", p.pid}, {"parent", p.parent_pid ? json(p.parent_pid) : json(nullptr)}, {"command", p.argv},
                  {"capture", p.capture}, {"start_s", p.start_s}, {"end_s", p.end_s}, {"complete", p.complete},
                  {"exit", p.end}, {"verdict", p.verdict}, {"peak_bytes", p.peak_bytes}, {"live_bytes", p.live_bytes},
                  {"inherited_bytes", p.inherited_bytes},
                  {"growth_bytes", p.growth_bytes}, {"leak_rate_bytes_per_s", p.leak_rate_bytes_per_s}});
  j["processes"] = ps;
  json rec = json::array();
  for (const auto& w : r.tree->recycled)
    rec.push_back({{"parent", w.parent_pid}, {"command", w.command}, {"workers", w.workers}, {"growing", w.growing},
                   {"median_growth_bytes", w.median_growth_bytes}, {"median_life_s", w.median_life_s}});
  j["process_tree"] = {{"recycled_workers", rec}, {"unreadable", r.tree->unreadable}, {"not_read", r.tree->not_read}};
}

}  // namespace

extern const ReportSection kTreeSection{"process tree", tree_text, tree_json};

}  // namespace leakscope::report
