// Capture reader: see reader.h for the contract and format.md for the layout.
#include "capture/reader.h"

#include "capture/events.h"

#include "capture/byte_cursor.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace leakscope::capture {
namespace {

// Bounds-checked cursor over one section of a decompressed chunk: errors name the raw offset.
struct SectionFail {
  uint64_t base;
  [[noreturn]] void operator()(const std::string& what, size_t at) const {
    throw CaptureError("corrupt capture: " + what + " at raw offset " + hex(base + at));
  }
};
class Cursor : public ByteCursor<SectionFail> {
 public:
  Cursor(const uint8_t* p, size_t n, uint64_t base) : ByteCursor(p, n, SectionFail{base}) {}
  std::string str() { return ByteCursor::str(kMaxStringBytes); }
};

// Hands decode_events' records to a Visitor, counting them.
struct EventsTo {
  Visitor& v;
  Stream stream;
  uint64_t& events;
  void alloc(uint8_t tag, uint64_t addr, uint64_t size, uint64_t stack) {
    ++events;
    v.alloc(stream, static_cast<Tag>(tag), addr, size, stack);
  }
  void free(uint64_t addr) {
    ++events;
    v.free(stream, addr);
  }
  void arena(bool alloc, uint64_t addr, uint64_t size) {
    ++events;
    v.arena(alloc, addr, size);
  }
  void munmap(uint64_t addr, uint64_t size) {
    ++events;
    v.munmap(addr, size);
  }
  void tick(uint64_t ns) { v.tick(ns); }
};

// GCSTATS (format.md): the census follows only when its flag says so; unknown flags are
// rejected (they could announce fields this reader does not know).
GcStats read_gcstats(Cursor& c) {
  GcStats g;
  g.time_ns = c.varint();
  g.flags = c.varint();
  if (g.flags & ~kGcKnownFlags) c.fail("collector record with unknown flags");
  g.debug = c.varint();
  for (int i = 0; i < 3; ++i) {
    g.count[i] = c.varint();
    g.threshold[i] = c.varint();
    g.collections[i] = c.varint();
    g.collected[i] = c.varint();
    g.uncollectable[i] = c.varint();
  }
  g.garbage = c.varint();
  g.long_lived_total = c.varint();
  g.long_lived_pending = c.varint();
  if (g.flags & kGcCensus) {
    for (uint64_t& o : g.objects) o = c.varint();
    g.frozen = c.varint();
  }
  return g;
}

bool read_exact(int fd, void* buf, size_t n, uint64_t off, size_t* got) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, static_cast<char*>(buf) + done, n - done, static_cast<off_t>(off + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw CaptureError(std::string("cannot read capture: ") + strerror(errno));
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  *got = done;
  return done == n;
}

}  // namespace

Reader::Reader(const std::string& path) {
  fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw CaptureError("cannot open capture " + path + ": " + strerror(errno));
  open_checked(path);
}

Reader::Reader(int fd, const std::string& name) {
  fd_ = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (fd_ < 0) throw CaptureError("cannot read capture " + name + ": " + strerror(errno));
  open_checked(name);
}

void Reader::open_checked(const std::string& path) {
  name_ = path;
  struct stat st {};
  if (fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd_);
    fd_ = -1;
    throw CaptureError(path + " is not a regular file");
  }
  file_size_ = static_cast<uint64_t>(st.st_size);
  chain_.assign(1, {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)});
  size_t got = 0;
  if (!read_exact(fd_, &header_, sizeof header_, 0, &got)) {
    close(fd_);
    fd_ = -1;
    throw CaptureError(path + " is not a leakscope capture (shorter than its header)");
  }
  if (memcmp(header_.magic, kMagic, sizeof kMagic) != 0) {
    close(fd_);
    fd_ = -1;
    throw CaptureError(path + " is not a leakscope capture (bad magic)");
  }
  if (header_.version < kMinFormatVersion || header_.version > kFormatVersion || header_.header_size != kHeaderSize) {
    close(fd_);
    fd_ = -1;
    throw CaptureError(path + ": unsupported capture format version " + std::to_string(header_.version) +
                       " (this leakscope reads version " + std::to_string(kFormatVersion) + ")");
  }
}

Reader::~Reader() {
  if (fd_ >= 0) close(fd_);
}

