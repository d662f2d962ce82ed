// Pending asyncio tasks in the report: see asyncio_report.h.
#include "report/asyncio_report.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "analysis/replay.h"
#include "analysis/trend.h"
#include "report/sites.h"
#include "report/stack_view.h"
#include "report/words.h"

namespace leakscope::report {
namespace {

// When pending tasks count as piling up (docs/retention.md): at least this many at the peak,
// growing by at least this many per second between the end of warm-up and the peak, for at
// least this long, with a significant upward trend.
constexpr double kMinPeak = 50, kMinPerSecond = 1.0, kMinSpanS = 2.0, kWarmupFraction = 0.2, kMaxP = 0.01;

std::string where(const std::vector<FrameOut>& frames) {
  for (const auto& f : frames)
    if (frame_kind(f) == FrameKind::kOwn && !f.file.empty())
      return f.function + " (" + f.file + ":" + std::to_string(f.line) + ")";
  for (const auto& f : frames)
    if (!f.file.empty()) return f.function + " (" + f.file + ":" + std::to_string(f.line) + ")";
  return "an unknown site";
}

// The pending count's growth up to its peak (a teardown that cancels everything comes after).
std::optional<double> growth(const std::vector<analysis::TasksSample>& s, size_t* peak_i) {
  if (s.empty()) return std::nullopt;
  size_t pk = 0;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i].pending >= s[pk].pending) pk = i;
  *peak_i = pk;
  const double t_end = static_cast<double>(s[pk].time_ns) / 1e9;
  const double t_start = t_end * kWarmupFraction;
  std::vector<analysis::trend::Pt> pts;
  for (size_t i = 0; i <= pk; ++i) {
    const double t = static_cast<double>(s[i].time_ns) / 1e9;
    if (t >= t_start) pts.push_back({t, static_cast<double>(s[i].pending)});
  }
  if (pts.size() < 5 || static_cast<double>(s[pk].pending) < kMinPeak || pts.back().t - pts.front().t < kMinSpanS)
    return std::nullopt;
  const auto fit = analysis::trend::theil_sen(pts.data(), pts.size());
  const auto mk = analysis::trend::trend_test(pts.data(), pts.size(), fit);
  if (fit.slope < kMinPerSecond || mk.p_leak > kMaxP) return std::nullopt;
  return fit.slope;
}

}  // namespace

void add_asyncio(const analysis::Replay& rp, Symbolizer& sym, Report& r) {
  const auto& samples = rp.tasks_samples();
  if (samples.empty()) return;
  auto a = std::make_shared<AsyncioOut>();
  a->censuses = samples.size();
  // The pending count at each snapshot: the last census at or before it.
  size_t j = 0;
  for (const auto& p : r.timeline) {
    while (j < samples.size() && static_cast<double>(samples[j].time_ns) / 1e9 <= p.t_s + 1e-9) ++j;
    a->t_s.push_back(p.t_s);
    a->pending.push_back(j ? static_cast<double>(samples[j - 1].pending) : 0.0);
  }
  // Sites: the groups of the last census that found pending tasks, merged by their frames.
  std::map<std::string, size_t> index;
  for (const auto& s : samples) {
    if (s.groups.empty()) continue;
    a->sites_at_s = static_cast<double>(s.time_ns) / 1e9;
    a->reach_known = s.reach_known;
    for (const auto& g : s.groups) {
      std::vector<FrameOut> frames = g.stack ? sym.stack(*g.stack) : std::vector<FrameOut>{};
      const std::string key = frames_key("python", frames);
      auto [it, fresh] = index.emplace(key, a->sites.size());
      if (fresh) {
        TaskSiteOut site;
        site.frames = std::move(frames);
        a->sites.push_back(std::move(site));
      }
      TaskSiteOut& site = a->sites[it->second];
      site.count += g.count;
      site.unreferenced += g.unreferenced;
      a->unreferenced += g.unreferenced;
      site.oldest_age_s = std::max(site.oldest_age_s, static_cast<double>(g.oldest_age_ms) / 1e3);
      if (std::find(site.coroutines.begin(), site.coroutines.end(), g.coroutine) == site.coroutines.end())
        site.coroutines.push_back(g.coroutine);
      if (std::find(site.awaiting.begin(), site.awaiting.end(), g.awaiting) == site.awaiting.end())
        site.awaiting.push_back(g.awaiting);
    }
  }
  std::stable_sort(a->sites.begin(), a->sites.end(), [](const TaskSiteOut& x, const TaskSiteOut& y) { return x.count > y.count; });
  size_t pk = 0;
  a->growth_per_s = growth(samples, &pk);
  if (a->growth_per_s && !a->sites.empty()) {
    const TaskSiteOut& top = a->sites.front();
    FindingOut f{"leak", "asyncio",
                 pending_tasks_text(*a->growth_per_s, samples[pk].pending, static_cast<double>(samples[pk].time_ns) / 1e9,
                                    where(top.frames), top.awaiting.empty() ? "?" : top.awaiting.front()),
                 pending_tasks_remedy(), 0};
    r.findings.insert(r.findings.begin(), std::move(f));
    r.verdict = "leak";
  }
  r.asyncio = std::move(a);
}

