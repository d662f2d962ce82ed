// The report model: see report.h. Its renderers are the sections in sections.cpp.
#include "report/report.h"
#include "report/tree.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <unordered_map>

#include "analysis/collector.h"
#include "analysis/findleaks_record.h"
#include "report/asyncio_report.h"
#include "report/findleaks_report.h"
#include "report/history.h"
#include "report/sites.h"
#include "report/words.h"

namespace leakscope::report {

namespace {

struct Agg {
  uint64_t bytes = 0;
  double count = 0;
};

// The capture's own facts: what ran, for how long, how complete, and the warnings about it.
void read_info(const capture::Reader& reader, const analysis::Replay& rp, Report& r) {
  r.sample_rate = rp.sample_rate();
  if (r.sample_rate)
    r.warnings.push_back("allocations were sampled (mean one sample per " + format_bytes(r.sample_rate) +
                         "): bytes and counts are unbiased estimates");
  r.pid = reader.header().pid;
  r.start_unix_ns = reader.header().start_time_ns;
  if (auto it = rp.info().find("parent_capture"); it != rp.info().end()) r.parent_capture = it->second;
  if (auto it = rp.info().find("parent_pid"); it != rp.info().end())
    r.parent_pid = std::strtoull(it->second.c_str(), nullptr, 10);
  r.stop_reason = rp.stop_reason();
  if (auto it = rp.info().find("inherited_bytes"); it != rp.info().end())
    r.inherited_bytes = std::strtoull(it->second.c_str(), nullptr, 10);
  if (!r.parent_capture.empty())
    r.warnings.push_back("a process of a tree (docs/process-trees.md): forked or started by process " +
                         std::to_string(r.parent_pid) + " (capture " + r.parent_capture + ")" +
                         (r.inherited_bytes ? "; " + format_bytes(r.inherited_bytes) + " live at the fork came from it"
                                            : std::string()));
  for (auto it = rp.info().lower_bound("child_exit "); it != rp.info().end() && it->first.rfind("child_exit ", 0) == 0; ++it)
    r.child_exits[std::strtoull(it->first.c_str() + 11, nullptr, 10)] = it->second;
  r.native = (reader.header().flags & capture::kFlagNative) != 0;
  r.events = reader.events();
  r.complete = rp.stopped() && !reader.truncated();
  r.duration_s = static_cast<double>(rp.last_ns()) / 1e9;
  if (auto it = rp.info().find("argv"); it != rp.info().end()) {
    std::string cur;
    for (char ch : it->second) {
      if (ch == 0) {
        r.argv.push_back(cur);
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!cur.empty()) r.argv.push_back(cur);
  }
  if (auto it = rp.info().find("python_version"); it != rp.info().end()) r.python_version = it->second;
  r.snapshots = rp.snapshots();
  r.attached = rp.info().count("attached") > 0;
  if (r.attached)
    r.warnings.push_back("attached to a running process: blocks allocated before the attach are unknown (their frees "
                         "are ignored) and growth is judged from the moment of attaching");
  if (auto it = rp.info().find("thinned"); it != rp.info().end()) r.thinned = std::strtoull(it->second.c_str(), nullptr, 10);
  // Native stacks are always recorded for a process that is not Python.
  if (!r.python_version) r.native = true;
  if (reader.truncated())
    r.warnings.push_back("the capture ends inside a chunk: the process was killed while writing; showing everything up to the last complete chunk");
  else if (!rp.stopped())
    r.warnings.push_back("the capture has no clean stop: the process was killed or exited without running exit handlers; figures are as of the last flush");
  for (const auto& m : rp.messages()) r.warnings.push_back("agent: " + m);
  r.live_bytes = rp.live_bytes();
  r.peak_bytes = rp.peak_bytes();
  r.peak_time_s = static_cast<double>(rp.peak_ns()) / 1e9;
  r.alloc_count = rp.alloc_count();
  r.alloc_bytes = rp.alloc_bytes();
  r.unknown_frees = rp.unknown_frees();
}

// Early pymalloc arenas (sites.h): their bytes come off r.live_bytes and go to *arena_bytes.
std::vector<char> early_arenas(const analysis::Replay& rp, Report& r, uint64_t* arena_bytes) {
  std::vector<char> is_arena = early_arena_flags(rp);
  size_t i = 0;
  for (const auto& [addr, e] : rp.live_mmaps())
    if (is_arena[i++]) {
      *arena_bytes += e.size;
      r.live_bytes -= std::min(r.live_bytes, e.size);
    }
  return is_arena;
}

// Live totals per site (stack, layer), the same for both capture modes, and per layer.
struct LiveSites {
  std::map<std::pair<uint32_t, uint8_t>, Agg> by_stack;
  uint64_t py_bytes = 0;   // live Python objects
  uint64_t py_small = 0;   // of which small blocks (pymalloc), rounded up to size classes
  uint64_t live_mmap = 0;  // live anonymous mmaps that are not early arenas
};

LiveSites live_sites(const analysis::Replay& rp, const std::vector<char>& is_arena, Report& r) {
  LiveSites ls;
  auto& by_stack = ls.by_stack;
  uint64_t &py_bytes = ls.py_bytes, &py_small = ls.py_small, &live_mmap = ls.live_mmap;
  double live_count = 0;
  for (const auto& st : rp.site_totals()) {
    auto& a = by_stack[{st.stack, st.layer}];
    a.bytes += static_cast<uint64_t>(std::llround(st.bytes));
    a.count += st.count;
    live_count += st.count;
    if (st.layer == static_cast<uint8_t>(analysis::Layer::kPython)) py_bytes += static_cast<uint64_t>(std::llround(st.bytes));
    if (st.layer == static_cast<uint8_t>(analysis::Layer::kMmap)) live_mmap += static_cast<uint64_t>(std::llround(st.bytes));
  }
  {  // early arenas are pymalloc memory, not a site of their own
    size_t i = 0;
    for (const auto& [addr, e] : rp.live_mmaps()) {
      if (!is_arena[i++]) continue;
      auto it = by_stack.find({e.stack, static_cast<uint8_t>(analysis::Layer::kMmap)});
      if (it == by_stack.end()) continue;
      it->second.bytes -= std::min<uint64_t>(it->second.bytes, e.size);
      it->second.count = std::max(0.0, it->second.count - 1);
      live_count = std::max(0.0, live_count - 1);
      live_mmap -= std::min<uint64_t>(live_mmap, e.size);
      if (it->second.bytes == 0) by_stack.erase(it);
    }
  }
  if (rp.aggregate()) {
    py_small = py_bytes;  // sizes of individual blocks are not in an aggregate capture
  } else {
    rp.live_py().for_each([&](const analysis::LiveMap::Entry& e) {
      if (e.layer == static_cast<uint8_t>(analysis::Layer::kPython) && e.size <= 512)
        py_small += static_cast<uint64_t>(std::llround(static_cast<double>((e.size + 15) / 16 * 16) * rp.weight(e.size)));
    });
  }
  r.live_count = static_cast<uint64_t>(std::llround(live_count));
  return ls;
}

// r.stacks: live sites symbolized and merged by site key, biggest first.
void symbolize_sites(const LiveSites& ls, Symbolizer& sym, size_t max_stacks, Report& r) {
  std::unordered_map<uint32_t, size_t> index;  // site number -> r.stacks
  // Symbolize biggest first so a huge number of tiny stacks does not dominate the time.
  std::vector<std::pair<std::pair<uint32_t, uint8_t>, Agg>> items(ls.by_stack.begin(), ls.by_stack.end());
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.second.bytes > b.second.bytes; });
  for (const auto& [key, agg] : items) {
    std::string layer = analysis::layer_name(static_cast<analysis::Layer>(key.second));
    Report::LayerLive& total = r.live_by_layer[layer];
    total.bytes += static_cast<double>(agg.bytes);
    total.count += std::round(agg.count);
    if (max_stacks == 0) continue;
    const uint32_t k = sym.site(key.first, layer);
    auto it = index.find(k);
    if (it == index.end()) {
      if (r.stacks.size() >= max_stacks) continue;
      index.emplace(k, r.stacks.size());
      StackOut so;
      so.bytes = agg.bytes;
      so.count = static_cast<uint64_t>(std::llround(agg.count));
      so.layer = layer;
      so.frames = sym.stack(key.first);
      so.site_key = sym.key(key.first, layer);
      r.stacks.push_back(std::move(so));
    } else {
      r.stacks[it->second].bytes += agg.bytes;
      r.stacks[it->second].count += static_cast<uint64_t>(std::llround(agg.count));
    }
  }
  std::stable_sort(r.stacks.begin(), r.stacks.end(), [](const StackOut& a, const StackOut& b) { return a.bytes > b.bytes; });
}

// A symbolized site over time: the series of all stacks that share its frames and layer (one
// line may create several kinds of object at different instruction offsets: their series are
// summed).
struct Group {
  std::string layer, key;
  std::vector<FrameOut> frames;
  std::vector<double> bytes, count;  // per snapshot index
  size_t first = SIZE_MAX;           // first snapshot index the site was seen at
};

std::vector<Group> site_series(const analysis::Replay& rp, Symbolizer& sym) {
  const size_t nsnap = rp.snapshot_times().size();
  double floor = std::max(16.0 * 1024, static_cast<double>(rp.peak_bytes()) / 5000.0);
  auto series = rp.stack_series(floor);
  std::vector<Group> groups;
  std::unordered_map<uint32_t, size_t> gindex;  // site number -> groups
  for (const auto& ss : series) {
    const uint32_t k = sym.site(ss.stack, ss.layer);
    auto it = gindex.find(k);
    size_t gi;
    if (it == gindex.end()) {
      gi = groups.size();
      gindex.emplace(k, gi);
      Group g;
      g.layer = ss.layer;
      g.key = sym.key(ss.stack, ss.layer);
      g.frames = sym.stack(ss.stack);
      g.bytes.assign(nsnap, 0);
      g.count.assign(nsnap, 0);
      groups.push_back(std::move(g));
    } else {
      gi = it->second;
    }
    Group& g = groups[gi];
    size_t off = nsnap - ss.points.size();
    for (size_t i = 0; i < ss.points.size(); ++i) {
      g.bytes[off + i] += ss.points[i].bytes;
      g.count[off + i] += ss.points[i].count;
    }
    g.first = std::min(g.first, off);
  }
  return groups;
}

// "file:line in function" of the innermost frame with a source location (else the outermost
// native function name), to name a site in a sentence.
std::string site_name(const std::vector<FrameOut>& frames) {
  std::string where = "?";
  for (const auto& fr : frames) {
    if (!fr.native || !fr.file.empty()) return fr.file + ":" + std::to_string(fr.line) + " in " + fr.function;
    where = fr.function;
  }
  return where;
}

// Verdicts over time, judged per symbolized site: the verdict, the findings in words, the
// leaking sites, and each live stack's verdict.
void add_verdicts(const analysis::Replay& rp, Symbolizer& sym, Report& r) {
  const auto& times = rp.snapshot_times();
  const size_t nsnap = times.size();
  std::vector<Group> groups = site_series(rp, sym);
  std::vector<analysis::StackSeries> judged;
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    analysis::StackSeries ss;
    ss.stack = static_cast<uint32_t>(gi);
    ss.layer = groups[gi].layer;
    for (size_t i = groups[gi].first; i < nsnap; ++i) ss.points.push_back({times[i], groups[gi].bytes[i], groups[gi].count[i]});
    judged.push_back(std::move(ss));
  }
  r.timeline = rp.process_series();
  auto res = analysis::judge(judged, r.timeline);
  r.process_verdict = analysis::verdict_name(res.process);
  r.verdict = res.process == analysis::Verdict::kLeak ? "leak"
              : res.process == analysis::Verdict::kInconclusive ? "inconclusive"
                                                                 : "no-leak";
  std::unordered_map<std::string, std::string> site_verdict;
  for (const auto& sv : res.stacks) {
    if (sv.stack >= groups.size()) continue;
    const Group& g = groups[sv.stack];
    site_verdict[g.key] = analysis::verdict_name(sv.verdict);
    if (sv.verdict != analysis::Verdict::kLeak) continue;
    LeakOut l;
    l.layer = g.layer;
    l.bytes = sv.bytes;
    l.count = sv.count;
    l.rate_bytes_per_s = sv.rate_bytes_per_s;
    l.rate_count_per_s = sv.rate_count_per_s;
    l.growth_bytes = sv.growth_bytes;
    l.confidence = sv.confidence;
    l.reason = reason_text(sv.reason);
    for (size_t i = g.first; i < nsnap; ++i) {
      l.t_s.push_back(times[i]);
      l.series_bytes.push_back(g.bytes[i]);
    }
    l.frames = g.frames;
    l.site_key = g.key;
    r.leaks.push_back(std::move(l));
  }
  analysis::collector_findings(rp.gc_series(), r.timeline, res.findings);
  for (const auto& f : res.findings) {
    FindingOut out{analysis::verdict_name(f.kind), f.layer, finding_text(f), remedy_text(f.remedy), f.bytes};
    // With symbolized sites, a leak names the fastest leaking site by its code, not by an id.
    if (f.kind == analysis::Verdict::kLeak && !r.leaks.empty()) {
      const LeakOut& top = r.leaks.front();
      out.text = leaking_sites_text(r.leaks.size(), site_name(top.frames), top.rate_bytes_per_s, top.rate_count_per_s);
    }
    r.findings.push_back(std::move(out));
  }
  for (auto& so : r.stacks) {
    auto it = site_verdict.find(so.site_key);
    if (it != site_verdict.end()) so.verdict = it->second;
  }
}

