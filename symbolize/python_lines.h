// python_lines.h - report-time mapping of a recorded Python frame (code object line table +
// instruction position, see the CODE and FRAME_PY records in capture/format.md) to a source
// line number, for CPython 3.9 to 3.13, without a Python interpreter.
//
// Mirrors CPython's Objects/codeobject.c:
//   kind 9  (3.9  co_lnotab)           PyCode_Addr2Line (Objects/lnotab_notes.txt)
//   kind 10 (3.10 co_linetable, PEP 626) PyCode_Addr2Line / _PyCode_CheckLineNumber /
//                                        PyLineTable_NextAddressRange
//   kind 11 (3.11-3.13 location table, PEP 657, Objects/locations.md)
//                                        PyCode_Addr2Line / _PyCode_CheckLineNumber /
//                                        _PyLineTable_NextAddressRange
//
// Positions, as recorded by the tracker:
//   kind 9:  byte offset into co_code (f_lasti as-is).
//   kind 10: f_lasti in 2-byte code units (CPython looks up f_lasti * 2).
//   kind 11: code units from the start of co_code (_PyInterpreterFrame_LASTI; looked up * 2).
// Out-of-range positions (never produced by CPython for a running frame):
//   - "not started" (-1 stored as 0xffffffff, or any value that is negative as int32 when it
//     fits in 32 bits, or negative as int64): firstlineno, as PyCode_Addr2Line does for
//     addrq < 0.
//   - past the end of the table: the last line the table reached ("last known line"), where
//     CPython would assert / return -1.
// Unknown table kinds give firstlineno (best effort).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "capture/format.h"

namespace leakscope::symbolize {

inline constexpr int kPyTable39 = capture::kLnotab39;          // CPython 3.9 co_lnotab
inline constexpr int kPyTable310 = capture::kLinetable310;     // CPython 3.10 co_linetable
inline constexpr int kPyTable311 = capture::kLocations311;     // CPython 3.11+ location table

// Returns the line for `position` (see above) or -1 when the table says there is no line
// (e.g. artificial instructions). Never reads outside `table`. Bad/hostile tables give -1 or a
// best effort value, never a crash or unbounded loop. O(table size) per call.
int python_line(int table_kind, std::string_view table, int firstlineno, uint64_t position);

// A decoded table that answers many positions for one code object in O(log n) each. Gives
// exactly the same answers as python_line(). Does not keep a reference to `table`.
class PythonLineTable {
 public:
  PythonLineTable(int kind, std::string_view table, int firstlineno);
  int line(uint64_t position) const;

 private:
  struct Range {
    uint64_t start;  // byte offsets, [start, end)
    uint64_t end;
    int line;
  };
  int kind_;
  int firstlineno_;
  int past_end_line_;
  std::vector<Range> ranges_;  // ascending, contiguous from 0, non-empty ranges only
};

}  // namespace leakscope::symbolize
