// Capture file constants and the record encoder shared by the agent (writer) and the reader.
// The byte layout is specified in capture/format.md; keep the two in sync.
// Everything here is allocation-free and async-signal-safe (plain stores into caller buffers).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <initializer_list>

namespace leakscope::capture {

inline constexpr char kMagic[8] = {'L', 'K', 'S', 'C', 'O', 'P', 'E', '\0'};
inline constexpr uint32_t kFormatVersion = 2;     // written
inline constexpr uint32_t kMinFormatVersion = 1;  // still read
inline constexpr uint32_t kHeaderSize = 64;
inline constexpr uint32_t kChunkMagic = 0x4843534c;  // "LSCH"
inline constexpr uint32_t kChunkHeaderSize = 16;
inline constexpr uint32_t kMaxChunkBytes = 64u << 20;
inline constexpr uint32_t kMaxStringBytes = 1u << 20;
inline constexpr uint32_t kFlagNative = 1u;
inline constexpr uint32_t kFlagAggregate = 2u;  // version 2: snapshots instead of events
// A forked child's capture: it continues its parent capture's definitions (format.md, "Forked
// children"). Bit 2, not bit 1: bit 1 is already kFlagAggregate in every aggregate capture.
inline constexpr uint32_t kFlagForkedChild = 4u;

enum Stream : uint8_t { kStreamDefs = 1, kStreamPy = 2, kStreamNative = 3 };

enum Tag : uint8_t {
  kAllocObj = 0x10,
  kAllocMem = 0x11,
  kFree = 0x12,
  kArenaAlloc = 0x13,
  kArenaFree = 0x14,
  kAllocRaw = 0x20,
  kAllocMalloc = 0x21,
  kMmap = 0x22,
  kMunmap = 0x23,
  kTick = 0x2f,
  kFramePy = 0x30,
  kFrameNative = 0x31,
  kStackNode = 0x32,
  kCode = 0x33,
  kModule = 0x34,
  kInfo = 0x35,
  kStats = 0x36,
  kStop = 0x37,
  kMessage = 0x38,
  kSnapshot = 0x39,  // version 2: aggregate mode
  kFindleaks = 0x3a,  // run --findleaks: the check when tracking stopped (docs/findleaks.md)
  kRetain = 0x3b,     // retention paths when a Python run ended (docs/retention.md)
  kGcStats = 0x3c,    // Python's cyclic garbage collector, next to each STATS record
  kTasks = 0x3d,      // pending asyncio tasks (docs/retention.md)
};

// Line-table kinds in CODE records (decoded by symbolize/python_lines.cpp).
enum LineTableKind : uint8_t { kLnotab39 = 9, kLinetable310 = 10, kLocations311 = 11 };

#pragma pack(push, 1)
struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint64_t pid;
  uint64_t start_time_ns;
  uint32_t flags;
  uint8_t reserved[28];
};
struct ChunkHeader {
  uint32_t magic;
  uint32_t compressed_size;
  uint32_t raw_size;
  uint32_t sequence;
};
#pragma pack(pop)
static_assert(sizeof(FileHeader) == kHeaderSize, "header layout");
static_assert(sizeof(ChunkHeader) == kChunkHeaderSize, "chunk header layout");

// With sampling (INFO sample_rate R > 0), a recorded block of `size` bytes was sampled with
// probability 1 - exp(-size/R) and stands for 1 / that many blocks (unbiased estimates).
inline double sample_weight(uint64_t size, uint64_t rate) {
  if (rate == 0 || size == 0) return 1.0;
  double p = -std::expm1(-static_cast<double>(size) / static_cast<double>(rate));
  return p > 0 ? 1.0 / p : 1.0;
}

// Worst case bytes of one varint.
inline constexpr size_t kMaxVarint = 10;

inline uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}
// A section length written after its records: always 5 bytes (a padded, non-minimal varint of
// up to 2^35 - 1), so the space can be reserved before the length is known.
inline constexpr size_t kPaddedLength = 5;
inline void put_varint_padded5(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(((v >> (7 * i)) & 0x7f) | 0x80);
  p[4] = static_cast<uint8_t>((v >> 28) & 0x7f);
}
inline uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }
inline uint8_t* put_svarint(uint8_t* p, int64_t v) { return put_varint(p, zigzag(v)); }
inline uint8_t* put_bytes(uint8_t* p, const void* data, size_t n) {
  p = put_varint(p, n);
  std::memcpy(p, data, n);
  return p + n;
}

// STATS record (format.md).
struct Stats {
  uint64_t time_ns = 0, rss = 0, rss_anon = 0, rss_file = 0, glibc_in_use = 0, glibc_free = 0,
           glibc_mmap = 0, arena_bytes = 0, threads = 0;
};
inline constexpr size_t kMaxStatsRecord = 1 + 9 * kMaxVarint;
inline uint8_t* put_stats(uint8_t* p, const Stats& s) {
  *p++ = kStats;
  for (uint64_t v : {s.time_ns, s.rss, s.rss_anon, s.rss_file, s.glibc_in_use, s.glibc_free, s.glibc_mmap,
                     s.arena_bytes, s.threads})
    p = put_varint(p, v);
  return p;
}

// GCSTATS record (format.md): the collector's state next to a STATS record.
inline constexpr uint64_t kGcEnabled = 1;         // gc.isenabled()
inline constexpr uint64_t kGcCollecting = 2;      // a collection was running when it was read
inline constexpr uint64_t kGcCensus = 4;          // exact objects per generation and frozen objects follow
inline constexpr uint64_t kGcCensusComplete = 8;  // the census walked every list to its end
inline constexpr uint64_t kGcKnownFlags = 15;
struct GcStats {
  uint64_t time_ns = 0, flags = 0, debug = 0;
  uint64_t count[3] = {}, threshold[3] = {}, collections[3] = {}, collected[3] = {}, uncollectable[3] = {};
  uint64_t garbage = 0;  // len(gc.garbage)
  uint64_t long_lived_total = 0, long_lived_pending = 0;
  uint64_t objects[3] = {}, frozen = 0;  // with kGcCensus only
};
inline constexpr size_t kMaxGcStatsRecord = 1 + 25 * kMaxVarint;
inline uint8_t* put_gcstats(uint8_t* p, const GcStats& g) {
  *p++ = kGcStats;
  for (uint64_t v : {g.time_ns, g.flags, g.debug}) p = put_varint(p, v);
  for (int i = 0; i < 3; ++i)
    for (uint64_t v : {g.count[i], g.threshold[i], g.collections[i], g.collected[i], g.uncollectable[i]})
      p = put_varint(p, v);
  for (uint64_t v : {g.garbage, g.long_lived_total, g.long_lived_pending}) p = put_varint(p, v);
  if (g.flags & kGcCensus)
    for (uint64_t v : {g.objects[0], g.objects[1], g.objects[2], g.frozen}) p = put_varint(p, v);
  return p;
}

// SNAPSHOT record up to its entry count (format.md); the entries follow as
// (svarint key delta, varint bytes, varint count), keys ascending.
inline uint8_t* put_snapshot_head(uint8_t* p, uint64_t ns, uint64_t live, uint64_t peak, uint64_t alloc_count,
                                  uint64_t alloc_bytes, uint64_t events, uint64_t n) {
  *p++ = kSnapshot;
  for (uint64_t v : {ns, live, peak, alloc_count, alloc_bytes, events, n}) p = put_varint(p, v);
  return p;
}

}  // namespace leakscope::capture
