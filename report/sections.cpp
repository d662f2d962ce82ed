// The sections of `leakscope report` (render.h): each renders one part of the Report as text
// and as JSON keys (docs/report-json.md). Their order is the table in render.cpp.
#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <sstream>

#include "report/render.h"
#include "report/sites.h"
#include "report/stack_view.h"
#include "report/words.h"

namespace leakscope::report {

namespace {

using nlohmann::json;

// ---- header: what was run, the capture, warnings

std::string header_text(const Report& r, const RenderOptions&) {
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
  return o.str();
}

void header_json(const Report& r, const RenderOptions&, json& j) {
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
  j["warnings"] = r.warnings;
}

// ---- the verdict and its findings

std::string verdict_text(const Report& r, const RenderOptions&) {
  std::ostringstream o;
  std::string v = r.verdict;
  for (auto& ch : v) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
  o << "Verdict: " << v;
  if (r.process_verdict != r.verdict && !r.process_verdict.empty()) o << " (" << r.process_verdict << ")";
  o << "\n";
  for (const auto& f : r.findings) {
    o << "  - " << f.kind << (f.layer.empty() ? "" : " [" + f.layer + "]") << ": " << f.text << "\n";
    if (!f.remedy.empty()) o << "    remedy: " << f.remedy << "\n";
  }
  return o.str();
}

void verdict_json(const Report& r, const RenderOptions&, json& j) {
  j["verdict"] = r.verdict;
  json findings = json::array();
  for (const auto& f : r.findings)
    findings.push_back({{"kind", f.kind}, {"layer", f.layer}, {"text", f.text}, {"remedy", f.remedy}, {"bytes", f.bytes}});
  j["findings"] = findings;
}

// ---- leaking sites, fastest first (text: up to `limit`; JSON: all)

// A merged entry of a process tree: in how many processes, at what rate in each (the first few).
std::string processes_text(const std::vector<ProcessShare>& ps) {
  std::ostringstream o;
  o << "      in " << ps.size() << (ps.size() == 1 ? " process:" : " processes:");
  for (size_t i = 0; i < ps.size() && i < 6; ++i)
    o << (i ? ", " : " ") << "pid " << ps[i].pid << " +" << rate_text(ps[i].rate_bytes_per_s);
  if (ps.size() > 6) o << ", ...";
  o << "\n";
  return o.str();
}

json processes_json(const std::vector<ProcessShare>& ps) {
  json a = json::array();
  for (const auto& p : ps) a.push_back({{"pid", p.pid}, {"bytes", p.bytes}, {"rate_bytes_per_s", p.rate_bytes_per_s}});
  return a;
}

std::string leaks_text(const Report& r, const RenderOptions& opt) {
  if (r.leaks.empty()) return "";
  std::ostringstream o;
  char line[512];
  o << "Leaking sites, fastest first:\n";
  size_t n = 0;
  bool folded = false;
  for (const auto& l : r.leaks) {
    if (n++ >= opt.limit) break;
    snprintf(line, sizeof line, "#%zu  +%s (%.0f objects/s), %s live now, confidence %.0f%%  [%s]\n", n,
             rate_text(l.rate_bytes_per_s).c_str(), l.rate_count_per_s, format_bytes(static_cast<uint64_t>(l.bytes)).c_str(),
             l.confidence * 100, l.layer.c_str());
    o << line;
    o << "      " << sparkline(l.series_bytes) << "\n";
    if (!l.processes.empty()) o << processes_text(l.processes);
    folded |= stack_text(o, l.frames, opt.all_frames);
    o << kept_alive_text(l.kept_alive_by, l.retained_bytes, "      ");
  }
  if (folded) o << "  " << fold_note_text() << "\n";
  return o.str();
}

void leaks_json(const Report& r, const RenderOptions&, json& j) {
  json leaks = json::array();
  for (const auto& l : r.leaks)
    leaks.push_back({{"kind", "leak"}, {"layer", l.layer}, {"bytes", l.bytes}, {"count", l.count},
                     {"rate_bytes_per_s", l.rate_bytes_per_s}, {"rate_count_per_s", l.rate_count_per_s},
                     {"growth_bytes", l.growth_bytes}, {"confidence", l.confidence}, {"reason", l.reason},
                     {"series", {{"t_s", l.t_s}, {"bytes", l.series_bytes}}}, {"frames", frames_json(l.frames)},
                     {"kept_alive_by", kept_alive_paths(l.kept_alive_by)}, {"kept_alive_by_groups", kept_alive_json(l.kept_alive_by)},
                     {"retained_bytes", l.retained_bytes}});
  for (size_t i = 0; i < r.leaks.size(); ++i)
    if (!r.leaks[i].processes.empty()) leaks[i]["processes"] = processes_json(r.leaks[i].processes);
  j["leaks"] = leaks;
}

// ---- totals: live when tracking stopped, peak, allocated

std::string totals_text(const Report& r, const RenderOptions&) {
  std::ostringstream o;
  char line[512];
  o << "Live when tracking stopped: " << format_bytes(r.live_bytes) << " in " << with_commas(r.live_count) << " blocks";
  snprintf(line, sizeof line, " (peak %s at %.2f s)\n", format_bytes(r.peak_bytes).c_str(), r.peak_time_s);
  o << line;
  o << "Allocated while tracking: " << format_bytes(r.alloc_bytes) << " in " << with_commas(r.alloc_count) << " blocks\n";
  if (r.unknown_frees)
    o << "Frees of blocks allocated before tracking began: " << with_commas(r.unknown_frees) << " (ignored)\n";
  return o.str();
}

void totals_json(const Report& r, const RenderOptions&, json& j) {
  j["totals"] = {{"live_bytes", r.live_bytes},   {"live_count", r.live_count},   {"peak_bytes", r.peak_bytes},
                 {"peak_time_s", r.peak_time_s}, {"alloc_count", r.alloc_count}, {"alloc_bytes", r.alloc_bytes},
                 {"unknown_frees", r.unknown_frees}};
}

// ---- memory by layer at the last snapshot (only with STATS records)

std::string memory_text(const Report& r, const RenderOptions&) {
  if (!r.have_memory) return "";
  std::ostringstream o;
  char line[512];
  o << "Memory by layer (last snapshot):\n";
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
  return o.str();
}

void memory_json(const Report& r, const RenderOptions&, json& j) {
  if (!r.have_memory) {
    j["memory"] = nullptr;
    return;
  }
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
}

// ---- the big picture: memory by layer at every snapshot

std::string timeline_text(const Report& r, const RenderOptions&) {
  if (r.timeline.size() < 2) return "";
  std::ostringstream o;
  char line[512];
  o << "The big picture over " << r.timeline.size() << " snapshots (each line scaled on its own):\n";
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
  return o.str();
}

void timeline_json(const Report& r, const RenderOptions&, json& j) {
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

// ---- live memory by allocation stack, biggest first (up to `limit`)

std::string stacks_text(const Report& r, const RenderOptions& opt) {
  std::ostringstream o;
  char line[512];
  o << "Live memory by allocation stack, biggest first:\n";
  if (r.stacks.empty()) o << "  (nothing live)\n";
  size_t shown = 0;
  bool folded = false;
  for (const auto& s : r.stacks) {
    if (shown++ >= opt.limit) {
      o << "  ... " << (r.stacks.size() - opt.limit) << " more stacks (use --limit)\n";
      break;
    }
    snprintf(line, sizeof line, "#%zu  %s in %s blocks  [%s, %s]\n", shown, format_bytes(s.bytes).c_str(),
             with_commas(s.count).c_str(), s.layer.c_str(), s.verdict.c_str());
    o << line;
    folded |= stack_text(o, s.frames, opt.all_frames);
  }
  if (folded) o << "  " << fold_note_text() << "\n";
  return o.str();
}

void stacks_json(const Report& r, const RenderOptions& opt, json& j) {
  json stacks = json::array();
  size_t n = 0;
  for (const auto& s : r.stacks) {
    if (n++ >= opt.limit) break;
    json frames = frames_json(s.frames);
    stacks.push_back({{"bytes", s.bytes}, {"count", s.count}, {"layer", s.layer}, {"verdict", s.verdict}, {"frames", frames},
                      {"kept_alive_by", kept_alive_paths(s.kept_alive_by)}, {"retained_bytes", s.retained_bytes}});
    if (!s.processes.empty()) stacks.back()["processes"] = processes_json(s.processes);
  }
  j["stacks"] = stacks;
}

}  // namespace

extern const ReportSection kHeaderSection{"header", header_text, header_json};
extern const ReportSection kVerdictSection{"verdict", verdict_text, verdict_json};
extern const ReportSection kLeakingSitesSection{"leaking sites", leaks_text, leaks_json};
extern const ReportSection kTotalsSection{"totals", totals_text, totals_json};
extern const ReportSection kMemorySection{"memory by layer", memory_text, memory_json};
extern const ReportSection kTimelineSection{"big picture", timeline_text, timeline_json};
extern const ReportSection kStacksSection{"stacks", stacks_text, stacks_json};

}  // namespace leakscope::report
