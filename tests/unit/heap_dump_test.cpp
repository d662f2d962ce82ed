// Heap dump files (analysis/heap_dump.h, docs/heapdump-format.md): a round trip of everything a
// dump holds, and hostile files, each refused with one line (DumpError) and never a crash, a
// hang or unbounded memory. Also the FINDLEAKS record (analysis/findleaks_record.h): round
// trip, limits and malformed payloads, and appending it to a capture. Public headers only.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zstd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "analysis/findleaks.h"
#include "analysis/findleaks_record.h"
#include "analysis/heap_dump.h"
#include "analysis/heap_image.h"
#include "analysis/replay.h"
#include "capture/format.h"
#include "capture/live_table.h"
#include "capture/reader.h"
#include "capture/scan_abi.h"

namespace leakscope::analysis {
namespace {

// ---------------------------------------------------------------- helpers
constexpr uint32_t kSectionMagic = 0x5344534c;  // "LSDS"
enum : uint32_t { kThreads = 1, kMaps = 2, kModules = 3, kMemory = 4, kCapture = 5, kWarnings = 6, kEnd = 7 };
constexpr size_t kMaxRaw = 64u << 20;

void put(std::string& s, uint64_t v) {
  uint8_t b[capture::kMaxVarint];
  s.append(reinterpret_cast<char*>(b), static_cast<size_t>(capture::put_varint(b, v) - b));
}
void put_str(std::string& s, const std::string& v) {
  put(s, v.size());
  s += v;
}
std::string u32(uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string u64(uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }

std::string zstd(const std::string& raw, bool checksum = true) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  size_t n = ZSTD_compress2(c, out.data(), out.size(), raw.data(), raw.size());
  ZSTD_freeCCtx(c);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// A dump assembled by hand: header, then sections.
struct RawDump {
  std::string bytes;
  explicit RawDump(uint32_t version = 1, uint32_t header_size = 64, const char* magic = "LSHEAPD") {
    bytes.append(magic, 7);
    bytes += '\0';
    bytes += u32(version) + u32(header_size) + u64(4242) + u64(1700000000000000000ull) + u64(0x7f0000000000);
    bytes.append(24, '\0');
  }
  // A section from raw bytes; `raw_size` and `comp` override what the header says.
  RawDump& section(uint32_t type, const std::string& raw) { return framed(type, zstd(raw), static_cast<uint32_t>(raw.size())); }
  RawDump& framed(uint32_t type, const std::string& comp, uint32_t raw_size, uint32_t magic = kSectionMagic) {
    bytes += u32(magic) + u32(type) + u32(static_cast<uint32_t>(comp.size())) + u32(raw_size) + comp;
    return *this;
  }
  RawDump& end() { return section(kEnd, ""); }
};

std::string memory_section(uint64_t addr, const std::string& body) {
  std::string s;
  put(s, addr);
  return s + body;
}

// Reads `bytes` as a dump; the DumpError's message ("" when it read).
std::string error_of(const std::string& bytes, Dump* out = nullptr) {
  Dump d;
  try {
    read_dump_bytes(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), out ? out : &d);
  } catch (const DumpError& e) {
    return e.what();
  }
  return "";
}

// Refused with one line that says `what`.
void expect_refused(const std::string& bytes, const std::string& what) {
  std::string e = error_of(bytes);
  ASSERT_FALSE(e.empty()) << "accepted; expected: " << what;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_NE(e.find(what), std::string::npos) << "message: " << e;
}

std::string hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

// write_dump into a memfd; the file's bytes.
std::string written(const HeapImage& im, const std::string& capture) {
  int fd = memfd_create("heap_dump_test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  write_dump(fd, im, capture);
  off_t n = lseek(fd, 0, SEEK_END);
  std::string s(static_cast<size_t>(n), '\0');
  EXPECT_EQ(pread(fd, s.data(), s.size(), 0), n);
  close(fd);
  return s;
}

// Section offsets of a well-formed dump: (offset, total size with its header).
std::vector<std::pair<size_t, size_t>> sections_of(const std::string& b) {
  std::vector<std::pair<size_t, size_t>> out;
  for (size_t off = 64; off + 16 <= b.size();) {
    uint32_t c;
    memcpy(&c, b.data() + off + 8, 4);
    out.emplace_back(off, 16 + c);
    off += 16 + c;
  }
  return out;
}

// A zstd frame header's size from its descriptor byte (RFC 8878, 3.1.1.1).
size_t frame_header_size(uint8_t fhd) {
  const bool single = (fhd >> 5) & 1;
  const size_t dict[] = {0, 1, 2, 4}, fcs[] = {single ? 1u : 0u, 2, 4, 8};
  return 4 + 1 + (single ? 0 : 1) + dict[fhd & 3] + fcs[fhd >> 6];
}

std::string pseudo_random(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    memcpy(s.data() + i, &v, 8);
  }
  return s;
}

void sample_image(HeapImage& im, size_t big_region = 4096) {
  im.pid = 31337;
  im.taken_unix_ns = 1700000000123456789ull;
  im.descriptor = 0x7f0000001000;
  for (uint64_t t = 0; t < 3; ++t) {
    ImageThread th;
    th.tid = 31337 + t;
    for (size_t r = 0; r < kRegCount; ++r) th.regs[r] = (t + 1) * 0x1000000 + r * 0x11 + (r == kRegRsp ? 0x7ffd00000000 : 0);
    im.threads.push_back(th);
  }
  im.maps = {{0x400000, 0x401000, 0, "r-xp", "/usr/bin/prog"},
             {0x555555554000, 0x555555576000, 0, "rw-p", "[heap]"},
             {0x7f0000000000, 0x7f0000100000, 0x1000, "rw-s", ""},
             {0x7ffd00000000, 0x7ffd00021000, 0, "rw-p", "[stack]"}};
  im.modules = {{"/usr/bin/prog", {{0x600000, 0x601000}, {0x600000, 0x600800}}},
                {"/usr/lib/x86_64-linux-gnu/libc.so.6", {{0x7f1000000000, 0x7f1000004000}}},
                {"/no/ranges.so", {}}};
  im.warnings = {"could not read /dev/dri/card0", "a thread exited while stopped"};
  const std::string a = pseudo_random(4096, 1), b = pseudo_random(big_region, 2), c = pseudo_random(64, 3);
  memcpy(im.add_region(0x555555554000, a.size()), a.data(), a.size());
  memcpy(im.add_region(0x7f0000000000, b.size()), b.data(), b.size());
  memcpy(im.add_region(0x7ffd00020000, c.size()), c.data(), c.size());
  EXPECT_TRUE(im.finish());
}

void expect_same_image(const HeapImage& a, const HeapImage& b) {
  EXPECT_EQ(a.pid, b.pid);
  EXPECT_EQ(a.taken_unix_ns, b.taken_unix_ns);
  EXPECT_EQ(a.descriptor, b.descriptor);
  ASSERT_EQ(a.threads.size(), b.threads.size());
  for (size_t i = 0; i < a.threads.size(); ++i) {
    EXPECT_EQ(a.threads[i].tid, b.threads[i].tid);
    EXPECT_EQ(memcmp(a.threads[i].regs, b.threads[i].regs, sizeof a.threads[i].regs), 0) << "thread " << i;
  }
  ASSERT_EQ(a.maps.size(), b.maps.size());
  for (size_t i = 0; i < a.maps.size(); ++i) {
    EXPECT_EQ(a.maps[i].lo, b.maps[i].lo);
    EXPECT_EQ(a.maps[i].hi, b.maps[i].hi);
    EXPECT_EQ(a.maps[i].offset, b.maps[i].offset);
    EXPECT_EQ(a.maps[i].perms, b.maps[i].perms);
    EXPECT_EQ(a.maps[i].path, b.maps[i].path);
  }
  ASSERT_EQ(a.modules.size(), b.modules.size());
  for (size_t i = 0; i < a.modules.size(); ++i) {
    EXPECT_EQ(a.modules[i].path, b.modules[i].path);
    ASSERT_EQ(a.modules[i].data.size(), b.modules[i].data.size());
    for (size_t k = 0; k < a.modules[i].data.size(); ++k) {
      EXPECT_EQ(a.modules[i].data[k].lo, b.modules[i].data[k].lo);
      EXPECT_EQ(a.modules[i].data[k].hi, b.modules[i].data[k].hi);
    }
  }
  EXPECT_EQ(a.warnings, b.warnings);
  // The same bytes at the same addresses (regions may be split or joined differently).
  uint64_t total_a = 0, total_b = 0;
  for (const HeapImage::Region& r : a.regions()) {
    total_a += r.hi - r.lo;
    for (uint64_t at = r.lo; at < r.hi; at += 4096) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(4096, r.hi - at));
      const uint8_t* pb = b.at(at, n);
      ASSERT_NE(pb, nullptr) << hex(at);
      ASSERT_EQ(memcmp(a.region_bytes(r) + (at - r.lo), pb, n), 0) << hex(at);
    }
  }
  for (const HeapImage::Region& r : b.regions()) total_b += r.hi - r.lo;
  EXPECT_EQ(total_a, total_b);
  EXPECT_EQ(a.bytes_size(), b.bytes_size());
}

