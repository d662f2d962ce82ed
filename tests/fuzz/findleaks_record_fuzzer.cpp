// libFuzzer target: the FINDLEAKS record payload (analysis/findleaks_record.h, capture/format.md).
// Only capture::CaptureError may escape decode_findleaks. A payload that decodes must also
// re-encode to one that decodes to the same encoding (the format is its own normal form after
// one round), or that is a finding too.
#include <cstdint>
#include <string>

#include "analysis/findleaks_record.h"
#include "capture/reader.h"

using namespace leakscope;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  analysis::FindleaksResult r;
  try {
    r = analysis::decode_findleaks(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const capture::CaptureError&) {
    return 0;
  }
  std::string once = analysis::encode_findleaks(r);
  std::string twice = analysis::encode_findleaks(analysis::decode_findleaks(once));  // must not throw
  if (once != twice) __builtin_trap();
  return 0;
}