void Reader::read_all(Visitor& v) {
  uint64_t off = kHeaderSize;
  std::vector<uint8_t> comp, raw;
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  // A chunk needs at most 2^kMaxChunkBytes window; refuse larger windows from hostile frames.
  ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, 27);
  uint32_t expect_seq = 0;
  while (off < file_size_) {
    ChunkHeader ch{};
    size_t got = 0;
    if (!read_exact(fd_, &ch, sizeof ch, off, &got)) {
      truncated_ = true;  // cut inside a chunk header: the process died while writing
      break;
    }
    if (ch.magic != kChunkMagic) throw CaptureError("corrupt capture: bad chunk magic at offset " + hex(off));
    if (ch.compressed_size == 0 || ch.compressed_size > kMaxChunkBytes || ch.raw_size > kMaxChunkBytes)
      throw CaptureError("corrupt capture: chunk sizes out of range at offset " + hex(off));
    if (ch.sequence != expect_seq)
      throw CaptureError("corrupt capture: chunk " + std::to_string(ch.sequence) + " where " +
                         std::to_string(expect_seq) + " was expected at offset " + hex(off));
    if (off + kChunkHeaderSize + ch.compressed_size > file_size_) {
      truncated_ = true;  // cut inside the last chunk's data
      break;
    }
    comp.resize(ch.compressed_size);
    if (!read_exact(fd_, comp.data(), comp.size(), off + kChunkHeaderSize, &got)) {
      truncated_ = true;
      break;
    }
    raw.resize(ch.raw_size);
    size_t r = ZSTD_decompressDCtx(dctx.get(), raw.data(), raw.size(), comp.data(), comp.size());
    if (ZSTD_isError(r))
      throw CaptureError(std::string("corrupt capture: chunk at offset ") + hex(off) +
                         " does not decompress (" + ZSTD_getErrorName(r) + ")");
    if (r != ch.raw_size) throw CaptureError("corrupt capture: chunk at offset " + hex(off) + " has the wrong size");
    decode_chunk(raw.data(), raw.size(), off, v);
    v.chunk_end();
    ++chunks_;
    ++expect_seq;
    off += kChunkHeaderSize + ch.compressed_size;
    if (progress_) progress_(name_, off, file_size_);
  }
}

namespace {
struct StopFinder : Visitor {
  bool stopped = false;
  void stop(uint64_t, std::string&&) override { stopped = true; }
  void retention(std::string&&) override { trailer = true; }
  void tasks(std::string&&) override { trailer = true; }
  bool trailer = false;  // a chunk written after the STOP (docs/retention.md)
};
}  // namespace

bool Reader::ends_with_clean_stop() {
  uint64_t off = kHeaderSize, last = 0, prev = 0;
  ChunkHeader last_h{}, prev_h{};
  bool any = false;
  while (off < file_size_) {
    ChunkHeader ch{};
    size_t got = 0;
    if (!read_exact(fd_, &ch, sizeof ch, off, &got)) return false;
    if (ch.magic != kChunkMagic || ch.compressed_size == 0 || ch.compressed_size > kMaxChunkBytes ||
        ch.raw_size > kMaxChunkBytes || off + kChunkHeaderSize + ch.compressed_size > file_size_)
      return false;
    prev = last;
    prev_h = last_h;
    last = off;
    last_h = ch;
    any = true;
    off += kChunkHeaderSize + ch.compressed_size;
  }
  if (!any) return false;
  auto decode = [&](uint64_t at, const ChunkHeader& h, StopFinder& f) {
    std::vector<uint8_t> comp(h.compressed_size), raw(h.raw_size);
    size_t got = 0;
    if (!read_exact(fd_, comp.data(), comp.size(), at + kChunkHeaderSize, &got)) return false;
    size_t r = ZSTD_decompress(raw.data(), raw.size(), comp.data(), comp.size());
    if (ZSTD_isError(r) || r != raw.size()) return false;
    lenient_ = true;
    try {
      decode_chunk(raw.data(), raw.size(), at, f);
    } catch (const CaptureError&) {
      lenient_ = false;
      return false;
    }
    lenient_ = false;
    return true;
  };
  StopFinder f;
  if (!decode(last, last_h, f)) return false;
  if (f.stopped) return true;
  // Retention paths come in a chunk of their own after the one with the STOP.
  StopFinder g;
  return f.trailer && prev && decode(prev, prev_h, g) && g.stopped;
}