// ---------------------------------------------------------------- round trip
TEST(HeapDump, RoundTripKeepsEverything) {
  // One region over a MEMORY section's limit: written as two sections, read back as one.
  HeapImage im;
  sample_image(im, kMaxRaw - 16 + 4096);
  const std::string capture = pseudo_random(300000, 7);
  const std::string bytes = written(im, capture);
  Dump d;
  ASSERT_EQ(error_of(bytes, &d), "");
  expect_same_image(im, d.image);
  EXPECT_EQ(d.capture, capture);
  EXPECT_EQ(d.image.regions().size(), 3u);
  // The same through a file (read_dump maps it).
  char path[] = "/tmp/heap_dump_test_XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  close(fd);
  Dump f;
  read_dump(path, &f);
  unlink(path);
  expect_same_image(im, f.image);
  EXPECT_EQ(f.capture, capture);
}

TEST(HeapDump, RoundTripOfAnEmptyImage) {
  HeapImage im;
  im.finish();
  Dump d;
  ASSERT_EQ(error_of(written(im, ""), &d), "");
  expect_same_image(im, d.image);
  EXPECT_TRUE(d.capture.empty());
}

TEST(HeapDump, RunsOfAMebibyteOfZerosAreLeftOutShorterOnesKept) {
  HeapImage im;
  const uint64_t lo = 0x10000000;
  const size_t n = 4u << 20;  // data | 2 MiB of zeros | data with a single zero page | zeros to the end
  uint8_t* p = im.add_region(lo, n);
  memset(p, 0, n);
  memset(p, 0x11, 4096);
  memset(p + (2u << 20) + 4096, 0x22, 4096);
  memset(p + (2u << 20) + 3 * 4096, 0x33, 4096);  // one zero page between: kept
  im.finish();
  Dump d;
  ASSERT_EQ(error_of(written(im, ""), &d), "");
  ASSERT_EQ(d.image.regions().size(), 2u);
  EXPECT_EQ(d.image.regions()[0].lo, lo);
  EXPECT_EQ(d.image.regions()[0].hi, lo + 4096);
  EXPECT_EQ(d.image.regions()[1].lo, lo + (2u << 20) + 4096);
  EXPECT_EQ(d.image.regions()[1].hi, lo + (2u << 20) + 4 * 4096);  // the 1.98 MiB tail of zeros: dropped
  EXPECT_EQ(d.image.word(lo + (2u << 20) + 2 * 4096), 0u);
  EXPECT_EQ(d.image.word(lo + (2u << 20) + 3 * 4096), 0x3333333333333333u);
  EXPECT_EQ(d.image.at(lo + 4096, 8), nullptr);  // not in the dump: reads as not copied
}

TEST(HeapDump, ReadDumpRefusesWhatIsNotADumpFile) {
  Dump d;
  EXPECT_THROW(read_dump("/nonexistent/leakscope.dump", &d), DumpError);
  EXPECT_THROW(read_dump("/tmp", &d), DumpError);
  char path[] = "/tmp/heap_dump_test_XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  try {
    read_dump(path, &d);
    ADD_FAILURE() << "an empty file was accepted";
  } catch (const DumpError& e) {
    EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos) << e.what();
  }
  unlink(path);
}

