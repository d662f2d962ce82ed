// python_lines.cpp - decoders for CPython line tables (3.9 co_lnotab, 3.10 co_linetable,
// 3.11+ PEP 657 location table) used at report time to turn a FRAME_PY position into a line.
//
// Mirrors CPython Objects/codeobject.c:
//   3.9:   PyCode_Addr2Line (lnotab pairs: unsigned byte address increment, signed byte line
//          increment; the line applies from the accumulated address on).
//   3.10:  PyLineTable_InitAddressRange / advance / PyLineTable_NextAddressRange /
//          _PyCode_CheckLineNumber (pairs: unsigned byte size in bytes, signed byte line
//          delta, -128 = no line; zero-sized entries are skipped but their delta counts).
//   3.11+: _PyLineTable_InitAddressRange / advance / get_line_delta / scan_varint /
//          scan_signed_varint / is_no_line_marker / next_code_delta /
//          _PyLineTable_NextAddressRange / _PyCode_CheckLineNumber (Objects/locations.md).
// Differences from CPython, only reachable with tables CPython never produces: every read is
// bounded by the table (a truncated pair or varint ends the table / reads as 0), varint
// bits beyond 32 are dropped, trailing zero-sized 3.10 entries end the table, positions past
// the end give the last known line instead of -1, and "negative" positions give firstlineno.
#include "symbolize/python_lines.h"

#include "python/versions.h"

#include <algorithm>
#include <limits>

namespace leakscope::symbolize {
namespace {

// -1 (not started) recorded as an unsigned varint: either as a 32-bit or a 64-bit value.
bool is_negative_position(uint64_t position) {
  return (position >> 63) != 0 || (position >= 0x80000000u && position <= 0xffffffffu);
}

// Byte offset that CPython's PyCode_Addr2Line receives for `position`.
uint64_t position_to_address(int kind, uint64_t position) {
  if (kind == kPyTable39) return position;
  if (position >= (uint64_t{1} << 62)) return std::numeric_limits<uint64_t>::max();
  return position * 2;
}

// Iterates the address ranges of a table exactly like PyLineTable_NextAddressRange.
// After next() returns false, `computed_line` is the last line the table reached.
class RangeIter {
 public:
  RangeIter(int kind, std::string_view table, int firstlineno)
      : computed_line(firstlineno),
        kind_(kind),
        start_(reinterpret_cast<const uint8_t*>(table.data())),
        p_(start_),
        limit_(start_ + table.size()) {}

  bool next() {
    switch (kind_) {
      case kPyTable39: return next39();
      case kPyTable310: return next310();
      case kPyTable311: return next311();
      default: return false;
    }
  }

  uint64_t ar_start = 0;
  uint64_t ar_end = 0;
  int64_t ar_line = -1;
  int64_t computed_line;

 private:
  size_t left() const { return static_cast<size_t>(limit_ - p_); }

  // ---- 3.9 co_lnotab: PyCode_Addr2Line ----
  // line(addr) = firstlineno + sum of line increments of the pairs whose accumulated address
  // is <= addr. Emits one range per change of address.
  bool next39() {
    while (left() >= 2) {
      const uint8_t addr_incr = p_[0];
      const int8_t line_incr = static_cast<int8_t>(p_[1]);
      p_ += 2;
      if (addr_incr != 0) {
        ar_start = ar_end;
        ar_end += addr_incr;
        ar_line = computed_line;
        computed_line += line_incr;
        return true;
      }
      computed_line += line_incr;
    }
    return false;
  }

  // ---- 3.10 co_linetable: advance / PyLineTable_NextAddressRange ----
  void advance310() {
    ar_start = ar_end;
    ar_end += p_[0];
    const int ldelta = static_cast<int8_t>(p_[1]);
    p_ += 2;
    if (ldelta == -128) {
      ar_line = -1;
    } else {
      computed_line += ldelta;
      ar_line = computed_line;
    }
  }
  bool next310() {
    if (left() < 2) return false;
    advance310();
    while (ar_start == ar_end) {
      if (left() < 2) return false;  // CPython asserts here
      advance310();
    }
    return true;
  }

