// See metrics.h.
#include "report/metrics.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <string_view>

#include "report/asyncio_report.h"

namespace leakscope::report {

namespace {

constexpr MetricDef kMetrics[] = {
    {"leakscope_live_bytes", "gauge", "layer",
     "Bytes tracked live now, by allocation layer (python, pymem-raw, malloc, mmap)"},
    {"leakscope_live_blocks", "gauge", "layer", "Blocks tracked live now, by allocation layer"},
    {"leakscope_rss_bytes", "gauge", "", "Resident set size of the process at the last snapshot"},
    {"leakscope_memory_bytes", "gauge", "part",
     "RSS and its parts at the last snapshot: rss_anon, rss_file, python_objects, pymalloc_arenas, "
     "pymalloc_free, glibc_in_use, glibc_free, glibc_mmap, mmap, other_rss"},
    {"leakscope_verdict", "gauge", "verdict", "1 for the current verdict (leak, no-leak, inconclusive), 0 for the others"},
    {"leakscope_leaking_sites", "gauge", "", "Sites whose live memory the verdict calls a leak"},
    {"leakscope_leak_rate_bytes_per_second", "gauge", "", "Sum of the leaking sites' growth rates"},
    {"leakscope_asyncio_pending_tasks", "gauge", "", "Pending asyncio tasks at the last census (absent: no census)"},
    {"leakscope_gc_collections_total", "counter", "generation", "Python gc collections per generation (gc.get_stats())"},
    {"leakscope_gc_collected_total", "counter", "generation", "Objects Python's gc collected per generation"},
    {"leakscope_gc_uncollectable_total", "counter", "generation", "Uncollectable objects Python's gc found per generation"},
    {"leakscope_capture_seconds", "gauge", "", "Seconds from the start of tracking to the state shown (the flush this scrape asked for)"},
    {"leakscope_scrape_duration_seconds", "gauge", "", "Seconds this scrape spent flushing and reading the capture"},
};

// One `name{label="value"} number` line. Label values here are our own words (layers, parts,
// verdicts, digits): no escaping needed beyond refusing a quote or backslash.
void sample(std::string& out, const char* name, const char* label, std::string_view value, double v) {
  char num[64];
  if (std::isfinite(v))
    snprintf(num, sizeof num, "%.17g", v);
  else
    snprintf(num, sizeof num, "%s", std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf");
  out += name;
  if (label && *label) {
    out += '{';
    out += label;
    out += "=\"";
    for (char c : value) out += (c == '"' || c == '\\' || c == '\n') ? '_' : c;
    out += "\"}";
  }
  out += ' ';
  out += num;
  out += '\n';
}

}  // namespace

std::span<const MetricDef> metric_table() { return kMetrics; }

std::string prometheus_text(const Report& r, double scrape_s) {
  std::map<std::string, std::pair<double, double>> layers;  // bytes, blocks
  for (const char* l : {"python", "pymem-raw", "malloc", "mmap"}) layers[l];
  for (const auto& [layer, v] : r.live_by_layer) layers[layer] = {v.bytes, v.count};
  double rate = 0;
  for (const LeakOut& l : r.leaks) rate += l.rate_bytes_per_s;
  std::string out;
  for (const MetricDef& m : kMetrics) {
    out += std::string("# HELP ") + m.name + " " + m.help + "\n# TYPE " + m.name + " " + m.type + "\n";
    const std::string_view name = m.name;
    if (name == "leakscope_live_bytes" || name == "leakscope_live_blocks") {
      for (const auto& [layer, v] : layers) sample(out, m.name, "layer", layer, name == "leakscope_live_bytes" ? v.first : v.second);
    } else if (name == "leakscope_rss_bytes") {
      if (r.have_memory) sample(out, m.name, "", "", static_cast<double>(r.rss));
    } else if (name == "leakscope_memory_bytes") {
      if (!r.have_memory) continue;
      const std::pair<const char*, uint64_t> parts[] = {
          {"rss_anon", r.rss_anon},       {"rss_file", r.rss_file},         {"python_objects", r.python_objects},
          {"pymalloc_arenas", r.arena_bytes}, {"pymalloc_free", r.pymalloc_free}, {"glibc_in_use", r.glibc_in_use},
          {"glibc_free", r.glibc_free},   {"glibc_mmap", r.glibc_mmap},     {"mmap", r.live_mmap},
          {"other_rss", r.other_rss}};
      for (const auto& [part, v] : parts)
        if (r.python_version || std::string_view(part).find("py") == std::string_view::npos)
          sample(out, m.name, "part", part, static_cast<double>(v));
    } else if (name == "leakscope_verdict") {
      for (const char* v : {"leak", "no-leak", "inconclusive"}) sample(out, m.name, "verdict", v, r.verdict == v ? 1 : 0);
    } else if (name == "leakscope_leaking_sites") {
      sample(out, m.name, "", "", static_cast<double>(r.leaks.size()));
    } else if (name == "leakscope_leak_rate_bytes_per_second") {
      sample(out, m.name, "", "", rate);
    } else if (name == "leakscope_asyncio_pending_tasks") {
      if (r.asyncio && !r.asyncio->pending.empty()) sample(out, m.name, "", "", r.asyncio->pending.back());
    } else if (name.starts_with("leakscope_gc_")) {
      if (r.gc.empty()) continue;
      const analysis::GcPoint& g = r.gc.back();
      const uint64_t* v = name == "leakscope_gc_collections_total" ? g.collections
                          : name == "leakscope_gc_collected_total" ? g.collected
                                                                   : g.uncollectable;
      for (int gen = 0; gen < 3; ++gen) sample(out, m.name, "generation", std::to_string(gen), static_cast<double>(v[gen]));
    } else if (name == "leakscope_capture_seconds") {
      sample(out, m.name, "", "", r.duration_s);
    } else if (name == "leakscope_scrape_duration_seconds") {
      sample(out, m.name, "", "", scrape_s);
    }
  }
  return out;
}

}  // namespace leakscope::report
