// libFuzzer target: the TASKS record payload (analysis/tasks_record.h, capture/format.md).
// Only capture::CaptureError may escape decode_tasks. A payload that decodes must re-encode
// to one that decodes to the same encoding (the host encoder's normal form), or that is a
// finding too.
#include <cstdint>
#include <string>

#include "analysis/tasks_record.h"
#include "capture/reader.h"

using namespace leakscope;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  analysis::TasksSample r;
  try {
    r = analysis::decode_tasks(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const capture::CaptureError&) {
    return 0;
  }
  std::string once = analysis::encode_tasks(r);
  std::string twice = analysis::encode_tasks(analysis::decode_tasks(once));  // must not throw
  if (once != twice) __builtin_trap();
  return 0;
}