// ---------------------------------------------------------------- hostile: the container
TEST(HeapDump, TruncatedAnywhereIsRefused) {
  HeapImage im;
  sample_image(im);
  const std::string bytes = written(im, pseudo_random(5000, 9));
  ASSERT_EQ(error_of(bytes), "");
  // At every section boundary ("no end section") and in the middle of each section.
  for (auto [off, size] : sections_of(bytes)) {
    expect_refused(bytes.substr(0, off), "cut short");
    expect_refused(bytes.substr(0, off + 8), "cut short");          // inside the section header
    expect_refused(bytes.substr(0, off + 16 + (size - 16) / 2), "cut short");  // inside its frame
  }
  // And at every byte, for good measure.
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string e = error_of(bytes.substr(0, n));
    ASSERT_FALSE(e.empty()) << "a dump cut at " << n << " was accepted";
    ASSERT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(HeapDump, BadHeaderIsRefused) {
  expect_refused(RawDump(1, 64, "LSHEAPX").end().bytes, "bad magic");
  expect_refused(RawDump(2).end().bytes, "version 2");
  expect_refused(RawDump(0).end().bytes, "version 0");
  expect_refused(RawDump(1, 128).end().bytes, "unsupported heap dump version");
  expect_refused(RawDump().bytes.substr(0, 63), "shorter than its header");
  expect_refused("", "shorter than its header");
  EXPECT_EQ(error_of(RawDump().end().bytes), "");  // the smallest dump there is
}

TEST(HeapDump, BadSectionHeadersAreRefused) {
  const std::string threads = [] {
    std::string s;
    put(s, 0);
    return s;
  }();
  expect_refused(RawDump().section(99, "").end().bytes, "unknown section type 99");
  expect_refused(RawDump().section(0, "").end().bytes, "unknown section type 0");
  expect_refused(RawDump().framed(kThreads, zstd(threads), 1, 0x5344534d).end().bytes, "bad section magic");
  // Raw size over 64 MiB; compressed size over the bound.
  expect_refused(RawDump().framed(kMemory, zstd(""), kMaxRaw + 1).end().bytes, "over the limits");
  {
    RawDump d;
    d.bytes += u32(kSectionMagic) + u32(kCapture) + u32(static_cast<uint32_t>(ZSTD_compressBound(kMaxRaw) + 1)) + u32(0);
    expect_refused(d.bytes, "over the limits");
  }
  // Compressed size past the end of the file.
  {
    RawDump d;
    std::string c = zstd(threads);
    d.bytes += u32(kSectionMagic) + u32(kThreads) + u32(static_cast<uint32_t>(c.size() + 100)) + u32(1) + c;
    d.end();
    expect_refused(d.bytes, "cut short");
  }
  // A frame whose content size is not the header's raw size (both ways), and one without a
  // content size.
  expect_refused(RawDump().framed(kThreads, zstd(threads), 2).end().bytes, "size mismatch");
  expect_refused(RawDump().framed(kThreads, zstd(threads), 0).end().bytes, "size mismatch");
  {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
    std::string out(64, '\0');
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    ZSTD_inBuffer ib{threads.data(), threads.size(), 0};
    ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
    ZSTD_freeCCtx(c);
    out.resize(ob.pos);
    expect_refused(RawDump().framed(kThreads, out, 1).end().bytes, "size mismatch");
  }
  // Garbage where the frame should be.
  expect_refused(RawDump().framed(kThreads, std::string(16, 'x'), 1).end().bytes, "corrupt heap dump");
}

TEST(HeapDump, CorruptedFrameIsRefusedByItsChecksum) {
  std::string raw;
  put(raw, 1);
  put(raw, 77);
  raw += pseudo_random(kRegCount * 8, 4);
  const std::string good = RawDump().section(kThreads, raw).end().bytes;
  ASSERT_EQ(error_of(good), "");
  // The frame's last 4 bytes are its checksum. Past the frame header (whose unused bits a
  // decoder ignores), any flipped bit is refused: by the checksum if nothing else.
  auto secs = sections_of(good);
  const size_t frame = secs[0].first + 16, frame_end = secs[0].first + secs[0].second;
  for (size_t i = frame_end - 4; i < frame_end; ++i) {
    std::string bad = good;
    bad[i] ^= 0x10;
    expect_refused(bad, "checksum");
  }
  const size_t header = frame_header_size(static_cast<uint8_t>(good[frame + 4]));
  for (size_t i = frame; i < frame_end; ++i)
    for (uint8_t bit : {0x01, 0x40}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ bit);
      std::string e = error_of(bad);
      if (i >= frame + header) {
        ASSERT_FALSE(e.empty()) << "a flipped bit at " << i << " was accepted";
      }
      ASSERT_EQ(e.find('\n'), std::string::npos) << e;
    }
}

TEST(HeapDump, EndSectionRules) {
  expect_refused(RawDump().bytes, "no end section");
  expect_refused(RawDump().section(kWarnings, std::string(1, '\0')).bytes, "no end section");
  expect_refused(RawDump().end().end().bytes, "bytes after the end section");
  expect_refused(RawDump().end().bytes + "x", "bytes after the end section");
  expect_refused(RawDump().section(kEnd, "x").bytes, "non-empty end section");
}

// ---------------------------------------------------------------- hostile: section contents
TEST(HeapDump, MemoryMustBeWholeAlignedWordsWithoutOverlap) {
  expect_refused(RawDump().section(kMemory, memory_section(0x1004, std::string(8, 'a'))).end().bytes, "aligned words");
  expect_refused(RawDump().section(kMemory, memory_section(0x1000, std::string(12, 'a'))).end().bytes, "aligned words");
  expect_refused(RawDump().section(kMemory, memory_section(UINT64_MAX - 7, std::string(16, 'a'))).end().bytes,
                 "aligned words");  // wraps around
  expect_refused(RawDump()
                     .section(kMemory, memory_section(0x1000, std::string(64, 'a')))
                     .section(kMemory, memory_section(0x1038, std::string(16, 'b')))
                     .end()
                     .bytes,
                 "overlap");
  expect_refused(RawDump()
                     .section(kMemory, memory_section(0x2000, std::string(64, 'a')))
                     .section(kMemory, memory_section(0x1000, std::string(0x1008, 'b')))
                     .end()
                     .bytes,
                 "overlap");
  // Adjacent and out of order is fine; an empty section is fine.
  Dump d;
  ASSERT_EQ(error_of(RawDump()
                         .section(kMemory, memory_section(0x2000, std::string(64, 'a')))
                         .section(kMemory, memory_section(0x1000, std::string(0x1000, 'b')))
                         .section(kMemory, memory_section(0x3000, ""))
                         .end()
                         .bytes,
                     &d),
            "");
  EXPECT_EQ(d.image.word(0x2000), 0x6161616161616161ull);
  EXPECT_EQ(d.image.word(0x1ff8), 0x6262626262626262ull);
}

