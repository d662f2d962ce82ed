// libFuzzer target: the RETAIN record payload (analysis/retention_record.h, capture/format.md).
// Only capture::CaptureError may escape decode_retention. A payload that decodes must re-encode
// to one that decodes to the same encoding (the host encoder's normal form), or that is a
// finding too.
#include <cstdint>
#include <string>

#include "analysis/retention_record.h"
#include "capture/reader.h"

using namespace leakscope;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  analysis::RetentionResult r;
  try {
    r = analysis::decode_retention(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const capture::CaptureError&) {
    return 0;
  }
  std::string once = analysis::encode_retention(r);
  std::string twice = analysis::encode_retention(analysis::decode_retention(once));  // must not throw
  if (once != twice) __builtin_trap();
  return 0;
}
