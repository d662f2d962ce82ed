// `report --format html` (docs/exports.md, "HTML"): one self-contained page. The Report
// becomes a JSON document (html_data) that the page's own script (web/leakscope.js) draws with
// d3 and d3-flame-graph, all inlined (report/html_assets.h). Pure functions, thread-safe.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "report/report.h"

namespace leakscope::report {

// Bounds of the page's data, whatever the capture (history.h bounds the flame graph's).
inline constexpr size_t kHtmlTimelinePoints = 1000;  // memory by layer over time
inline constexpr size_t kHtmlLeakPoints = 200;       // each leaking site's growth chart

// The page's data: what the text report says (its words, report/words.h), the history of live
// memory by site (Report::history), memory by layer over time, each leaking site with its
// growth and retention, findleaks' lost blocks. Lists are cut at opt.limit.
nlohmann::json html_data(const Report& r, const RenderOptions& opt);

// `j` as the text of a <script type="application/json"> element: `<`, `>`, `&`, U+2028 and
// U+2029 written as \uXXXX so no name can close the element or start markup; invalid UTF-8 is
// replaced by U+FFFD.
std::string script_json(const nlohmann::json& j);
// `s` as HTML text: & < > " ' as character references.
std::string html_text(std::string_view s);

// The whole page (the html Renderer's report function).
std::string html_document(const Report& r, const RenderOptions& opt);

}  // namespace leakscope::report
