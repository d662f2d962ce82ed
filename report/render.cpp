// The format and section tables (render.h), and the report drivers that walk the sections.
#include "report/render.h"

#include "report/findleaks_report.h"

namespace leakscope::report {

// Sections, each defined in its own file (report/sections.cpp holds the original ones).
extern const ReportSection kHeaderSection, kVerdictSection, kLeakingSitesSection, kTotalsSection,
    kMemorySection, kTimelineSection, kStacksSection, kFindleaksSection, kRetentionSection, kAsyncioSection,
    kGcSection;

namespace {

constexpr const ReportSection* kReportSections[] = {
    &kHeaderSection,        // command, capture, warnings      (JSON: capture, warnings)
    &kVerdictSection,       // verdict and findings            (JSON: verdict, findings)
    &kLeakingSitesSection,  // leaking sites with sparklines   (JSON: leaks)
    &kAsyncioSection,       // pending asyncio tasks (section_asyncio.cpp) (JSON: asyncio)
    &kRetentionSection,     // what keeps memory alive (section_retention.cpp) (JSON: retention)
    &kFindleaksSection,     // lost blocks at exit (findleaks.cpp) (JSON: findleaks)
    &kTotalsSection,        // live, peak, allocated           (JSON: totals)
    &kMemorySection,        // memory by layer                 (JSON: memory)
    &kTimelineSection,      // the big picture over time       (JSON: timeline)
    &kGcSection,            // Python's collector (section_gc.cpp) (JSON: gc)
    &kStacksSection,        // live memory by stack            (JSON: stacks)
};

std::string report_json_document(const Report& r, const RenderOptions& opt) { return render_json(r, opt).dump(2) + "\n"; }
std::string diff_json_document(const Diff& d, const RenderOptions& opt) { return render_diff_json(d, opt).dump(2) + "\n"; }

constexpr Renderer kRenderers[] = {
    {"text", 10, render_text, render_diff_text, findleaks_text_document},
    {"json", 100, report_json_document, diff_json_document, findleaks_json_document},
};

}  // namespace

std::span<const ReportSection* const> report_sections() { return kReportSections; }

std::string render_text(const Report& r, const RenderOptions& opt) {
  std::string out;
  for (const ReportSection* s : kReportSections) {
    if (!s->text) continue;
    std::string part = s->text(r, opt);
    if (part.empty()) continue;
    if (!out.empty()) out += "\n";
    out += part;
  }
  return out;
}

nlohmann::json render_json(const Report& r, const RenderOptions& opt) {
  nlohmann::json j;
  j["schema"] = "leakscope.report/2";
  for (const ReportSection* s : kReportSections)
    if (s->json) s->json(r, opt, j);
  return j;
}

std::span<const Renderer> renderers() { return kRenderers; }

const Renderer* find_renderer(std::string_view name) {
  for (const Renderer& f : kRenderers)
    if (name == f.name) return &f;
  return nullptr;
}

std::vector<std::string> renderer_names() {
  std::vector<std::string> v;
  for (const Renderer& f : kRenderers) v.emplace_back(f.name);
  return v;
}

std::string renderer_choices() {
  std::string s;
  const size_t n = std::size(kRenderers);
  for (size_t i = 0; i < n; ++i) s += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + std::string(kRenderers[i].name);
  return s;
}

std::string renderer_default_limits() {
  std::string s;
  for (const Renderer& f : kRenderers)
    s += (s.empty() ? "" : ", ") + std::to_string(f.default_limit) + " " + f.name;
  return s;
}

}  // namespace leakscope::report
