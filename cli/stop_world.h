// Copies a tracked process for a reachability scan (docs/findleaks.md): every thread stopped
// with ptrace (never inside a leakscope hook: such a thread is let run until it is out, so no
// block is half recorded), registers read, the present pages of every writable mapping copied
// with process_vm_readv, every thread let go; then the read-only data of its ELF modules
// (type names, string literals) and their writable ranges, read from the files. Nothing runs
// and nothing is allocated in the process meanwhile. x86-64 Linux only.
#pragma once
#include <sys/types.h>

#include <string>

#include "analysis/heap_image.h"

namespace leakscope::inject {

struct CopyStats {
  double stopped_s = 0;     // from the first thread stopped to the last one let go
  double copy_s = 0;        // of which copying memory
  uint64_t copied_bytes = 0;
  int safe_rounds = 0;      // times a thread inside a hook was let run on
  int reaped_status = -1;   // the process exited meanwhile and our wait reaped it: its status
};

// Fills `image` from process `pid`, whose agent published its descriptor at `descriptor`.
// Returns "" or the one-line reason it could not (the process runs on either way).
std::string copy_process(pid_t pid, uint64_t descriptor, analysis::HeapImage* image, CopyStats* stats);

}  // namespace leakscope::inject
