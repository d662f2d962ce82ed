// Builds the report model from a replayed capture (symbolizing each live stack once) and
// renders it as text or JSON (schema in docs/report-json.md) by walking the report sections
// (render.h). Building is not thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/replay.h"
#include "analysis/verdict.h"
#include "capture/reader.h"
#include "report/retention_report.h"

namespace leakscope::report {

struct FrameOut {
  std::string function, file;
  int line = 0;
  bool native = false;
  std::string module;
  uint64_t address = 0;
  uint64_t module_offset = 0;  // native: address - the module's load bias (same across runs)
};
// run --follow-fork: one process's part of a merged entry (report/tree.h).
struct ProcessShare {
  uint64_t pid = 0;
  double bytes = 0, rate_bytes_per_s = 0;
};
struct StackOut {
  uint64_t bytes = 0, count = 0;
  std::vector<ProcessShare> processes;  // a process tree: where this stack is live (empty: one process)
  std::string layer;
  std::vector<FrameOut> frames;  // innermost first
  std::string verdict = "no-leak";
  std::vector<KeptByOut> kept_alive_by;  // retention paths (docs/retention.md), biggest first
  double retained_bytes = 0;
  std::string site_key;  // frames_key(layer, frames) when built from one capture; not rendered
};
struct LeakOut {
  std::vector<ProcessShare> processes;  // a process tree: the processes this site leaks in
  std::string layer;
  double bytes = 0, count = 0, rate_bytes_per_s = 0, rate_count_per_s = 0, growth_bytes = 0, confidence = 0;
  std::string reason;
  std::vector<double> t_s, series_bytes;
  std::vector<FrameOut> frames;
  std::vector<KeptByOut> kept_alive_by;  // retention paths (docs/retention.md), biggest first
  double retained_bytes = 0;
  std::string site_key;  // frames_key(layer, frames) when built from one capture; not rendered
};
struct FindingOut {
  std::string kind, layer, text, remedy;
  double bytes = 0;
};
struct FindleaksOut;  // report/findleaks_report.h
struct TreeOut;       // report/tree.h
struct HistoryOut;    // report/history.h
class SymbolCache;    // report/sites.h

// How a document is rendered: the CLI's --limit and --all-frames.
struct RenderOptions {
  size_t limit = 10;        // stacks, sites or groups to show; never 0 (the CLI passes the default)
  bool all_frames = false;  // text: every frame of every stack, not folded (report/stack_view.h)
  // pprof of a profile: the sample type pprof shows by default (inuse_space, or alloc_space for
  // `--serve`'s /debug/pprof/allocs); null or unknown: inuse_space.
  const char* pprof_sample_type = nullptr;
};

struct Report {
  std::string path;
  uint64_t pid = 0;
  uint64_t sample_rate = 0;  // 0: every allocation recorded; else figures are estimates
  std::vector<std::string> argv;
  std::optional<std::string> python_version;
  bool native = false, complete = false;
  double duration_s = 0;
  uint64_t events = 0;
  uint64_t snapshots = 0, thinned = 0;
  bool attached = false;  // `leakscope attach`: tracking began in a running process
  uint64_t start_unix_ns = 0;  // the header's start time (a forked child's: its fork)
  std::string parent_capture;  // run --follow-fork: a child names its parent's capture (a base name)
  uint64_t parent_pid = 0;
  uint64_t inherited_bytes = 0;  // a forked child: live at the fork, from its parent
  std::string stop_reason;     // the STOP record's reason ("" when none)
  std::map<uint64_t, std::string> child_exits;  // --follow-fork: pid -> "exit N" | "signal N", as reaped
  uint64_t live_bytes = 0, live_count = 0, peak_bytes = 0, alloc_count = 0, alloc_bytes = 0, unknown_frees = 0;
  double peak_time_s = 0;
  bool have_memory = false;
  uint64_t rss = 0, rss_anon = 0, rss_file = 0, python_objects = 0, arena_bytes = 0, pymalloc_free = 0,
           glibc_in_use = 0, glibc_free = 0, glibc_mmap = 0, other_rss = 0, live_mmap = 0;
  std::vector<StackOut> stacks;  // biggest first (the BuildOptions::max_stacks biggest)
  struct LayerLive {
    double bytes = 0, count = 0;
  };
  std::map<std::string, LayerLive> live_by_layer;  // every live stack's, by layer (a tree: summed)
  std::vector<std::string> warnings;
  std::string verdict = "inconclusive";  // leak | no-leak | inconclusive
  std::string process_verdict;           // the engine's own: leak, plateau, allocator-retention...
  std::vector<FindingOut> findings;
  std::vector<LeakOut> leaks;            // most severe first
  std::vector<analysis::ProcessPoint> timeline;
  // run --findleaks: the reachability check made when tracking stopped (null: none).
  std::shared_ptr<const FindleaksOut> findleaks;
  // Pending asyncio tasks (null: the capture has no census; report/asyncio_report.h).
  std::shared_ptr<const struct AsyncioOut> asyncio;
  // Retention paths when the run ended (null: the capture has none).
  std::shared_ptr<const RetentionOut> retention;
  // Python's cyclic garbage collector at each snapshot (GCSTATS records; empty: none) and the
  // exact census made at exit, if any (docs/report-json.md, "gc").
  std::vector<analysis::GcPoint> gc;
  std::optional<analysis::GcCensus> gc_census;
  // Live bytes per site at evenly chosen snapshots (null unless BuildOptions::history).
  std::shared_ptr<const HistoryOut> history;
  // run --follow-fork, the root's report: every process of the tree (null: a single process).
  // Then `leaks` and `stacks` are merged across the processes (ProcessShare).
  std::shared_ptr<const TreeOut> tree;
};

// What build_report adds beyond what every format uses (render.h: build_options).
struct BuildOptions {
  bool history = false;  // Report::history, for the HTML page
  bool tree = true;      // a root capture: find and merge the captures of its forked children
  SymbolCache* symbols = nullptr;  // kept between reports by a long-lived caller (sites.h)
  // Report::stacks keeps this many sites (the biggest); /metrics needs none, only the layers'
  // totals. Leaks, verdicts and live_by_layer are unaffected.
  size_t max_stacks = SIZE_MAX;
};

// Reads and analyses a capture. Throws capture::CaptureError on a bad file. `progress` (may be
// null) is told how far reading the file has got.
Report build_report(const std::string& path, const BuildOptions& opt = {}, const capture::ReadProgress& progress = {});
// The exit status `run --fail-on-leak` uses when the verdict is leak (docs/report-json.md).
inline constexpr int kLeakExitStatus = 86;
// The sections of report_sections() (render.h) in order, as text or as one JSON document.
std::string render_text(const Report& r, const RenderOptions& opt);
nlohmann::json render_json(const Report& r, const RenderOptions& opt);

}  // namespace leakscope::report
