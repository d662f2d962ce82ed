// The format and section tables (render.h), and the report drivers that walk the sections.
#include "report/render.h"

#include "report/findleaks_report.h"
#include "report/profile.h"

namespace leakscope::report {

// Sections, each defined in its own file (report/sections.cpp holds the original ones).
extern const ReportSection kHeaderSection, kVerdictSection, kLeakingSitesSection, kTotalsSection,
    kMemorySection, kTimelineSection, kStacksSection, kFindleaksSection, kRetentionSection, kAsyncioSection,
    kGcSection, kTreeSection;

// Export formats, each in its own file (docs/exports.md).
std::string collapsed_document(const Profile& p, const RenderOptions& opt);  // export_collapsed.cpp
std::string speedscope_document(const Profile& p, const RenderOptions& opt);  // export_speedscope.cpp
std::string html_document(const Report& r, const RenderOptions& opt);       // html_page.cpp
std::string pprof_document(const Profile& p, const RenderOptions& opt);      // export_pprof.cpp
std::string pprof_diff_document(const Diff& d, const RenderOptions& opt);    // export_pprof.cpp

namespace {

constexpr const ReportSection* kReportSections[] = {
    &kHeaderSection,        // command, capture, warnings      (JSON: capture, warnings)
    &kVerdictSection,       // verdict and findings            (JSON: verdict, findings)
    &kTreeSection,          // run --follow-fork: the processes (section_tree.cpp) (JSON: processes, process_tree)
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

std::string report_json_document(const Report& r, const RenderOptions& opt) { return render_json(r, opt).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"; }
std::string diff_json_document(const Diff& d, const RenderOptions& opt) { return render_diff_json(d, opt).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"; }

constexpr Renderer kRenderers[] = {
    // name        limit  report                diff                findleaks                profile
    {"text", 10, render_text, render_diff_text, findleaks_text_document, nullptr, false},
    {"json", 100, report_json_document, diff_json_document, findleaks_json_document, nullptr, false},
    {"collapsed", 0, nullptr, nullptr, nullptr, collapsed_document, false},
    {"html", 50, html_document, nullptr, nullptr, nullptr, false},
    {"speedscope", 0, nullptr, nullptr, nullptr, speedscope_document, false},
    {"pprof", 0, nullptr, pprof_diff_document, nullptr, pprof_document, true},
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

// Only the HTML page draws live memory by site over time (report/history.h).
BuildOptions build_options(const Renderer& f) { return BuildOptions{.history = f.report == html_document}; }

bool renders(const Renderer& f, Document kind) {
  switch (kind) {
    case Document::kReport: return f.report != nullptr;
    case Document::kDiff: return f.diff != nullptr;
    case Document::kFindleaks: return f.findleaks != nullptr;
    case Document::kProfile: return f.profile != nullptr;
  }
  return false;
}

const Renderer* find_renderer(std::string_view name, Document kind) {
  for (const Renderer& f : kRenderers)
    if (name == f.name && renders(f, kind)) return &f;
  return nullptr;
}

std::vector<std::string> renderer_names(Document kind) {
  std::vector<std::string> v;
  for (const Renderer& f : kRenderers)
    if (renders(f, kind)) v.emplace_back(f.name);
  return v;
}

std::string renderer_choices(Document kind) {
  std::vector<std::string> names = renderer_names(kind);
  std::string s;
  const size_t n = names.size();
  for (size_t i = 0; i < n; ++i) s += (i == 0 ? "" : i + 1 == n ? " or " : ", ") + names[i];
  return s;
}

std::string renderer_default_limits(Document kind) {
  std::string s;
  for (const Renderer& f : kRenderers)
    if (renders(f, kind) && f.default_limit)
      s += (s.empty() ? "" : ", ") + std::to_string(f.default_limit) + " " + f.name;
  return s;
}

}  // namespace leakscope::report