TEST(HeapDump, RecordsThatDoNotFitTheirSectionAreRefused) {
  auto one = [](std::function<void(std::string&)> f) {
    std::string s;
    f(s);
    return s;
  };
  // A thread cut short, trailing bytes, a varint too long or overflowing.
  expect_refused(RawDump().section(kThreads, one([](std::string& s) { put(s, 1), put(s, 5), s += std::string(8, 'r'); })).end().bytes,
                 "runs past its end");
  expect_refused(RawDump().section(kThreads, one([](std::string& s) { put(s, 0), s += 'x'; })).end().bytes, "trailing bytes");
  expect_refused(RawDump().section(kThreads, std::string(11, '\x80')).end().bytes, "varint overflow");
  expect_refused(RawDump().section(kThreads, std::string(9, '\xff') + '\x02').end().bytes, "varint overflow");
  // Strings over their limits or past the section.
  auto map = [](uint64_t lo, uint64_t hi, const std::string& perms, const std::string& path) {
    std::string s;
    put(s, lo), put(s, hi), put(s, 0), put_str(s, perms), put_str(s, path);
    return s;
  };
  auto maps = [](const std::vector<std::string>& ms) {
    std::string s;
    put(s, ms.size());
    for (const std::string& m : ms) s += m;
    return s;
  };
  expect_refused(RawDump().section(kMaps, maps({map(0, 4096, "rw-p-xxxx", "")})).end().bytes, "longer than 8 bytes");
  expect_refused(RawDump().section(kMaps, maps({map(0, 4096, "rw-p", std::string(4097, 'p'))})).end().bytes,
                 "longer than 4096 bytes");
  expect_refused(RawDump().section(kMaps, maps({map(0, 4096, "rw-p", "abc")}).substr(0, 10)).end().bytes, "past its end");
  expect_refused(RawDump().section(kMaps, maps({map(8192, 4096, "rw-p", "")})).end().bytes, "ends before it starts");
  // Mappings as /proc/PID/maps lists them: ascending, never overlapping (across sections too).
  expect_refused(RawDump().section(kMaps, maps({map(8192, 12288, "rw-p", ""), map(0, 4096, "rw-p", "")})).end().bytes,
                 "out of order or overlapping");
  expect_refused(RawDump().section(kMaps, maps({map(0, 8192, "rw-p", ""), map(4096, 12288, "rw-p", "")})).end().bytes,
                 "out of order or overlapping");
  expect_refused(RawDump()
                     .section(kMaps, maps({map(0, 8192, "rw-p", "")}))
                     .section(kMaps, maps({map(0, 8192, "rw-p", "")}))
                     .end()
                     .bytes,
                 "out of order or overlapping");
  EXPECT_EQ(error_of(RawDump().section(kMaps, maps({map(0, 4096, "rw-p", ""), map(4096, 8192, "r--p", "x")})).end().bytes), "");
  // Modules: too many ranges, a range that ends before it starts.
  expect_refused(RawDump().section(kModules, one([](std::string& s) { put(s, 1), put_str(s, "m"), put(s, 65); })).end().bytes,
                 "too many module ranges");
  expect_refused(
      RawDump().section(kModules, one([](std::string& s) { put(s, 1), put_str(s, "m"), put(s, 1), put(s, 9), put(s, 8); })).end().bytes,
      "ends before it starts");
  // Warnings: over 1024 bytes.
  expect_refused(RawDump().section(kWarnings, one([](std::string& s) { put(s, 1), put_str(s, std::string(1025, 'w')); })).end().bytes,
                 "longer than 1024 bytes");
}

TEST(HeapDump, MoreThreadsMapsModulesOrWarningsThanAllowedAreRefused) {
  auto count = [](uint64_t n) {
    std::string s;
    put(s, n);
    return s;
  };
  expect_refused(RawDump().section(kThreads, count((1u << 16) + 1)).end().bytes, "too many threads");
  expect_refused(RawDump().section(kMaps, count((1u << 20) + 1)).end().bytes, "too many mappings");
  expect_refused(RawDump().section(kModules, count((1u << 16) + 1)).end().bytes, "too many modules");
  expect_refused(RawDump().section(kWarnings, count(65)).end().bytes, "too many warnings");
  expect_refused(RawDump().section(kThreads, count(UINT64_MAX)).end().bytes, "too many threads");
  // The limits are on the dump's totals: sections of the same type do not add up past them.
  auto threads = [](uint64_t n, uint64_t first_tid) {
    std::string s;
    put(s, n);
    for (uint64_t i = 0; i < n; ++i) {
      put(s, first_tid + i);
      s.append(kRegCount * 8, '\0');
    }
    return s;
  };
  const std::string t40k = threads(40000, 1);
  expect_refused(RawDump().section(kThreads, t40k).section(kThreads, threads(40000, 40001)).end().bytes, "too many threads");
  Dump d;
  ASSERT_EQ(error_of(RawDump().section(kThreads, t40k).section(kThreads, threads(25536, 40001)).end().bytes, &d), "");
  EXPECT_EQ(d.image.threads.size(), 65536u);
  auto warnings = [](uint64_t n) {
    std::string s;
    put(s, n);
    for (uint64_t i = 0; i < n; ++i) put_str(s, "w");
    return s;
  };
  expect_refused(RawDump().section(kWarnings, warnings(40)).section(kWarnings, warnings(25)).end().bytes, "too many warnings");
}

