// The FINDLEAKS record's payload (capture/format.md): a FindleaksResult stored in a capture by
// `run --findleaks` and read back by `report`; and appending it to a finished capture.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "analysis/findleaks.h"

namespace leakscope::analysis {

std::string encode_findleaks(const FindleaksResult& r);
// Throws capture::CaptureError (one line) on a malformed payload.
FindleaksResult decode_findleaks(const std::string& payload);

// Appends one chunk holding a FINDLEAKS record to the capture at `path` (the next sequence
// number, zstd with a checksum, one write). "" or why not: a capture that does not end at a
// chunk boundary is left alone.
std::string append_findleaks(const std::string& path, const FindleaksResult& r);

}  // namespace leakscope::analysis
