// Reading what leakscope writes (captures, heap dumps, FINDLEAKS payloads) with every bound
// checked: one cursor for every parser of outside input, and the appenders that write what it
// reads. Little-endian; varint = unsigned LEB128.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "capture/format.h"

namespace leakscope::capture {

// "0x1f00": offsets and addresses in error messages.
inline std::string hex(uint64_t v) {
  char b[32];
  snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

inline void append_varint(std::string& s, uint64_t v) {
  uint8_t b[kMaxVarint];
  s.append(reinterpret_cast<char*>(b), static_cast<size_t>(put_varint(b, v) - b));
}
inline void append_str(std::string& s, const std::string& v) {
  append_varint(s, v.size());
  s += v;
}

// Reads [p, p + n). `fail(what, consumed)` throws the parser's own error, with its own context
// (`consumed`: bytes read before the problem); every problem goes through it (a record running
// past the end, an overflowing varint, a string over its limit, trailing bytes).
template <typename Fail>
class ByteCursor {
 public:
  ByteCursor(const uint8_t* p, size_t n, Fail fail) : p_(p), e_(p + n), b_(p), fail_(fail) {}
  [[noreturn]] void fail(const std::string& what) const {
    fail_(what, consumed());
    __builtin_unreachable();  // fail_ throws
  }
  uint8_t u8() {
    if (p_ >= e_) fail("a record runs past its end");
    return *p_++;
  }
  uint64_t u64() {
    if (e_ - p_ < 8) fail("a record runs past its end");
    uint64_t v;
    std::memcpy(&v, p_, 8);
    p_ += 8;
    return v;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (p_ >= e_) fail("a record runs past its end");
      uint8_t b = *p_++;
      if (shift == 63 && b > 1) fail("varint overflow");
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  }
  int64_t svarint() { return unzigzag(varint()); }
  std::string str(size_t max) {
    uint64_t n = varint();
    if (n > max) fail("a string longer than " + std::to_string(max) + " bytes");
    if (n > static_cast<uint64_t>(e_ - p_)) fail("a string runs past its end");
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return s;
  }
  const uint8_t* pos() const { return p_; }
  size_t consumed() const { return static_cast<size_t>(p_ - b_); }
  size_t left() const { return static_cast<size_t>(e_ - p_); }
  bool done() const { return p_ == e_; }
  void end() const {
    if (p_ != e_) fail("trailing bytes");
  }

 private:
  const uint8_t* p_;
  const uint8_t* e_;
  const uint8_t* b_;
  Fail fail_;
};

}  // namespace leakscope::capture
