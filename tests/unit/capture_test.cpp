// Unit tests for the capture format: encoder + reader round trip, truncation at every byte,
// random corruption, and hostile headers/records. The reader must never crash or hang: it
// either decodes, reports a truncated tail, or throws CaptureError.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "analysis/replay.h"
#include "capture/format.h"
#include "capture/reader.h"
#include "capture/thin.h"
#include "capture_builder.h"

using namespace leakscope::capture;

namespace {

struct Recorder : leakscope::analysis::Replay {
  std::vector<std::tuple<int, int, uint64_t, uint64_t, uint64_t>> allocs;
  std::vector<std::pair<int, uint64_t>> frees;
  void alloc(Stream s, Tag t, uint64_t a, uint64_t n, uint64_t st) override {
    allocs.emplace_back(s, t, a, n, st);
    Replay::alloc(s, t, a, n, st);
  }
  void free(Stream s, uint64_t a) override {
    frees.emplace_back(s, a);
    Replay::free(s, a);
  }
};

// A small valid capture: definitions, Python and native events over two chunks.
CaptureBuilder sample() {
  CaptureBuilder b;
  auto& d = b.sec(kStreamDefs);
  d.push_back(kInfo), CaptureBuilder::str(d, "python_version"), CaptureBuilder::str(d, "3.11.7");
  d.push_back(kModule), CaptureBuilder::str(d, "/bin/x"), CaptureBuilder::put(d, 0x400000),
      CaptureBuilder::str(d, "\x01\x02"), CaptureBuilder::put(d, 1), CaptureBuilder::put(d, 0),
      CaptureBuilder::put(d, 0x1000);
  d.push_back(kCode), CaptureBuilder::put(d, 1), CaptureBuilder::put(d, 10), d.push_back(11),
      CaptureBuilder::str(d, std::string("\x80\x00", 2)), CaptureBuilder::str(d, "app.py"), CaptureBuilder::str(d, "f");
  d.push_back(kFramePy), CaptureBuilder::put(d, 1), CaptureBuilder::put(d, 4);      // frame 1
  d.push_back(kFrameNative), CaptureBuilder::put(d, 0x401234);                     // frame 2
  d.push_back(kStackNode), CaptureBuilder::put(d, 0), CaptureBuilder::put(d, 1);  // stack 1
  d.push_back(kStackNode), CaptureBuilder::put(d, 1), CaptureBuilder::put(d, 2);  // stack 2
  auto& p = b.sec(kStreamPy);
  p.push_back(kAllocObj), CaptureBuilder::sput(p, 0x7000), CaptureBuilder::put(p, 32), CaptureBuilder::sput(p, 1);
  p.push_back(kAllocObj), CaptureBuilder::sput(p, 0x40), CaptureBuilder::put(p, 48), CaptureBuilder::sput(p, 0);
  p.push_back(kFree), CaptureBuilder::sput(p, -0x40);  // frees 0x7000
  auto& n = b.sec(kStreamNative);
  n.push_back(kAllocMalloc), CaptureBuilder::sput(n, 0x9000), CaptureBuilder::put(n, 100), CaptureBuilder::sput(n, 2);
  n.push_back(kMmap), CaptureBuilder::sput(n, 0x10000), CaptureBuilder::put(n, 0x4000), CaptureBuilder::sput(n, 0);
  b.chunk();
  auto& n2 = b.sec(kStreamNative);
  n2.push_back(kMunmap), CaptureBuilder::sput(n2, 0x1000), CaptureBuilder::put(n2, 0x1000);  // middle of the map
  n2.push_back(kFree), CaptureBuilder::sput(n2, -0x10000);  // 0x9000... delta from 0x11000
  auto& d2 = b.sec(kStreamDefs);
  GcStats g;  // the agent's encoder, census included
  g.time_ns = 4;
  g.flags = kGcEnabled | kGcCensus | kGcCensusComplete;
  g.debug = 32;
  g.count[0] = 11, g.threshold[0] = 700, g.collections[0] = 5, g.collected[0] = 40, g.uncollectable[2] = 1;
  g.garbage = 9, g.long_lived_total = 80, g.long_lived_pending = 3;
  g.objects[2] = 300, g.frozen = 7;
  uint8_t gb[kMaxGcStatsRecord];
  d2.insert(d2.end(), gb, put_gcstats(gb, g));
  d2.push_back(kStop), CaptureBuilder::put(d2, 5), CaptureBuilder::str(d2, "exit");
  b.chunk();
  return b;
}

}  // namespace

