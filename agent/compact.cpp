// Thinning of an aggregate capture: see compact.h. Runs on the writer thread, whose memory
// is never recorded; this file (with capture/reader.cpp) is built with exceptions so the
// reader's CaptureError can be caught here and turned into "not thinned, carry on".
#include "agent/compact.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "capture/reader.h"
#include "capture/thin.h"

namespace leakscope::agent {
namespace {

constexpr size_t kOutChunkRaw = 1u << 20;  // rewritten chunks: about 1 MiB of records each
constexpr size_t kBody = 1 + capture::kPaddedLength;  // a D section's records start here

class Rewriter : public capture::Visitor {
 public:
  Rewriter(int out_fd, uint64_t now, uint64_t interval, uint64_t full, void (*between)())
      : out_fd_(out_fd), now_(now), interval_(interval), full_(full), between_(between) {
    cctx_ = ZSTD_createCCtx();
    if (cctx_) {
      ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, 3);
      ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    }
    begin_section();
  }
  ~Rewriter() override { ZSTD_freeCCtx(cctx_); }

  // Definitions and messages pass through as they are; TICK (event times) is dropped, STATS,
  // GCSTATS and SNAPSHOT go through the buckets.
  void def_record(uint8_t tag, const uint8_t* bytes, size_t n) override {
    if (tag == capture::kTick || tag == capture::kStats || tag == capture::kGcStats || tag == capture::kSnapshot)
      return;
    if (tag == capture::kTasks) {  // one a second, like STATS: thinned the same way
      capture::ThinBucket b = bucket(tasks_time(bytes, n));
      if (have_tasks_ && !(b == tasks_bucket_ && b.width)) emit_tasks();
      tasks_.assign(bytes, bytes + n);
      tasks_bucket_ = b;
      have_tasks_ = true;
      return;
    }
    raw_.insert(raw_.end(), bytes, bytes + n);
  }
  void stats(const capture::Stats& s) override {
    capture::ThinBucket b = bucket(s.time_ns);
    if (have_stats_ && !(b == stats_bucket_ && b.width)) emit_stats();
    stats_ = s;
    stats_bucket_ = b;
    have_stats_ = true;
  }
  // The collector's state is thinned exactly as STATS are: each bucket keeps its last record.
  void gcstats(const capture::GcStats& g) override {
    capture::ThinBucket b = bucket(g.time_ns);
    if (have_gc_ && !(b == gc_bucket_ && b.width)) emit_gcstats();
    // A census (at exit, or handed over by a GIL holder) is kept when a later record of its
    // bucket has none.
    const bool census = !(g.flags & capture::kGcCensus) && have_gc_ && (gc_.flags & capture::kGcCensus);
    capture::GcStats keep = gc_;
    gc_ = g;
    if (census) {
      gc_.flags |= keep.flags & (capture::kGcCensus | capture::kGcCensusComplete);
      for (int i = 0; i < 3; ++i) gc_.objects[i] = keep.objects[i];
      gc_.frozen = keep.frozen;
    }
    gc_bucket_ = b;
    have_gc_ = true;
  }
  void snapshot(capture::Snapshot&& s) override {
    ++snapshots_in_;
    capture::ThinBucket b = bucket(s.time_ns);
    if (have_snap_ && !(b == snap_bucket_ && b.width)) emit_snapshot();
    snap_bucket_ = b;
    have_snap_ = true;
    for (const auto& [key, bytes, count] : s.changed) merged_[key] = {bytes, count};
    s.changed.clear();
    head_ = std::move(s);
  }
  void chunk_end() override {
    if (raw_.size() >= kOutChunkRaw) flush_chunk();
    if (between_) between_();
  }
  // (No event callbacks: aggregate captures carry no P or N sections.)

  // Ends the rewrite: the pending bucket states, an INFO record counting rewrites, the last chunk.
  bool finish(uint32_t compactions) {
    if (have_stats_) emit_stats();
    if (have_tasks_) emit_tasks();
    if (have_gc_) emit_gcstats();
    if (have_snap_) emit_snapshot();
    char num[16];
    int n = snprintf(num, sizeof num, "%u", compactions);
    uint8_t rec[64];
    uint8_t* p = rec;
    *p++ = capture::kInfo;
    p = capture::put_bytes(p, "thinned", 7);
    p = capture::put_bytes(p, num, static_cast<size_t>(n));
    raw_.insert(raw_.end(), rec, p);
    flush_chunk();
    return ok_;
  }
  uint32_t chunks() const { return seq_; }
  uint64_t bytes_written() const { return written_; }
  uint64_t snapshots_in() const { return snapshots_in_; }
  uint64_t snapshots_out() const { return snapshots_out_; }

 private:
  capture::ThinBucket bucket(uint64_t t) const { return capture::thin_bucket(t, now_, interval_, full_); }

