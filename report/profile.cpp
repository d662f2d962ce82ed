// The profile of one moment of a capture: see profile.h and docs/exports.md.
#include "report/profile.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <unordered_map>

#include "analysis/replay_until.h"
#include "report/sites.h"

namespace leakscope::report {

std::string frame_label(const FrameOut& f) {
  if (!f.native) {
    std::string fn = f.function.empty() ? "<unknown>" : f.function;
    return fn + " (" + (f.file.empty() ? "?" : f.file) + ":" + std::to_string(f.line) + ")";
  }
  if (!f.function.empty() && f.function != "??") return f.function;
  char buf[64];
  if (!f.module.empty()) {
    std::string mod = f.module;
    if (auto p = mod.rfind('/'); p != std::string::npos) mod = mod.substr(p + 1);
    snprintf(buf, sizeof buf, "+0x%" PRIx64, f.module_offset);
    return mod + buf;
  }
  snprintf(buf, sizeof buf, "0x%" PRIx64, f.address);
  return buf;
}

Profile build_profile(const std::string& path, std::optional<double> at_s, const capture::ReadProgress& progress,
                      SymbolCache* symbols) {
  if (at_s && (!std::isfinite(*at_s) || *at_s < 0))
    throw std::invalid_argument("--at takes seconds since the start of the capture, 0 or more");
  capture::Reader reader(path);
  reader.set_progress(progress);
  analysis::Replay rp;
  rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
  Profile p;
  if (at_s) {
    // 2^63 ns is 292 years: any later moment is the end.
    const double ns = std::min(*at_s * 1e9, 9.2e18);
    analysis::ReplayUntil until(rp, static_cast<uint64_t>(ns));
    reader.read_all(until);
    p.at_end = !until.cut();
  } else {
    reader.read_all(rp);
  }
  rp.finish();
  p.path = path;
  p.pid = reader.header().pid;
  p.start_unix_ns = reader.header().start_time_ns;
  p.at_s = static_cast<double>(rp.last_ns()) / 1e9;
  p.sample_rate = rp.sample_rate();
  p.alloc_exact = !rp.aggregate();
  p.modules = rp.modules();
  if (auto it = rp.info().find("python_version"); it != rp.info().end()) p.python_version = it->second;
  if (auto it = rp.info().find("argv"); it != rp.info().end()) {
    std::string cur;
    for (char ch : it->second + std::string(1, '\0')) {
      if (ch) {
        cur += ch;
      } else if (!cur.empty()) {
        p.argv.push_back(cur);
        cur.clear();
      }
    }
  }
  if (p.sample_rate)
    p.notes.push_back("allocations were sampled (mean one sample per " + std::to_string(p.sample_rate) +
                      " bytes): values are unbiased estimates");
  if (!p.alloc_exact)
    p.notes.push_back("aggregate capture: alloc_* values are each site's increases between snapshots, a lower bound of "
                      "what it allocated");
  if (!p.at_end) p.notes.push_back("the state at " + std::to_string(p.at_s) + " s after the start");

  // Live and allocated per (stack, layer), less the early arenas (as `report` counts them).
  std::vector<analysis::Replay::SiteTotal> totals = rp.site_totals(true);
  std::vector<char> is_arena = early_arena_flags(rp);
  std::unordered_map<uint64_t, double> arena_bytes;  // stack * 4 + layer -> bytes to take off
  {
    size_t i = 0;
    for (const auto& [addr, e] : rp.live_mmaps())
      if (is_arena[i++]) arena_bytes[static_cast<uint64_t>(e.stack) * 4 + static_cast<uint64_t>(analysis::Layer::kMmap)] += static_cast<double>(e.size);
  }
  Symbolizer sym(rp, symbols ? &symbols->process(p.pid, p.start_unix_ns, rp) : nullptr);
  std::unordered_map<std::string, size_t> index;
  std::sort(totals.begin(), totals.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
  for (auto& t : totals) {
    if (auto it = arena_bytes.find(static_cast<uint64_t>(t.stack) * 4 + t.layer); it != arena_bytes.end()) {
      const double off = std::min(t.bytes, it->second);
      t.bytes -= off;
      t.alloc_bytes -= std::min(t.alloc_bytes, off);
      if (t.bytes <= 0 && t.alloc_bytes <= 0) continue;
    }
    std::string layer = analysis::layer_name(static_cast<analysis::Layer>(t.layer));
    auto [it, fresh] = index.emplace(sym.key(t.stack, layer), p.samples.size());
    if (fresh) {
      p.samples.push_back(ProfileSample{layer, sym.stack(t.stack)});
    }
    ProfileSample& s = p.samples[it->second];
    s.inuse_bytes += std::max(0.0, t.bytes);
    s.inuse_count += std::max(0.0, t.count);
    s.alloc_bytes += std::max(t.alloc_bytes, std::max(0.0, t.bytes));
    s.alloc_count += std::max(t.alloc_count, std::max(0.0, t.count));
  }
  std::stable_sort(p.samples.begin(), p.samples.end(),
                   [](const ProfileSample& a, const ProfileSample& b) { return a.inuse_bytes > b.inuse_bytes; });
  return p;
}

}  // namespace leakscope::report