TEST(Capture, RoundTripDecodesEveryRecordWithDeltasUndone) {
  auto b = sample();
  std::string path = write_temp(b.bytes());
  Reader r(path);
  Recorder rec;
  r.read_all(rec);
  unlink(path.c_str());
  EXPECT_EQ(r.header().pid, 4242u);
  EXPECT_FALSE(r.truncated());
  EXPECT_EQ(r.chunks(), 2u);
  ASSERT_EQ(rec.allocs.size(), 4u);
  EXPECT_EQ(std::get<2>(rec.allocs[0]), 0x7000u);
  EXPECT_EQ(std::get<2>(rec.allocs[1]), 0x7040u);
  EXPECT_EQ(std::get<4>(rec.allocs[1]), 1u);  // stack delta 0 keeps stack 1
  EXPECT_EQ(std::get<2>(rec.allocs[2]), 0x9000u);
  EXPECT_EQ(std::get<4>(rec.allocs[2]), 2u);
  EXPECT_EQ(std::get<2>(rec.allocs[3]), 0x19000u);
  ASSERT_EQ(rec.frees.size(), 2u);
  EXPECT_EQ(rec.frees[0].second, 0x7000u);
  EXPECT_EQ(rec.frees[1].second, 0x9000u + 0x1000u);  // not a live block: an unknown free
  EXPECT_TRUE(rec.stopped());
  EXPECT_EQ(rec.info().at("python_version"), "3.11.7");
  ASSERT_EQ(rec.modules().size(), 1u);
  EXPECT_EQ(rec.modules()[0].build_id, "\x01\x02");
  ASSERT_EQ(rec.nodes().size(), 3u);  // index 0 is the root
  EXPECT_EQ(rec.nodes()[2].parent, 1u);
  EXPECT_EQ(rec.codes().at(1).filename, "app.py");
  // Live: 48 (py) + 100 (malloc) + 0x3000 (mmap minus the unmapped middle page)
  EXPECT_EQ(rec.live_bytes(), 48u + 100u + 0x3000u);
  EXPECT_EQ(rec.live_mmaps().size(), 2u) << "a munmap in the middle splits the mapping";
  // sections replay in order: P (32 + 48, then 32 freed), then N (100 + 0x4000)
  EXPECT_EQ(rec.peak_bytes(), 48u + 100u + 0x4000u);
  EXPECT_EQ(rec.unknown_frees(), 1u);
  // GCSTATS: one point at the last snapshot, and the census it carried.
  rec.finish();
  ASSERT_EQ(rec.gc_series().size(), 1u);
  const leakscope::analysis::GcPoint& gp = rec.gc_series()[0];
  EXPECT_TRUE(gp.enabled);
  EXPECT_EQ(gp.debug, 32u);
  EXPECT_EQ(gp.count[0], 11u);
  EXPECT_EQ(gp.threshold[0], 700u);
  EXPECT_EQ(gp.collections[0], 5u);
  EXPECT_EQ(gp.collected[0], 40u);
  EXPECT_EQ(gp.uncollectable[2], 1u);
  EXPECT_EQ(gp.garbage, 9u);
  EXPECT_EQ(gp.long_lived_total, 80u);
  EXPECT_EQ(gp.long_lived_pending, 3u);
  EXPECT_DOUBLE_EQ(gp.t_s, rec.snapshot_times().back());
  ASSERT_NE(rec.gc_census(), nullptr);
  EXPECT_EQ(rec.gc_census()->objects[2], 300u);
  EXPECT_EQ(rec.gc_census()->frozen, 7u);
  EXPECT_TRUE(rec.gc_census()->complete);
}

