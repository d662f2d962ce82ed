// Heap dump files (`leakscope heapdump PID -o FILE`; format in docs/heapdump-format.md): a
// HeapImage and the capture it belongs to (for the allocation stacks), so `leakscope
// findleaks FILE` gives the same answer after the process is gone. The reader is as strict
// as the capture reader: anything malformed is one line (DumpError), never a crash, a hang
// or unbounded memory. Not thread-safe.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "analysis/heap_image.h"

namespace leakscope::analysis {

class DumpError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Writes `image` and `capture` (the capture file's bytes) to `fd` (already created O_EXCL,
// 0600 by the caller). Throws DumpError on a write error.
void write_dump(int fd, const HeapImage& image, const std::string& capture);

struct Dump {
  HeapImage image;
  std::string capture;  // the capture file's bytes
};
// Reads a dump; throws DumpError (one line naming the offset) on anything malformed.
void read_dump(const std::string& path, Dump* out);
// The same from bytes in memory (the fuzzer's entry point).
void read_dump_bytes(const uint8_t* data, size_t n, Dump* out);

}  // namespace leakscope::analysis