  // ---- 3.11+ location table ----
  // scan_varint: 6-bit chunks, bit 6 = continuation; bounded by the table.
  uint32_t scan_varint(const uint8_t* ptr) const {
    if (ptr >= limit_) return 0;
    unsigned read = *ptr++;
    uint32_t val = read & 63;
    unsigned shift = 0;
    while (read & 64) {
      if (ptr >= limit_) break;
      read = *ptr++;
      shift += 6;
      if (shift < 32) val |= static_cast<uint32_t>(read & 63) << shift;
    }
    return val;
  }
  int64_t scan_signed_varint(const uint8_t* ptr) const {
    const uint32_t uval = scan_varint(ptr);
    if (uval & 1) return -static_cast<int64_t>(uval >> 1);
    return static_cast<int64_t>(uval >> 1);
  }
  int64_t get_line_delta(const uint8_t* ptr) const {
    const int code = ((*ptr) >> 3) & 15;
    switch (code) {
      case 15: return 0;                              // PY_CODE_LOCATION_INFO_NONE
      case 13:                                        // PY_CODE_LOCATION_INFO_NO_COLUMNS
      case 14: return scan_signed_varint(ptr + 1);    // PY_CODE_LOCATION_INFO_LONG
      case 10: return 0;                              // PY_CODE_LOCATION_INFO_ONE_LINE0
      case 11: return 1;                              // PY_CODE_LOCATION_INFO_ONE_LINE1
      case 12: return 2;                              // PY_CODE_LOCATION_INFO_ONE_LINE2
      default: return 0;                              // short forms: same line
    }
  }
  static bool is_no_line_marker(uint8_t b) { return (b >> 3) == 0x1f; }
  bool next311() {
    if (p_ >= limit_) return false;
    computed_line += get_line_delta(p_);
    ar_line = is_no_line_marker(*p_) ? -1 : computed_line;
    ar_start = ar_end;
    ar_end += static_cast<uint64_t>((*p_ & 7) + 1) * 2;  // next_code_delta, in bytes
    do {
      ++p_;
    } while (p_ < limit_ && (*p_ & 128) == 0);
    return true;
  }

  const int kind_;
  const uint8_t* const start_;
  const uint8_t* p_;
  const uint8_t* const limit_;
};

constexpr bool known_kind(int kind) {
  return kind == kPyTable39 || kind == kPyTable310 || kind == kPyTable311;
}
// Every supported version's line tables are read here: a version added to python/versions.h
// with a new kind of table does not build until this file decodes it.
constexpr bool every_version_decoded() {
  for (const auto& v : python_versions::kAll)
    if (!known_kind(v.lines)) return false;
  return true;
}
static_assert(every_version_decoded(), "python/versions.h names a line-table kind python_lines.cpp cannot read");

}  // namespace

int python_line(int table_kind, std::string_view table, int firstlineno, uint64_t position) {
  if (!known_kind(table_kind) || is_negative_position(position)) return firstlineno;
  const uint64_t addr = position_to_address(table_kind, position);
  RangeIter it(table_kind, table, firstlineno);
  // _PyCode_CheckLineNumber from a fresh range: ranges are contiguous from 0, so the first
  // one whose end is past addr contains it.
  while (it.next()) {
    if (addr < it.ar_end) return static_cast<int>(it.ar_line);
  }
  return static_cast<int>(it.computed_line);
}

PythonLineTable::PythonLineTable(int kind, std::string_view table, int firstlineno)
    : kind_(kind), firstlineno_(firstlineno), past_end_line_(firstlineno) {
  if (!known_kind(kind)) return;
  RangeIter it(kind, table, firstlineno);
  while (it.next()) {
    const int line = static_cast<int>(it.ar_line);
    if (!ranges_.empty() && ranges_.back().line == line) {
      ranges_.back().end = it.ar_end;
    } else {
      ranges_.push_back(Range{it.ar_start, it.ar_end, line});
    }
  }
  past_end_line_ = static_cast<int>(it.computed_line);
}

int PythonLineTable::line(uint64_t position) const {
  if (!known_kind(kind_) || is_negative_position(position)) return firstlineno_;
  const uint64_t addr = position_to_address(kind_, position);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](uint64_t a, const Range& r) { return a < r.end; });
  if (it == ranges_.end()) return past_end_line_;
  return it->line;
}

}  // namespace leakscope::symbolize
