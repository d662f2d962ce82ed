// The HTML report's scripts and styles, embedded at build time by cmake/embed_web.cmake from
// web/ (the page's own leakscope.js and leakscope.css) and web/node_modules (d3 and
// d3-flame-graph, pinned by web/package-lock.json). Each is inlined whole into the page.
#pragma once
#include <string_view>

namespace leakscope::report::web {

extern const std::string_view kD3;          // d3's UMD bundle (global `d3`)
extern const std::string_view kFlameGraph;  // d3-flame-graph's UMD bundle (global `flamegraph`)
extern const std::string_view kPageJs;      // web/leakscope.js
extern const std::string_view kPageCss;     // web/leakscope.css
extern const std::string_view kCredits;     // "d3 7.9.0 (ISC), d3-flame-graph 5.0.0 (Apache-2.0)"
extern const std::string_view kLicences;    // each package's name, version and LICENSE text

}  // namespace leakscope::report::web