TEST(Capture, ProgressIsToldOncePerChunkUpToTheFileSize) {
  auto b = sample();
  std::string path = write_temp(b.bytes());
  Reader r(path);
  std::vector<std::tuple<std::string, uint64_t, uint64_t>> calls;
  r.set_progress([&](const std::string& name, uint64_t done, uint64_t size) { calls.emplace_back(name, done, size); });
  Recorder rec;
  r.read_all(rec);
  unlink(path.c_str());
  ASSERT_EQ(calls.size(), r.chunks());
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(std::get<0>(calls[0]), path);
  EXPECT_LT(std::get<1>(calls[0]), std::get<1>(calls[1]));
  EXPECT_GT(std::get<1>(calls[0]), kHeaderSize);
  EXPECT_EQ(std::get<1>(calls[1]), b.bytes().size()) << "the last call says the whole file was read";
  for (const auto& c : calls) EXPECT_EQ(std::get<2>(c), b.bytes().size());
}

TEST(Capture, EveryTruncationIsRejectedOrReadAsACutTail) {
  auto b = sample();
  const auto& full = b.bytes();
  for (size_t cut = 0; cut < full.size(); ++cut) {
    std::vector<uint8_t> part(full.begin(), full.begin() + static_cast<long>(cut));
    std::string path = write_temp(part);
    try {
      Reader r(path);
      Recorder rec;
      r.read_all(rec);
      EXPECT_GE(cut, kHeaderSize) << "a cut header must be rejected";
      EXPECT_LE(r.chunks(), 2u);
      if (r.chunks() < 2 && cut != kHeaderSize) {
        // either ends exactly at a chunk boundary or is flagged as cut short
        EXPECT_TRUE(r.truncated() || !rec.stopped());
      }
    } catch (const CaptureError& e) {
      EXPECT_LT(cut, kHeaderSize) << "only a cut header is an error, got: " << e.what();
    }
    unlink(path.c_str());
  }
}

TEST(Capture, RandomCorruptionNeverCrashes) {
  auto b = sample();
  std::mt19937 rng(7);
  int errors = 0, ok = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    auto bytes = b.bytes();
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bytes[kHeaderSize + rng() % (bytes.size() - kHeaderSize)] ^= static_cast<uint8_t>(1 + rng() % 255);
    std::string path = write_temp(bytes);
    try {
      Reader r(path);
      Recorder rec;
      r.read_all(rec);
      ++ok;
    } catch (const CaptureError&) {
      ++errors;
    }
    unlink(path.c_str());
  }
  EXPECT_GT(errors, 2500) << "checksums and structure checks should catch nearly every flip";
}

TEST(Capture, HostileHeadersAndRecordsAreRejected) {
  auto expect_error = [](std::vector<uint8_t> bytes, const char* what) {
    std::string path = write_temp(bytes);
    bool threw = false;
    try {
      Reader r(path);
      Recorder rec;
      r.read_all(rec);
    } catch (const CaptureError& e) {
      threw = true;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
    }
    unlink(path.c_str());
    EXPECT_TRUE(threw) << what;
  };
  {  // bad magic
    auto b = sample().bytes();
    b[0] = 'X';
    expect_error(b, "bad magic");
  }
  {  // future version
    auto b = sample().bytes();
    b[8] = 99;
    expect_error(b, "version");
  }
  {  // chunk claiming 4 GB
    CaptureBuilder c;
    auto b = c.bytes();
    ChunkHeader ch{kChunkMagic, 0xfffffff0u, 0xfffffff0u, 0};
    const uint8_t* hp = reinterpret_cast<const uint8_t*>(&ch);
    b.insert(b.end(), hp, hp + sizeof ch);
    b.resize(b.size() + 4096);
    expect_error(b, "huge chunk");
  }
  {  // chunks out of order
    CaptureBuilder c;
    c.sec(kStreamDefs).push_back(kTick), CaptureBuilder::put(c.sec(kStreamDefs), 1);
    c.chunk(5);
    expect_error(c.bytes(), "sequence");
  }
  {  // unknown stream
    CaptureBuilder c;
    c.sec(9).push_back(kTick);
    c.chunk();
    expect_error(c.bytes(), "stream");
  }
  {  // stack node pointing at an undefined frame
    CaptureBuilder c;
    auto& d = c.sec(kStreamDefs);
    d.push_back(kStackNode), CaptureBuilder::put(d, 0), CaptureBuilder::put(d, 77);
    c.chunk();
    expect_error(c.bytes(), "undefined frame");
  }
  {  // string longer than its section
    CaptureBuilder c;
    auto& d = c.sec(kStreamDefs);
    d.push_back(kMessage), CaptureBuilder::put(d, 1u << 19);
    c.chunk();
    expect_error(c.bytes(), "string past section");
  }
  {  // varint that never ends
    CaptureBuilder c;
    auto& p = c.sec(kStreamPy);
    p.push_back(kFree);
    for (int i = 0; i < 12; ++i) p.push_back(0xff);
    c.chunk();
    expect_error(c.bytes(), "varint");
  }
  {  // a Python allocation in the native stream
    CaptureBuilder c;
    auto& n = c.sec(kStreamNative);
    n.push_back(kAllocObj), CaptureBuilder::sput(n, 16), CaptureBuilder::put(n, 8), CaptureBuilder::sput(n, 0);
    c.chunk();
    expect_error(c.bytes(), "wrong stream");
  }
  {  // a GCSTATS record with flags this reader does not know (they could announce fields)
    CaptureBuilder c;
    auto& d = c.sec(kStreamDefs);
    GcStats g;
    g.flags = 16;
    uint8_t gb[kMaxGcStatsRecord];
    d.insert(d.end(), gb, put_gcstats(gb, g));
    c.chunk();
    expect_error(c.bytes(), "gcstats flags");
  }
}

