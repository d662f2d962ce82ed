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

namespace leakscope::symbolize {
class NativeSymbolizer;
}

namespace leakscope::report {

// What one process's stacks symbolize to: native symbols (each module's DWARF opened and
// decompressed once, each address looked up once), each stack's frames and site keys. A
// capture's stack ids are positions in its definitions, which are only ever appended, so the
// same id is the same stack on every read of a growing capture.
struct SymbolMemo;

// Symbols kept between the reports of one long-lived reader (serve, push, top) instead of
// redone at every request (symbolizing was most of a /metrics scrape). One memo per process
// (pid + start time): processes of a tree map different modules at the same addresses. Not
// thread-safe: one report at a time (serve's report_lock).
class SymbolCache {
 public:
  SymbolCache();
  ~SymbolCache();
  SymbolCache(const SymbolCache&) = delete;
  SymbolCache& operator=(const SymbolCache&) = delete;
  // That process's memo, with every module of `rp` known to its native symbolizer.
  SymbolMemo& process(uint64_t pid, uint64_t start_ns, const analysis::Replay& rp);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Symbolizes stack ids of one replayed capture (caches line tables, native lookups, stacks and
// their site keys). With a `memo` (a SymbolCache's), keeps them there for the next report.
class Symbolizer {
 public:
  explicit Symbolizer(const analysis::Replay& r, SymbolMemo* memo = nullptr);
  ~Symbolizer();
  const std::vector<FrameOut>& stack(uint32_t id);  // innermost first; valid while this lives
  // frames_key(layer, stack(id)) (SiteKey::kAddress).
  const std::string& key(uint32_t id, const std::string& layer);
  // That key as a dense number: equal keys, equal numbers (cheaper to group by than the key).
  uint32_t site(uint32_t id, const std::string& layer);

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
