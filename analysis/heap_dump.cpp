// Heap dump files: see heap_dump.h and docs/heapdump-format.md (keep the two in sync).
#include "analysis/heap_dump.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "capture/byte_cursor.h"
#include "capture/format.h"

namespace leakscope::analysis {
namespace {

constexpr char kMagic[8] = {'L', 'S', 'H', 'E', 'A', 'P', 'D', '\0'};
constexpr uint32_t kVersion = 1, kHeaderSize = 64;
constexpr uint32_t kSectionMagic = 0x5344534c;  // "LSDS"
constexpr uint32_t kSectionHeader = 16;
constexpr uint32_t kMaxRaw = 64u << 20;
constexpr uint64_t kMaxExpansion = 1024;      // raw memory per byte of file, at most
constexpr uint64_t kMaxCapture = 1ull << 30;
enum Section : uint32_t { kThreads = 1, kMaps = 2, kModules = 3, kMemory = 4, kCapture = 5, kWarnings = 6, kEnd = 7 };

#pragma pack(push, 1)
struct Header {
  char magic[8];
  uint32_t version, header_size;
  uint64_t pid, taken_unix_ns, descriptor;
  uint8_t zero[24];
};
struct SectionHeader {
  uint32_t magic, type, compressed, raw;
};
#pragma pack(pop)
static_assert(sizeof(Header) == kHeaderSize && sizeof(SectionHeader) == kSectionHeader, "dump layout");

using capture::hex;

// ---- writing
class Writer {
 public:
  explicit Writer(int fd) : fd_(fd), cctx_(ZSTD_createCCtx()) {
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, 2);  // ignored by a single-threaded libzstd
  }
  ~Writer() { ZSTD_freeCCtx(cctx_); }
  void raw(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n) {
      ssize_t w = write(fd_, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) throw DumpError(std::string("cannot write the dump: ") + strerror(errno));
      c += w;
      n -= static_cast<size_t>(w);
    }
  }
  // One section: `prefix` then `body`, compressed as one frame straight from where they are
  // (a memory section's body is the image itself: no copy).
  void section(uint32_t type, const std::string& prefix, const uint8_t* body = nullptr, size_t n = 0) {
    const size_t total = prefix.size() + n;
    ZSTD_CCtx_reset(cctx_, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(cctx_, total);  // the frame then says its content size
    if (out_.size() < ZSTD_compressBound(total)) out_.resize(ZSTD_compressBound(total));
    ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
    ZSTD_inBuffer a{prefix.data(), prefix.size(), 0}, b{body, n, 0};
    while (a.pos < a.size) check(ZSTD_compressStream2(cctx_, &ob, &a, ZSTD_e_continue));
    while (check(ZSTD_compressStream2(cctx_, &ob, &b, ZSTD_e_end)) != 0) {
    }
    SectionHeader h{kSectionMagic, type, static_cast<uint32_t>(ob.pos), static_cast<uint32_t>(total)};
    raw(&h, sizeof h);
    raw(out_.data(), ob.pos);
  }

 private:
  static size_t check(size_t r) {
    if (ZSTD_isError(r)) throw DumpError(std::string("cannot compress the dump: ") + ZSTD_getErrorName(r));
    return r;
  }
  int fd_;
  ZSTD_CCtx* cctx_;
  std::vector<uint8_t> out_;
};

bool zero_bytes(const uint8_t* p, size_t n) {
  uint64_t acc = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    acc |= w;
  }
  for (; i < n; ++i) acc |= p[i];
  return acc == 0;
}

using capture::append_str;
using capture::append_varint;

// ---- reading
// A section's cursor: errors name the section's offset in the file.
struct SectionFail {
  uint64_t off;
  [[noreturn]] void operator()(const std::string& what, size_t) const {
    throw DumpError("corrupt heap dump: " + what + " in the section at " + hex(off));
  }
};
class In : public capture::ByteCursor<SectionFail> {
 public:
  In(const uint8_t* p, size_t n, uint64_t off) : ByteCursor(p, n, SectionFail{off}) {}
  // A count, with `have` already read from earlier sections of the same type: the limits are
  // on the dump's totals (repeated sections must not add up past them).
  uint64_t bounded(uint64_t max, const char* what, size_t have = 0) {
    uint64_t v = varint();
    if (v > max || have > max - v) fail(std::string("too many ") + what);
    return v;
  }
};

