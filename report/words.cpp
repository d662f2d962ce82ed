// The sentences of verdicts and findings: see words.h.
#include "report/words.h"

#include "analysis/collector.h"
#include "report/sites.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>

namespace leakscope::report {

namespace {

using analysis::Finding;
using analysis::FindingCode;
using analysis::Reason;
using analysis::ReasonCode;
using analysis::RemedyCode;

// Amounts inside verdict sentences: signed, rounded like format_bytes but without a TiB step
// and with two decimals for GiB (the verdict engine's long-standing style; the outputs of
// existing reports depend on it, so it is kept apart from format_bytes).
std::string amount(double b) {
  char buf[64];
  const char* sign = b < 0 ? "-" : "";
  double a = std::fabs(b);
  if (!std::isfinite(a)) a = 0;
  if (a < 1024)
    snprintf(buf, sizeof buf, "%s%.0f B", sign, a);
  else if (a < 1024.0 * 1024)
    snprintf(buf, sizeof buf, "%s%.1f KiB", sign, a / 1024);
  else if (a < 1024.0 * 1024 * 1024)
    snprintf(buf, sizeof buf, "%s%.1f MiB", sign, a / (1024.0 * 1024));
  else
    snprintf(buf, sizeof buf, "%s%.2f GiB", sign, a / (1024.0 * 1024 * 1024));
  return buf;
}

std::string per_s(double b) { return amount(b) + "/s"; }

// A plain number in printf format `f`; non-finite values print as 0.
std::string num(double x, const char* f) {
  char buf[64];
  snprintf(buf, sizeof buf, f, std::isfinite(x) ? x : 0.0);
  return buf;
}

// A count held as a double (Finding fields), as a whole number for with_commas: clamped, since
// a hostile capture can make it 2^64 or more.
uint64_t whole(double x) {
  if (!(x > 0)) return 0;
  return x >= 18446744073709549568.0 ? UINT64_MAX : static_cast<uint64_t>(x);
}

const char* const kKeptAliveRemedy =
    "Whatever these stacks allocate is kept alive. In Python: a container that only grows (list, dict, "
    "set, a cache without a bound, a registry or callbacks never removed) or objects kept by a global "
    "or a long-lived closure; in native code: a missing free/delete, or a reference never released "
    "(Py_INCREF without Py_DECREF).";

const char* const kSharedCallerRemedy =
    "Look at the stacks that grew the most (each is slow, together they leak); they usually share a "
    "caller that keeps what it creates.";

const char* const kGlibcRemedy =
    "Call malloc_trim(0) after large frees (from Python: ctypes.CDLL(\"libc.so.6\").malloc_trim(0)); "
    "with many threads, run with MALLOC_ARENA_MAX=2 to limit per-thread arenas; set "
    "MALLOC_TRIM_THRESHOLD_ (e.g. 131072) so freed memory at the top of the heap is returned sooner "
    "and MALLOC_MMAP_THRESHOLD_ (e.g. 131072) so large blocks get their own mapping, returned on free.";

const char* const kPymallocRemedy =
    "pymalloc returns an arena (1 MiB; 256 KiB before Python 3.10) to the OS only when every object in "
    "it is freed, so a few long-lived objects created among many short-lived ones pin whole arenas "
    "(fragmentation). Free the survivors too, or create long-lived objects before or after the bulk "
    "temporary work (copy out what you keep, process in batches, use compact containers such as "
    "array, bytes or numpy instead of many small objects); or run with PYTHONMALLOC=malloc so small "
    "objects come from glibc, which can return memory (with malloc_trim(0)).";

const char* const kBoundCacheRemedy =
    "If it is a cache (functools.lru_cache, a memo dict, a pool), this is its working size; bound it "
    "(maxsize=...) or clear it if that size is too large.";

const char* const kSmallerPassesRemedy =
    "Nothing to fix unless the peak is too high for you: then work on smaller pieces of input at a time, "
    "or drop what a pass built (and break its reference cycles) before the next pass starts.";

const char* const kGcCollectRemedy =
    "Turn automatic collection back on (gc.enable(), or a non-zero gc.set_threshold()) once the part "
    "that needed it off is over, or call gc.collect() from time to time; or break the reference cycles "
    "(weakref, clearing back-references) so that objects are freed without the collector.";

const char* const kGcSaveAllRemedy =
    "gc.set_debug(gc.DEBUG_SAVEALL) is on: every object the collector finds unreachable is kept in "
    "gc.garbage instead of being freed. Turn it off (gc.set_debug(0)) outside debugging, or empty the "
    "list (gc.garbage.clear()) once you have looked at it.";

const char* const kGcUncollectableRemedy =
    "gc.garbage holds objects in reference cycles the collector could not free (objects whose type has "
    "a legacy tp_del finalizer, or put there by the program). Break those cycles (weakref, or clear the "
    "references in a close() method), and empty the list (gc.garbage.clear()) once you have looked at it.";

const char* const kRunLongerRemedy =
    "Run the program longer (minutes for slow leaks; the first part is ignored as warm-up), or take "
    "snapshots more often (--interval).";

// How a retention finding opens: RSS against live memory when RSS is known.
std::string retained_lead(const Finding& f) {
  return f.rss_bytes > 0 ? "RSS stays at " + amount(f.rss_bytes) + " while only " + amount(f.live_bytes) + " is live: "
                         : "Only " + amount(f.live_bytes) + " is live, yet ";
}

std::string rss_grows_lead(const Finding& f) {
  return "RSS grows at " + per_s(f.rate_bytes_per_s) + " after warm-up while tracked live memory does not (" +
         per_s(f.live_rate_bytes_per_s) + ")";
}

// The sentence of a leak whose run ended with a teardown says up to when it was judged.
std::string teardown_note(const Reason& r) {
  if (!(r.teardown_s > 0)) return "";
  return " Judged up to " + num(r.teardown_s, "%.1f") +
         " s, where the program began to tear down (live memory fell as it exited).";
}

std::string reason_sentence(const Reason& r);

}  // namespace

std::string reason_text(const Reason& r) {
  std::string s = reason_sentence(r);
  switch (r.code) {
    case ReasonCode::kSustained:
    case ReasonCode::kAccelerating:
    case ReasonCode::kLateStart:
    case ReasonCode::kWhileWorking: return s + teardown_note(r);
    default: return s;
  }
}

namespace {

std::string reason_sentence(const Reason& r) {
  switch (r.code) {
    case ReasonCode::kSustained:
      return "Grows steadily after warm-up at " + per_s(r.rate_bytes_per_s) + " (" + num(r.count_per_s, "%.3g") +
             " blocks/s), " + amount(r.growth_bytes) + " in all, and is still growing at the end (trend p=" +
             num(r.p, "%.2g") + ").";
    case ReasonCode::kAccelerating:
      return "Grows after warm-up and faster and faster: " + per_s(r.rate_bytes_per_s) + " (" +
             num(r.count_per_s, "%.3g") + " blocks/s) over the last part of the run, " +
             per_s(r.average_rate_bytes_per_s) + " on average.";
    case ReasonCode::kLateStart:
      return "Started growing late: " + per_s(r.rate_bytes_per_s) + " (" + num(r.count_per_s, "%.3g") +
             " blocks/s) over the last part of the run, above any earlier level.";
    case ReasonCode::kWhileWorking:
      return "Grows with the work done: " + per_s(r.rate_bytes_per_s) + " (" + num(r.count_per_s, "%.3g") +
             " blocks/s) while the program works, " + amount(r.growth_bytes) +
             " in all after warm-up; it stops only when the work does (the program did little for about " +
             num(r.idle_s, "%.1f") + " s).";
    case ReasonCode::kWorkingSet:
      return "Rises and falls with the program's " + std::to_string(r.passes) + " passes, up to " +
             amount(r.peak_bytes) + " (now " + amount(r.level_bytes) +
             "): a working set that one pass builds and the next frees, not a leak.";
    case ReasonCode::kPlateau:
      return "Grew by " + amount(r.growth_bytes) + " after warm-up, then stayed flat at " + amount(r.level_bytes) +
             " (now " + per_s(r.rate_bytes_per_s) + "): cache-like, not a leak.";
    case ReasonCode::kWarmupPlateau: {
      char buf[256];
      snprintf(buf, sizeof buf, "Grew by %.1f MiB early in the run (during warm-up), then stayed flat: cache-like.",
               r.growth_bytes / (1024.0 * 1024.0));
      return buf;
    }
    case ReasonCode::kFreed:
      return "Grew to " + amount(r.peak_bytes) + ", then was freed (now " + amount(r.level_bytes) + "): not a leak.";
    case ReasonCode::kSmallGrowth:
      return "Grew by only " + amount(r.growth_bytes) + " after warm-up, below the " + amount(r.threshold) +
             " threshold.";
    case ReasonCode::kWander:
      return "Rose by " + amount(r.growth_bytes) +
             " after warm-up, but in slow irregular swings (like a random walk), not a steady leak.";
    case ReasonCode::kSlowRate:
      return "Grows slowly, " + per_s(r.rate_bytes_per_s) + ", below the " + per_s(r.threshold) + " noise floor.";
    case ReasonCode::kShrinking:
      return "Shrinks after warm-up (" + per_s(r.rate_bytes_per_s) + ").";
    case ReasonCode::kStable:
      return "Stable after warm-up: no significant trend (" + per_s(r.rate_bytes_per_s) + ").";
    case ReasonCode::kTiny:
      return "Stable after warm-up: varies by less than " + amount(r.threshold) + ".";
    case ReasonCode::kTooFewSnapshots:
      return "Too few snapshots of this stack after warm-up to judge.";
    case ReasonCode::kUnclearEnd:
      return "Grew after warm-up (" + per_s(r.rate_bytes_per_s) +
             "), but the last few snapshots are too few to tell a leak from a cache that filled; run longer.";
    case ReasonCode::kEndsEarly:
      return "Not seen in the last part of the run; cannot tell how it ends.";
    case ReasonCode::kRunTooShort: {
      char buf[160];
      snprintf(buf, sizeof buf, "Run too short to judge: %.1f s and %zu snapshots.", r.duration_s, r.snapshots);
      return buf;
    }
  }
  return "";
}

}  // namespace

std::string finding_text(const Finding& f) {
  switch (f.code) {
    case FindingCode::kStacksLeak:
      return std::to_string(f.stacks) + (f.stacks == 1 ? " stack leaks" : " stacks leak") + ", " +
             per_s(f.rate_bytes_per_s) + " in all after warm-up; the fastest (" + f.layer + ") grows at " +
             per_s(f.top_rate_bytes_per_s) + " (" + num(f.top_count_per_s, "%.3g") + " blocks/s).";
    case FindingCode::kSpreadLeak:
      return "Tracked live memory grows at " + per_s(f.rate_bytes_per_s) +
             " after warm-up, but no single stack grows faster than " + per_s(f.threshold) +
             ": the leak is spread over many stacks.";
    case FindingCode::kPymallocRetained:
      return retained_lead(f) + "pymalloc holds " + amount(f.arena_bytes) + " of arenas, " + amount(f.free_bytes) +
             " of it free, and cannot return them while a few surviving objects pin them (fragmentation).";
    case FindingCode::kGlibcRetained:
      return retained_lead(f) + "glibc malloc holds " + amount(f.free_bytes) +
             " of freed memory (mallinfo2 fordblks) and has not returned it to the OS.";
    case FindingCode::kRssAfterFree:
      return "RSS stays at " + amount(f.rss_bytes) + " although live memory fell from " + amount(f.peak_live_bytes) +
             " to " + amount(f.live_bytes) +
             ": the freed memory was not returned to the OS, and neither pymalloc's nor glibc's counters "
             "account for it (another allocator, or counters unavailable).";
    case FindingCode::kRssGrowsGlibc:
      return rss_grows_lead(f) + ": glibc's free-but-retained memory grows with it (fragmentation).";
    case FindingCode::kRssGrowsPymalloc:
      return rss_grows_lead(f) + ": pymalloc's empty arena space grows with it (fragmentation).";
    case FindingCode::kRssGrowsUntracked:
      return rss_grows_lead(f) +
             ": memory an allocator keeps, or memory leakscope does not track (allocated before tracking "
             "started, by another allocator, or directly with brk/syscalls).";
    case FindingCode::kPlateau:
      return "A " + f.layer + " stack grew by " + amount(f.bytes) + " after warm-up, then stayed flat (" +
             amount(f.live_bytes) + " live at the end): cache-like, not a leak.";
    case FindingCode::kWorkingSet:
      return "Live memory rose and fell in " + std::to_string(f.passes) + " passes: each builds up to " +
             amount(f.bytes) + " that the next frees (peak " + amount(f.peak_live_bytes) + " live, " +
             amount(f.live_bytes) + " between passes). A working set, not a leak.";
    case FindingCode::kMorePlateaus:
      return std::to_string(f.stacks) + " more stacks grew then stayed flat (" + amount(f.bytes) + " in all).";
    case FindingCode::kGcDisabled:
    case FindingCode::kGcThresholdZero:
      return std::string("Python's cyclic garbage collector was off (") +
             (f.code == FindingCode::kGcDisabled ? "gc.disable()" : "gc.set_threshold(0)") + ") for the last " +
             num(f.duration_s, "%.1f") + " s of the run while " + with_commas(whole(f.objects)) +
             " tracked objects accumulated without a collection (Python live memory +" + amount(f.bytes) +
             "): reference cycles among them are never freed.";
    case FindingCode::kGcGarbage: {
      std::string s = "gc.garbage holds " + with_commas(whole(f.objects)) + " objects at the end";
      if (f.objects_growth > 0) s += " (+" + with_commas(whole(f.objects_growth)) + " during the run)";
      if (f.uncollectable > 0)
        s += "; the collector found " + with_commas(whole(f.uncollectable)) + " uncollectable objects";
      return s + ": what it holds is never freed.";
    }
    case FindingCode::kRunTooShort: {
      char buf[256];
      snprintf(buf, sizeof buf,
               "Run too short to judge: %.1f s and %zu snapshots; verdicts need at least %.1f s and %d snapshots.",
               f.duration_s, f.snapshots, f.min_duration_s, f.min_snapshots);
      return buf;
    }
  }
  return "";
}

std::string remedy_text(RemedyCode c) {
  switch (c) {
    case RemedyCode::kNone: return "";
    case RemedyCode::kReleaseKept: return kKeptAliveRemedy;
    case RemedyCode::kSharedCaller: return kSharedCallerRemedy;
    case RemedyCode::kPymalloc: return kPymallocRemedy;
    case RemedyCode::kGlibc: return kGlibcRemedy;
    case RemedyCode::kGlibcOrPymalloc:
      return std::string("If glibc: ") + kGlibcRemedy + " If Python objects: " + kPymallocRemedy;
    case RemedyCode::kBoundCache: return kBoundCacheRemedy;
    case RemedyCode::kSmallerPasses: return kSmallerPassesRemedy;
    case RemedyCode::kRunLonger: return kRunLongerRemedy;
    case RemedyCode::kGcCollect: return kGcCollectRemedy;
    case RemedyCode::kGcSaveAll: return kGcSaveAllRemedy;
    case RemedyCode::kGcUncollectable: return kGcUncollectableRemedy;
  }
  return "";
}

namespace {
// "a/b/c" of three per-generation numbers, with thousands separators.
std::string per_generation(const uint64_t (&v)[3]) {
  return with_commas(v[0]) + "/" + with_commas(v[1]) + "/" + with_commas(v[2]);
}
uint64_t sum3(const uint64_t (&v)[3]) { return v[0] + v[1] + v[2]; }
}  // namespace

std::string gc_summary_text(const analysis::GcPoint& g, const analysis::GcCensus* census) {
  std::string o = "Python's collector: ";
  o += !g.enabled ? "off (gc.disable())" : g.threshold[0] == 0 ? "off (gc.set_threshold(0))" : "enabled";
  o += ", " + with_commas(sum3(g.collections)) + " collections (gen 0/1/2: " + per_generation(g.collections) + "), " +
       with_commas(sum3(g.collected)) + " objects collected, " + with_commas(sum3(g.uncollectable)) +
       " uncollectable, gc.garbage " + with_commas(g.garbage) + "\n";
  o += "  gc.get_count() " + per_generation(g.count) + " (thresholds " + per_generation(g.threshold) + "), " +
       with_commas(g.long_lived_total) + " objects survived the last full collection";
  if (g.debug) {
    o += ", debug flags " + std::to_string(g.debug);
    if (g.debug & analysis::kGcDebugSaveAll) o += " (DEBUG_SAVEALL)";
  }
  o += "\n";
  if (census) {
    const char* at_least = census->complete ? "" : "at least ";
    o += "  at exit: " + std::string(at_least) + with_commas(sum3(census->objects)) +
         " tracked objects (gen 0/1/2: " + per_generation(census->objects) + "), " + at_least +
         with_commas(census->frozen) + " frozen (gc.freeze())\n";
  }
  return o;
}

std::string leaking_sites_text(size_t sites, const std::string& fastest, double rate_bytes_per_s,
                               double count_per_s) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%zu site%s leak%s; the fastest, %s, grows by %s (%.0f objects/s) after warm-up.", sites,
           sites == 1 ? "" : "s", sites == 1 ? "s" : "", fastest.c_str(), rate_text(rate_bytes_per_s).c_str(),
           count_per_s);
  return buf;
}

