// The format-neutral input of `leakscope export` (docs/exports.md, "The profile"): one sample
// per symbolized site with its live and allocated figures at one moment of a capture.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "capture/reader.h"
#include "report/report.h"

namespace leakscope::report {

struct ProfileSample {
  std::string layer;             // python | pymem-raw | malloc | mmap
  std::vector<FrameOut> frames;  // innermost first
  double inuse_bytes = 0, inuse_count = 0;  // live at the moment (estimates when sampled)
  double alloc_bytes = 0, alloc_count = 0;  // allocated up to it (see alloc_exact)
};

struct Profile {
  std::string path;
  std::vector<std::string> argv;
  std::optional<std::string> python_version;
  uint64_t pid = 0;
  uint64_t start_unix_ns = 0;  // when the capture began (CLOCK_REALTIME)
  double at_s = 0;             // the moment exported, seconds since the start
  bool at_end = true;          // the end of the capture (no --at, or --at past it)
  uint64_t sample_rate = 0;    // 0: every allocation recorded; else the mean bytes between samples
  bool alloc_exact = true;     // false for aggregate captures: alloc_* are lower bounds
  std::vector<std::string> notes;       // what a reader of the file should know, one line each
  std::vector<ProfileSample> samples;   // biggest inuse_bytes first; sites that freed all are last
  std::vector<capture::Module> modules; // native modules (build ids, segments) for mappings
};

// Reads `path` up to `at_s` seconds after its start (the end when none). Throws
// capture::CaptureError on a bad file and std::invalid_argument on a negative or non-finite
// time. `progress` (may be null) is told how far reading the file has got.
// `symbols` (may be null): native symbols kept between calls by a long-lived caller (sites.h).
Profile build_profile(const std::string& path, std::optional<double> at_s, const capture::ReadProgress& progress = {},
                      SymbolCache* symbols = nullptr);

// A frame's name as exports print it: `function (file:line)` for Python frames (file's
// basename kept whole), `function` for native ones, `module+0xOFFSET` or the address when
// unnamed. Never empty.
std::string frame_label(const FrameOut& f);

}  // namespace leakscope::report