  void begin_section() {
    raw_.clear();
    raw_.push_back(capture::kStreamDefs);
    raw_.resize(kBody);  // the padded length is filled in by flush_chunk
  }
  // A TASKS record's time: tag, varint length, then varint version and varint ns (format.md).
  static uint64_t tasks_time(const uint8_t* p, size_t n) {
    size_t i = 1;
    uint64_t v[3] = {0, 0, 0};
    for (int k = 0; k < 3; ++k)
      for (int shift = 0; i < n && shift < 64; shift += 7) {
        uint8_t b = p[i++];
        v[k] |= static_cast<uint64_t>(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
      }
    return v[2];
  }
  void emit_tasks() {
    raw_.insert(raw_.end(), tasks_.begin(), tasks_.end());
    have_tasks_ = false;
  }
  void emit_stats() {
    uint8_t rec[capture::kMaxStatsRecord];
    raw_.insert(raw_.end(), rec, capture::put_stats(rec, stats_));
    have_stats_ = false;
  }
  void emit_gcstats() {
    uint8_t rec[capture::kMaxGcStatsRecord];
    raw_.insert(raw_.end(), rec, capture::put_gcstats(rec, gc_));
    have_gc_ = false;
  }
  void emit_snapshot() {
    uint8_t head[1 + 7 * capture::kMaxVarint];
    uint8_t* p = capture::put_snapshot_head(head, head_.time_ns, head_.live_bytes, head_.peak_bytes, head_.alloc_count,
                                            head_.alloc_bytes, head_.events, merged_.size());
    raw_.insert(raw_.end(), head, p);
    uint64_t prev = 0;
    for (const auto& [key, v] : merged_) {
      uint8_t e[3 * capture::kMaxVarint];
      uint8_t* q = capture::put_svarint(e, static_cast<int64_t>(key - prev));
      q = capture::put_varint(q, v.first);
      q = capture::put_varint(q, v.second);
      raw_.insert(raw_.end(), e, q);
      prev = key;
    }
    merged_.clear();
    have_snap_ = false;
    ++snapshots_out_;
  }
  void flush_chunk() {
    if (raw_.size() <= kBody || !ok_) return;
    uint64_t len = raw_.size() - kBody;
    capture::put_varint_padded5(&raw_[1], len);
    comp_.resize(capture::kChunkHeaderSize + ZSTD_compressBound(raw_.size()));
    size_t c = cctx_ ? ZSTD_compress2(cctx_, comp_.data() + capture::kChunkHeaderSize,
                                      comp_.size() - capture::kChunkHeaderSize, raw_.data(), raw_.size())
                     : 0;
    if (!cctx_ || ZSTD_isError(c)) {
      ok_ = false;
      return;
    }
    capture::ChunkHeader ch{capture::kChunkMagic, static_cast<uint32_t>(c), static_cast<uint32_t>(raw_.size()), seq_++};
    std::memcpy(comp_.data(), &ch, sizeof ch);
    const uint8_t* p = comp_.data();
    size_t left = capture::kChunkHeaderSize + c;
    while (left > 0) {
      ssize_t w = write(out_fd_, p, left);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ok_ = false;
        return;
      }
      p += w;
      left -= static_cast<size_t>(w);
      written_ += static_cast<uint64_t>(w);
    }
    begin_section();
  }

  int out_fd_;
  uint64_t now_, interval_, full_;
  void (*between_)();
  ZSTD_CCtx* cctx_ = nullptr;
  std::vector<uint8_t> raw_, comp_;
  uint32_t seq_ = 0;
  uint64_t written_ = 0;
  bool ok_ = true;
  bool have_stats_ = false, have_gc_ = false, have_snap_ = false, have_tasks_ = false;
  std::vector<uint8_t> tasks_;  // the bucket's latest TASKS record, as written
  capture::ThinBucket tasks_bucket_;
  capture::Stats stats_;
  capture::GcStats gc_;
  capture::ThinBucket stats_bucket_, gc_bucket_, snap_bucket_;
  capture::Snapshot head_;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> merged_;
  uint64_t snapshots_in_ = 0, snapshots_out_ = 0;
};

bool same_file(const struct stat& a, const struct stat& b) { return a.st_dev == b.st_dev && a.st_ino == b.st_ino; }

}  // namespace

CompactResult compact_capture(const char* path, int fd, uint64_t now_ns, uint64_t interval_ns, uint64_t full_ns,
                              uint32_t compactions, void (*between_chunks)()) {
  CompactResult r;
  auto fail = [&r](const char* why) {
    snprintf(r.why, sizeof r.why, "%s", why);
    return r;
  };
  struct stat cur, named;
  if (fstat(fd, &cur) != 0) return fail("cannot stat the capture");
  int in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) return fail("the capture's path no longer opens");
  if (fstat(in, &named) != 0 || !same_file(cur, named)) {
    close(in);
    return fail("the capture was moved or replaced");
  }
  // The new file: same directory (rename stays atomic), unpredictable name, O_EXCL, 0600.
  std::string tmp = std::string(path) + ".thin-XXXXXX";
  int out = mkostemp(tmp.data(), O_CLOEXEC | O_APPEND);
  if (out < 0) {
    close(in);
    return fail("cannot create a file beside the capture");
  }
  bool ok = false;
  try {
    capture::Reader reader(in, path);
    // A forked child's capture is rewritten alone: its parent's definitions are named, not copied.
    reader.set_skip_parent(true);
    capture::FileHeader h = reader.header();
    if (write(out, &h, sizeof h) == static_cast<ssize_t>(sizeof h)) {
      Rewriter w(out, now_ns, interval_ns, full_ns, between_chunks);
      reader.read_all(w);
      ok = w.finish(compactions);
      r.chunks = w.chunks();
      r.size = sizeof h + w.bytes_written();
      r.snapshots_in = w.snapshots_in();
      r.snapshots_out = w.snapshots_out();
    }
  } catch (const capture::CaptureError& e) {
    snprintf(r.why, sizeof r.why, "cannot read the capture back: %s", e.what());
  } catch (...) {  // std::bad_alloc: give up thinning, never the program
    snprintf(r.why, sizeof r.why, "out of memory while thinning");
  }
  close(in);
  // Replace the capture only with a complete, synced file, and only if the path still names it.
  if (ok && fsync(out) == 0 && stat(path, &named) == 0 && same_file(cur, named) && rename(tmp.c_str(), path) == 0) {
    r.ok = true;
    r.fd = out;
    return r;
  }
  if (!r.why[0]) snprintf(r.why, sizeof r.why, "cannot write the thinned capture (%s)", strerror(errno));
  unlink(tmp.c_str());
  close(out);
  return r;
}

}  // namespace leakscope::agent