// zstd turns 64 MiB of zeros into about 2 KiB: a dump may not claim more memory (and capture)
// than 1024 times its own size, and is refused at the section that passes the limit, before
// that section is decompressed: nothing near the claimed size is ever allocated.
TEST(HeapDump, ExpansionBeyondTheLimitIsRefusedWithoutAllocatingIt) {
  const uint64_t kAddr = 0x100000000;  // a 5-byte varint
  const size_t body = kMaxRaw - 16;
  const std::string zeros = zstd(memory_section(kAddr, std::string(body, '\0')));
  const uint32_t raw = static_cast<uint32_t>(body + 5);
  ASSERT_LT(zeros.size(), 8192u);
  // One section: ~2 KiB claiming 64 MiB.
  expect_refused(RawDump().framed(kMemory, zeros, raw).end().bytes,
                 "more memory than the file could hold in the section at 0x40");
  // 16 sections claiming 1 GiB after 100 KB of capture that does not compress: the file may
  // hold ~140 MB, so two sections are read and the third is refused, by its offset.
  {
    const std::string cap = pseudo_random(100000, 11);
    RawDump d;
    d.section(kCapture, cap);
    const size_t first = d.bytes.size();
    for (int i = 0; i < 16; ++i) d.framed(kMemory, zeros, raw);
    d.end();
    const uint64_t limit = d.bytes.size() * 1024ull;
    const uint64_t fit = (limit - cap.size()) / body;  // whole sections under the limit
    ASSERT_EQ(fit, 2u);
    expect_refused(d.bytes, "more memory than the file could hold in the section at " +
                                hex(first + fit * (16 + zeros.size())));
  }
  // The capture counts the same way: 16 x 64 MiB of zeros in ~37 KiB is not a 1 GiB capture.
  {
    const std::string czeros = zstd(std::string(kMaxRaw, '\0'));
    RawDump d;
    for (int i = 0; i < 16; ++i) d.framed(kCapture, czeros, kMaxRaw);
    d.end();
    expect_refused(d.bytes, "more memory than the file could hold in the section at 0x40");
  }
}

// ---------------------------------------------------------------- hostile: what the model reads
// A dump that reads is then modelled (analysis::find_leaks): the scan descriptor and all it
// points to is outside input too. Each of these is small and must be answered quickly, in
// bounded memory (each once made the model hang or ask for gigabytes).
struct ModelDump {
  static constexpr uint64_t kDesc = 0x7f0000000000;
  HeapImage im;
  capture::ScanDescriptor d{};
  std::string lists;                                  // right after the descriptor
  std::vector<std::pair<uint64_t, std::string>> mem;  // other memory
  ModelDump() {
    memcpy(d.magic, capture::kScanMagic, sizeof d.magic);
    d.version = capture::kScanAbiVersion;
    d.size = sizeof d;
    d.mmaps_off = d.arenas_off = d.own_off = sizeof d;
  }
  // Written as a dump, read back, find_leaks on what was read: "" or the error.
  std::string run(FindleaksResult* res, const std::string& capture = "") {
    im.descriptor = kDesc;
    d.size = static_cast<uint32_t>(sizeof d + lists.size());
    std::string desc = std::string(reinterpret_cast<const char*>(&d), sizeof d) + lists;
    desc.resize((desc.size() + 7) & ~size_t{7}, '\0');
    memcpy(im.add_region(kDesc, desc.size()), desc.data(), desc.size());
    for (auto& [addr, bytes] : mem) memcpy(im.add_region(addr, bytes.size()), bytes.data(), bytes.size());
    EXPECT_TRUE(im.finish());
    Dump back;
    if (std::string e = error_of(written(im, capture), &back); !e.empty()) return e;
    try {
      *res = find_leaks(back.image, FindleaksWhen::kDump);
    } catch (const ModelError& me) {
      return me.what();
    }
    return "";
  }
};

template <typename F>
void quickly(F&& f, int seconds = 30) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(seconds));
}

std::string entry(uint64_t addr, uint64_t size, Layer layer, uint32_t stack = 1, uint32_t flags = 0) {
  capture::LiveEntry e{addr, size, static_cast<uint8_t>(layer), stack, flags};
  return std::string(reinterpret_cast<const char*>(&e), sizeof e);
}

