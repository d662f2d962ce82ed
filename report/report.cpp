// Report model and renderers: see report.h.
#include "report/report.h"

#include <algorithm>
#include <cmath>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <sstream>
#include <unordered_map>

#include "report/sites.h"

namespace leakscope::report {

std::string format_bytes(uint64_t b) {
  char buf[64];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
  else snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

namespace {
std::string rate_text(double bytes_per_s);

struct Agg {
  uint64_t bytes = 0;
  double count = 0;
};
}  // namespace

Report build_report(const std::string& path) {
  capture::Reader reader(path);
  analysis::Replay rp;
  rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
  reader.read_all(rp);
  rp.finish();
  Report r;
  r.sample_rate = rp.sample_rate();
  if (r.sample_rate)
    r.warnings.push_back("allocations were sampled (mean one sample per " + format_bytes(r.sample_rate) +
                         "): bytes and counts are unbiased estimates");
  r.path = path;
  r.pid = reader.header().pid;
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

  // Arenas pymalloc mapped before the PyMem hooks were installed were recorded as plain
  // mmaps; a tracked mapping that holds live small Python blocks is such an arena: count it as
  // pymalloc memory, not as a separate live mmap.
  std::vector<std::pair<uint64_t, uint64_t>> regions;  // (start, end)
  for (const auto& [addr, e] : rp.live_mmaps()) regions.emplace_back(addr, addr + e.size);
  std::vector<char> is_arena(regions.size(), 0);
  if (!regions.empty()) {
    rp.live_py().for_each([&](const analysis::LiveMap::Entry& e) {
      if (e.size > 512) return;
      auto it = std::upper_bound(regions.begin(), regions.end(), std::make_pair(e.addr, UINT64_MAX));
      if (it == regions.begin()) return;
      --it;
      if (e.addr < it->second) is_arena[static_cast<size_t>(it - regions.begin())] = 1;
    });
  }
  uint64_t early_arena_bytes = 0;
  for (size_t i = 0; i < regions.size(); ++i)
    if (is_arena[i]) {
      early_arena_bytes += regions[i].second - regions[i].first;
      r.live_bytes -= std::min(r.live_bytes, regions[i].second - regions[i].first);
    }

  // Live totals per site (stack, layer), the same for both capture modes.
  std::map<std::pair<uint32_t, uint8_t>, Agg> by_stack;
  uint64_t py_bytes = 0, py_small = 0, live_mmap = 0;
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

  Symbolizer sym(rp);
  std::unordered_map<std::string, size_t> index;
  // Symbolize biggest first so a huge number of tiny stacks does not dominate the time.
  std::vector<std::pair<std::pair<uint32_t, uint8_t>, Agg>> items(by_stack.begin(), by_stack.end());
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.second.bytes > b.second.bytes; });
  for (const auto& [key, agg] : items) {
    std::string layer = analysis::layer_name(static_cast<analysis::Layer>(key.second));
    auto frames = sym.stack(key.first);
    std::string k = frames_key(layer, frames);
    auto it = index.find(k);
    if (it == index.end()) {
      index.emplace(k, r.stacks.size());
      r.stacks.push_back(StackOut{agg.bytes, static_cast<uint64_t>(std::llround(agg.count)), layer, std::move(frames)});
    } else {
      r.stacks[it->second].bytes += agg.bytes;
      r.stacks[it->second].count += static_cast<uint64_t>(std::llround(agg.count));
    }
  }
  std::stable_sort(r.stacks.begin(), r.stacks.end(), [](const StackOut& a, const StackOut& b) { return a.bytes > b.bytes; });