// Thinning rule (capture/thin.h): full resolution inside the window, then buckets twice as
// wide each time the age doubles, aligned so a coarser bucket is a union of finer ones.
TEST(Thin, FullResolutionInsideTheWindow) {
  const uint64_t s = 1000000000ull, interval = s, full = 3600 * s, now = 10 * 3600 * s;
  EXPECT_EQ(leakscope::capture::thin_bucket(now - 1, now, interval, full).width, 0u);
  EXPECT_EQ(leakscope::capture::thin_bucket(now - full + 1, now, interval, full).width, 0u);
  EXPECT_EQ(leakscope::capture::thin_bucket(now + 5, now, interval, full).width, 0u);  // clock skew
  EXPECT_EQ(leakscope::capture::thin_bucket(now - full, now, interval, full).width, 2 * interval);
}

TEST(Thin, WidthDoublesWithAge) {
  const uint64_t s = 1000000000ull, interval = s, full = 100 * s, now = 1000000 * s;
  for (unsigned k = 1; k < 12; ++k) {
    uint64_t age_lo = full << (k - 1), age_hi = (full << k) - 1;
    EXPECT_EQ(leakscope::capture::thin_bucket(now - age_lo, now, interval, full).width, interval << k) << k;
    EXPECT_EQ(leakscope::capture::thin_bucket(now - age_hi, now, interval, full).width, interval << k) << k;
  }
}

TEST(Thin, SnapshotsKeptGrowLogarithmically) {
  // One snapshot per second for a week, full resolution for an hour: count distinct buckets.
  const uint64_t s = 1000000000ull, interval = s, full = 3600 * s, week = 7 * 24 * 3600 * s;
  uint64_t kept = 0;
  leakscope::capture::ThinBucket prev{~0ull, ~0ull};
  for (uint64_t t = 0; t <= week; t += s) {
    auto b = leakscope::capture::thin_bucket(t, week, interval, full);
    if (b.width == 0 || !(b == prev)) ++kept;
    prev = b;
  }
  EXPECT_LT(kept, 20000u);  // 604,800 taken
  EXPECT_GT(kept, 3600u);   // the last hour is whole
}

TEST(Thin, CoarserBucketsNest) {
  const uint64_t s = 1000000000ull, interval = s, full = 60 * s;
  // Two snapshots in one bucket at time `now` stay in one bucket later, when buckets are wider.
  for (uint64_t now : {200 * s, 500 * s, 5000 * s})
    for (uint64_t t = 0; t + s < 100 * s; t += s) {
      auto a = leakscope::capture::thin_bucket(t, now, interval, full);
      auto b = leakscope::capture::thin_bucket(t + s, now, interval, full);
      if (a.width == 0 || !(a == b)) continue;
      auto a2 = leakscope::capture::thin_bucket(t, now * 3, interval, full);
      auto b2 = leakscope::capture::thin_bucket(t + s, now * 3, interval, full);
      EXPECT_TRUE(a2 == b2) << t << " " << now;
    }
}