std::string pending_tasks_text(double per_s, uint64_t peak, double peak_at_s, const std::string& site,
                               const std::string& awaiting) {
  char buf[1024];
  snprintf(buf, sizeof buf, "pending asyncio tasks grow by %.1f/s (%llu pending at %.1f s), created at %s, waiting on %s.",
           per_s, static_cast<unsigned long long>(peak), peak_at_s, site.c_str(), awaiting.c_str());
  return buf;
}

std::string pending_tasks_remedy() {
  return "Tasks that never finish keep their coroutine's frame and everything it references. Set the event or "
         "future they wait on, give the wait a timeout (asyncio.wait_for, asyncio.timeout), or keep the tasks and "
         "cancel them when their work is no longer wanted.";
}

std::string unreferenced_tasks_text(uint64_t n) {
  char buf[256];
  snprintf(buf, sizeof buf,
           "%llu pending task%s nothing references (each would log \"Task was destroyed but it is pending!\")",
           static_cast<unsigned long long>(n), n == 1 ? "" : "s");
  return buf;
}

std::string format_bytes(uint64_t b) {
  char buf[64];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) snprintf(buf, sizeof buf, "%" PRIu64 " B", b);
  else snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

std::string rate_text(double bytes_per_s) {
  if (bytes_per_s >= 1024.0 * 1024 / 60 * 10) return format_bytes(static_cast<uint64_t>(bytes_per_s)) + "/s";
  return format_bytes(static_cast<uint64_t>(bytes_per_s * 60)) + "/min";
}

