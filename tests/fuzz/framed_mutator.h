// Structure-aware mutation for leakscope's two framed formats, heap dumps
// (docs/heapdump-format.md) and captures (capture/format.md): a 64-byte header, then frames of
// a 16-byte frame header and one zstd frame with a content checksum. A byte flipped inside a
// compressed frame almost always just fails the checksum, so plain mutation never gets past
// the container. Most of the time this mutator decompresses one frame, mutates its raw bytes
// with libFuzzer's own mutator and recompresses it (frame header sizes fixed up); sometimes it
// duplicates, drops or swaps whole frames; and sometimes it mutates the file bytes as they are
// (the framing itself: sizes, magics, truncation, checksums).
#pragma once
#include <zstd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace leakscope_fuzz {

struct FrameLayout {
  size_t compressed_at, raw_at;  // offsets of the u32 sizes in the 16-byte frame header
};

inline constexpr size_t kFileHeader = 64, kFrameHeader = 16;
inline constexpr size_t kMaxMutatedRaw = 8u << 20;  // raw bytes of one frame, at most

struct Frame {
  uint8_t hdr[kFrameHeader];
  std::vector<uint8_t> comp;
};

inline size_t mutate_framed(uint8_t* data, size_t size, size_t max_size, unsigned seed, const FrameLayout& L) {
  std::minstd_rand rng(seed);
  auto plain = [&] { return LLVMFuzzerMutate(data, size, max_size); };
  if (size < kFileHeader + kFrameHeader || rng() % 5 == 0) return plain();
  std::vector<Frame> frames;
  size_t off = kFileHeader;
  while (off + kFrameHeader <= size) {
    uint32_t c;
    memcpy(&c, data + off + L.compressed_at, 4);
    if (c > size - off - kFrameHeader) break;
    Frame f;
    memcpy(f.hdr, data + off, kFrameHeader);
    f.comp.assign(data + off + kFrameHeader, data + off + kFrameHeader + c);
    frames.push_back(std::move(f));
    off += kFrameHeader + c;
  }
  if (frames.empty()) return plain();
  const std::vector<uint8_t> tail(data + off, data + size);  // what did not parse: kept as is
  size_t i = rng() % frames.size();
  switch (rng() % 10) {
    case 0:
      if (frames.size() >= 256) return plain();
      frames.insert(frames.begin() + static_cast<ptrdiff_t>(i), frames[i]);
      break;
    case 1:
      if (frames.size() < 2) return plain();
      frames.erase(frames.begin() + static_cast<ptrdiff_t>(i));
      break;
    case 2:
      if (frames.size() < 2) return plain();
      std::swap(frames[i], frames[rng() % frames.size()]);
      break;
    default: {  // the raw bytes of frame i
      Frame& f = frames[i];
      unsigned long long rs = ZSTD_getFrameContentSize(f.comp.data(), f.comp.size());
      if (rs == ZSTD_CONTENTSIZE_ERROR || rs == ZSTD_CONTENTSIZE_UNKNOWN || rs > kMaxMutatedRaw) return plain();
      size_t cap = std::min<size_t>(kMaxMutatedRaw, static_cast<size_t>(rs) + static_cast<size_t>(rs) / 4 + 4096);
      std::vector<uint8_t> raw(cap);
      size_t got = ZSTD_decompress(raw.data(), cap, f.comp.data(), f.comp.size());
      if (ZSTD_isError(got)) return plain();
      size_t n = LLVMFuzzerMutate(raw.data(), got, cap);
      f.comp.resize(ZSTD_compressBound(n));
      static ZSTD_CCtx* cctx = [] {
        ZSTD_CCtx* c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, 1);
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        return c;
      }();
      size_t c = ZSTD_compress2(cctx, f.comp.data(), f.comp.size(), raw.data(), n);
      if (ZSTD_isError(c)) return plain();
      f.comp.resize(c);
      uint32_t c32 = static_cast<uint32_t>(c), r32 = static_cast<uint32_t>(n);
      memcpy(f.hdr + L.compressed_at, &c32, 4);
      memcpy(f.hdr + L.raw_at, &r32, 4);
      break;
    }
  }
  size_t total = kFileHeader + tail.size();
  for (const Frame& f : frames) total += kFrameHeader + f.comp.size();
  if (total > max_size) return plain();
  uint8_t* p = data + kFileHeader;
  for (const Frame& f : frames) {
    memcpy(p, f.hdr, kFrameHeader);
    if (!f.comp.empty()) memcpy(p + kFrameHeader, f.comp.data(), f.comp.size());
    p += kFrameHeader + f.comp.size();
  }
  if (!tail.empty()) memcpy(p, tail.data(), tail.size());
  return total;
}

}  // namespace leakscope_fuzz