void Reader::decode_chunk(const uint8_t* data, size_t n, uint64_t file_offset, Visitor& v) {
  size_t pos = 0;
  while (pos < n) {
    Cursor hdr(data + pos, n - pos, pos);
    uint8_t stream = hdr.u8();
    uint64_t len = hdr.varint();
    size_t hdr_len = hdr.consumed();  // the length may be a padded (non-minimal) varint
    if (stream < kStreamDefs || stream > kStreamNative)
      throw CaptureError("corrupt capture: unknown stream in chunk at offset " + hex(file_offset));
    if (len > n - pos - hdr_len)
      throw CaptureError("corrupt capture: section runs past its chunk at offset " + hex(file_offset));
    Cursor c(data + pos + hdr_len, len, pos + hdr_len);
    if (stream != kStreamDefs) {  // event records: capture/events.h, the one decoder of them
      const int si = stream - kStreamPy;
      EventDelta d{last_addr_[si], last_stack_[si]};
      const uint8_t* start = c.pos();
      const DecodeResult r = decode_events(start, start + len, d, EventsTo{v, static_cast<Stream>(stream), events_}, stream);
      last_addr_[si] = d.last_addr;
      last_stack_[si] = d.last_stack;
      if (!r)
        throw CaptureError(std::string("corrupt capture: ") + r.why + " at raw offset " +
                           hex(pos + hdr_len + static_cast<uint64_t>(r.at - start)));
      pos += hdr_len + len;
      continue;
    }
    while (!c.done()) {
      const uint8_t* rec = c.pos();
      uint8_t tag = c.u8();
      switch (tag) {
        case kFramePy: {
          uint64_t code = c.varint(), instr = c.varint();
          v.frame_py(next_frame_id_++, code, instr);
          break;
        }
        case kFrameNative: v.frame_native(next_frame_id_++, c.varint()); break;
        case kStackNode: {
          uint64_t parent = c.varint(), frame = c.varint();
          if (!lenient_ && (parent >= next_stack_id_ || frame >= next_frame_id_ || frame == 0))
            c.fail("stack node refers to an undefined node or frame");
          v.stack_node(next_stack_id_++, parent, frame);
          break;
        }
        case kCode: {
          Code code;
          code.id = c.varint();
          if (!lenient_ && code.id != next_code_id_) c.fail("code object id out of sequence");
          ++next_code_id_;
          code.firstlineno = c.varint();
          code.table_kind = c.u8();
          code.table = c.str();
          code.filename = c.str();
          code.qualname = c.str();
          v.code(std::move(code));
          break;
        }
        case kModule: {
          Module m;
          m.path = c.str();
          m.load_bias = c.varint();
          m.build_id = c.str();
          uint64_t nseg = c.varint();
          if (nseg > 64) c.fail("module with too many segments");
          for (uint64_t i = 0; i < nseg; ++i) {
            uint64_t va = c.varint(), sz = c.varint();
            m.segments.emplace_back(va, sz);
          }
          v.module(std::move(m));
          break;
        }
        case kInfo: {
          std::string k = c.str();
          std::string val = c.str();
          // ends_with_clean_stop (lenient) only looks for a STOP: it never opens a parent.
          if ((header_.flags & kFlagForkedChild) && !lenient_)
            if (const char* bad = parent_info(k, val, v)) c.fail(bad);
          v.info(std::move(k), std::move(val));
          break;
        }
        case kStats: {
          Stats s;
          s.time_ns = c.varint(); s.rss = c.varint(); s.rss_anon = c.varint(); s.rss_file = c.varint();
          s.glibc_in_use = c.varint(); s.glibc_free = c.varint(); s.glibc_mmap = c.varint();
          s.arena_bytes = c.varint(); s.threads = c.varint();
          v.stats(s);
          break;
        }
        case kGcStats: v.gcstats(read_gcstats(c)); break;
        case kStop: {
          uint64_t ns = c.varint();
          v.stop(ns, c.str());
          break;
        }
        case kMessage: v.message(c.str()); break;
        case kSnapshot: {
          Snapshot s;
          s.time_ns = c.varint();
          s.live_bytes = c.varint();
          s.peak_bytes = c.varint();
          s.alloc_count = c.varint();
          s.alloc_bytes = c.varint();
          s.events = c.varint();
          uint64_t n = c.varint();
          if (n > len) c.fail("snapshot with more entries than bytes");
          uint64_t key = 0;
          s.changed.reserve(static_cast<size_t>(n));
          for (uint64_t i = 0; i < n; ++i) {
            key += static_cast<uint64_t>(c.svarint());
            uint64_t bytes = c.varint(), count = c.varint();
            if (key >= (1ull << 32)) c.fail("snapshot key out of range");
            s.changed.emplace_back(key, bytes, count);
          }
          events_ = s.events;
          v.snapshot(std::move(s));
          break;
        }
        case kTick: v.tick(c.varint()); break;
        case kFindleaks: v.findleaks(c.str()); break;
        case kRetain: v.retention(c.str()); break;
        case kTasks: v.tasks(c.str()); break;
        default: c.fail("unknown definition record");
      }
      v.def_record(tag, rec, static_cast<size_t>(c.pos() - rec));
    }
    pos += hdr_len + len;
  }
}

}  // namespace leakscope::capture