  // ---- verdicts over time, judged per symbolized site (one line may create several kinds of
  // object at different instruction offsets: their series are summed).
  {
    const auto& times = rp.snapshot_times();
    const size_t nsnap = times.size();
    double floor = std::max(16.0 * 1024, static_cast<double>(rp.peak_bytes()) / 5000.0);
    auto series = rp.stack_series(floor);
    struct Group {
      std::string layer;
      std::vector<FrameOut> frames;
      std::vector<double> bytes, count;  // per snapshot index
      size_t first = SIZE_MAX;
    };
    std::vector<Group> groups;
    std::unordered_map<std::string, size_t> gindex;
    for (const auto& ss : series) {
      auto frames = sym.stack(ss.stack);
      std::string k = frames_key(ss.layer, frames);
      auto it = gindex.find(k);
      size_t gi;
      if (it == gindex.end()) {
        gi = groups.size();
        gindex.emplace(k, gi);
        Group g;
        g.layer = ss.layer;
        g.frames = std::move(frames);
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
    for (const auto& f : res.findings)
      r.findings.push_back(FindingOut{analysis::verdict_name(f.kind), f.layer, f.text, f.remedy, f.bytes});
    std::unordered_map<std::string, std::string> site_verdict;
    for (const auto& sv : res.stacks) {
      if (sv.stack >= groups.size()) continue;
      const Group& g = groups[sv.stack];
      site_verdict[frames_key(g.layer, g.frames)] = analysis::verdict_name(sv.verdict);
      if (sv.verdict != analysis::Verdict::kLeak) continue;
      LeakOut l;
      l.layer = g.layer;
      l.bytes = sv.bytes;
      l.count = sv.count;
      l.rate_bytes_per_s = sv.rate_bytes_per_s;
      l.rate_count_per_s = sv.rate_count_per_s;
      l.growth_bytes = sv.growth_bytes;
      l.confidence = sv.confidence;
      l.reason = sv.reason;
      for (size_t i = g.first; i < nsnap; ++i) {
        l.t_s.push_back(times[i]);
        l.series_bytes.push_back(g.bytes[i]);
      }
      l.frames = g.frames;
      r.leaks.push_back(std::move(l));
    }
    // Name the fastest leaking site by its code, not by an internal id.
    if (!r.leaks.empty()) {
      for (auto& f : r.findings) {
        if (f.kind != "leak") continue;
        const LeakOut& top = r.leaks.front();
        std::string where = "?";
        for (const auto& fr : top.frames) {
          if (!fr.native || !fr.file.empty()) {
            where = fr.file + ":" + std::to_string(fr.line) + " in " + fr.function;
            break;
          }
          where = fr.function;
        }
        char buf[1024];
        snprintf(buf, sizeof buf, "%zu site%s leak%s; the fastest, %s, grows by %s (%.0f objects/s) after warm-up.",
                 r.leaks.size(), r.leaks.size() == 1 ? "" : "s", r.leaks.size() == 1 ? "s" : "", where.c_str(),
                 rate_text(top.rate_bytes_per_s).c_str(), top.rate_count_per_s);
        f.text = buf;
      }
    }
    for (auto& so : r.stacks) {
      auto it = site_verdict.find(frames_key(so.layer, so.frames));
      if (it != site_verdict.end()) so.verdict = it->second;
    }
  }

  if (rp.have_stats()) {
    const auto& s = rp.stats();
    r.have_memory = true;
    r.rss = s.rss;
    r.rss_anon = s.rss_anon;
    r.rss_file = s.rss_file;
    r.glibc_in_use = s.glibc_in_use;
    r.glibc_free = s.glibc_free;
    r.glibc_mmap = s.glibc_mmap;
    r.arena_bytes = s.arena_bytes + early_arena_bytes;
    r.python_objects = py_bytes;
    r.pymalloc_free = r.arena_bytes > py_small ? r.arena_bytes - py_small : 0;
    r.live_mmap = live_mmap;
    uint64_t explained = s.glibc_in_use + s.glibc_free + r.arena_bytes + live_mmap;
    r.other_rss = s.rss > explained ? s.rss - explained : 0;
  }
  return r;
}

namespace {
// Unicode block sparkline of `v`, resampled to at most `width` cells (max of each bucket).
std::string sparkline(const std::vector<double>& v, size_t width = 40) {
  static const char* const kBars[] = {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
  if (v.empty()) return "";
  size_t cells = std::min(width, v.size());
  std::vector<double> b(cells, 0);
  for (size_t i = 0; i < v.size(); ++i) {
    size_t c = i * cells / v.size();
    b[c] = std::max(b[c], v[i]);
  }
  double lo = *std::min_element(b.begin(), b.end()), hi = *std::max_element(b.begin(), b.end());
  std::string out;
  for (double x : b) {
    int k = hi > lo ? static_cast<int>((x - lo) / (hi - lo) * 7.0 + 0.5) : 0;
    out += kBars[std::clamp(k, 0, 7)];
  }
  return out;
}

std::string rate_text(double bytes_per_s) {
  if (bytes_per_s >= 1024.0 * 1024 / 60 * 10) return format_bytes(static_cast<uint64_t>(bytes_per_s)) + "/s";
  return format_bytes(static_cast<uint64_t>(bytes_per_s * 60)) + "/min";
}

}  // namespace

std::string render_text(const Report& r, size_t max_stacks) {
  std::ostringstream o;
  o << "leakscope report: " << r.path << "\n";
  std::string cmd;
  for (const auto& a : r.argv) cmd += (cmd.empty() ? "" : " ") + a;
  char line[512];
  snprintf(line, sizeof line, "  %s (pid %" PRIu64 ", %s%.2f s tracked, %s events)\n", cmd.c_str(), r.pid,
           r.python_version ? ("Python " + *r.python_version + ", ").c_str() : "", r.duration_s,
           with_commas(r.events).c_str());
  o << line;
  if (r.thinned)
    o << "  older snapshots thinned (" << r.thinned << (r.thinned == 1 ? " rewrite" : " rewrites") << ", "
      << with_commas(r.snapshots) << " snapshots kept): see docs/architecture.md\n";
  for (const auto& w : r.warnings) o << "  warning: " << w << "\n";
  o << "\n";
  {
    std::string v = r.verdict;
    for (auto& ch : v) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
    o << "Verdict: " << v;
    if (r.process_verdict != r.verdict && !r.process_verdict.empty()) o << " (" << r.process_verdict << ")";
    o << "\n";
    for (const auto& f : r.findings) {
      o << "  - " << f.kind << (f.layer.empty() ? "" : " [" + f.layer + "]") << ": " << f.text << "\n";
      if (!f.remedy.empty()) o << "    remedy: " << f.remedy << "\n";
    }
    if (!r.leaks.empty()) {
      o << "\nLeaking sites, fastest first:\n";
      size_t n = 0;
      for (const auto& l : r.leaks) {
        if (n++ >= max_stacks) break;
        snprintf(line, sizeof line, "#%zu  +%s (%.0f objects/s), %s live now, confidence %.0f%%  [%s]\n", n,
                 rate_text(l.rate_bytes_per_s).c_str(), l.rate_count_per_s, format_bytes(static_cast<uint64_t>(l.bytes)).c_str(),
                 l.confidence * 100, l.layer.c_str());
        o << line;
        o << "      " << sparkline(l.series_bytes) << "\n";
        size_t k = 0;
        for (const auto& f : l.frames) {
          if (k++ >= 12) {
            o << "      ...\n";
            break;
          }
          frame_line(o, f);
        }
      }
    }
    o << "\n";
  }
  o << "Live when tracking stopped: " << format_bytes(r.live_bytes) << " in " << with_commas(r.live_count) << " blocks";
  snprintf(line, sizeof line, " (peak %s at %.2f s)\n", format_bytes(r.peak_bytes).c_str(), r.peak_time_s);
  o << line;
  o << "Allocated while tracking: " << format_bytes(r.alloc_bytes) << " in " << with_commas(r.alloc_count) << " blocks\n";
  if (r.unknown_frees)
    o << "Frees of blocks allocated before tracking began: " << with_commas(r.unknown_frees) << " (ignored)\n";
  if (r.have_memory) {
    o << "\nMemory by layer (last snapshot):\n";
    auto row = [&](const char* name, uint64_t v) {
      snprintf(line, sizeof line, "  %-36s %12s\n", name, format_bytes(v).c_str());
      o << line;
    };
    row("RSS", r.rss);
    row("  anonymous", r.rss_anon);
    row("  file-backed and shared", r.rss_file);
    if (r.python_version) {
      row("live Python objects (PyMem MEM+OBJ)", r.python_objects);
      row("pymalloc arenas", r.arena_bytes);
      row("  free inside pymalloc arenas", r.pymalloc_free);
    }
    row("glibc malloc in use", r.glibc_in_use);
    row("glibc free but retained", r.glibc_free);
    row("anonymous mmap (tracked, live)", r.live_mmap);
    row("rest of RSS (code, stacks, untracked)", r.other_rss);
  }
  if (r.timeline.size() >= 2) {
    o << "\nThe big picture over " << r.timeline.size() << " snapshots (each line scaled on its own):\n";
    auto series = [&](const char* name, double analysis::ProcessPoint::*field) {
      std::vector<double> v;
      double last = 0;
      for (const auto& p : r.timeline) v.push_back(last = p.*field);
      snprintf(line, sizeof line, "  %-24s %s  %s\n", name, sparkline(v).c_str(), format_bytes(static_cast<uint64_t>(last)).c_str());
      o << line;
    };
    series("RSS", &analysis::ProcessPoint::rss);
    series("tracked live", &analysis::ProcessPoint::live);
    if (r.python_version) {
      series("live Python objects", &analysis::ProcessPoint::python);
      series("pymalloc free", &analysis::ProcessPoint::pymalloc_free);
    }
    series("glibc in use", &analysis::ProcessPoint::glibc_in_use);
    series("glibc free, retained", &analysis::ProcessPoint::glibc_free);
  }
  o << "\nLive memory by allocation stack, biggest first:\n";
  if (r.stacks.empty()) o << "  (nothing live)\n";
  size_t shown = 0;
  for (const auto& s : r.stacks) {
    if (shown++ >= max_stacks) {
      o << "  ... " << (r.stacks.size() - max_stacks) << " more stacks (use --limit)\n";
      break;
    }
    snprintf(line, sizeof line, "#%zu  %s in %s blocks  [%s, %s]\n", shown, format_bytes(s.bytes).c_str(),
             with_commas(s.count).c_str(), s.layer.c_str(), s.verdict.c_str());
    o << line;
    if (s.frames.empty()) o << "      <no stack>\n";
    for (const auto& f : s.frames) frame_line(o, f);
  }
  return o.str();
}

nlohmann::json render_json(const Report& r, size_t max_stacks) {
  using nlohmann::json;
  json j;
  j["schema"] = "leakscope.report/2";
  j["verdict"] = r.verdict;
  json findings = json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"kind", f.kind}, {"layer", f.layer}, {"text", f.text}, {"remedy", f.remedy}, {"bytes", f.bytes}});
  j["findings"] = findings;
  j["capture"] = {{"path", r.path},
                  {"pid", r.pid},
                  {"argv", r.argv},
                  {"python_version", r.python_version ? json(*r.python_version) : json(nullptr)},
                  {"native", r.native},
                  {"complete", r.complete},
                  {"duration_s", r.duration_s},
                  {"events", r.events},
                  {"snapshots", r.snapshots},
                  {"thinned", r.thinned},
                  {"attached", r.attached},
                  {"sample_rate", r.sample_rate}};
  j["totals"] = {{"live_bytes", r.live_bytes},   {"live_count", r.live_count},   {"peak_bytes", r.peak_bytes},
                 {"peak_time_s", r.peak_time_s}, {"alloc_count", r.alloc_count}, {"alloc_bytes", r.alloc_bytes},
                 {"unknown_frees", r.unknown_frees}};
  if (r.have_memory) {
    j["memory"] = {{"rss_bytes", r.rss},
                   {"rss_anon_bytes", r.rss_anon},
                   {"rss_file_bytes", r.rss_file},
                   {"python_objects_bytes", r.python_version ? json(r.python_objects) : json(nullptr)},
                   {"pymalloc_arena_bytes", r.python_version ? json(r.arena_bytes) : json(nullptr)},
                   {"pymalloc_free_bytes", r.python_version ? json(r.pymalloc_free) : json(nullptr)},
                   {"glibc_in_use_bytes", r.glibc_in_use},
                   {"glibc_free_bytes", r.glibc_free},
                   {"glibc_mmap_bytes", r.glibc_mmap},
                   {"mmap_bytes", r.live_mmap},
                   {"other_rss_bytes", r.other_rss}};
  } else {
    j["memory"] = nullptr;
  }
  json leaks = json::array();
  for (const auto& l : r.leaks)
    leaks.push_back({{"kind", "leak"}, {"layer", l.layer}, {"bytes", l.bytes}, {"count", l.count},
                     {"rate_bytes_per_s", l.rate_bytes_per_s}, {"rate_count_per_s", l.rate_count_per_s},
                     {"growth_bytes", l.growth_bytes}, {"confidence", l.confidence}, {"reason", l.reason},
                     {"series", {{"t_s", l.t_s}, {"bytes", l.series_bytes}}}, {"frames", frames_json(l.frames)}});
  j["leaks"] = leaks;
  {
    json tl;
    std::vector<double> t, rss, anon, file, live, py, arena, pyfree, gin, gfree, mm;
    for (const auto& p : r.timeline) {
      t.push_back(p.t_s); rss.push_back(p.rss); anon.push_back(p.rss_anon); file.push_back(p.rss_file);
      live.push_back(p.live); py.push_back(p.python); arena.push_back(p.arena); pyfree.push_back(p.pymalloc_free);
      gin.push_back(p.glibc_in_use); gfree.push_back(p.glibc_free); mm.push_back(p.mmap);
    }
    j["timeline"] = {{"t_s", t}, {"rss", rss}, {"rss_anon", anon}, {"rss_file", file}, {"live", live}, {"python", py},
                     {"pymalloc_arena", arena}, {"pymalloc_free", pyfree}, {"glibc_in_use", gin},
                     {"glibc_free", gfree}, {"mmap", mm}};
  }
  json stacks = json::array();
  size_t n = 0;
  for (const auto& s : r.stacks) {
    if (n++ >= max_stacks) break;
    json frames = frames_json(s.frames);
    stacks.push_back({{"bytes", s.bytes}, {"count", s.count}, {"layer", s.layer}, {"verdict", s.verdict}, {"frames", frames}});
  }
  j["stacks"] = stacks;
  j["warnings"] = r.warnings;
  return j;
}

}  // namespace leakscope::report
