// libFuzzer target: the TASKS record payload (analysis/tasks_record.h, capture/format.md); the
// check is round_trip.h's.
#include "analysis/tasks_record.h"
#include "round_trip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz_round_trip(data, size, leakscope::analysis::decode_tasks, leakscope::analysis::encode_tasks);
}
