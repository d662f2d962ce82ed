// libFuzzer target: the capture reader (capture/reader.h) decoding into an analysis::Replay,
// the way `leakscope report` reads a capture: the bytes go to a memfd, Reader(fd) checks the
// header, ends_with_clean_stop() walks the chunks (what `run` does), read_all() decodes
// everything, finish() closes the series, the collector's findings are made from its GCSTATS
// series, and a FINDLEAKS payload is decoded when there is one. Only capture::CaptureError and
// std::bad_alloc may escape; anything else is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <new>

#include "analysis/collector.h"
#include "analysis/findleaks_record.h"
#include "analysis/replay.h"
#include "capture/reader.h"
#include "framed_mutator.h"

using namespace leakscope;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int fd = memfd_create("fuzz-capture", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size))
    __builtin_trap();  // the harness itself failed
  try {
    {
      capture::Reader probe(fd, "fuzz");
      (void)probe.ends_with_clean_stop();
    }
    capture::Reader reader(fd, "fuzz");
    analysis::Replay rp;
    rp.set_aggregate((reader.header().flags & capture::kFlagAggregate) != 0);
    reader.read_all(rp);
    rp.finish();
    (void)rp.site_totals();
    std::vector<analysis::Finding> findings;
    analysis::collector_findings(rp.gc_series(), rp.process_series(), findings);
    if (!rp.findleaks_payload().empty()) (void)analysis::decode_findleaks(rp.findleaks_payload());
  } catch (const capture::CaptureError&) {
  } catch (const std::bad_alloc&) {
  }
  return 0;
}

// Capture chunks: {u32 magic, u32 compressed, u32 raw, u32 sequence}.
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  return leakscope_fuzz::mutate_framed(data, size, max_size, seed, leakscope_fuzz::FrameLayout{4, 8});
}