void read_section(uint32_t type, In& in, Dump* out, uint64_t max_memory) {
  HeapImage& im = out->image;
  switch (type) {
    case kThreads: {
      uint64_t n = in.bounded(1u << 16, "threads", im.threads.size());
      for (uint64_t i = 0; i < n; ++i) {
        ImageThread t;
        t.tid = in.varint();
        for (uint64_t& r : t.regs) r = in.u64();
        im.threads.push_back(t);
      }
      break;
    }
    case kMaps: {
      uint64_t n = in.bounded(1u << 20, "mappings", im.maps.size());
      for (uint64_t i = 0; i < n; ++i) {
        ImageMapping m;
        m.lo = in.varint();
        m.hi = in.varint();
        m.offset = in.varint();
        m.perms = in.str(8);
        m.path = in.str(4096);
        if (m.hi < m.lo) in.fail("a mapping that ends before it starts");
        // As /proc/PID/maps lists them: ascending, never overlapping (the model relies on it;
        // a hostile list of one range repeated made every mapping cost every other).
        if (!im.maps.empty() && m.lo < im.maps.back().hi) in.fail("mappings out of order or overlapping");
        im.maps.push_back(std::move(m));
      }
      break;
    }
    case kModules: {
      uint64_t n = in.bounded(1u << 16, "modules", im.modules.size());
      for (uint64_t i = 0; i < n; ++i) {
        ImageModule m;
        m.path = in.str(4096);
        uint64_t k = in.bounded(64, "module ranges");
        for (uint64_t j = 0; j < k; ++j) {
          capture::ScanRange r{in.varint(), in.varint()};
          if (r.hi < r.lo) in.fail("a module range that ends before it starts");
          m.data.push_back(r);
        }
        im.modules.push_back(std::move(m));
      }
      break;
    }
    case kMemory: {
      uint64_t lo = in.varint();
      size_t n = in.left();
      if ((lo & 7) || (n & 7) || lo + n < lo) in.fail("memory that is not whole aligned words");
      if (im.bytes_size() + out->capture.size() + n > max_memory) in.fail("more memory than the file could hold");
      if (n) memcpy(im.add_region(lo, n), in.pos(), n);  // an empty region would only confuse lookups
      break;
    }
    case kCapture: {
      if (out->capture.size() + in.left() > kMaxCapture) in.fail("a capture over 1 GiB");
      // The capture counts toward the expansion limit too (it is compressed already, so a real
      // one never comes near it): 16 sections of zeros, ~37 KiB, held a 1 GiB capture.
      if (im.bytes_size() + out->capture.size() + in.left() > max_memory) in.fail("more memory than the file could hold");
      out->capture.append(reinterpret_cast<const char*>(in.pos()), in.left());
      return;
    }
    case kWarnings: {
      uint64_t n = in.bounded(64, "warnings", im.warnings.size());
      for (uint64_t i = 0; i < n; ++i) im.warnings.push_back(in.str(1024));
      break;
    }
    default:
      in.fail("an unknown section type " + std::to_string(type));
  }
  if (type != kMemory) in.end();
}

}  // namespace

void write_dump(int fd, const HeapImage& im, const std::string& capture) {
  Writer w(fd);
  Header h{};
  memcpy(h.magic, kMagic, sizeof h.magic);
  h.version = kVersion;
  h.header_size = kHeaderSize;
  h.pid = im.pid;
  h.taken_unix_ns = im.taken_unix_ns;
  h.descriptor = im.descriptor;
  w.raw(&h, sizeof h);
  std::string s;
  append_varint(s, im.threads.size());
  for (const ImageThread& t : im.threads) {
    append_varint(s, t.tid);
    s.append(reinterpret_cast<const char*>(t.regs), sizeof t.regs);
  }
  w.section(kThreads, s);
  s.clear();
  append_varint(s, im.maps.size());
  for (const ImageMapping& m : im.maps) {
    append_varint(s, m.lo);
    append_varint(s, m.hi);
    append_varint(s, m.offset);
    append_str(s, m.perms.substr(0, 8));
    append_str(s, m.path.substr(0, 4096));
  }
  w.section(kMaps, s);
  s.clear();
  append_varint(s, im.modules.size());
  for (const ImageModule& m : im.modules) {
    append_str(s, m.path.substr(0, 4096));
    append_varint(s, std::min<size_t>(m.data.size(), 64));
    for (size_t i = 0; i < m.data.size() && i < 64; ++i) {
      append_varint(s, m.data[i].lo);
      append_varint(s, m.data[i].hi);
    }
  }
  w.section(kModules, s);
  // Memory, without runs of 1 MiB or more of zeros: they hold no pointer, and a dump of
  // mostly zeroed memory (which compresses 30,000 to 1) stays far below the reader's expansion
  // limit. (Shorter runs stay: a structure read whole, such as the scan descriptor, is never
  // split.) What is kept goes in sections of at most 64 MiB.
  constexpr uint64_t kPage = 4096, kZeroRun = 1u << 20;
  for (const HeapImage::Region& r : im.regions()) {
    const uint8_t* base = im.region_bytes(r);
    auto emit = [&](uint64_t lo, uint64_t hi) {
      for (uint64_t at = lo; at < hi;) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(hi - at, kMaxRaw - 16));
        s.clear();
        append_varint(s, at);
        w.section(kMemory, s, base + (at - r.lo), n);
        at += n;
      }
    };
    uint64_t keep = r.lo, zeros = r.lo;  // kept since `keep`; zero pages since `zeros`
    for (uint64_t at = r.lo; at < r.hi;) {
      uint64_t next = std::min<uint64_t>((at | (kPage - 1)) + 1, r.hi);
      if (!zero_bytes(base + (at - r.lo), static_cast<size_t>(next - at))) {
        if (at - zeros >= kZeroRun) {
          emit(keep, zeros);
          keep = at;
        }
        zeros = next;
      }
      at = next;
    }
    if (r.hi - zeros >= kZeroRun) emit(keep, zeros);
    else emit(keep, r.hi);
  }
  for (size_t at = 0; at < capture.size(); at += kMaxRaw)
    w.section(kCapture, capture.substr(at, kMaxRaw));
  s.clear();
  append_varint(s, std::min<size_t>(im.warnings.size(), 64));
  for (size_t i = 0; i < im.warnings.size() && i < 64; ++i) append_str(s, im.warnings[i].substr(0, 1024));
  w.section(kWarnings, s);
  w.section(kEnd, "");
}

