// The TASKS record's payload (capture/format.md, docs/retention.md "Pending asyncio tasks"):
// one census of asyncio's pending tasks, grouped by creation stack, coroutine and what they
// await.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace leakscope::analysis {

struct TaskGroupRec {
  std::optional<uint32_t> stack;  // the Task object's allocation stack, when known
  std::string coroutine, awaiting;
  uint64_t count = 0, oldest_age_ms = 0, unreferenced = 0;
};
struct TasksSample {
  uint64_t time_ns = 0, pending = 0;
  bool reach_known = false;  // taken by a retention walk: `unreferenced` is meaningful
  std::vector<TaskGroupRec> groups;  // most tasks first
};

// Throws capture::CaptureError (one line) on a malformed payload.
TasksSample decode_tasks(const std::string& payload);
std::string encode_tasks(const TasksSample& s);  // the agent's encoding (seeds, round trips)

}  // namespace leakscope::analysis