// ---- findleaks

// What a block's first bytes look like.
std::string lost_preview(const analysis::LostExample& ex, const std::string& python_type) {
  if (!python_type.empty())
    return "a Python " + python_type + " object, refcount " + std::to_string(ex.refcount);
  const auto& h = ex.head;
  size_t n = 0;
  while (n < h.size() && h[n] >= 0x20 && h[n] < 0x7f) ++n;
  if (n >= 4 && (n == h.size() || h[n] == 0)) {
    std::string s = "\"";
    for (size_t i = 0; i < n; ++i) {
      if (h[i] == '"' || h[i] == '\\') s += '\\';
      s += static_cast<char>(h[i]);
    }
    return s + (n == h.size() ? "...\"" : "\"");
  }
  std::string s;
  char b[4];
  for (size_t i = 0; i < h.size() && i < 16; ++i) {
    snprintf(b, sizeof b, "%02x", h[i]);
    s += (i ? " " : "") + std::string(b);
  }
  return s.empty() ? "(not copied)" : s;
}

std::string model_note_text(analysis::ModelNote n, uint64_t count) {
  switch (n) {
    case analysis::ModelNote::kConservativeAttached:
      return "attached to a running process: blocks from before the attach are unknown, so every untracked byte "
             "was a root (a loss may be hidden by stale pointers, none is invented)";
    case analysis::ModelNote::kConservativeForeign:
      return "the program's malloc is not glibc's: its blocks are untracked, so every untracked byte was a root";
    case analysis::ModelNote::kNoPythonLayout:
      return "this Python version has no object layout in leakscope: objects were judged as plain blocks";
    case analysis::ModelNote::kArenaNotWalked:
      return std::to_string(count) + " pymalloc arena(s) did not have the expected pool layout and were scanned whole";
    case analysis::ModelNote::kBacklogMalformed:
      return "the agent's event rings held a malformed record: events after it were not applied";
    case analysis::ModelNote::kOverlappingBlocks:
      return std::to_string(count) + " tracked block(s) overlapped another and were left out";
  }
  return "";
}

std::string fold_text(size_t frames, FoldCode c) {
  const char* what = "";
  switch (c) {
    case FoldCode::kImport: what = "import-machinery"; break;
    case FoldCode::kImportAndLibrary: what = "library and import-machinery"; break;
    case FoldCode::kRuntime: what = "interpreter"; break;
    case FoldCode::kLibrary: what = "library"; break;
    case FoldCode::kAny: what = ""; break;
  }
  return "... " + std::to_string(frames) + (*what ? " " : "") + what + (frames == 1 ? " frame" : " frames") + " ...";
}

std::string fold_note_text() { return "(stacks folded around the program's own code; --all-frames shows every frame)"; }

}  // namespace leakscope::report
