// The report's collector section: Python's cyclic garbage collector over the run (GCSTATS
// records, capture/format.md). JSON key "gc" (null when the capture has none): every series
// per snapshot, per-generation ones as three arrays (docs/report-json.md).
#include "report/render.h"
#include "report/report.h"
#include "report/words.h"

namespace leakscope::report {
namespace {

using nlohmann::json;
using analysis::GcPoint;

std::string text(const Report& r, const RenderOptions&) {
  if (r.gc.empty()) return "";
  return gc_summary_text(r.gc.back(), r.gc_census ? &*r.gc_census : nullptr);
}

// One series of a per-snapshot field.
template <typename F>
json series(const std::vector<GcPoint>& gc, F field) {
  json a = json::array();
  for (const GcPoint& p : gc) a.push_back(field(p));
  return a;
}
// Three series (generations 0, 1, 2) of a per-generation field.
json generations(const std::vector<GcPoint>& gc, const uint64_t (GcPoint::*field)[3]) {
  json a = json::array();
  for (int i = 0; i < 3; ++i) a.push_back(series(gc, [&](const GcPoint& p) { return (p.*field)[i]; }));
  return a;
}

void json_of(const Report& r, const RenderOptions&, json& doc) {
  if (r.gc.empty()) {
    doc["gc"] = nullptr;
    return;
  }
  const auto& gc = r.gc;
  json census = nullptr;
  if (r.gc_census) {
    const analysis::GcCensus& c = *r.gc_census;
    census = {{"at_s", c.t_s},
              {"objects", {c.objects[0], c.objects[1], c.objects[2]}},
              {"frozen", c.frozen},
              {"complete", c.complete}};
  }
  doc["gc"] = {{"t_s", series(gc, [](const GcPoint& p) { return p.t_s; })},
               {"enabled", series(gc, [](const GcPoint& p) { return p.enabled; })},
               {"debug", series(gc, [](const GcPoint& p) { return p.debug; })},
               {"count", generations(gc, &GcPoint::count)},
               {"threshold", generations(gc, &GcPoint::threshold)},
               {"collections", generations(gc, &GcPoint::collections)},
               {"collected", generations(gc, &GcPoint::collected)},
               {"uncollectable", generations(gc, &GcPoint::uncollectable)},
               {"garbage", series(gc, [](const GcPoint& p) { return p.garbage; })},
               {"long_lived_total", series(gc, [](const GcPoint& p) { return p.long_lived_total; })},
               {"long_lived_pending", series(gc, [](const GcPoint& p) { return p.long_lived_pending; })},
               {"census", census}};
}

}  // namespace

extern const ReportSection kGcSection{"gc", text, json_of};

}  // namespace leakscope::report
