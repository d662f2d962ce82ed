// The record-payload fuzzers' one check (FINDLEAKS, RETAIN, TASKS): only capture::CaptureError
// may escape the decoder, and a payload that decodes must re-encode to one that decodes to the
// same encoding (the encoder's normal form after one round), or that is a finding too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "capture/reader.h"

template <typename Decode, typename Encode>
int fuzz_round_trip(const uint8_t* data, size_t size, Decode decode, Encode encode) {
  decltype(decode(std::string())) r;
  try {
    r = decode(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const leakscope::capture::CaptureError&) {
    return 0;
  }
  std::string once = encode(r);
  std::string twice = encode(decode(once));  // must not throw
  if (once != twice) __builtin_trap();
  return 0;
}
