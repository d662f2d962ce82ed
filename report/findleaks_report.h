// The findleaks section (docs/findleaks.md, "Output"): a FindleaksResult symbolized and
// grouped by site (the same site key as `report`), and its text and JSON renderings
// (docs/report-json.md, "findleaks"). Not thread-safe.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/findleaks.h"
#include "report/report.h"

namespace leakscope::report {

class Symbolizer;

struct LostExampleOut {
  uint64_t address = 0;
  std::string preview;  // what the first bytes look like: a C string, a Python object, hex
};
struct LostOut {
  std::string kind;         // direct | indirect | cyclic-garbage
  std::string layer;
  std::string python_type;  // "" when not Python objects
  uint64_t bytes = 0, count = 0, unowned_refs = 0;
  std::vector<FrameOut> frames;  // innermost first
  std::vector<LostExampleOut> examples;
};
struct FindleaksOut {
  std::string when;         // exit | live | dump
  std::string roots;        // precise | conservative
  double time_s = 0;
  analysis::FindleaksTotals totals;
  std::vector<LostOut> lost;     // direct first, then indirect; biggest first within
  std::vector<LostOut> garbage;  // cyclic garbage not yet collected
  std::vector<std::string> notes;
};

// The `findleaks` command's document: what was checked, and the result.
struct FindleaksTarget {
  uint64_t pid = 0;
  std::string capture, dump;  // the capture it was symbolized with; the dump read ("" for none)
  bool live = false;          // a copy of a running process: stopped_s and copied_bytes apply
  double stopped_s = 0;
  uint64_t copied_bytes = 0;
};
struct FindleaksDoc {
  FindleaksTarget target;
  FindleaksOut result;
};
std::string findleaks_text_document(const FindleaksDoc& d, const RenderOptions& opt);
std::string findleaks_json_document(const FindleaksDoc& d, const RenderOptions& opt);

// Symbolizes and groups `r` by site (stacks whose frames and layer are equal are one site).
FindleaksOut findleaks_out(const analysis::FindleaksResult& r, Symbolizer& sym);
std::string render_findleaks_text(const FindleaksOut& f, const RenderOptions& opt);
nlohmann::json findleaks_json(const FindleaksOut& f, size_t limit);

}  // namespace leakscope::report
