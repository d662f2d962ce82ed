// Test-side capture writer shared by the capture unit tests (capture_test.cpp,
// capture_fork_test.cpp): it mirrors the agent's encoder (agent/writer.cpp, agent/hooks.cpp)
// and builds capture files in memory, byte by byte, valid or hostile.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "capture/format.h"

namespace {

using namespace leakscope::capture;

class CaptureBuilder {
 public:
  struct Section {
    uint8_t stream;
    std::vector<uint8_t> bytes;
  };
  CaptureBuilder() {
    FileHeader h{};
    memcpy(h.magic, kMagic, 8);
    h.version = kFormatVersion;
    h.header_size = kHeaderSize;
    h.pid = 4242;
    out_.resize(sizeof h);
    memcpy(out_.data(), &h, sizeof h);
  }
  // The header's flags (kFlagNative, kFlagAggregate, kFlagForkedChild).
  void flags(uint32_t f) { memcpy(out_.data() + offsetof(FileHeader, flags), &f, sizeof f); }
  void pid(uint64_t p) { memcpy(out_.data() + offsetof(FileHeader, pid), &p, sizeof p); }
  std::vector<uint8_t>& sec(uint8_t stream) {
    sections_.push_back(Section{stream, {}});
    return sections_.back().bytes;
  }
  static void put(std::vector<uint8_t>& v, uint64_t x) {
    uint8_t b[10];
    uint8_t* e = put_varint(b, x);
    v.insert(v.end(), b, e);
  }
  static void sput(std::vector<uint8_t>& v, int64_t x) { put(v, zigzag(x)); }
  static void str(std::vector<uint8_t>& v, const std::string& s) {
    put(v, s.size());
    v.insert(v.end(), s.begin(), s.end());
  }
  // Emits one chunk out of the pending sections.
  void chunk(uint32_t seq_override = UINT32_MAX) {
    std::vector<uint8_t> raw;
    for (auto& s : sections_) {
      raw.push_back(s.stream);
      put(raw, s.bytes.size());
      raw.insert(raw.end(), s.bytes.begin(), s.bytes.end());
    }
    sections_.clear();
    std::vector<uint8_t> comp(ZSTD_compressBound(raw.size()));
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    size_t n = ZSTD_compress2(c, comp.data(), comp.size(), raw.data(), raw.size());
    ZSTD_freeCCtx(c);
    ChunkHeader ch{kChunkMagic, static_cast<uint32_t>(n), static_cast<uint32_t>(raw.size()),
                   seq_override == UINT32_MAX ? seq_++ : seq_override};
    const uint8_t* hp = reinterpret_cast<const uint8_t*>(&ch);
    out_.insert(out_.end(), hp, hp + sizeof ch);
    out_.insert(out_.end(), comp.begin(), comp.begin() + static_cast<long>(n));
  }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::vector<uint8_t> out_;
  std::vector<Section> sections_;
  uint32_t seq_ = 0;
};

inline std::string write_temp(const std::vector<uint8_t>& b) {
  char path[] = "/tmp/leakscope-capture-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, b.data(), b.size()), static_cast<ssize_t>(b.size()));
  close(fd);
  return path;
}

}  // namespace
