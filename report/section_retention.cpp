// The report's retention section (docs/retention.md): the holders that retain most when the
// run ended; JSON key "retention" (null when the capture has no RETAIN record).
#include "report/render.h"
#include "report/report.h"
#include "report/retention_report.h"

namespace leakscope::report {
namespace {
std::string text(const Report& r, const RenderOptions& opt) { return r.retention ? holders_text(*r.retention, opt.limit) : ""; }
void json(const Report& r, const RenderOptions& opt, nlohmann::json& doc) {
  doc["retention"] = r.retention ? retention_json(*r.retention, opt.limit) : nlohmann::json(nullptr);
}
}  // namespace

extern const ReportSection kRetentionSection{"retention", text, json};

}  // namespace leakscope::report
