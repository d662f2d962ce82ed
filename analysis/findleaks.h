// findleaks: lost blocks and leaked references in a process copy (docs/findleaks.md). Builds
// the model (heap_model.h), runs the scan (reach.h), tells Python objects apart with the
// running version's layout, sets uncollected cyclic garbage aside, and groups what is lost by
// allocation stack and kind. Returns data only: the words are in report/. Not thread-safe.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "analysis/heap_image.h"
#include "analysis/heap_model.h"

namespace leakscope::analysis {

enum class LostKind : uint8_t { kDirect = 0, kIndirect = 1, kCyclicGarbage = 2 };
const char* lost_kind_name(LostKind k);  // "direct", "indirect", "cyclic-garbage"

enum class FindleaksWhen : uint8_t { kExit = 0, kLive = 1, kDump = 2 };
const char* findleaks_when_name(FindleaksWhen w);  // "exit", "live", "dump"

struct LostExample {
  uint64_t addr = 0;
  std::vector<uint8_t> head;  // the block's first bytes (at most kExampleBytes)
  int64_t refcount = -1;      // a Python object's, else -1
};
inline constexpr size_t kExampleBytes = 32;
inline constexpr size_t kExamplesPerGroup = 3;

struct LostGroup {
  LostKind kind = LostKind::kDirect;
  uint8_t layer = 0;        // analysis::Layer
  uint32_t stack = 0;       // the capture's stack id
  std::string python_type;  // tp_name of the objects, "" when not Python objects
  uint64_t bytes = 0, count = 0;
  uint64_t unowned_refs = 0;  // Python: references counted that no memory holds
  std::vector<LostExample> examples;
};

struct FindleaksTotals {
  uint64_t direct_bytes = 0, direct_count = 0, indirect_bytes = 0, indirect_count = 0;
  uint64_t reachable_bytes = 0, reachable_count = 0, garbage_bytes = 0, garbage_count = 0;
  uint64_t immortal_count = 0;   // immortal Python objects nothing points to (not lost)
  uint64_t root_bytes = 0;       // memory scanned as roots
  uint64_t lost_bytes() const { return direct_bytes + indirect_bytes; }
  uint64_t lost_count() const { return direct_count + indirect_count; }
};

struct FindleaksResult {
  FindleaksWhen when = FindleaksWhen::kLive;
  bool conservative = false;
  uint64_t time_ns = 0;     // since tracking started
  uint32_t py_minor = 0;    // 0: not a Python process (or no layout)
  FindleaksTotals totals;
  std::vector<LostGroup> groups;  // direct, indirect, then cyclic garbage; biggest first within
  std::vector<std::pair<ModelNote, uint64_t>> notes;
};

// Throws ModelError (one line) on a copy that is not a leakscope process copy.
FindleaksResult find_leaks(const HeapImage& image, FindleaksWhen when);

}  // namespace leakscope::analysis