void read_dump_bytes(const uint8_t* data, size_t n, Dump* out) {
  if (n < kHeaderSize) throw DumpError("not a leakscope heap dump (shorter than its header)");
  Header h;
  memcpy(&h, data, sizeof h);
  if (memcmp(h.magic, kMagic, sizeof h.magic) != 0) throw DumpError("not a leakscope heap dump (bad magic)");
  if (h.version != kVersion || h.header_size != kHeaderSize)
    throw DumpError("unsupported heap dump version " + std::to_string(h.version));
  out->image.pid = h.pid;
  out->image.taken_unix_ns = h.taken_unix_ns;
  out->image.descriptor = h.descriptor;
  const uint64_t max_memory = std::min<uint64_t>(static_cast<uint64_t>(n) * kMaxExpansion, 1ull << 40);
  {  // Room for every memory section at once (no regrowth copies), as far as the limit allows.
    uint64_t want = 0;
    for (uint64_t off = kHeaderSize; off + kSectionHeader <= n;) {
      SectionHeader sh;
      memcpy(&sh, data + off, sizeof sh);
      if (sh.magic != kSectionMagic || sh.compressed > n - off - kSectionHeader) break;
      if (sh.type == kMemory) want += sh.raw;
      off += kSectionHeader + sh.compressed;
    }
    if (want <= max_memory) out->image.reserve_bytes(static_cast<size_t>(want));
  }
  std::vector<uint8_t> raw;
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> guard(dctx, ZSTD_freeDCtx);
  uint64_t off = kHeaderSize;
  bool ended = false;
  while (off < n) {
    if (ended) throw DumpError("corrupt heap dump: bytes after the end section at " + hex(off));
    if (n - off < kSectionHeader) throw DumpError("the heap dump is cut short at " + hex(off));
    SectionHeader sh;
    memcpy(&sh, data + off, sizeof sh);
    if (sh.magic != kSectionMagic) throw DumpError("corrupt heap dump: bad section magic at " + hex(off));
    if (sh.raw > kMaxRaw || sh.compressed > ZSTD_compressBound(kMaxRaw))
      throw DumpError("corrupt heap dump: section sizes over the limits at " + hex(off));
    if (sh.compressed > n - off - kSectionHeader) throw DumpError("the heap dump is cut short at " + hex(off));
    const uint8_t* c = data + off + kSectionHeader;
    unsigned long long declared = ZSTD_getFrameContentSize(c, sh.compressed);
    if (declared != sh.raw) throw DumpError("corrupt heap dump: section size mismatch at " + hex(off));
    // Memory (or capture) past the limit is refused before it is decompressed (read_section
    // checks exactly).
    if ((sh.type == kMemory || sh.type == kCapture) &&
        out->image.bytes_size() + out->capture.size() + sh.raw > max_memory + capture::kMaxVarint)
      throw DumpError("corrupt heap dump: more memory than the file could hold in the section at " + hex(off));
    raw.resize(sh.raw);
    size_t got = ZSTD_decompressDCtx(dctx, raw.data(), raw.size(), c, sh.compressed);
    if (ZSTD_isError(got) || got != sh.raw)
      throw DumpError("corrupt heap dump: " + std::string(ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short section") +
                      " at " + hex(off));
    if (sh.type == kEnd) {
      if (sh.raw != 0) throw DumpError("corrupt heap dump: a non-empty end section at " + hex(off));
      ended = true;
    } else {
      In in(raw.data(), raw.size(), off);
      read_section(sh.type, in, out, max_memory);
    }
    off += kSectionHeader + sh.compressed;
  }
  if (!ended) throw DumpError("the heap dump is cut short (no end section): it was not written to the end");
  if (!out->image.finish()) throw DumpError("corrupt heap dump: memory sections overlap");
}

void read_dump(const std::string& path, Dump* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw DumpError("cannot open " + path + ": " + strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    throw DumpError(path + " is not a regular file");
  }
  size_t n = static_cast<size_t>(st.st_size);
  if (n == 0) {
    close(fd);
    throw DumpError("not a leakscope heap dump (empty file)");
  }
  void* p = mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) throw DumpError("cannot map " + path + ": " + strerror(errno));
  try {
    read_dump_bytes(static_cast<const uint8_t*>(p), n, out);
  } catch (...) {
    munmap(p, n);
    throw;
  }
  munmap(p, n);
}

}  // namespace leakscope::analysis
