// `leakscope diff A B`: what grew between two captures, or two snapshots of one capture.
// Each side is CAPTURE[@SECONDS]: the snapshot at or just before that time, or without `@`
// the end of the capture. Live bytes and blocks are compared per site (stacks grouped by
// symbolized frames + layer, as in `report`; native frames without source lines are matched
// by module + offset so two runs of one binary line up despite ASLR). The JSON schema
// `leakscope.diff/1` is in docs/diff.md. Not thread-safe.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/series.h"
#include "report/report.h"

namespace leakscope::report {

// Bad CAPTURE@SECONDS syntax, or a time the capture does not cover (one line, no newline).
// A capture that cannot be read throws capture::CaptureError instead.
class DiffError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DiffSpec {
  std::string path;
  std::optional<double> at_s;  // none: the end of the capture
};
// Splits "PATH[@SECONDS]" ("run.lsc", "run.lsc@10", "run.lsc@2.5s"). A spec that exists as a
// file is taken whole when its `@` suffix is not a time. Throws DiffError.
DiffSpec parse_diff_spec(const std::string& spec);

struct DiffSide {
  std::string spec, path;
  std::optional<double> requested_s;  // the @SECONDS asked for
  double at_s = 0;                    // time of the state used (0 for the start)
  bool end = false;                   // the end of the capture
  bool start = false;                 // before the first snapshot: nothing live yet
  double duration_s = 0;
  bool complete = false;
  uint64_t sample_rate = 0;
  std::optional<std::string> python_version;
  bool have_memory = false;            // `memory` is meaningful (a snapshot's process point)
  analysis::ProcessPoint memory;
  double live_bytes = 0, live_count = 0;  // summed over sites
};

struct DiffSite {
  std::string layer;
  std::vector<FrameOut> frames;  // innermost first
  int64_t a_bytes = 0, b_bytes = 0, a_count = 0, b_count = 0;
  int64_t delta_bytes() const { return b_bytes - a_bytes; }
  int64_t delta_count() const { return b_count - a_count; }
  // new | grew | same | shrank | gone
  const char* status() const;
};

struct Diff {
  DiffSide a, b;
  std::vector<DiffSite> sites;  // every site live on either side, by delta_bytes descending
  size_t n_new = 0, n_grew = 0, n_same = 0, n_shrank = 0, n_gone = 0;
  std::vector<std::string> warnings;
};

// Reads both captures (once when they are the same file) and compares them. Throws DiffError
// or capture::CaptureError. `progress` (may be null) is told how far reading each file has got.
// `tree`: a side whose capture is the root of a process tree (run --follow-fork) is merged with
// its members at the same moment (docs/process-trees.md); false: that capture alone (--pid).
Diff build_diff(const std::string& a_spec, const std::string& b_spec, const capture::ReadProgress& progress = {},
                bool tree = true);
// Text: the `limit` sites that grew most, then the `limit` that shrank most, totals, layers.
std::string render_diff_text(const Diff& d, const RenderOptions& opt);
// JSON (docs/diff.md): the same selection of sites.
nlohmann::json render_diff_json(const Diff& d, const RenderOptions& opt);

}  // namespace leakscope::report
