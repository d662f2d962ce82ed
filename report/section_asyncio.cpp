// The report's asyncio section (docs/retention.md, "Pending asyncio tasks"): pending tasks
// over time and by creation site; JSON key "asyncio" (null when the capture has no census).
#include "report/asyncio_report.h"
#include "report/render.h"

namespace leakscope::report {
namespace {
std::string text(const Report& r, const RenderOptions& opt) { return r.asyncio ? asyncio_text(*r.asyncio, opt) : ""; }
void json(const Report& r, const RenderOptions& opt, nlohmann::json& doc) {
  doc["asyncio"] = r.asyncio ? asyncio_json(*r.asyncio, opt) : nlohmann::json(nullptr);
}
}  // namespace

extern const ReportSection kAsyncioSection{"asyncio", text, json};

}  // namespace leakscope::report