std::string asyncio_text(const AsyncioOut& a, const RenderOptions& opt) {
  if (a.sites.empty() && std::all_of(a.pending.begin(), a.pending.end(), [](double v) { return v == 0; })) return "";
  std::ostringstream o;
  const double last = a.pending.empty() ? 0 : a.pending.back();
  double peak = 0;
  for (double v : a.pending) peak = std::max(peak, v);
  char line[512];
  snprintf(line, sizeof line, "Pending asyncio tasks: %s at the end, peak %s", with_commas(static_cast<uint64_t>(last)).c_str(),
           with_commas(static_cast<uint64_t>(peak)).c_str());
  o << line;
  if (a.growth_per_s) {
    snprintf(line, sizeof line, ", growing by %.1f/s", *a.growth_per_s);
    o << line;
  }
  o << "\n      " << sparkline(a.pending) << "\n";
  if (!a.sites.empty()) {
    snprintf(line, sizeof line, "  by creation site (at %.2f s):\n", a.sites_at_s);
    o << line;
  }
  bool folded = false;
  for (size_t i = 0; i < a.sites.size() && i < opt.limit; ++i) {
    const TaskSiteOut& s = a.sites[i];
    snprintf(line, sizeof line, "#%zu  %s tasks, oldest %.1f s, coroutine %s, waiting on %s\n", i + 1,
             with_commas(s.count).c_str(), s.oldest_age_s, s.coroutines.empty() ? "?" : s.coroutines.front().c_str(),
             s.awaiting.empty() ? "?" : s.awaiting.front().c_str());
    o << line;
    if (a.reach_known && s.unreferenced) o << "      " << unreferenced_tasks_text(s.unreferenced) << "\n";
    folded |= stack_text(o, s.frames, opt.all_frames);
  }
  if (folded) o << "  " << fold_note_text() << "\n";
  return o.str();
}

nlohmann::json asyncio_json(const AsyncioOut& a, const RenderOptions& opt) {
  nlohmann::json sites = nlohmann::json::array();
  for (size_t i = 0; i < a.sites.size() && i < opt.limit; ++i) {
    const TaskSiteOut& s = a.sites[i];
    sites.push_back({{"frames", frames_json(s.frames)},
                     {"count", s.count},
                     {"oldest_age_s", s.oldest_age_s},
                     {"coroutines", s.coroutines},
                     {"awaiting", s.awaiting},
                     {"unreferenced", a.reach_known ? nlohmann::json(s.unreferenced) : nlohmann::json(nullptr)}});
  }
  return {{"t_s", a.t_s},
          {"pending", a.pending},
          {"censuses", a.censuses},
          {"growth_per_s", a.growth_per_s ? nlohmann::json(*a.growth_per_s) : nlohmann::json(nullptr)},
          {"sites_at_s", a.sites_at_s},
          {"unreferenced", a.reach_known ? nlohmann::json(a.unreferenced) : nlohmann::json(nullptr)},
          {"sites", sites}};
}

}  // namespace leakscope::report
