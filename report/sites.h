// Pieces shared by `report` and `diff`: symbolizing a capture's stacks, the key that groups
// stacks into sites (symbolized frames + layer), and frame rendering. Not thread-safe.
#pragma once
#include <cstdint>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "analysis/replay.h"
#include "report/report.h"

namespace leakscope::report {

// Symbolizes stack ids of one replayed capture (caches line tables and native lookups).
class Symbolizer {
 public:
  explicit Symbolizer(const analysis::Replay& r);
  ~Symbolizer();
  std::vector<FrameOut> stack(uint32_t id);  // innermost first

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Arenas pymalloc mapped before the PyMem hooks were installed were recorded as plain mmaps;
// a tracked mapping that holds live small Python blocks is such an arena: pymalloc memory, not
// a site of its own. Returns, per live mmap (in live_mmaps() order), whether it is one.
std::vector<char> early_arena_flags(const analysis::Replay& rp);

// How a native frame without source file:line is told apart from others.
enum class SiteKey {
  kAddress,       // by its runtime address: within one capture (what `report` groups by)
  kModuleOffset,  // by module path + offset in it: comparable across captures (ASLR)
};
// The site key of a stack: layer + symbolized frames. Stacks with equal keys are one site.
std::string frames_key(const std::string& layer, const std::vector<FrameOut>& fs, SiteKey mode = SiteKey::kAddress);

std::string with_commas(uint64_t v);
// One indented text line per frame, as `report` prints them.
void frame_line(std::ostringstream& o, const FrameOut& f);
// The JSON frame objects of docs/report-json.md.
nlohmann::json frames_json(const std::vector<FrameOut>& fs);
// Unicode block sparkline of `v`, resampled to at most `width` cells (max of each bucket).
std::string sparkline(const std::vector<double>& v, size_t width = 40);

}  // namespace leakscope::report
