// The two tables of the report layer.
//
//  - Output formats: each `--format` value is one Renderer, with a function per document kind
//    (report, diff, findleaks, export's profile; docs/exports.md). The CLI takes each
//    subcommand's choices, its help and its dispatch from renderers(), so a new format is one
//    file with its functions plus one entry in kRenderers (render.cpp).
//  - Report sections: the report document is the list report_sections(), in text order. Each
//    section renders itself as text and adds its keys to the JSON document, so a new section is
//    one file defining a ReportSection plus one entry in kReportSections (render.cpp).
//
// The tables are constant; every function here is thread-safe as long as the Report or Diff
// it renders is not being modified.
#pragma once
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "report/diff.h"
#include "report/report.h"

namespace leakscope::report {

struct FindleaksDoc;  // report/findleaks_report.h
struct Profile;       // report/profile.h

// One part of `leakscope report`. Either function may be null (a text-only or JSON-only part).
struct ReportSection {
  const char* name;  // for reading the table; appears in no output
  // The section's lines, each ending in '\n'; empty when it has nothing to say. Non-empty
  // sections are separated by one blank line, so a section never starts or ends with one.
  std::string (*text)(const Report& r, const RenderOptions& opt);
  // Sets the section's keys in the JSON document (docs/report-json.md). Keys are sorted on
  // output (nlohmann::json), so the order sections set them in does not matter.
  void (*json)(const Report& r, const RenderOptions& opt, nlohmann::json& doc);
};

// Every section of the report, in text order.
std::span<const ReportSection* const> report_sections();

// The kinds of document, one per subcommand that renders.
enum class Document { kReport, kDiff, kFindleaks, kProfile };

// One `--format` of `report`, `diff`, `findleaks` and `export`. Each function returns the whole
// document as written (text ones with their final newline); a null one means the format does
// not render that kind. `opt.limit` is never 0: the CLI passes default_limit when the user gave
// none.
struct Renderer {
  const char* name;  // the --format value
  size_t default_limit;
  std::string (*report)(const Report& r, const RenderOptions& opt);
  std::string (*diff)(const Diff& d, const RenderOptions& opt);
  std::string (*findleaks)(const FindleaksDoc& d, const RenderOptions& opt);  // `leakscope findleaks`
  std::string (*profile)(const Profile& p, const RenderOptions& opt);         // `leakscope export`
  bool binary;  // never written to a terminal
};

// Every format; the first that renders a kind is that kind's default.
std::span<const Renderer> renderers();
// What build_report must add for `f`'s report (the Report fields only some formats draw).
BuildOptions build_options(const Renderer& f);
// Whether `f` renders documents of `kind`.
bool renders(const Renderer& f, Document kind);
// The format called `name` that renders `kind`, or null.
const Renderer* find_renderer(std::string_view name, Document kind);
// The names that render `kind`, in table order (for CLI::IsMember); the first is the default.
std::vector<std::string> renderer_names(Document kind);
// The names for a help line: "text or json", "text, json or html".
std::string renderer_choices(Document kind);
// The default limits for a help line: "10 text, 100 json".
std::string renderer_default_limits(Document kind);

}  // namespace leakscope::report