// Peak RSS since the last reset (Linux: "5" to clear_refs resets VmHWM); -1 when unknown.
bool reset_peak_rss() { return static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5"); }
long peak_rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

TEST(HeapDumpModel, ModelErrorsAreOneLine) {
  ModelDump md;
  md.d.version = 99;
  FindleaksResult r;
  std::string e = md.run(&r);
  EXPECT_NE(e.find("not one this leakscope reads"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  ModelDump lists;
  lists.d.n_mmaps = 1;  // a list that runs past the descriptor
  e = lists.run(&r);
  EXPECT_NE(e.find("runs past its end"), std::string::npos) << e;
}

TEST(HeapDumpModel, ALiveTableOfBillionsOfUncopiedSlotsIsCheap) {
  // 2^32 - 1 slots (96 GiB of table) of which one page was copied; one live block in it.
  ModelDump md;
  md.d.live[1] = capture::ScanTable{0x100000000, (1ull << 32) - 1};
  md.mem.emplace_back(0x100000000 + 24 * 1000, entry(0x200000010, 32, Layer::kMalloc) + std::string(24 * 3, '\0'));
  md.mem.emplace_back(0x200000000, std::string(64, '\0'));
  FindleaksResult r;
  quickly([&] { ASSERT_EQ(md.run(&r), ""); });
  EXPECT_EQ(r.totals.direct_count, 1u);
  EXPECT_EQ(r.totals.direct_bytes, 32u);
}

TEST(HeapDumpModel, HugeBlocksDoNotMakeAnUnboundedIndex) {
  // Blocks of 2^45 bytes (with copied memory inside), 64 bytes, 2^40 and 2^55 bytes: a page
  // index of the first alone would have 2^34 slots.
  ModelDump md;
  const uint64_t big = 0x1000, small = 0x300000000000, third = 0x300000001000, huge = 1ull << 55;
  md.d.live[1] = capture::ScanTable{0x7e0000000000, 4};
  md.mem.emplace_back(0x7e0000000000, entry(big, 1ull << 45, Layer::kMmap) + entry(small, 64, Layer::kMalloc) +
                                          entry(third, 1ull << 40, Layer::kMmap) + entry(huge, 1ull << 55, Layer::kMmap));
  md.mem.emplace_back(0x10000001000, u64(third + 77));  // in the big block: an interior pointer to the third
  md.mem.emplace_back(0x7d0000000000, u64(big + (1ull << 44)));
  md.im.modules.push_back(ImageModule{"/prog", {{0x7d0000000000, 0x7d0000000008}}});
  FindleaksResult r;
  quickly([&] { ASSERT_EQ(md.run(&r), ""); });
  EXPECT_EQ(r.totals.reachable_count, 2u);
  EXPECT_EQ(r.totals.direct_count, 2u);
  EXPECT_EQ(r.totals.direct_bytes, 64u + (1ull << 55));
}

TEST(HeapDumpModel, ManyThreadsOnOneStackAndOneHugeDtvAreCheap) {
  // 65536 threads on one 1 MiB stack, all with one thread pointer whose DTV claims 16384
  // entries, each naming a "dynamic TLS block" (2^30 entries and roots before).
  ModelDump md;
  md.d.tls_static_size = 64;
  md.d.pthread_size = 64;
  const uint64_t stack = 0x7ffd00000000, tp = 0x7f1000000040, dtv = 0x7f1000010000;
  md.im.maps.push_back(ImageMapping{0x7f1000000000, 0x7f1000100000, 0, "rw-p", ""});
  md.im.maps.push_back(ImageMapping{stack, stack + (1u << 20), 0, "rw-p", "[stack]"});
  std::string tls(128, '\0');
  memcpy(tls.data() + 64 + 8, &dtv, 8);  // tcbhead_t.dtv
  md.mem.emplace_back(tp - 64, tls);
  const uint64_t n = 16384, val = stack + 64;
  std::string dv(16 * (n + 2), '\0');
  memcpy(dv.data(), &n, 8);
  for (uint64_t i = 1; i <= n; ++i) memcpy(dv.data() + 16 * (i + 1), &val, 8);
  md.mem.emplace_back(dtv - 16, dv);
  md.mem.emplace_back(stack, std::string(1u << 20, '\0'));
  for (uint64_t t = 0; t < 65536; ++t) {
    ImageThread th;
    th.tid = 1000 + t;
    th.regs[kRegRsp] = stack + 4096;
    th.regs[kRegFsBase] = tp;
    md.im.threads.push_back(th);
  }
  FindleaksResult r;
  quickly([&] { ASSERT_EQ(md.run(&r), ""); });
}

TEST(HeapDumpModel, ManyThreadsAndMappingsAreCheap) {
  // 65536 threads and 2^20 mappings (each thread's stack looked up in every mapping before;
  // in conservative mode every mapping went through every skipped range).
  ModelDump md;
  md.d.flags = capture::kScanAttached;
  for (uint64_t i = 0; i < (1u << 20); ++i)
    md.im.maps.push_back(ImageMapping{0x10000000 + i * 8192, 0x10000000 + i * 8192 + 4096, 0, "rw-p", ""});
  for (uint64_t t = 0; t < 65536; ++t) {
    ImageThread th;
    th.tid = 1000 + t;
    th.regs[kRegRsp] = 0x10000000 + t * 8192 + 2048;
    md.im.threads.push_back(th);
  }
  md.mem.emplace_back(0x10000000, std::string(4096, '\0'));
  FindleaksResult r;
  quickly([&] { ASSERT_EQ(md.run(&r, pseudo_random(40000, 3)), ""); });
}

TEST(HeapDumpModel, ARingBacklogOfFreesKeepsNothing) {
  // 16 MiB of FREE records (2 bytes each: 8 million addresses) in a copied ring: nothing was
  // live at those addresses, so nothing is kept for them.
  ModelDump md;
  const uint64_t ring = 0x7f2000000000, head_at = 0x7f2100000000, n = 16u << 20;
  std::string bytes;
  bytes.reserve(n);
  while (bytes.size() < n) bytes += "\x12\x10";
  md.d.ring[1] = capture::ScanRing{ring, n - 1, head_at, 0};
  md.mem.emplace_back(ring, bytes);
  md.mem.emplace_back(head_at, u64(n));
  FindleaksResult r;
  const bool measured = reset_peak_rss();
  const long before = peak_rss_kib();
  quickly([&] { ASSERT_EQ(md.run(&r, pseudo_random(20000, 5)), ""); });
  if (measured && before > 0) {
    EXPECT_LT(peak_rss_kib() - before, 256 * 1024) << "KiB more at the peak";
  }
  EXPECT_TRUE(r.notes.empty());
  // A ring larger than the agent's ever are is not decoded at all: a note says so.
  ModelDump big;
  big.d.ring[1] = capture::ScanRing{ring, (1ull << 30) - 1, head_at, 0};
  big.mem.emplace_back(head_at, u64(16));
  ASSERT_EQ(big.run(&r), "");
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0].first, ModelNote::kBacklogMalformed);
}

TEST(HeapDumpModel, OverlappingArenasAreOneArena) {
  // 100000 arena entries that all cover the same 1000 blocks (roots = arenas x blocks before).
  ModelDump md;
  for (uint64_t i = 0; i < 100000; ++i) {
    capture::ScanRange a{0x10000000 + i * 8, 0x20000000};
    md.lists.append(reinterpret_cast<const char*>(&a), sizeof a);
  }
  md.d.n_arenas = 100000;
  std::string table;
  for (uint64_t i = 0; i < 1000; ++i) table += entry(0x18000000 + i * 64, 32, Layer::kPython);
  md.d.live[0] = capture::ScanTable{0x7e0000000000, 1000};
  md.mem.emplace_back(0x7e0000000000, table);
  FindleaksResult r;
  const bool measured = reset_peak_rss();
  const long before = peak_rss_kib();
  quickly([&] { ASSERT_EQ(md.run(&r, pseudo_random(20000, 6)), ""); });
  if (measured && before > 0) {
    EXPECT_LT(peak_rss_kib() - before, 256 * 1024) << "KiB more at the peak";
  }
}

TEST(HeapDumpModel, AFrameDataStackIsARootNotAnEmptyArena) {
  // 3.11+: the arena allocator also hands out frame data stack chunks (16 KiB and up), which
  // hold every running frame's locals. Its first word (the previous chunk, NULL) is not a
  // pool's count: the chunk must not be taken for an arena of empty pools.
  for (uint64_t lo : {0x7f3000000000ull, 0x7f3000001000ull}) {  // pool-aligned or not
    ModelDump md;
    md.d.flags = capture::kScanPython;
    md.d.py_minor = 12;
    capture::ScanRange a{lo, lo + 16384};
    md.lists.append(reinterpret_cast<const char*>(&a), sizeof a);
    md.d.n_arenas = 1;
    md.d.live[0] = capture::ScanTable{0x7e0000000000, 1};
    md.mem.emplace_back(0x7e0000000000, entry(0x7e0000100000, 48, Layer::kPython));
    md.mem.emplace_back(0x7e0000100000, std::string(48, '\0'));
    std::string chunk(16384, '\0');
    const uint64_t local = 0x7e0000100000;
    memcpy(chunk.data() + 0x100, &local, 8);  // a local variable of a running frame
    md.mem.emplace_back(lo, chunk);
    FindleaksResult r;
    ASSERT_EQ(md.run(&r), "");
    EXPECT_EQ(r.totals.reachable_count, 1u) << hex(lo);
    EXPECT_EQ(r.totals.direct_count, 0u) << hex(lo);
  }
}

// ---------------------------------------------------------------- FINDLEAKS records
FindleaksResult full_result() {
  FindleaksResult r;
  r.when = FindleaksWhen::kExit;
  r.conservative = true;
  r.time_ns = 123456789012ull;
  r.py_minor = 13;
  uint64_t v = 1;
  for (uint64_t* f : {&r.totals.direct_bytes, &r.totals.direct_count, &r.totals.indirect_bytes, &r.totals.indirect_count,
                      &r.totals.reachable_bytes, &r.totals.reachable_count, &r.totals.garbage_bytes,
                      &r.totals.garbage_count, &r.totals.immortal_count, &r.totals.root_bytes})
    *f = (v *= 1000003);
  r.notes = {{ModelNote::kConservativeAttached, 1}, {ModelNote::kArenaNotWalked, 7}, {ModelNote::kOverlappingBlocks, 1ull << 40}};
  for (int k = 0; k < 3; ++k) {
    LostGroup g;
    g.kind = static_cast<LostKind>(k);
    g.layer = static_cast<uint8_t>(k + 1);
    g.stack = 0xfffffff0u + static_cast<uint32_t>(k);
    g.python_type = k == 0 ? "" : "mod.Leaky" + std::to_string(k);
    g.bytes = 1ull << (40 + k);
    g.count = 3 + static_cast<uint64_t>(k);
    g.unowned_refs = static_cast<uint64_t>(k);
    for (int e = 0; e <= k; ++e)
      g.examples.push_back(LostExample{0x7f0000000000ull + static_cast<uint64_t>(e),
                                       std::vector<uint8_t>(static_cast<size_t>(e * 16), 0xa5),
                                       e == 0 ? -1 : (int64_t{1} << 62)});
    r.groups.push_back(g);
  }
  return r;
}

void expect_same_result(const FindleaksResult& a, const FindleaksResult& b) {
  EXPECT_EQ(a.when, b.when);
  EXPECT_EQ(a.conservative, b.conservative);
  EXPECT_EQ(a.time_ns, b.time_ns);
  EXPECT_EQ(a.py_minor, b.py_minor);
  EXPECT_EQ(memcmp(&a.totals, &b.totals, sizeof a.totals), 0);
  EXPECT_EQ(a.notes, b.notes);
  ASSERT_EQ(a.groups.size(), b.groups.size());
  for (size_t i = 0; i < a.groups.size(); ++i) {
    const LostGroup &x = a.groups[i], &y = b.groups[i];
    EXPECT_EQ(x.kind, y.kind);
    EXPECT_EQ(x.layer, y.layer);
    EXPECT_EQ(x.stack, y.stack);
    EXPECT_EQ(x.python_type, y.python_type);
    EXPECT_EQ(x.bytes, y.bytes);
    EXPECT_EQ(x.count, y.count);
    EXPECT_EQ(x.unowned_refs, y.unowned_refs);
    ASSERT_EQ(x.examples.size(), y.examples.size());
    for (size_t k = 0; k < x.examples.size(); ++k) {
      EXPECT_EQ(x.examples[k].addr, y.examples[k].addr);
      EXPECT_EQ(x.examples[k].head, y.examples[k].head);
      EXPECT_EQ(x.examples[k].refcount, y.examples[k].refcount);
    }
  }
}

// decode_findleaks's CaptureError message ("" when it decoded).
std::string decode_error(const std::string& payload) {
  try {
    decode_findleaks(payload);
  } catch (const capture::CaptureError& e) {
    std::string m = e.what();
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m.empty() ? "(empty message)" : m;
  }
  return "";
}

// A payload by hand (capture/format.md): the header fields, then notes and groups as given.
struct Payload {
  std::string s;
  Payload(uint64_t version = 1, uint8_t when = 0, uint64_t nnotes = 0) {
    put(s, version);
    s += static_cast<char>(when);
    s += '\x01';
    put(s, 5);   // ns
    put(s, 12);  // python minor
    for (int i = 0; i < 10; ++i) put(s, static_cast<uint64_t>(i));
    put(s, nnotes);
  }
  Payload& note(uint8_t code, uint64_t count) {
    s += static_cast<char>(code);
    put(s, count);
    return *this;
  }
  Payload& groups(uint64_t n) {
    put(s, n);
    return *this;
  }
  Payload& group(uint8_t kind, uint8_t layer, uint64_t stack, const std::string& type, uint64_t nex,
                 const std::string& head = "hi", uint64_t refz = 1) {
    s += static_cast<char>(kind);
    s += static_cast<char>(layer);
    put(s, stack);
    put_str(s, type);
    put(s, 100), put(s, 2), put(s, 0), put(s, nex);
    for (uint64_t i = 0; i < nex; ++i) put(s, 0x1000 + i), put(s, refz), put_str(s, head);
    return *this;
  }
};

TEST(FindleaksRecord, RoundTrip) {
  const FindleaksResult r = full_result();
  expect_same_result(r, decode_findleaks(encode_findleaks(r)));
  expect_same_result(FindleaksResult{}, decode_findleaks(encode_findleaks(FindleaksResult{})));
  for (FindleaksWhen w : {FindleaksWhen::kExit, FindleaksWhen::kLive, FindleaksWhen::kDump}) {
    FindleaksResult x;
    x.when = w;
    EXPECT_EQ(decode_findleaks(encode_findleaks(x)).when, w);
  }
  EXPECT_EQ(decode_error(Payload().groups(1).group(2, 3, 0xffffffff, std::string(256, 't'), 3, std::string(32, 'h')).s), "");
}

TEST(FindleaksRecord, EncodingKeepsToTheLimits) {
  FindleaksResult r;
  for (int i = 0; i < 100; ++i) r.notes.emplace_back(ModelNote::kOverlappingBlocks, static_cast<uint64_t>(i));
  LostGroup g;
  g.python_type = std::string(300, 'T');
  for (int i = 0; i < 5; ++i) g.examples.push_back(LostExample{static_cast<uint64_t>(i), std::vector<uint8_t>(40, 'x'), 1});
  r.groups.push_back(g);
  FindleaksResult back = decode_findleaks(encode_findleaks(r));
  EXPECT_EQ(back.notes.size(), 64u);
  ASSERT_EQ(back.groups.size(), 1u);
  EXPECT_EQ(back.groups[0].python_type, std::string(256, 'T'));
  ASSERT_EQ(back.groups[0].examples.size(), kExamplesPerGroup);
  EXPECT_EQ(back.groups[0].examples[0].head.size(), kExampleBytes);
}

TEST(FindleaksRecord, MalformedPayloadsAreRefused) {
  EXPECT_NE(decode_error(""), "");
  EXPECT_NE(decode_error(Payload(2).groups(0).s).find("unknown version"), std::string::npos);
  EXPECT_NE(decode_error(Payload(1, 3).groups(0).s).find("unknown time of check"), std::string::npos);
  EXPECT_NE(decode_error(Payload(1, 0, 65).s).find("too many notes"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups((1u << 20) + 1).s).find("too many groups"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(UINT64_MAX).s).find("too many groups"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(1).group(3, 0, 1, "", 0).s).find("unknown kind"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(1).group(0, 4, 1, "", 0).s).find("unknown layer"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(1).group(0, 0, 1ull << 32, "", 0).s).find("stack id"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(1).group(0, 0, 1, std::string(257, 't'), 0).s).find("a string longer than 256"),
            std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(1).group(0, 0, 1, "", 4).s).find("too many examples"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(1).group(0, 0, 1, "", 1, std::string(33, 'h')).s).find("a string longer than 32"),
            std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(0).s + "x").find("trailing bytes"), std::string::npos);
  EXPECT_NE(decode_error(Payload().groups(2).group(0, 0, 1, "", 0).s).find("runs past its end"), std::string::npos);
  EXPECT_NE(decode_error(Payload().s + std::string(10, '\xff') + '\x01').find("varint"), std::string::npos);
  EXPECT_NE(decode_error(Payload().s + std::string(11, '\x80')).find("varint"), std::string::npos);
  // A string longer than what is left.
  std::string p = Payload().groups(1).s + std::string("\x00\x00\x01", 3);
  put(p, 200);
  EXPECT_NE(decode_error(p + "abc").find("a string runs past its end"), std::string::npos);
  // Unknown note codes are skipped (a newer leakscope's notes), not refused.
  FindleaksResult r = decode_findleaks(Payload(1, 2, 2).note(200, 5).note(0, 1).groups(0).s);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_EQ(r.notes[0].first, ModelNote::kConservativeAttached);
  EXPECT_EQ(r.when, FindleaksWhen::kDump);
}

