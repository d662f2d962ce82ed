// The report's findleaks section (docs/findleaks.md): the reachability check `run
// --findleaks` stored in the capture; JSON key "findleaks" (null when the capture has none).
#include "report/findleaks_report.h"
#include "report/render.h"

namespace leakscope::report {
namespace {

std::string text(const Report& r, const RenderOptions& opt) {
  return r.findleaks ? render_findleaks_text(*r.findleaks, opt) : "";
}

void json(const Report& r, const RenderOptions& opt, nlohmann::json& doc) {
  doc["findleaks"] = r.findleaks ? findleaks_json(*r.findleaks, opt.limit) : nlohmann::json(nullptr);
}

}  // namespace

extern const ReportSection kFindleaksSection{"findleaks", text, json};

}  // namespace leakscope::report