// Memory by layer from the last STATS record, with the tracked layers from the live sites.
void add_memory(const analysis::Replay& rp, const LiveSites& ls, uint64_t early_arena_bytes, Report& r) {
  if (!rp.have_stats()) return;
  const auto& s = rp.stats();
  r.have_memory = true;
  r.rss = s.rss;
  r.rss_anon = s.rss_anon;
  r.rss_file = s.rss_file;
  r.glibc_in_use = s.glibc_in_use;
  r.glibc_free = s.glibc_free;
  r.glibc_mmap = s.glibc_mmap;
  r.arena_bytes = s.arena_bytes + early_arena_bytes;
  r.python_objects = ls.py_bytes;
  r.pymalloc_free = r.arena_bytes > ls.py_small ? r.arena_bytes - ls.py_small : 0;
  r.live_mmap = ls.live_mmap;
  uint64_t explained = s.glibc_in_use + s.glibc_free + r.arena_bytes + ls.live_mmap;
  r.other_rss = s.rss > explained ? s.rss - explained : 0;
}

}  // namespace

Report build_report(const std::string& path, const BuildOptions& opt, const capture::ReadProgress& progress) {
  capture::Reader reader(path);
  reader.set_progress(progress);
  analysis::Replay rp;
  rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
  reader.read_all(rp);
  rp.finish();
  Report r;
  r.path = path;
  read_info(reader, rp, r);
  uint64_t early_arena_bytes = 0;
  std::vector<char> is_arena = early_arenas(rp, r, &early_arena_bytes);
  LiveSites ls = live_sites(rp, is_arena, r);
  Symbolizer sym(rp, opt.symbols ? &opt.symbols->process(reader.header().pid, reader.header().start_time_ns, rp)
                                 : nullptr);
  symbolize_sites(ls, sym, opt.max_stacks, r);
  add_verdicts(rp, sym, r);
  if (opt.history) r.history = build_history(rp, sym, is_arena);
  add_memory(rp, ls, early_arena_bytes, r);
  if (!rp.findleaks_payload().empty())
    r.findleaks = std::make_shared<FindleaksOut>(findleaks_out(analysis::decode_findleaks(rp.findleaks_payload()), sym));
  add_retention(rp, sym, r);
  add_asyncio(rp, sym, r);
  r.gc = rp.gc_series();
  if (const analysis::GcCensus* c = rp.gc_census()) r.gc_census = *c;
  if (opt.tree && r.parent_capture.empty()) add_tree(opt, r);
  return r;
}

}  // namespace leakscope::report
