// The FINDLEAKS record: see findleaks_record.h and capture/format.md.
#include "analysis/findleaks_record.h"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>

#include "capture/byte_cursor.h"
#include "capture/format.h"
#include "capture/reader.h"

namespace leakscope::analysis {
namespace {

constexpr uint64_t kVersion = 1;
constexpr uint64_t kMaxGroups = 1u << 20;
constexpr uint64_t kMaxNotes = 64;

using capture::append_str;
using capture::append_varint;

// The FINDLEAKS payload's cursor: its errors are CaptureErrors, as the capture's are.

uint64_t* totals_fields(FindleaksTotals& t, size_t i) {
  uint64_t* f[] = {&t.direct_bytes,    &t.direct_count,  &t.indirect_bytes, &t.indirect_count, &t.reachable_bytes,
                   &t.reachable_count, &t.garbage_bytes, &t.garbage_count,  &t.immortal_count, &t.root_bytes};
  return f[i];
}
constexpr size_t kTotals = 10;

}  // namespace

std::string encode_findleaks(const FindleaksResult& r) {
  std::string s;
  append_varint(s, kVersion);
  s += static_cast<char>(r.when);
  s += static_cast<char>(r.conservative ? 1 : 0);
  append_varint(s, r.time_ns);
  append_varint(s, r.py_minor);
  FindleaksTotals t = r.totals;
  for (size_t i = 0; i < kTotals; ++i) append_varint(s, *totals_fields(t, i));
  append_varint(s, std::min<uint64_t>(r.notes.size(), kMaxNotes));
  for (size_t i = 0; i < r.notes.size() && i < kMaxNotes; ++i) {
    s += static_cast<char>(r.notes[i].first);
    append_varint(s, r.notes[i].second);
  }
  size_t ng = std::min<size_t>(r.groups.size(), kMaxGroups);
  append_varint(s, ng);
  for (size_t i = 0; i < ng; ++i) {
    const LostGroup& g = r.groups[i];
    s += static_cast<char>(g.kind);
    s += static_cast<char>(g.layer);
    append_varint(s, g.stack);
    append_str(s, g.python_type.substr(0, 256));
    append_varint(s, g.bytes);
    append_varint(s, g.count);
    append_varint(s, g.unowned_refs);
    size_t ne = std::min(g.examples.size(), kExamplesPerGroup);
    append_varint(s, ne);
    for (size_t k = 0; k < ne; ++k) {
      append_varint(s, g.examples[k].addr);
      append_varint(s, capture::zigzag(g.examples[k].refcount));
      append_str(s, std::string(g.examples[k].head.begin(), g.examples[k].head.end()).substr(0, kExampleBytes));
    }
  }
  return s;
}

FindleaksResult decode_findleaks(const std::string& payload) {
  capture::PayloadCursor in(payload, "FINDLEAKS");
  FindleaksResult r;
  if (in.varint() != kVersion) in.fail("unknown version");
  uint8_t when = in.u8();
  if (when > 2) in.fail("unknown time of check");
  r.when = static_cast<FindleaksWhen>(when);
  r.conservative = (in.u8() & 1) != 0;
  r.time_ns = in.varint();
  r.py_minor = static_cast<uint32_t>(in.varint() & 0xff);
  for (size_t i = 0; i < kTotals; ++i) *totals_fields(r.totals, i) = in.varint();
  uint64_t nn = in.varint();
  if (nn > kMaxNotes) in.fail("too many notes");
  for (uint64_t i = 0; i < nn; ++i) {
    uint8_t code = in.u8();
    uint64_t count = in.varint();
    if (code <= static_cast<uint8_t>(ModelNote::kOverlappingBlocks)) r.notes.emplace_back(static_cast<ModelNote>(code), count);
  }
  uint64_t ng = in.varint();
  if (ng > kMaxGroups) in.fail("too many groups");
  for (uint64_t i = 0; i < ng; ++i) {
    LostGroup g;
    uint8_t kind = in.u8();
    if (kind > 2) in.fail("unknown kind of loss");
    g.kind = static_cast<LostKind>(kind);
    g.layer = in.u8();
    if (g.layer > 3) in.fail("unknown layer");
    uint64_t stack = in.varint();
    if (stack >= (1ull << 32)) in.fail("stack id out of range");
    g.stack = static_cast<uint32_t>(stack);
    g.python_type = in.str(256);
    g.bytes = in.varint();
    g.count = in.varint();
    g.unowned_refs = in.varint();
    uint64_t ne = in.varint();
    if (ne > kExamplesPerGroup) in.fail("too many examples");
    for (uint64_t k = 0; k < ne; ++k) {
      LostExample ex;
      ex.addr = in.varint();
      ex.refcount = capture::unzigzag(in.varint());
      std::string h = in.str(kExampleBytes);
      ex.head.assign(h.begin(), h.end());
      g.examples.push_back(std::move(ex));
    }
    r.groups.push_back(std::move(g));
  }
  in.end();
  return r;
}

std::string append_findleaks(const std::string& path, const FindleaksResult& r) {
  int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::string("cannot open ") + path + ": " + strerror(errno);
  // The next sequence number: count the chunks; the file must end at a chunk boundary.
  off_t end = lseek(fd, 0, SEEK_END), off = capture::kHeaderSize;
  uint32_t seq = 0;
  while (off + static_cast<off_t>(capture::kChunkHeaderSize) <= end) {
    capture::ChunkHeader h{};
    if (pread(fd, &h, sizeof h, off) != static_cast<ssize_t>(sizeof h) || h.magic != capture::kChunkMagic) break;
    off += static_cast<off_t>(capture::kChunkHeaderSize + h.compressed_size);
    seq = h.sequence + 1;
  }
  if (off != end) {
    close(fd);
    return "the capture does not end at a chunk boundary";
  }
  std::string rec;
  rec += static_cast<char>(capture::kFindleaks);
  append_str(rec, encode_findleaks(r));
  std::string raw;
  raw += static_cast<char>(capture::kStreamDefs);
  append_varint(raw, rec.size());
  raw += rec;
  std::string out(capture::kChunkHeaderSize + ZSTD_compressBound(raw.size()), '\0');
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  size_t c = ZSTD_compress2(cctx, out.data() + capture::kChunkHeaderSize, out.size() - capture::kChunkHeaderSize, raw.data(),
                            raw.size());
  ZSTD_freeCCtx(cctx);
  if (ZSTD_isError(c)) {
    close(fd);
    return "cannot compress the result";
  }
  capture::ChunkHeader h{capture::kChunkMagic, static_cast<uint32_t>(c), static_cast<uint32_t>(raw.size()), seq};
  memcpy(out.data(), &h, sizeof h);
  size_t n = capture::kChunkHeaderSize + c;
  bool ok = pwrite(fd, out.data(), n, end) == static_cast<ssize_t>(n);
  close(fd);
  return ok ? "" : std::string("cannot write ") + path + ": " + strerror(errno);
}

}  // namespace leakscope::analysis