TEST(FindleaksRecord, EveryStrictPrefixIsRefused) {
  const std::string full = encode_findleaks(full_result());
  for (size_t n = 0; n < full.size(); ++n) ASSERT_NE(decode_error(full.substr(0, n)), "") << "prefix of " << n << " bytes";
  // And a flipped byte anywhere is refused or decodes: never anything else.
  for (size_t i = 0; i < full.size(); ++i)
    for (uint8_t x : {0x01, 0x80, 0xff}) {
      std::string bad = full;
      bad[i] = static_cast<char>(bad[i] ^ x);
      (void)decode_error(bad);
    }
}

// A capture with a header only, in a temporary file.
struct TempCapture {
  std::string path;
  TempCapture() {
    char p[] = "/tmp/heap_dump_test_capture_XXXXXX";
    int fd = mkstemp(p);
    path = p;
    capture::FileHeader h{};
    memcpy(h.magic, capture::kMagic, sizeof h.magic);
    h.version = capture::kFormatVersion;
    h.header_size = capture::kHeaderSize;
    h.flags = capture::kFlagAggregate;
    EXPECT_EQ(write(fd, &h, sizeof h), static_cast<ssize_t>(sizeof h));
    close(fd);
  }
  ~TempCapture() { unlink(path.c_str()); }
  std::string payload() {
    capture::Reader reader(path);
    Replay rp;
    rp.set_aggregate(true);
    reader.read_all(rp);
    rp.finish();
    return rp.findleaks_payload();
  }
};

