// Retention paths in the report (docs/retention.md): the RETAIN record joined to the report's
// sites (each leak and each top stack gets what keeps its objects alive) and the holders that
// retain most. Not thread-safe.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace leakscope::analysis {
class Replay;
}
namespace leakscope::report {

class Symbolizer;
struct Report;

struct KeptByOut {
  std::vector<std::string> kept_by;  // the holder's path, indices generalised, anchor first
  std::vector<std::string> example;  // one object's full path
  double objects = 0, bytes = 0, retained_bytes = 0;
};
struct HolderOut {
  std::vector<std::string> path;
  double retained_bytes = 0;
};
struct RetentionOut {
  double at_s = 0, pause_s = 0;
  uint64_t objects = 0;
  bool cut_short = false, approximate = false;
  std::vector<HolderOut> holders;
};

// Decodes the capture's RETAIN record (if any) into r.retention and the kept_alive_by of each
// leak and stack. Throws capture::CaptureError on a corrupt record.
void add_retention(const analysis::Replay& rp, Symbolizer& sym, Report& r);

// "kept alive by" lines under a leak or stack (text), at `indent`.
std::string kept_alive_text(const std::vector<KeptByOut>& k, double retained_bytes, const char* indent);
nlohmann::json kept_alive_json(const std::vector<KeptByOut>& k);
// JSON `kept_alive_by`: each group's example path (a list of steps, root first), biggest first.
nlohmann::json kept_alive_paths(const std::vector<KeptByOut>& k);
// The holders section.
std::string holders_text(const RetentionOut& r, size_t limit);
nlohmann::json retention_json(const RetentionOut& r, size_t limit);

}  // namespace leakscope::report
