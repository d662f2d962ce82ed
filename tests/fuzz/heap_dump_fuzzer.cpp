// libFuzzer target: the heap dump reader (analysis/heap_dump.h) and, when a dump reads, the
// model and scan built from it (analysis::find_leaks: a hostile scan descriptor, live tables,
// young cache, ring backlog, pymalloc pool walk, DTV walk...) and the embedded capture read the
// way `leakscope findleaks FILE` reads it. Only the documented errors may escape: DumpError,
// ModelError, CaptureError (the capture) and std::bad_alloc; anything else (a crash, a
// sanitizer report, another exception, a hang, over 2 GB) is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

#include "analysis/findleaks.h"
#include "analysis/heap_dump.h"
#include "analysis/replay.h"
#include "capture/reader.h"
#include "framed_mutator.h"

using namespace leakscope;

namespace {
int capture_fd() {
  static int fd = memfd_create("fuzz-dump-capture", MFD_CLOEXEC);
  return fd;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  analysis::Dump d;
  try {
    analysis::read_dump_bytes(data, size, &d);
  } catch (const analysis::DumpError&) {
    return 0;
  } catch (const std::bad_alloc&) {
    return 0;
  }
  try {
    analysis::find_leaks(d.image, analysis::FindleaksWhen::kDump);
  } catch (const analysis::ModelError&) {
  } catch (const std::bad_alloc&) {
  }
  if (!d.capture.empty()) {  // cli/findleaks.cpp: the dump's capture, for the stacks
    int fd = capture_fd();
    if (fd < 0 || ftruncate(fd, 0) != 0 ||
        pwrite(fd, d.capture.data(), d.capture.size(), 0) != static_cast<ssize_t>(d.capture.size()))
      __builtin_trap();  // the harness itself failed
    try {
      capture::Reader reader(fd, "dump");
      analysis::Replay rp;
      rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
      reader.read_all(rp);
      rp.finish();
    } catch (const capture::CaptureError&) {
    } catch (const std::bad_alloc&) {
    }
  }
  return 0;
}

// Dump sections: {u32 magic, u32 type, u32 compressed, u32 raw}.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  return leakscope_fuzz::mutate_framed(data, size, max_size, seed, leakscope_fuzz::FrameLayout{8, 12});
}