TEST(FindleaksRecord, AppendedToACaptureReadsBack) {
  TempCapture c;
  FindleaksResult r = full_result();
  ASSERT_EQ(append_findleaks(c.path, r), "");
  expect_same_result(r, decode_findleaks(c.payload()));
  // A second check: the next chunk (sequence 1); the last one read wins.
  r.totals.direct_count = 1;
  ASSERT_EQ(append_findleaks(c.path, r), "");
  capture::Reader reader(c.path);
  Replay rp;
  reader.read_all(rp);
  EXPECT_EQ(reader.chunks(), 2u);
  EXPECT_EQ(decode_findleaks(rp.findleaks_payload()).totals.direct_count, 1u);
}

TEST(FindleaksRecord, AppendRefusesACaptureThatDoesNotEndAtAChunk) {
  TempCapture c;
  ASSERT_EQ(append_findleaks(c.path, FindleaksResult{}), "");
  {
    std::ofstream f(c.path, std::ios::app | std::ios::binary);
    f << "LSCH";  // a chunk cut short
  }
  std::ifstream before_f(c.path, std::ios::binary);
  std::string before((std::istreambuf_iterator<char>(before_f)), std::istreambuf_iterator<char>());
  EXPECT_NE(append_findleaks(c.path, full_result()), "");
  std::ifstream after_f(c.path, std::ios::binary);
  std::string after((std::istreambuf_iterator<char>(after_f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(before, after);
  EXPECT_NE(append_findleaks("/nonexistent/capture.lsc", FindleaksResult{}), "");
}

}  // namespace
}  // namespace leakscope::analysis
