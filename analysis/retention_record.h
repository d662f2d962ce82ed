// The RETAIN record's payload (capture/format.md, docs/retention.md): what kept the objects
// of each allocation stack alive when a Python run ended, and the holders that retain most.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace leakscope::analysis {

using RetentionPath = std::vector<std::string>;  // steps, root (anchor) first

struct RetentionGroup {
  uint32_t stack = 0;
  RetentionPath kept_by, example;  // the holder's path (generalised) and one object's path
  uint64_t objects = 0, bytes = 0, retained_bytes = 0;
};
struct RetentionHolder {
  RetentionPath path;
  uint64_t retained_bytes = 0;
};
struct RetentionReach {
  uint32_t stack = 0;
  uint64_t objects = 0, bytes = 0;
};
inline constexpr uint32_t kRetentionCutShort = 1, kRetentionNotConverged = 2, kRetentionOutOfMemory = 4;

struct RetentionResult {
  uint64_t time_ns = 0, pause_ns = 0, objects = 0, edges = 0;
  uint32_t flags = 0;  // kRetention*
  std::vector<RetentionGroup> groups;  // per stack, biggest first
  std::vector<RetentionHolder> holders;  // most retained first
  std::vector<RetentionReach> stacks;  // objects reached per stack
};

// Throws capture::CaptureError (one line) on a malformed payload.
RetentionResult decode_retention(const std::string& payload);
// The payload the agent writes for `r` (strings and paths deduplicated in first-use order):
// seeds and round trips for the fuzzer and the tests.
std::string encode_retention(const RetentionResult& r);

}  // namespace leakscope::analysis
